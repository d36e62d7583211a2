//! `xencons HOST PORT`: attach this terminal to a domain console.
//!
//! With a terminal on standard input: raw mode, the banner, Ctrl-] (or the
//! `-e` key) quits. Otherwise (a pipe or file): copy input to the console and
//! the console to standard output until end of input plus `--linger` seconds
//! of quiet, or until the server closes the console.
//!
//! Over TLS when xend's consoles speak it (`--tls`, `--cacert`,
//! `$XEND_URL` https://, or the local config's `xend-tls-cert`).
//!
//! Exit status: 0 after the escape key, a remote close or the end of input;
//! 1 on an error (printed as `Error: ...`), including xend refusing the
//! console for want of its token; 128+N after signal N.
use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use console_client::cli::Args;
use console_client::{
    ConnectError, ConnectOptions, Console, ExitReason, InteractiveOptions, PipeOptions,
    SessionError,
};

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(ExitReason::Signal(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        Ok(ExitReason::Refused { token_sent }) => {
            eprintln!("Error: {}", console_client::refusal::hint(token_sent));
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", errchain::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitReason, XenconsError> {
    let config = xend::config::client_config();
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let cacert = env("XEND_CACERT").map(std::path::PathBuf::from);
    let tls = args.console_tls(env("XEND_URL").as_deref(), cacert.as_deref(), &config);
    let token = args.token.filter(|t| !t.is_empty()).or_else(|| {
        let file = args.token_file.unwrap_or(config.token_file);
        std::fs::read_to_string(file)
            .ok()
            .and_then(|text| xend::config::parse_token(&text))
    });
    let opts = ConnectOptions {
        token,
        tls,
        ..ConnectOptions::default()
    };
    if !(args.linger.is_finite() && args.linger >= 0.0) {
        return Err(XenconsError::Linger(args.linger));
    }
    let mut console = Console::connect(&args.host, args.port, &opts)?;
    if io::stdin().is_terminal() {
        let opts = InteractiveOptions {
            escape: args.escape,
            ..InteractiveOptions::default()
        };
        Ok(console.run_interactive(opts)?)
    } else {
        let opts = PipeOptions {
            linger: Duration::from_secs_f64(args.linger),
            ..PipeOptions::default()
        };
        Ok(console.run_pipe(io::stdin(), io::stdout(), &opts)?)
    }
}

/// Why xencons gave up.
#[derive(Debug, thiserror::Error)]
enum XenconsError {
    /// A `--linger` that is not a duration.
    #[error("invalid --linger '{0}': expected a number of seconds >= 0")]
    Linger(f64),
    /// The console could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The session broke.
    #[error(transparent)]
    Session(#[from] SessionError),
}
