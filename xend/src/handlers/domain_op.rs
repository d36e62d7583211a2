//! The actions of `POST /xend/domain/DOM`, parsed once from `op` and its
//! parameters into [`DomainOp`]; the handler dispatches on the value, and
//! every mistake in a request is a 4xx from [`DomainOp::parse`].
use hypervisor::control::proto::Reason;

use crate::config::DomainConfig;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

/// One domain action with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum DomainOp {
    /// `save` (its parameters are read by the save handler).
    Save,
    /// `migrate` (its parameters are read by the migrate handler).
    Migrate,
    /// `migrate_finish`: the destination runs the domain; end it here.
    MigrateFinish,
    /// `migrate_abort`: the migration failed; resume here.
    MigrateAbort,
    /// `device_create` (its parameters are read by the devices handler).
    DeviceCreate,
    /// `device_destroy` (likewise).
    DeviceDestroy,
    /// `pause`.
    Pause,
    /// `unpause`.
    Unpause,
    /// `shutdown [reason=poweroff|reboot|halt]`.
    Shutdown(Reason),
    /// `destroy [reason=halt|reboot]`.
    Destroy(Reason),
    /// `pincpu cpumap=0,2-3 [vcpu=N]` (`cpu=` is read like `cpumap=`);
    /// `vcpu` `None` pins every vCPU.
    PinCpu {
        /// The vCPU, or every one.
        vcpu: Option<u32>,
        /// Host CPUs.
        cpus: Vec<usize>,
    },
    /// `maxmem_set memory=MIB`.
    MaxMem(u64),
    /// `mem_target_set target=MIB`.
    MemTarget(u64),
    /// `configure config=TEXT`.
    Configure(Box<DomainConfig>),
    /// `sched_credit [weight=W] [cap=C]` and 2.0's `cpu_bvt_set`,
    /// `cpu_fbvt_set`, `cpu_atropos_set` mapped onto it (see
    /// [`super::sched`]); nothing to set reads them.
    SchedCredit(super::sched::SchedSet),
}

impl DomainOp {
    /// The action `op` names, with its parameters checked against domain
    /// `name` of `vcpus` vCPUs and this host's CPUs. 501 for an op this xend
    /// does not have (2.0's scheduler ops say why), 400 for a bad parameter.
    pub fn parse(op: &str, params: &Params, name: &str, vcpus: u32) -> ApiResult<DomainOp> {
        if let Some(set) = super::sched::parse(op, params, vcpus) {
            return Ok(DomainOp::SchedCredit(set?));
        }
        Ok(match op {
            "save" => DomainOp::Save,
            "migrate" => DomainOp::Migrate,
            "migrate_finish" => DomainOp::MigrateFinish,
            "migrate_abort" => DomainOp::MigrateAbort,
            "device_create" => DomainOp::DeviceCreate,
            "device_destroy" => DomainOp::DeviceDestroy,
            "pause" => DomainOp::Pause,
            "unpause" => DomainOp::Unpause,
            "shutdown" => DomainOp::Shutdown(parse_reason(
                params,
                "poweroff",
                &["poweroff", "reboot", "halt"],
            )?),
            "destroy" => DomainOp::Destroy(parse_reason(params, "halt", &["halt", "reboot"])?),
            "pincpu" => {
                let cpus = match (params.get("cpumap"), params.get("cpu")) {
                    (Some(map), _) | (None, Some(map)) => parse_cpus(map)?,
                    (None, None) => return Err(ApiError::missing("cpumap")),
                };
                let vcpu = match params.get("vcpu") {
                    Some(_) => {
                        let v: u32 = params.parse("vcpu")?;
                        if v >= vcpus {
                            return Err(ApiError::invalid(
                                "vcpu",
                                format!("{v}: domain {name} has {vcpus} vCPUs"),
                            ));
                        }
                        Some(v)
                    }
                    None => None,
                };
                DomainOp::PinCpu { vcpu, cpus }
            }
            "maxmem_set" => DomainOp::MaxMem(mib(params, "memory")?),
            "mem_target_set" => DomainOp::MemTarget(mib(params, "target")?),
            "configure" => DomainOp::Configure(Box::new(super::domain::parse_config(params)?)),
            op => return Err(ApiError::not_implemented(op)),
        })
    }
}

