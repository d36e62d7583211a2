//! Command-line arguments of each command (clap), parsed after the command
//! name has been resolved from its prefix.
use clap::Parser;

use crate::error::{Result, XmError};

/// Parses `args` for command `name`; `--help` prints and exits.
pub fn parse<T: Parser>(name: &str, args: &[String]) -> Result<T> {
    let argv = std::iter::once(format!("xm {name}")).chain(args.iter().cloned());
    T::try_parse_from(argv).map_err(|e| {
        use clap::error::ErrorKind::*;
        if matches!(e.kind(), DisplayHelp | DisplayVersion) {
            e.exit();
        }
        let text = e.render().to_string();
        let text = text.trim().trim_start_matches("error: ").to_string();
        XmError::Usage(text)
    })
}

/// List domains (the Xen 2.0 table, -l full SXP, --json).
#[derive(Debug, Parser)]
pub struct List {
    /// Print each domain's full SXP.
    #[arg(short = 'l', long = "long")]
    pub long: bool,
    /// Print JSON (the API's DomainStats) instead of the table.
    #[arg(long, conflicts_with = "long")]
    pub json: bool,
    /// Print `NAME ID STATE` per domain, no header (for scripts).
    #[arg(long, conflicts_with_all = ["long", "json"])]
    pub state: bool,
    /// Domains (names or ids); all when none.
    pub doms: Vec<String>,
}

/// Create a domain from a config file (SXP or key = value).
#[derive(Debug, Parser)]
pub struct Create {
    /// Attach to the console after creating.
    #[arg(short = 'c', long = "console_autoconnect")]
    pub console: bool,
    /// Print the config as SXP and create nothing.
    #[arg(short = 'n', long = "dryrun")]
    pub dry_run: bool,
    /// Leave the domain paused.
    #[arg(short = 'p', long = "paused")]
    pub paused: bool,
    /// The config file (SXP or key = value).
    pub config: String,
    /// Overrides, VAR=VAL.
    pub vars: Vec<String>,
}

/// Act on one domain.
#[derive(Debug, Parser)]
pub struct Dom {
    /// Domain name or id.
    pub dom: String,
}

/// Attach to a domain's console (Ctrl-] or the -e key quits).
#[derive(Debug, Parser)]
pub struct Console {
    /// Escape key (caret notation).
    #[arg(short = 'e', long = "escape", default_value = "^]", value_parser = console_client::EscapeKey::parse)]
    pub escape: console_client::EscapeKey,
    /// Domain name or id.
    pub dom: String,
}

/// Shut a domain down (-w wait, -a all, -H halt, -R reboot).
#[derive(Debug, Parser)]
pub struct Shutdown {
    /// Wait until the domain has shut down (or rebooted, with -R).
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
    /// All domains except Domain-0.
    #[arg(short = 'a', long = "all", conflicts_with = "dom")]
    pub all: bool,
    /// Halt: power off and cancel a pending restart.
    #[arg(short = 'H', long = "halt", conflicts_with = "reboot")]
    pub halt: bool,
    /// Reboot.
    #[arg(short = 'R', long = "reboot")]
    pub reboot: bool,
    /// Domain name or id.
    #[arg(required_unless_present = "all")]
    pub dom: Option<String>,
}

/// Reboot a domain.
#[derive(Debug, Parser)]
pub struct Reboot {
    /// Wait until the domain has rebooted.
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
    /// All domains except Domain-0.
    #[arg(short = 'a', long = "all", conflicts_with = "dom")]
    pub all: bool,
    /// Domain name or id.
    #[arg(required_unless_present = "all")]
    pub dom: Option<String>,
}

/// Pin vCPUs of a domain to host CPUs.
#[derive(Debug, Parser)]
pub struct VcpuPin {
    /// Domain name or id.
    pub dom: String,
    /// vCPU number, or `all`.
    pub vcpu: String,
    /// Host CPUs: e.g. `0`, `0-1,3`, or `all`.
    pub cpus: String,
}

/// Pin every vCPU of a domain to one host CPU.
#[derive(Debug, Parser)]
pub struct PinCpu {
    /// Domain name or id.
    pub dom: String,
    /// Host CPU.
    pub cpu: usize,
}

/// List the vCPUs of domains (all when none given).
#[derive(Debug, Parser)]
pub struct Doms {
    /// Domain names or ids.
    pub doms: Vec<String>,
}

/// Set a domain's memory (maxmem: maximum, mem-set: target).
#[derive(Debug, Parser)]
pub struct Mem {
    /// Domain name or id.
    pub dom: String,
    /// Megabytes.
    pub mb: u64,
}

/// Show or set domains' credit-scheduler weight and cap (Xen 3's
/// `xm sched-credit`).
#[derive(Debug, Parser)]
pub struct SchedCredit {
    /// Domain name or id (every domain when none, to show them).
    #[arg(short = 'd', long = "domain")]
    pub dom: Option<String>,
    /// Weight, 1..65535 (default 256): a domain with twice the weight gets
    /// twice the CPU when CPUs are contended.
    #[arg(short = 'w', long = "weight", requires = "dom")]
    pub weight: Option<u32>,
    /// Cap, percent of one CPU (0 = none; 100 per vCPU at most).
    #[arg(short = 'c', long = "cap", requires = "dom")]
    pub cap: Option<u32>,
}

/// Host information, `%-23s: value` per field.
#[derive(Debug, Parser)]
pub struct Info {
    /// Print JSON (the API's NodeInfo).
    #[arg(long)]
    pub json: bool,
}

/// Show the hypervisor log.
#[derive(Debug, Parser)]
pub struct Dmesg {
    /// Clear the log after printing it.
    #[arg(short = 'c', long = "clear")]
    pub clear: bool,
}

/// Takes no arguments.
#[derive(Debug, Parser)]
pub struct Nothing {}

/// Call an xend API function (`xm call help` lists them).
#[derive(Debug, Parser)]
pub struct Call {
    /// Function name (see `xm call help`).
    pub function: String,
    /// Its arguments.
    pub args: Vec<String>,
}

/// Print a domain's id.
#[derive(Debug, Parser)]
pub struct DomId {
    /// Domain name.
    pub name: String,
}

/// Print a domain's name.
#[derive(Debug, Parser)]
pub struct DomName {
    /// Domain id.
    pub id: u32,
}

/// Show help.
#[derive(Debug, Parser)]
pub struct Help {
    /// Command to describe.
    pub command: Option<String>,
}
