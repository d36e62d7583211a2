//! CPU scheduling ops: Xen 3's credit scheduler (`op=sched_credit`, weight
//! and cap) and Xen 2.0's scheduler ops mapped onto it.
//!
//! KVM has none of 2.0's schedulers (a vCPU is a host thread under the Linux
//! scheduler); a domain's weight and cap are its cgroup's CFS share and
//! quota (see [`crate::cgroup`]). The 2.0 ops map onto them:
//! - `cpu_bvt_set` / `cpu_fbvt_set` (`mcuadv`, `warpback`, `warpvalue`,
//!   `warpl`, `warpu`): BVT's minimum charging unit advance is an inverse
//!   weight, `weight = 2560 / mcuadv` (2.0's default mcuadv 10 is the
//!   default weight 256); the warp parameters have no CFS counterpart and
//!   are ignored.
//! - `cpu_atropos_set` (`period`, `slice`, `latency`, `xtratime`): the slice
//!   a domain gets per period becomes a cap, `cap = 100 * slice / period`
//!   percent of one CPU; `latency` and `xtratime` are ignored.
//! - node `cpu_rrobin_slice_set`, `cpu_bvt_slice_set`, `cpu_fbvt_slice_set`:
//!   accepted and ignored (a stated no-op): Linux sets its own time slices.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::config::{MAX_CPU_CAP_PER_VCPU, MAX_CPU_WEIGHT};
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{Format, json, sxp};
use crate::params::Params;
use crate::supervisor::sched::SchedCredit;

/// BVT's `mcuadv` that gives the default weight.
const MCUADV_DEFAULT: u64 = 10;

/// The weight and cap a domain op asks to set (`None`: keep); both `None`
/// reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedSet {
    /// New weight.
    pub weight: Option<u32>,
    /// New cap.
    pub cap: Option<u32>,
}

/// The [`SchedSet`] of a domain op on a domain of `vcpus`, `None` when `op`
/// is no scheduler op. 400 with the reason for a bad value.
pub fn parse(op: &str, params: &Params, vcpus: u32) -> Option<ApiResult<SchedSet>> {
    Some(match op {
        "sched_credit" | "domain_sched_credit_get" | "domain_sched_credit_set" => {
            credit(params, vcpus)
        }
        "cpu_bvt_set" | "cpu_fbvt_set" => bvt(params),
        "cpu_atropos_set" => atropos(params, vcpus),
        _ => return None,
    })
}

fn credit(params: &Params, vcpus: u32) -> ApiResult<SchedSet> {
    let weight = match present(params, "weight") {
        Some(_) => Some(weight(params)?),
        None => None,
    };
    let cap = match present(params, "cap") {
        Some(_) => Some(cap(
            params
                .parse::<u32>("cap")
                .map_err(|_| bad_cap(params, vcpus))?,
            vcpus,
        )?),
        None => None,
    };
    Ok(SchedSet { weight, cap })
}

/// A parameter given with a value (an empty one counts as not given, as an
/// HTML form sends it).
fn present<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).map(str::trim).filter(|v| !v.is_empty())
}

fn weight(params: &Params) -> ApiResult<u32> {
    let bad = || {
        ApiError::invalid(
            "weight",
            format!(
                "{:?}: expected a whole number 1..{MAX_CPU_WEIGHT} (Xen's default 256)",
                params.get("weight").unwrap_or("")
            ),
        )
    };
    let w: u32 = params.parse("weight").map_err(|_| bad())?;
    if !(1..=MAX_CPU_WEIGHT).contains(&w) {
        return Err(bad());
    }
    Ok(w)
}

fn bad_cap(params: &Params, vcpus: u32) -> ApiError {
    ApiError::invalid(
        "cap",
        format!(
            "{:?}: expected a whole percentage of one CPU 0..{} (0 = no cap, 100 per vCPU)",
            params.get("cap").unwrap_or(""),
            MAX_CPU_CAP_PER_VCPU * vcpus.max(1)
        ),
    )
}

fn cap(cap: u32, vcpus: u32) -> ApiResult<u32> {
    crate::config::cpu_cap(cap, vcpus).map_err(|e| ApiError::invalid("cap", e.to_string()))?;
    Ok(cap)
}

/// BVT's `mcuadv` as an inverse weight.
fn bvt(params: &Params) -> ApiResult<SchedSet> {
    let mcuadv: u64 = params.parse("mcuadv")?;
    if mcuadv == 0 {
        return Err(ApiError::invalid(
            "mcuadv",
            "0: expected a positive MCU advance (10 is the default weight 256)",
        ));
    }
    let weight = ((MCUADV_DEFAULT * 256 + mcuadv / 2) / mcuadv).clamp(1, u64::from(MAX_CPU_WEIGHT));
    Ok(SchedSet {
        weight: Some(weight as u32),
        cap: None,
    })
}

/// Atropos's slice per period as a cap.
fn atropos(params: &Params, vcpus: u32) -> ApiResult<SchedSet> {
    let period: u64 = params.parse("period")?;
    let slice: u64 = params.parse("slice")?;
    if period == 0 {
        return Err(ApiError::invalid("period", "0: expected a positive period"));
    }
    if slice == 0 {
        return Err(ApiError::invalid("slice", "0: expected a positive slice"));
    }
    let pct = u128::from(slice) * 100 / u128::from(period);
    let max = MAX_CPU_CAP_PER_VCPU * vcpus.max(1);
    if pct > u128::from(max) {
        return Err(ApiError::invalid(
            "slice",
            format!(
                "slice {slice} per period {period} is {pct}% of one CPU; domain has {vcpus} vCPUs (at most {max}%)"
            ),
        ));
    }
    // A slice below 1% still caps (at 1%), not "no cap".
    let cap = (pct as u32).max(1);
    Ok(SchedSet {
        weight: None,
        cap: Some(cap),
    })
}

