//! `cargo run -p gen-docs [DIST]`: regenerate the man pages and completions
//! in `dist/` (or DIST) from the clap definitions.
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dist = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(gen_docs::dist_dir);
    match gen_docs::generate(&dist) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("gen-docs: {msg}");
            ExitCode::FAILURE
        }
    }
}
