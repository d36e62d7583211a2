//! Xen 2.0's scheduler operations. Xen 2.0 had the BVT, fair BVT, Atropos and
//! round-robin schedulers, each with its own parameters; KVM has none of them
//! (a vCPU is a host thread under the Linux scheduler). Per-domain CPU
//! weights and caps, the modern equivalent, come with the VMM isolation work;
//! until then these ops answer 501 with a message saying so, instead of the
//! generic `Operation not implemented`.
use axum::http::StatusCode;

use crate::error::ApiError;

const LATER: &str =
    "per-domain CPU weights and caps come with the VMM isolation work (op=pincpu works now)";

/// The 501 answer for a 2.0 scheduler op on a domain or the node, or `None`
/// when `op` is not one.
pub fn unsupported(op: &str) -> Option<ApiError> {
    let what = match op {
        "cpu_bvt_set" => "has no BVT scheduler",
        "cpu_fbvt_set" => "has no fair BVT scheduler",
        "cpu_atropos_set" => "has no Atropos scheduler",
        "cpu_bvt_slice_set" => "has no BVT scheduler (no context switch allowance)",
        "cpu_fbvt_slice_set" => "has no fair BVT scheduler (no context switch allowance)",
        "cpu_rrobin_slice_set" => "has no round-robin scheduler: Linux sets the time slices",
        _ => return None,
    };
    Some(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!("{op}: the KVM hypervisor {what}; {LATER}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_2_0_scheduler_op_says_why_it_is_not_there() {
        for op in [
            "cpu_bvt_set",
            "cpu_fbvt_set",
            "cpu_atropos_set",
            "cpu_bvt_slice_set",
            "cpu_fbvt_slice_set",
            "cpu_rrobin_slice_set",
        ] {
            let e = unsupported(op).unwrap();
            assert_eq!(e.status, StatusCode::NOT_IMPLEMENTED);
            assert!(
                e.message
                    .starts_with(&format!("{op}: the KVM hypervisor has no "))
            );
            assert!(e.message.contains("VMM isolation work"), "{}", e.message);
            // Whole in a 2.0 client's reason phrase.
            assert!(
                e.message.len() <= crate::negotiate::MAX_REASON,
                "{}",
                e.message
            );
        }
        assert!(unsupported("pause").is_none());
    }
}