fn parse_reason(params: &Params, default: &str, allowed: &[&str]) -> ApiResult<Reason> {
    let raw = params.get("reason").unwrap_or(default);
    if !allowed.contains(&raw) {
        return Err(ApiError::invalid(
            "reason",
            format!("{raw:?}: expected {}", allowed.join(", ")),
        ));
    }
    Reason::parse(raw).ok_or_else(|| ApiError::invalid("reason", raw))
}

/// Host CPU numbers like `0,1` or `0-3`, each one of this host's.
fn parse_cpus(raw: &str) -> ApiResult<Vec<usize>> {
    let nr = crate::hostinfo::node_info().nr_cpus as usize;
    let mut cpus = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let bad = || {
            ApiError::invalid(
                "cpumap",
                format!("{raw:?}: expected host CPU numbers like 0,1 or 0-3"),
            )
        };
        let a: usize = a.parse().map_err(|_| bad())?;
        let b: usize = b.parse().map_err(|_| bad())?;
        if a > b || b >= nr {
            return Err(ApiError::invalid(
                "cpumap",
                format!("{raw:?}: this host has CPUs 0-{}", nr.saturating_sub(1)),
            ));
        }
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

/// A memory size in MiB within the config limits.
fn mib(params: &Params, param: &str) -> ApiResult<u64> {
    let mib: u64 = params.parse(param)?;
    if !(crate::config::MIN_MEMORY_MIB..=crate::config::MAX_MEMORY_MIB).contains(&mib) {
        return Err(ApiError::invalid(
            param,
            format!(
                "{mib} MiB: expected {}..{} MiB",
                crate::config::MIN_MEMORY_MIB,
                crate::config::MAX_MEMORY_MIB
            ),
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(op: &str, pairs: &[(&str, &str)]) -> ApiResult<DomainOp> {
        let mut p = Params::default();
        for (k, v) in pairs {
            p.0.insert((*k).to_string(), (*v).to_string());
        }
        DomainOp::parse(op, &p, "web", 2)
    }

    #[test]
    fn each_op_parses_with_its_parameters() {
        assert_eq!(parse("pause", &[]).unwrap(), DomainOp::Pause);
        assert_eq!(
            parse("shutdown", &[]).unwrap(),
            DomainOp::Shutdown(Reason::Poweroff)
        );
        assert_eq!(
            parse("destroy", &[("reason", "reboot")]).unwrap(),
            DomainOp::Destroy(Reason::Reboot)
        );
        assert_eq!(
            parse("pincpu", &[("cpumap", "0,0-0"), ("vcpu", "1")]).unwrap(),
            DomainOp::PinCpu {
                vcpu: Some(1),
                cpus: vec![0, 0]
            }
        );
        assert_eq!(
            parse("pincpu", &[("cpu", "0")]).unwrap(),
            DomainOp::PinCpu {
                vcpu: None,
                cpus: vec![0]
            }
        );
        assert_eq!(
            parse("mem_target_set", &[("target", "64")]).unwrap(),
            DomainOp::MemTarget(64)
        );
    }

    #[test]
    fn mistakes_are_4xx_and_unknown_ops_501() {
        let status =
            |op: &str, pairs: &[(&str, &str)]| parse(op, pairs).unwrap_err().status.as_u16();
        assert_eq!(status("shutdown", &[("reason", "crash")]), 400);
        assert_eq!(status("destroy", &[("reason", "poweroff")]), 400);
        assert_eq!(status("pincpu", &[]), 400);
        assert_eq!(status("pincpu", &[("cpumap", "100000")]), 400);
        assert_eq!(status("pincpu", &[("cpumap", "1-0")]), 400);
        assert_eq!(status("pincpu", &[("cpumap", "0"), ("vcpu", "2")]), 400);
        assert_eq!(status("maxmem_set", &[("memory", "0")]), 400);
        assert_eq!(status("configure", &[]), 400);
        assert_eq!(status("device_configure", &[]), 501);
        assert_eq!(status("cpu_bvt_set", &[]), 400);
        assert_eq!(status("sched_credit", &[("cap", "201")]), 400);
        assert_eq!(status("fly", &[]), 501);
    }
}
