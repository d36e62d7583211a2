//! `xm`: the Xen 2.0 command line, talking to xend over its HTTP API.
//!
//! `xm [-H URL] [--token TOKEN] [--cacert FILE] COMMAND [ARGS...]`. A unique prefix of a
//! command is accepted (an ambiguous one is an error naming the candidates).
//! Errors print `Error: <message>` on stderr and exit 1; when xend does not
//! answer the message is `Error: Error connecting to xend, is xend running?
//! (URL)`. `-H` and `--token` go before the command (after it, `shutdown -H`
//! means halt); `$XEND_URL` and `$XEND_TOKEN` are the defaults, then the
//! local socket and token file named in xend's config.
//!
//! Choices where the reference leaves room:
//! - `list`: the 2.0 columns exactly. State is five letters wide as in 2.0;
//!   xend's six-letter Xen 3 state (`rbpscd`) is cut to its first five (the
//!   `d`, dying, is dropped). CPU is the host CPU the first vCPU last ran on
//!   (else the pinned CPU, else -1). `-l` prints the server's own SXP through
//!   `sxp::pretty`; `--json` prints the API's `DomainStats`.
//! - `info`: the node SXP's fields in the server's order, `%-23s: value`.
//! - `create`: the config is read and checked locally with `xend::config`
//!   (errors name file:line:col), `VAR=VAL` overrides use its `apply_vars`,
//!   `-n` prints the resulting `(vm ...)` and creates nothing. The API has no
//!   "create paused", so `-p` pauses right after the create: the guest may run
//!   for a moment first.
//! - `shutdown -w` polls the domain (every 100 ms) until it is gone, or, with
//!   `-R`, until its start time changes (restarted); it prints `Domain NAME
//!   terminated` / `rebooted` (and `All domains terminated` with `-a`).
//! - `pincpu DOM CPU` pins every vCPU; `vcpu-pin DOM VCPU|all CPUS|all` is
//!   Xen 3's. `vcpu-list` uses Xen 3's layout.
//! - `sched-credit [-d DOM [-w W] [-c CAP]]`: Xen 3.2's table (`Name ID
//!   Weight Cap`) of one domain, or of every one without `-d`; `-w`/`-c`
//!   set them first (`op=sched_credit`) and print nothing.
//! - `console` / `create -c`: the console-client library (interactive on a
//!   terminal, pipe mode otherwise), on xend's host and the domain's port.
//! - `call FN ARGS`: a table of Xen 2 `XendClient` names (`xm call help`)
//!   mapped onto the API; the SXP reply is pretty-printed.
//! - `top` execs the `xtop` next to `xm` with `$XEND_URL`/`$XEND_TOKEN` set.
//! - save, restore and migrate use xend's `op=save` / `op=restore` /
//!   `op=migrate` (FILE is inside xend's `save-dir`; `migrate -l` is live,
//!   HOST[:PORT] is the destination xend, `--dest-token` its token). While
//!   they run, xend's `xend.domain.progress` events are shown on stderr: an
//!   `indicatif` bar on a terminal, plain lines otherwise (see `progress`). The
//!   vif/vbd/block/network/vnet commands send the reference's request
//!   (`op=vifs|vbds`, `device_create`, `device_destroy`, `/xend/vnet`); an
//!   older xend's 501 becomes `Error: CMD is not supported by this xend yet`
//!   (see `devices`). sysrq has no API op and always says so.
mod actions;
mod args;
mod call;
mod commands;
mod config;
mod devices;
mod error;
mod format;
mod http;
mod progress;
mod queries;

use std::process::ExitCode;

use error::{Result, XmError};
use xend::client::Client;

/// Connections to xend: the typed JSON client and the raw SXP one.
pub struct Xm {
    /// Typed calls (JSON).
    pub client: Client,
    /// Raw SXP calls.
    pub sxp: http::SxpClient,
    /// The token (also sent on console connections).
    pub token: Option<String>,
}

