//! The sampler: every `xend-sample-interval` (1 s by default) one pass asks
//! every running domain's VMM for its figures, all at once, each request
//! within `vmm-timeout`. The bulk listing (`op=stats`), `?detail=1`,
//! `/metrics` and the HTML overview serve the latest sample and never wait
//! on a VMM; each sample carries the VMM's own time stamp (`sampled_at`), so
//! clients compute rates between samples, not between replies.
//!
//! A VMM that has not answered by the end of a pass keeps its request (the
//! pass does not cancel it: a reply cut off mid-way would be read as the next
//! request's), and is skipped by later passes until it answers or misses
//! its deadline; so a hung VMM delays nobody else's figures.
use std::sync::Arc;

use super::{Domain, Phase, Supervisor};

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Requests started.
    pub asked: usize,
    /// Answers received within the pass.
    pub answered: usize,
}

impl Supervisor {
    /// Sample every domain every `xend-sample-interval` until xend stops.
    pub fn spawn_sampler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let sup = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sup.settings.sample_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if sup.stopping() {
                    break;
                }
                sup.sample_all().await;
                sup.passes.send_modify(|n| *n += 1);
            }
        })
    }

    /// One pass: ask every running domain's VMM for its figures at once and
    /// wait for the answers until the next pass is due or `vmm-timeout`
    /// passes, whichever is first.
    pub async fn sample_all(&self) -> Pass {
        let mut pass = Pass::default();
        let mut waiting: Vec<_> = self
            .domains()
            .into_iter()
            .filter_map(|d| {
                let task = start_refresh(&d)?;
                pass.asked += 1;
                Some(task)
            })
            .collect();
        let limit = self.settings.sample_interval.min(self.settings.vmm_timeout);
        // Dropping a JoinHandle detaches its task: a late VMM keeps its
        // request, bounded by its own deadline.
        if let Ok(done) =
            tokio::time::timeout(limit, futures::future::join_all(waiting.iter_mut())).await
        {
            pass.answered = done.into_iter().filter(|r| matches!(r, Ok(true))).count();
        }
        pass
    }

    /// Refresh `dom`'s figures in a task of its own, unless one is under
    /// way or the domain is not running.
    pub fn refresh_in_background(&self, dom: &Arc<Domain>) {
        drop(start_refresh(dom));
    }
}

/// Start refreshing `dom`'s figures in a task of its own (true once it
/// answered), unless a refresh is under way or the domain is not running.
fn start_refresh(dom: &Arc<Domain>) -> Option<tokio::task::JoinHandle<bool>> {
    {
        let mut st = dom.state();
        if st.refreshing || st.phase != Phase::Running {
            return None;
        }
        st.refreshing = true;
    }
    let d = dom.clone();
    Some(tokio::spawn(async move {
        let ok = d.refresh().await.is_ok();
        d.state().refreshing = false;
        ok
    }))
}