/// The answer to a node-wide 2.0 time-slice op: accepted, and why nothing
/// changes; `None` when `op` is not one.
pub fn node_noop(op: &str) -> Option<String> {
    let what = match op {
        "cpu_rrobin_slice_set" => "round-robin",
        "cpu_bvt_slice_set" => "BVT",
        "cpu_fbvt_slice_set" => "fair BVT",
        _ => return None,
    };
    Some(format!(
        "{op}: ignored: KVM has no {what} scheduler; vCPUs are Linux threads and Linux sets the time slices (per-domain weights and caps: op=sched_credit)"
    ))
}

/// A domain's weight and cap in the representation asked for:
/// `(sched_credit (weight W) (cap C))` in SXP.
pub fn render(s: SchedCredit, format: Format, back: &str) -> Response {
    match format {
        Format::Json => json(&s),
        Format::Html => axum::response::Redirect::to(back).into_response(),
        Format::Sxp => sxp(&sxp::Value::list([
            sxp::Value::str("sched_credit"),
            sxp::Value::pair("weight", s.weight),
            sxp::Value::pair("cap", s.cap),
        ])),
    }
}

/// The stated no-op's answer: 200 with the reason (an SXP string for SXP
/// clients, whose 2.0 library insists on `application/sxp`).
pub fn noop_response(reason: String, format: Format) -> Response {
    tracing::info!("{reason}");
    match format {
        Format::Json => (StatusCode::OK, json(&reason)).into_response(),
        Format::Sxp => (StatusCode::OK, sxp(&sxp::Value::str(reason))).into_response(),
        Format::Html => (StatusCode::OK, crate::negotiate::text(reason)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let mut p = Params::default();
        for (k, v) in pairs {
            p.0.insert((*k).to_string(), (*v).to_string());
        }
        p
    }

    #[track_caller]
    fn check(op: &str, pairs: &[(&str, &str)], vcpus: u32, want: Result<SchedSet, u16>) {
        let got = parse(op, &params(pairs), vcpus).expect("a scheduler op");
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w),
            (Err(e), Err(status)) => {
                assert_eq!(e.status.as_u16(), status, "{}", e.message);
                assert!(
                    e.message.len() <= crate::negotiate::MAX_REASON,
                    "{}",
                    e.message
                );
            }
            (g, w) => panic!("{op} {pairs:?}: got {g:?}, want {w:?}"),
        }
    }

    fn set(weight: Option<u32>, cap: Option<u32>) -> Result<SchedSet, u16> {
        Ok(SchedSet { weight, cap })
    }

    #[test]
    fn sched_credit_reads_sets_and_refuses_bad_values() {
        check("sched_credit", &[], 1, set(None, None));
        check(
            "sched_credit",
            &[("weight", ""), ("cap", "")],
            1,
            set(None, None),
        );
        check(
            "sched_credit",
            &[("weight", "512")],
            1,
            set(Some(512), None),
        );
        check(
            "domain_sched_credit_set",
            &[("weight", "1"), ("cap", "0")],
            1,
            set(Some(1), Some(0)),
        );
        check("sched_credit", &[("cap", "200")], 2, set(None, Some(200)));
        check("sched_credit", &[("weight", "0")], 1, Err(400));
        check("sched_credit", &[("weight", "65536")], 1, Err(400));
        check("sched_credit", &[("weight", "-1")], 1, Err(400));
        check("sched_credit", &[("weight", "heavy")], 1, Err(400));
        check("sched_credit", &[("cap", "101")], 1, Err(400));
        check("sched_credit", &[("cap", "-5")], 1, Err(400));
        check("sched_credit", &[("cap", "1e9")], 4, Err(400));
    }

    #[test]
    fn the_2_0_ops_map_onto_weight_and_cap() {
        let bvt = |m: &'static str| [("mcuadv", m), ("warpback", "0"), ("warpvalue", "0")];
        check("cpu_bvt_set", &bvt("10"), 1, set(Some(256), None));
        check("cpu_fbvt_set", &bvt("5"), 1, set(Some(512), None));
        check("cpu_bvt_set", &bvt("20"), 1, set(Some(128), None));
        check("cpu_bvt_set", &bvt("100000"), 1, set(Some(1), None));
        check("cpu_bvt_set", &bvt("0"), 1, Err(400));
        check("cpu_bvt_set", &[], 1, Err(400));
        let atropos = |p: &'static str, s: &'static str| {
            [
                ("period", p),
                ("slice", s),
                ("latency", "0"),
                ("xtratime", "0"),
            ]
        };
        check(
            "cpu_atropos_set",
            &atropos("20000000", "10000000"),
            1,
            set(None, Some(50)),
        );
        check(
            "cpu_atropos_set",
            &atropos("100", "150"),
            2,
            set(None, Some(150)),
        );
        check("cpu_atropos_set", &atropos("100", "150"), 1, Err(400));
        check("cpu_atropos_set", &atropos("0", "1"), 1, Err(400));
        check(
            "cpu_atropos_set",
            &atropos("1000", "1"),
            1,
            set(None, Some(1)),
        );
        assert!(parse("pause", &Params::default(), 1).is_none());
    }

    #[test]
    fn the_node_time_slice_ops_are_stated_no_ops() {
        for op in [
            "cpu_rrobin_slice_set",
            "cpu_bvt_slice_set",
            "cpu_fbvt_slice_set",
        ] {
            let why = node_noop(op).unwrap();
            assert!(
                why.starts_with(&format!("{op}: ignored: KVM has no ")),
                "{why}"
            );
        }
        assert!(node_noop("shutdown").is_none());
    }
}