impl Xm {
    fn new(global: &Global) -> Result<Self> {
        let client = Client::connect(&xend::client::ClientOptions {
            url: global.url.clone(),
            token: global.token.clone(),
            cacert: global.cacert.clone(),
        })?;
        let token = client.token();
        let sxp = http::SxpClient::new(client.clone());
        Ok(Self { client, sxp, token })
    }

    /// Where xend's consoles listen.
    pub fn host(&self) -> String {
        self.client.console_host().to_owned()
    }
}

/// Options before the command name.
#[derive(Debug, Default)]
struct Global {
    url: Option<String>,
    token: Option<String>,
    cacert: Option<std::path::PathBuf>,
    help: bool,
    version: bool,
}

/// Splits `argv[1..]` into the global options, the command name and its
/// arguments. `-H` is only global before the command (after it, `shutdown -H`
/// means halt).
fn split_global(argv: &[String]) -> Result<(Global, Option<String>, Vec<String>)> {
    let mut g = Global::default();
    let mut i = 0;
    let need = |i: usize, opt: &str| {
        argv.get(i + 1)
            .cloned()
            .ok_or_else(|| XmError::Usage(format!("option {opt} needs a value")))
    };
    while i < argv.len() {
        let a = argv[i].as_str();
        match a {
            "-H" | "--url" => {
                g.url = Some(need(i, a)?);
                i += 2;
            }
            "--token" => {
                g.token = Some(need(i, a)?);
                i += 2;
            }
            "--cacert" => {
                g.cacert = Some(need(i, a)?.into());
                i += 2;
            }
            "-h" | "--help" => {
                g.help = true;
                i += 1;
            }
            "-V" | "--version" => {
                g.version = true;
                i += 1;
            }
            _ if a.starts_with("--url=") => {
                g.url = Some(a["--url=".len()..].to_string());
                i += 1;
            }
            _ if a.starts_with("--token=") => {
                g.token = Some(a["--token=".len()..].to_string());
                i += 1;
            }
            _ if a.starts_with("--cacert=") => {
                g.cacert = Some(a["--cacert=".len()..].into());
                i += 1;
            }
            _ if a.starts_with('-') && a.len() > 1 => {
                return Err(XmError::Usage(format!(
                    "unknown option '{a}'; global options are -H URL, --token TOKEN and --cacert FILE"
                )));
            }
            _ => return Ok((g, Some(a.to_string()), argv[i + 1..].to_vec())),
        }
    }
    Ok((g, None, Vec::new()))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", error::render(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(argv: &[String]) -> Result<ExitCode> {
    let (global, command, rest) = split_global(argv)?;
    if global.version {
        println!("xm {}", env!("CARGO_PKG_VERSION"));
        return Ok(ExitCode::SUCCESS);
    }
    let Some(typed) = command.filter(|_| !global.help) else {
        print!("{}", commands::help());
        return Ok(ExitCode::SUCCESS);
    };
    let command = commands::resolve(&typed)?;
    if !command.supported {
        return Err(XmError::Unsupported(command.name.to_string()));
    }
    if command.name == "help" {
        let a: args::Help = args::parse("help", &rest)?;
        return queries::help(a.command.as_deref()).map(|()| ExitCode::SUCCESS);
    }
    let xm = Xm::new(&global)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| XmError::Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(dispatch(&xm, command.name, &rest))
}

