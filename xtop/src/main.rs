//! xtop: the terminal management console for xend.
use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::main(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtop: {}", xtop::error::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
