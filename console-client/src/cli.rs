//! `xencons`'s command line (here, not in the binary, so the man page and
//! the shell completions can be generated from it).
use clap::Parser;

use crate::EscapeKey;

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
    /// Pipe mode: seconds to keep copying output after the input ends.
    #[arg(long, default_value_t = 1.0)]
    pub linger: f64,
}
