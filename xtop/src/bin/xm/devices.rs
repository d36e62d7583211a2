//! Commands whose API ops xend may not implement yet: save, restore, migrate,
//! vif-list, vbd-list, vbd-create, vbd-destroy, vnet-list, vnet-create,
//! vnet-delete. xm sends the reference's request; when xend answers 501
//! (`Operation not implemented`) the command reports `CMD is not supported by
//! this xend yet`, so these commands start working as xend grows the ops,
//! and never pretend.
use clap::Parser;

use crate::error::{Result, XmError};
use crate::{Xm, args, config};

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
    /// File on the xend host to restore from.
    pub file: String,
}

/// `xm migrate`.
#[derive(Debug, Parser)]
pub struct Migrate {
    /// Live migration.
    #[arg(short = 'l', long = "live")]
    pub live: bool,
    /// Domain name or id.
    pub dom: String,
    /// Destination host.
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
    /// r or w.
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
            later(name, xm.sxp.post(&["domain", &a.dom], &form).await)?;
        }
        "restore" => {
            let a: Restore = args::parse(name, rest)?;
            let form = [("op", "restore"), ("file", a.file.as_str())];
            let reply = later(name, xm.sxp.post(&["domain"], &form).await)?;
            println!("{}", sxp::pretty(&crate::queries::parse_sxp(name, &reply)?));
        }
        "migrate" => {
            let a: Migrate = args::parse(name, rest)?;
            let live = if a.live { "1" } else { "0" };
            let form = [
                ("op", "migrate"),
                ("destination", a.host.as_str()),
                ("live", live),
            ];
            later(name, xm.sxp.post(&["domain", &a.dom], &form).await)?;
        }
        "vif-list" | "vbd-list" => {
            let a: args::Dom = args::parse(name, rest)?;
            let op = if name == "vif-list" { "vifs" } else { "vbds" };
            let reply = later(name, xm.sxp.get(&["domain", &a.dom], &[("op", op)]).await)?;
            print_each(name, &reply)?;
        }
        "vbd-create" => {
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
        "vbd-destroy" => {
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
