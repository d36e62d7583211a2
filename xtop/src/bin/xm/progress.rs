//! Progress of `xm save`, `restore` and `migrate` while xend works: the
//! `xend.domain.progress` events of xend's event stream, shown on stderr as
//! an `indicatif` bar when stderr is a terminal, else as plain lines
//! (`save trip: memory 40% (12.0 of 30.0 MiB)`), one per phase and per ten
//! percent, and the last one at 100%. Stdout stays what Xen's xm printed.
//! Without the event stream (an older xend) the command runs as before.
use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use xend::api::{OpProgress, XendEvent};
use xend::client::EventStream;

use crate::Xm;

/// How long to wait for the 100% event after xend answered (it sends the
/// event before the answer, so it is normally there already).
const LAST_EVENT_WAIT: Duration = Duration::from_millis(500);

/// Whose progress to show.
pub enum Target {
    /// A domain by name or id (save, migrate).
    Domain(String),
    /// The first domain a restore reports on (its name is in the image).
    Restore,
}

impl Target {
    fn matches(&self, e: &XendEvent, locked: &mut Option<u32>) -> bool {
        let Some(p) = &e.progress else { return false };
        if e.event != "xend.domain.progress" {
            return false;
        }
        match self {
            Target::Domain(d) => {
                e.name.as_deref() == Some(d.as_str())
                    || e.domid.is_some_and(|id| id.to_string() == *d)
            }
            Target::Restore => {
                if p.op != "restore" {
                    return false;
                }
                match (*locked, e.domid) {
                    (None, Some(id)) => {
                        *locked = Some(id);
                        true
                    }
                    (Some(l), Some(id)) => l == id,
                    _ => false,
                }
            }
        }
    }
}

/// Shows progress, as a bar or as lines.
enum Display {
    Bar(ProgressBar),
    Lines { last: Option<(String, u32)> },
}

impl Display {
    fn new() -> Display {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} {wide_bar} {percent:>3}% {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            Display::Bar(bar)
        } else {
            Display::Lines { last: None }
        }
    }

    fn show(&mut self, who: &str, p: &OpProgress) {
        match self {
            Display::Bar(bar) => {
                bar.set_prefix(format!("{} {who}", p.op));
                bar.set_length(p.total_bytes.max(1));
                bar.set_position(p.done_bytes.min(p.total_bytes));
                let mut msg = p.phase.clone();
                if p.round > 0 || p.phase == "precopy" {
                    msg.push_str(&format!(" round {} ({} dirty)", p.round, p.dirty_pages));
                }
                bar.set_message(msg);
            }
            Display::Lines { last } => {
                let step = (p.percent() / 10.0).floor() as u32;
                let key = (format!("{} {}", p.phase, p.round), step);
                if last.as_ref() != Some(&key) {
                    eprintln!("{} {who}: {}", p.op, rest_of(&p.summary()));
                    *last = Some(key);
                }
            }
        }
    }

    fn finish(self) {
        if let Display::Bar(bar) = self {
            bar.finish();
        }
    }
}

/// The summary without its leading op (the line starts with it already).
fn rest_of(summary: &str) -> &str {
    summary.split_once(' ').map_or(summary, |(_, r)| r)
}

/// Run `work` (the request to xend), showing the progress xend reports for
/// `target` meanwhile.
pub async fn watch<T, E>(
    xm: &Xm,
    target: Target,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let Ok(mut events) = xm.client.events().await else {
        return work.await;
    };
    let mut display = Display::new();
    let mut locked = None;
    let seen = |e: &XendEvent, display: &mut Display, locked: &mut Option<u32>| {
        if target.matches(e, locked)
            && let Some(p) = &e.progress
        {
            let who = e.name.clone().unwrap_or_default();
            display.show(&who, p);
            return p.phase == "done";
        }
        false
    };
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            e = events.next_event() => match e {
                Some(Ok(e)) => {
                    seen(&e, &mut display, &mut locked);
                }
                // The stream broke: the work goes on without progress.
                _ => break (&mut work).await,
            },
        }
    };
    if result.is_ok() {
        let _ = tokio::time::timeout(LAST_EVENT_WAIT, async {
            while let Some(Ok(e)) = next(&mut events).await {
                if seen(&e, &mut display, &mut locked) {
                    break;
                }
            }
        })
        .await;
    }
    display.finish();
    result
}

async fn next(events: &mut EventStream) -> Option<xend::client::Result<XendEvent>> {
    events.next_event().await
}
