//! Progress of saves, restores and migrations: kept in the domain's state
//! (its record shows it while it runs) and published as
//! `xend.domain.progress` events.
//!
//! A save or migration is followed by asking the VMM (`{"op":"progress"}`,
//! answered from counters) every [`POLL_EVERY`] on a connection of its own;
//! a restore's VMM relays its figures through its start-up pipe as often.
//! Either way at most ten events a second per operation, and only when the
//! figures moved; the bus drops events for a subscriber that falls behind
//! ([`crate::events::BACKLOG`]), so no subscriber can hold up the work.
use std::sync::Arc;
use std::time::Duration;

use hypervisor::control::proto::{Payload, Request, TransferProgress};

use super::{Domain, Supervisor};
use crate::api::{OpProgress, XendEvent};
use crate::vmm_client::VmmConn;

/// How often a save's or migration's VMM is asked how far it is.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// The API's form of a VMM's figures.
pub fn from_vmm(p: &TransferProgress) -> OpProgress {
    OpProgress {
        op: p.op.as_str().to_string(),
        phase: p.phase.as_str().to_string(),
        done_bytes: p.done_bytes,
        total_bytes: p.total_bytes,
        round: p.round,
        dirty_pages: p.dirty_pages,
        seconds: p.seconds,
    }
}

/// `p` finished: everything done.
pub fn finished(mut p: OpProgress, seconds: f64) -> OpProgress {
    p.phase = "done".into();
    p.total_bytes = p.total_bytes.max(p.done_bytes);
    p.done_bytes = p.total_bytes;
    p.dirty_pages = 0;
    p.seconds = p.seconds.max(seconds);
    p
}

/// The same figures, ignoring the clock (what makes a new event worth it).
fn moved(a: &OpProgress, b: &OpProgress) -> bool {
    (
        &a.phase,
        a.done_bytes,
        a.total_bytes,
        a.round,
        a.dirty_pages,
    ) != (
        &b.phase,
        b.done_bytes,
        b.total_bytes,
        b.round,
        b.dirty_pages,
    )
}

/// Stops following a VMM's progress when dropped.
pub struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Supervisor {
    /// Set `dom`'s progress to `p` and publish it, if it moved.
    pub(super) fn report_progress(&self, dom: &Domain, p: OpProgress) {
        {
            let mut st = dom.state();
            if st.progress.as_ref().is_some_and(|old| !moved(old, &p)) {
                return;
            }
            st.progress = Some(p.clone());
        }
        self.events.send(XendEvent {
            event: "xend.domain.progress".into(),
            domid: Some(dom.id),
            name: Some(dom.name.clone()),
            detail: Some(p.summary()),
            time: crate::events::now(),
            progress: Some(p),
        });
    }

    /// The operation on `dom` ended: its record shows no progress any more.
    pub(super) fn clear_progress(&self, dom: &Domain) {
        dom.state().progress = None;
    }

    /// The operation on `dom` succeeded: publish its last figures at 100%
    /// (`fallback_total` bytes when none were heard) and clear them.
    pub(super) fn finish_progress(
        &self,
        dom: &Domain,
        op: &str,
        fallback_total: u64,
        seconds: f64,
    ) {
        let last = dom.state().progress.clone().unwrap_or_else(|| OpProgress {
            op: op.to_string(),
            total_bytes: fallback_total,
            ..OpProgress::default()
        });
        self.report_progress(dom, finished(last, seconds));
        self.clear_progress(dom);
    }

    /// Ask `dom`'s VMM how far its save or migration is every
    /// [`POLL_EVERY`] and report what moved, until the follower is dropped.
    pub(super) fn follow_progress(self: &Arc<Self>, dom: &Arc<Domain>) -> Follower {
        let (sup, dom) = (Arc::clone(self), Arc::clone(dom));
        Follower(tokio::spawn(async move {
            let mut conn = None;
            let mut tick = tokio::time::interval(POLL_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if conn.is_none() {
                    conn = VmmConn::connect(&dom.paths.socket).await.ok();
                }
                let Some(c) = conn.as_mut() else { continue };
                match c.request(&Request::Progress).await {
                    Ok(Payload::Progress(Some(p))) => sup.report_progress(&dom, from_vmm(&p)),
                    Ok(_) => {}
                    // A VMM without the request, or a lost connection: try
                    // again on a new one.
                    Err(_) => conn = None,
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_is_all_done() {
        let p = OpProgress {
            op: "save".into(),
            phase: "memory".into(),
            done_bytes: 10,
            total_bytes: 40,
            ..OpProgress::default()
        };
        assert_eq!(p.percent(), 25.0);
        assert_eq!(p.summary(), "save memory 25% (0.0 of 0.0 MiB)");
        let f = finished(p.clone(), 2.0);
        assert_eq!((f.done_bytes, f.total_bytes, f.percent()), (40, 40, 100.0));
        assert!(moved(&p, &f));
        let mut later = p.clone();
        later.seconds += 1.0;
        assert!(!moved(&p, &later), "the clock alone is no news");
    }
}
