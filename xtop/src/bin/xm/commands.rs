//! The command table: names, one-line help, and prefix resolution.
use crate::error::{Result, XmError};

/// One xm command.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// The name typed.
    pub name: &'static str,
    /// Arguments, for help.
    pub args: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// False for reference commands with no API op at all (refused by xm).
    pub supported: bool,
}

const fn cmd(name: &'static str, args: &'static str, help: &'static str) -> Command {
    Command {
        name,
        args,
        help,
        supported: true,
    }
}

const fn todo_cmd(name: &'static str, args: &'static str, help: &'static str) -> Command {
    Command {
        name,
        args,
        help,
        supported: false,
    }
}

/// Every command, in help order.
pub const COMMANDS: &[Command] = &[
    cmd(
        "list",
        "[-l] [--json] [--state] [DOM...]",
        "List domains (-l: full SXP).",
    ),
    cmd(
        "create",
        "[-c] [-n] [-p] CONFIG [VAR=VAL...]",
        "Create a domain from a config file.",
    ),
    cmd("console", "[-e ^X] DOM", "Attach to a domain's console."),
    cmd("pause", "DOM", "Pause a domain."),
    cmd("unpause", "DOM", "Unpause a paused domain."),
    cmd(
        "shutdown",
        "[-w] [-a] [-H|-R] DOM",
        "Shut a domain down (-w wait, -a all, -H halt, -R reboot).",
    ),
    cmd("reboot", "[-w] DOM", "Reboot a domain."),
    cmd("destroy", "DOM", "Terminate a domain at once."),
    cmd(
        "vcpu-pin",
        "DOM VCPU|all CPUS|all",
        "Pin vCPUs to host CPUs (e.g. 0-1,3).",
    ),
    cmd(
        "pincpu",
        "DOM CPU",
        "Pin every vCPU of a domain to one host CPU.",
    ),
    cmd("vcpu-list", "[DOM...]", "List the vCPUs of domains."),
    cmd(
        "sched-credit",
        "[-d DOM [-w WEIGHT] [-c CAP]]",
        "Show or set CPU weight and cap (percent of one CPU).",
    ),
    cmd("maxmem", "DOM MB", "Set a domain's maximum memory."),
    cmd("mem-max", "DOM MB", "Same as maxmem."),
    cmd("mem-set", "DOM MB", "Set a domain's memory target."),
    cmd("balloon", "DOM MB", "Same as mem-set."),
    cmd("info", "[--json]", "Host information."),
    cmd("consoles", "", "List the domain consoles."),
    cmd(
        "dmesg",
        "[-c]",
        "Show (and with -c clear) the hypervisor log.",
    ),
    cmd("log", "", "Show xend's log."),
    cmd(
        "call",
        "FN [ARGS...]",
        "Call an xend API function (xm call help lists them).",
    ),
    cmd("domid", "NAME", "Print a domain's id."),
    cmd("domname", "ID", "Print a domain's name."),
    cmd("top", "[XTOP ARGS...]", "Run xtop, the live monitor."),
    cmd("help", "[COMMAND]", "Show help."),
    cmd("save", "DOM FILE", "Save a domain to a file."),
    cmd("restore", "[-p] FILE", "Restore a domain from a file."),
    cmd(
        "migrate",
        "[-l] [-p PORT] DOM HOST[:PORT]",
        "Migrate a domain to another xend.",
    ),
    todo_cmd("sysrq", "DOM KEY", "Send a sysrq key to a domain."),
    cmd("vif-list", "DOM", "List a domain's network interfaces."),
    cmd("vbd-list", "DOM", "List a domain's block devices."),
    cmd(
        "vbd-create",
        "DOM UNAME DEV MODE",
        "Add a block device to a domain.",
    ),
    cmd(
        "vbd-destroy",
        "DOM DEV",
        "Remove a block device from a domain.",
    ),
    cmd(
        "block-attach",
        "DOM UNAME DEV MODE",
        "Hot-attach a block device (e.g. file:/srv/d.img xvdb w).",
    ),
    cmd("block-detach", "DOM DEV|IDX", "Hot-detach a block device."),
    cmd(
        "network-attach",
        "DOM [mac=MAC] [bridge=BRIDGE]",
        "Hot-attach a network interface.",
    ),
    cmd(
        "network-detach",
        "DOM IDX",
        "Hot-detach a network interface.",
    ),
    cmd("vnet-list", "", "List virtual networks."),
    cmd("vnet-create", "CONFIG", "Create a virtual network."),
    cmd("vnet-delete", "VNET", "Delete a virtual network."),
];

/// The command named `typed`: an exact name, or the only command it is a
/// prefix of.
pub fn resolve(typed: &str) -> Result<&'static Command> {
    if let Some(c) = COMMANDS.iter().find(|c| c.name == typed) {
        return Ok(c);
    }
    let matches: Vec<&Command> = COMMANDS
        .iter()
        .filter(|c| !typed.is_empty() && c.name.starts_with(typed))
        .collect();
    match matches.as_slice() {
        [] => Err(XmError::UnknownCommand(typed.to_string())),
        [one] => Ok(one),
        many => Err(XmError::Ambiguous {
            prefix: typed.to_string(),
            candidates: many.iter().map(|c| c.name.to_string()).collect(),
        }),
    }
}

/// The help text: usage and every command.
pub fn help() -> String {
    let mut out = String::from(
        "Usage: xm [-H URL] [--token TOKEN] [--cacert FILE] COMMAND [ARGS...]\n\n\
         xend is found at -H URL (http://, https:// or unix:PATH), else $XEND_URL, else\n\
         at the local socket named in xend's config ($XEND_CONFIG or /etc/xen/xend-config.sxp);\n\
         the token at --token, else $XEND_TOKEN, else xend's token file when readable.\n\
         https:// certificates are checked against the system's CAs, or --cacert FILE.\n\
         A unique prefix of a command is accepted.\n\n\
         Commands:\n",
    );
    for c in COMMANDS {
        let usage = format!("{} {}", c.name, c.args);
        let note = if c.supported {
            ""
        } else {
            " (not supported yet)"
        };
        out.push_str(&format!("  {usage:<40} {}{note}\n", c.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(typed: &str, expect: std::result::Result<&str, &str>) {
        match (resolve(typed), expect) {
            (Ok(c), Ok(name)) => assert_eq!(c.name, name),
            (Err(e), Err(msg)) => assert_eq!(e.to_string(), msg),
            (got, want) => panic!("{typed}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn prefixes() {
        check("list", Ok("list"));
        check("l", Err("Ambiguous command 'l': it could be list, log"));
        check("li", Ok("list"));
        check("cr", Ok("create"));
        check(
            "con",
            Err("Ambiguous command 'con': it could be console, consoles"),
        );
        check("console", Ok("console"));
        check("consoles", Ok("consoles"));
        check("vcpu-l", Ok("vcpu-list"));
        check("sh", Ok("shutdown"));
        check(
            "dom",
            Err("Ambiguous command 'dom': it could be domid, domname"),
        );
        check(
            "frobnicate",
            Err("Unknown command 'frobnicate'; try `xm help` for the list of commands"),
        );
        check(
            "",
            Err("Unknown command ''; try `xm help` for the list of commands"),
        );
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in COMMANDS.iter().enumerate() {
            assert!(
                COMMANDS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
        }
    }
}