async fn dispatch(xm: &Xm, name: &str, rest: &[String]) -> Result<ExitCode> {
    match name {
        "list" => queries::list(xm, args::parse(name, rest)?).await?,
        "create" => actions::create(xm, args::parse(name, rest)?).await?,
        "console" => return actions::console(xm, args::parse(name, rest)?).await,
        "pause" => {
            let a: args::Dom = args::parse(name, rest)?;
            xm.client.pause(&a.dom).await?
        }
        "unpause" => {
            let a: args::Dom = args::parse(name, rest)?;
            xm.client.unpause(&a.dom).await?
        }
        "shutdown" => actions::shutdown(xm, args::parse(name, rest)?).await?,
        "reboot" => {
            let a: args::Reboot = args::parse(name, rest)?;
            let a = args::Shutdown {
                wait: a.wait,
                all: a.all,
                halt: false,
                reboot: true,
                dom: a.dom,
            };
            actions::shutdown(xm, a).await?
        }
        "destroy" => {
            let a: args::Dom = args::parse(name, rest)?;
            xm.client.destroy(&a.dom).await?
        }
        "vcpu-pin" => actions::vcpu_pin(xm, args::parse(name, rest)?).await?,
        "pincpu" => actions::pincpu(xm, args::parse(name, rest)?).await?,
        "vcpu-list" => queries::vcpu_list(xm, args::parse(name, rest)?).await?,
        "sched-credit" => queries::sched_credit(xm, args::parse(name, rest)?).await?,
        "maxmem" | "mem-max" => {
            let a: args::Mem = args::parse(name, rest)?;
            xm.client.maxmem_set(&a.dom, a.mb).await?
        }
        "mem-set" | "balloon" => {
            let a: args::Mem = args::parse(name, rest)?;
            xm.client.mem_target_set(&a.dom, a.mb).await?
        }
        "info" => queries::info(xm, args::parse(name, rest)?).await?,
        "consoles" => {
            let _: args::Nothing = args::parse(name, rest)?;
            queries::consoles(xm).await?
        }
        "dmesg" => {
            let a: args::Dmesg = args::parse(name, rest)?;
            print_lines(&xm.client.dmesg().await?);
            if a.clear {
                xm.client.dmesg_clear().await?;
            }
        }
        "log" => {
            let _: args::Nothing = args::parse(name, rest)?;
            print_lines(&xm.client.log().await?);
        }
        "call" => call::call(xm, args::parse(name, rest)?).await?,
        "domid" => {
            let a: args::DomId = args::parse(name, rest)?;
            println!("{}", xm.client.domain(&a.name).await?.id);
        }
        "domname" => {
            let a: args::DomName = args::parse(name, rest)?;
            println!("{}", xm.client.domain(&a.id.to_string()).await?.name);
        }
        "top" => return actions::top(xm, rest),
        "save" | "restore" | "migrate" | "vif-list" | "vbd-list" | "vbd-create" | "vbd-destroy"
        | "vnet-list" | "vnet-create" | "vnet-delete" | "block-attach" | "block-detach"
        | "network-attach" | "network-detach" => devices::run(xm, name, rest).await?,
        other => return Err(XmError::Unsupported(other.to_string())),
    }
    Ok(ExitCode::SUCCESS)
}

/// Log text from xend, line by line, with control characters escaped (a
/// log line may quote what a client or a guest sent).
fn print_lines(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        if writeln!(out, "{}", errchain::printable(line)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(args: &[&str]) -> (Option<String>, Option<String>, Option<String>, Vec<String>) {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (g, cmd, rest) = split_global(&argv).unwrap();
        (g.url, g.token, cmd, rest)
    }

    #[test]
    fn global_options_come_before_the_command() {
        assert_eq!(
            split(&["-H", "http://h:1", "--token", "t", "shutdown", "-H", "web"]),
            (
                Some("http://h:1".into()),
                Some("t".into()),
                Some("shutdown".into()),
                vec!["-H".to_string(), "web".into()]
            )
        );
        assert_eq!(
            split(&["--url=http://h:2", "--token=x", "list"]),
            (
                Some("http://h:2".into()),
                Some("x".into()),
                Some("list".into()),
                vec![]
            )
        );
        assert_eq!(split(&[]), (None, None, None, vec![]));
        let argv = vec!["-H".to_string()];
        let e = split_global(&argv).unwrap_err();
        assert_eq!(e.to_string(), "option -H needs a value");
        let argv = vec!["-x".to_string(), "list".into()];
        let e = split_global(&argv).unwrap_err();
        assert!(e.to_string().contains("unknown option '-x'"), "{e}");
    }
}
