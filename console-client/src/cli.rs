//! `xencons`'s command line (here, not in the binary, so the man page and
//! the shell completions can be generated from it).
use clap::Parser;

use crate::{ConsoleTls, EscapeKey};

/// Attach this terminal to a domain console served by xend.
#[derive(Debug, Parser)]
#[command(name = "xencons", version)]
pub struct Args {
    /// Host of the console (xend's console address).
    pub host: String,
    /// TCP port of the console (9600 + domain id by default in xend).
    pub port: u16,
    /// Escape key that ends the session, in caret notation.
    #[arg(short = 'e', long = "escape", default_value = "^]", value_parser = EscapeKey::parse)]
    pub escape: EscapeKey,
    /// Token sent as the first line [default: $XEND_TOKEN, else the token file].
    #[arg(long, env = "XEND_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token [default: $XEND_TOKEN_FILE, else xend's token-file
    /// from $XEND_CONFIG or /etc/xen/xend-config.sxp], read when this user can.
    #[arg(long, env = "XEND_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Speak TLS even when nothing else says so (see --cacert). Without it,
    /// TLS is used when $XEND_URL is https://, when --cacert is given, or,
    /// with no $XEND_URL, when the local xend config names xend-tls-cert
    /// (that certificate is then the one accepted). Never falls back to
    /// plain TCP.
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the CA certificates that must have signed the console's
    /// certificate (implies --tls) [default: the system's roots].
    #[arg(long, env = "XEND_CACERT", value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Pipe mode: seconds to keep copying output after the input ends.
    #[arg(long, default_value_t = 1.0)]
    pub linger: f64,
}

impl Args {
    /// The TLS to speak (`None`: plain TCP): see `--tls`. `url` is
    /// `$XEND_URL`; `config` the local xend config.
    pub fn console_tls(
        &self,
        url: Option<&str>,
        config: &xend::config::XendConfig,
    ) -> Option<ConsoleTls> {
        if let Some(ca) = &self.cacert {
            return Some(ConsoleTls::CaFile(ca.clone()));
        }
        let implied = xend::config::console_tls(url, None, config);
        match implied {
            Some(t) => Some(t),
            None if self.tls => Some(ConsoleTls::SystemRoots),
            None => None,
        }
    }
}
