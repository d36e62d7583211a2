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
            eprintln!("gen-docs: {}", errchain::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
