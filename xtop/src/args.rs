//! `xtop`'s command line (in the library, so the man page and the shell
//! completions can be generated from it).
use clap::Parser;

/// Watch and manage xend's domains (xentop/virt-top style).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// xend URL (http://, https:// or unix:PATH); repeat for several hosts in one table
    /// [default: the settings file's `hosts`, else $XEND_URL, else the local socket named in
    /// xend's config].
    #[arg(short = 'H', long = "host", value_name = "URL")]
    pub hosts: Vec<String>,
    /// Bearer token for xend [default: $XEND_TOKEN, else xend's token file if readable].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// PEM file of CA certificates to trust for https:// URLs instead of the system's
    /// [default: $XEND_CACERT].
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// No actions: no key pauses, shuts down, reboots, destroys, saves, migrates,
    /// schedules, attaches a console, edits or creates; the prompt and scripts refuse them.
    #[arg(long)]
    pub readonly: bool,
    /// Theme: dark, light, high-contrast, monochrome, or a .toml file.
    #[arg(long, value_name = "NAME|FILE")]
    pub theme: Option<String>,
    /// Seconds between refreshes (fractions allowed) [default: 3].
    #[arg(short = 'd', long = "delay", value_name = "SECS")]
    pub delay: Option<f64>,
    /// Sort by FIELD (`-FIELD` reverses), e.g. `-cpu`.
    #[arg(long, value_name = "[-]FIELD", allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Columns to show, comma-separated (e.g. `id,name,state,cpu`).
    #[arg(long, value_name = "FIELDS")]
    pub fields: Option<String>,
    /// Show only domains whose name matches REGEX (`!REGEX` inverts).
    #[arg(long, value_name = "REGEX")]
    pub filter: Option<String>,
    /// CPU% as a share of the whole host (virt-top) rather than of one CPU.
    #[arg(long)]
    pub host_cpu_percent: bool,
    /// Turn the mouse on (click to select, click a header to sort).
    #[arg(long)]
    pub mouse: bool,
    /// Console escape key (`^]`, `ctrl-t`, ...) [default: Ctrl-]].
    #[arg(short = 'e', long = "escape", value_name = "KEY")]
    pub escape: Option<String>,
    /// Settings file [default: $XTOP_CONFIG or ~/.config/xtop/config.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Batch mode: print xentop-compatible text to stdout, no terminal UI.
    #[arg(short = 'b', long = "batch")]
    pub batch: bool,
    /// Batch: number of refreshes.
    #[arg(short = 'i', long = "iterations", value_name = "N")]
    pub iterations: Option<u64>,
    /// Batch: network rows under each domain.
    #[arg(short = 'n', long = "networks")]
    pub networks: bool,
    /// Batch: block device rows under each domain.
    #[arg(short = 'x', long = "vbds")]
    pub vbds: bool,
    /// Batch: vCPU rows under each domain.
    #[arg(short = 'v', long = "vcpus")]
    pub vcpus: bool,
    /// Batch: repeat the header before each domain.
    #[arg(short = 'r', long = "repeat-header")]
    pub repeat_header: bool,
    /// Batch: full domain names (xentop cuts them at 10).
    #[arg(short = 'f', long = "full-name")]
    pub full_name: bool,
    /// Batch: Domain-0 first whatever the sort.
    #[arg(short = 'z', long = "dom0-first")]
    pub dom0_first: bool,
    /// CSV to FILE (`-` = stdout), one row per domain per refresh with host totals (implies batch).
    #[arg(long, value_name = "FILE|-")]
    pub csv: Option<String>,
    /// One JSON object per refresh on stdout (implies batch).
    #[arg(long)]
    pub json: bool,
    /// Batch: stop at this time (`+SECS`, seconds since the epoch, `YYYY-MM-DD HH:MM:SS` or `HH:MM[:SS]`, UTC).
    #[arg(long, value_name = "TIME")]
    pub end_time: Option<String>,
    /// Script mode: run the commands in FILE (`-` = stdin), no terminal UI.
    #[arg(long, value_name = "FILE|-")]
    pub script: Option<String>,
    /// Script mode: go on after a failing command (the exit status still says so).
    #[arg(long)]
    pub keep_going: bool,
    /// Start a local xend if none answers and create example domains if there are none, then open xtop.
    #[arg(long)]
    pub launch: bool,
    /// What to run (default: the interactive UI).
    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Same as `--launch`: start xend and example domains if needed, then open xtop.
    Up,
}
