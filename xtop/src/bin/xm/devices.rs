//! save, restore, migrate, and the commands whose API ops xend may not
//! implement yet: vif-list, vbd-list, vbd-create (block-attach), vbd-destroy
//! (block-detach), network-attach, network-detach, vnet-list, vnet-create,
//! vnet-delete. xm sends the reference's request; when xend
//! answers 501 (`Operation not implemented`, an older xend) the command reports
//! `CMD is not supported by this xend yet`, so these commands start working as
//! xend grows the ops, and never pretend.
//!
//! `save DOM FILE` and `migrate` print nothing on stdout on success (as in
//! Xen; their progress goes to stderr, see `progress`);
//! `restore [-p] FILE` prints the restored domain's SXP. FILE names an image
//! on xend's host, inside its `save-dir`.
use clap::Parser;

use crate::error::{Result, XmError};
use crate::{Xm, args, config, progress};

/// `xm save`.
#[derive(Debug, Parser)]
pub struct Save {
    /// Domain name or id.
    pub dom: String,
    /// File on the xend host to save to.
    pub file: String,
}

/// `xm restore`.
#[derive(Debug, Parser)]
pub struct Restore {
    /// Leave the restored domain paused.
    #[arg(short = 'p', long = "paused")]
    pub paused: bool,
    /// File on the xend host to restore from.
    pub file: String,
}

/// `xm migrate`.
#[derive(Debug, Parser)]
pub struct Migrate {
    /// Live migration: copy RAM while the guest runs, pause only for the rest.
    #[arg(short = 'l', long = "live")]
    pub live: bool,
    /// The destination xend's API port (default 8000; or HOST:PORT).
    #[arg(short = 'p', long = "port")]
    pub port: Option<u16>,
    /// The destination xend's bearer token (default: the one xm uses, which
    /// xend then sends; or $XEND_DEST_TOKEN).
    #[arg(long = "dest-token", env = "XEND_DEST_TOKEN", hide_env_values = true)]
    pub dest_token: Option<String>,
    /// Domain name or id.
    pub dom: String,
    /// Destination xend: HOST or HOST:PORT.
    pub host: String,
}

/// `xm vbd-create`.
#[derive(Debug, Parser)]
pub struct VbdCreate {
    /// Domain name or id.
    pub dom: String,
    /// Backing, e.g. file:/srv/d.img or phy:sda1.
    pub uname: String,
    /// Device name in the guest.
    pub dev: String,
    /// r (read-only), w (read-write, exclusive) or w! (read-write, shared).
    pub mode: String,
}

/// `xm vbd-destroy`.
#[derive(Debug, Parser)]
pub struct VbdDestroy {
    /// Domain name or id.
    pub dom: String,
    /// Device name or index.
    pub dev: String,
}

/// `xm network-attach`.
#[derive(Debug, Parser)]
pub struct NetworkAttach {
    /// Domain name or id.
    pub dom: String,
    /// `mac=MAC`, `bridge=BRIDGE` (also `ip=`, `script=`, `vifname=`).
    pub settings: Vec<String>,
}

/// `xm network-detach`.
#[derive(Debug, Parser)]
pub struct NetworkDetach {
    /// Domain name or id.
    pub dom: String,
    /// The vif's index (or its interface name or MAC).
    pub idx: String,
}

/// `xm vnet-create`.
#[derive(Debug, Parser)]
pub struct VnetCreate {
    /// vnet config file (SXP).
    pub config: String,
}

/// `xm vnet-delete`.
#[derive(Debug, Parser)]
pub struct VnetDelete {
    /// vnet id.
    pub vnet: String,
}

/// `xend::client::Error` 501 -> "CMD is not supported by this xend yet".
fn later<T>(cmd: &str, r: Result<T, xend::client::Error>) -> Result<T> {
    r.map_err(|e| match e {
        xend::client::Error::Api { status: 501, .. } => XmError::Unsupported(cmd.to_string()),
        e => e.into(),
    })
}

/// Prints each element of an SXP list reply on its own line (as Xen 2's
/// `vif-list` and `vbd-list` did).
fn print_each(what: &str, reply: &str) -> Result<()> {
    let value = crate::queries::parse_sxp(what, reply)?;
    if let Some(items) = value.as_list() {
        for item in items {
            println!("{item}");
        }
    }
    Ok(())
}

/// Runs one of these commands.
pub async fn run(xm: &Xm, name: &str, rest: &[String]) -> Result<()> {
    match name {
        "save" => {
            let a: Save = args::parse(name, rest)?;
            let form = [("op", "save"), ("file", a.file.as_str())];
            let target = progress::Target::Domain(a.dom.clone());
            let path = ["domain", a.dom.as_str()];
            let work = xm.sxp.post(&path, &form);
            later(name, progress::watch(xm, target, work).await)?;
        }
        "restore" => {
            let a: Restore = args::parse(name, rest)?;
            let paused = if a.paused { "1" } else { "0" };
            let form = [
                ("op", "restore"),
                ("file", a.file.as_str()),
                ("paused", paused),
            ];
            let work = xm.sxp.post(&["domain"], &form);
            let reply = later(
                name,
                progress::watch(xm, progress::Target::Restore, work).await,
            )?;
            println!("{}", sxp::pretty(&crate::queries::parse_sxp(name, &reply)?));
        }
        "migrate" => {
            let a: Migrate = args::parse(name, rest)?;
            let live = if a.live { "1" } else { "0" };
            let port = a.port.map(|p| p.to_string());
            let mut form = vec![
                ("op", "migrate"),
                ("destination", a.host.as_str()),
                ("live", live),
            ];
            if let Some(p) = &port {
                form.push(("port", p.as_str()));
            }
            if let Some(t) = &a.dest_token {
                form.push(("token", t.as_str()));
            }
            let target = progress::Target::Domain(a.dom.clone());
            let path = ["domain", a.dom.as_str()];
            let work = xm.sxp.post(&path, &form);
            later(name, progress::watch(xm, target, work).await)?;
        }
        "vif-list" | "vbd-list" => {
            let a: args::Dom = args::parse(name, rest)?;
            let op = if name == "vif-list" { "vifs" } else { "vbds" };
            let reply = later(name, xm.sxp.get(&["domain", &a.dom], &[("op", op)]).await)?;
            print_each(name, &reply)?;
        }
        "vbd-create" | "block-attach" => {
            let a: VbdCreate = args::parse(name, rest)?;
            let vbd = sxp::Value::list([
                sxp::Value::str("vbd"),
                sxp::Value::pair("uname", a.uname.as_str()),
                sxp::Value::pair("dev", a.dev.as_str()),
                sxp::Value::pair("mode", a.mode.as_str()),
            ])
            .to_string();
            let form = [("op", "device_create"), ("config", vbd.as_str())];
            later(name, xm.sxp.post(&["domain", &a.dom], &form).await)?;
        }
        "network-attach" => {
            let a: NetworkAttach = args::parse(name, rest)?;
            let mut vif = vec![sxp::Value::str("vif")];
            for s in &a.settings {
                let Some((key, value)) = s.split_once('=') else {
                    return Err(XmError::Usage(format!(
                        "{name}: expected KEY=VALUE (e.g. mac=aa:00:00:12:34:56 or bridge=xenbr0), found {s:?}"
                    )));
                };
                vif.push(sxp::Value::pair(key, value));
            }
            let vif = sxp::Value::List(vif).to_string();
            let form = [("op", "device_create"), ("config", vif.as_str())];
            later(name, xm.sxp.post(&["domain", &a.dom], &form).await)?;
        }
        "network-detach" => {
            let a: NetworkDetach = args::parse(name, rest)?;
            let form = [
                ("op", "device_destroy"),
                ("type", "vif"),
                ("idx", a.idx.as_str()),
            ];
            later(name, xm.sxp.post(&["domain", &a.dom], &form).await)?;
        }
        "vbd-destroy" | "block-detach" => {
            let a: VbdDestroy = args::parse(name, rest)?;
            let form = [
                ("op", "device_destroy"),
                ("type", "vbd"),
                ("idx", a.dev.as_str()),
            ];
            later(name, xm.sxp.post(&["domain", &a.dom], &form).await)?;
        }
        "vnet-list" => {
            let _: args::Nothing = args::parse(name, rest)?;
            let reply = later(name, xm.sxp.get(&["vnet"], &[]).await)?;
            print_each(name, &reply)?;
        }
        "vnet-create" => {
            let a: VnetCreate = args::parse(name, rest)?;
            let (_, text) = config::read(&a.config)?;
            let form = [("op", "create"), ("config", text.as_str())];
            later(name, xm.sxp.post(&["vnet"], &form).await)?;
        }
        "vnet-delete" => {
            let a: VnetDelete = args::parse(name, rest)?;
            later(
                name,
                xm.sxp.post(&["vnet", &a.vnet], &[("op", "delete")]).await,
            )?;
        }
        other => return Err(XmError::Unsupported(other.to_string())),
    }
    Ok(())
}
