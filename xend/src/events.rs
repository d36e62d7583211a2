//! Events: a broadcast bus every subscriber (the event port, the HTTP stream)
//! reads from, and their SXP form `(event NAME (domid N) (name X) ...)`.
use tokio::sync::broadcast;

use crate::api::XendEvent;

/// Events a slow subscriber may fall behind by before it misses some (the
/// bus holds this many whatever its subscribers do: xend's own events are
/// small, injected ones at most [`MAX_EVENT_BYTES`]).
pub const BACKLOG: usize = 1024;

/// Longest injected event (its SXP text): with [`BACKLOG`], what injections
/// can make xend hold is bounded (4 MiB).
pub const MAX_EVENT_BYTES: usize = 4096;

/// The broadcast bus. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<XendEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        EventBus { tx }
    }

    /// Publish an event (logged at debug level).
    pub fn send(&self, event: XendEvent) {
        tracing::debug!(event = %event.event, domid = ?event.domid, "event");
        let _ = self.tx.send(event);
    }

    /// Publish `name` about a domain.
    pub fn domain(&self, name: &str, domid: u32, dom_name: &str, detail: Option<String>) {
        self.send(XendEvent {
            event: name.to_string(),
            domid: Some(domid),
            name: Some(dom_name.to_string()),
            detail,
            time: now(),
            progress: None,
        });
    }

    /// A new subscription, starting with the next event.
    pub fn subscribe(&self) -> broadcast::Receiver<XendEvent> {
        self.tx.subscribe()
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `(event NAME (domid N) (name X) (detail D) (time T))`.
pub fn to_sxp(e: &XendEvent) -> sxp::Value {
    use sxp::Value;
    let mut items = vec![Value::str("event"), Value::str(&e.event)];
    if let Some(id) = e.domid {
        items.push(Value::pair("domid", id));
    }
    if let Some(n) = &e.name {
        items.push(Value::pair("name", n));
    }
    if let Some(d) = &e.detail {
        items.push(Value::pair("detail", d));
    }
    items.push(Value::pair("time", e.time));
    if let Some(p) = &e.progress {
        items.push(crate::render::progress_sxp(p));
    }
    Value::List(items)
}

/// Read an injected event: `(event NAME (domid N) ...)` or `(NAME (domid N) ...)`.
pub fn from_sxp(v: &sxp::Value) -> Option<XendEvent> {
    let head = v.head()?;
    let (name, fields) = if head == "event" {
        (v.rest().first()?.as_str()?, v)
    } else {
        (head, v)
    };
    Some(XendEvent {
        event: name.to_string(),
        domid: fields.child_value("domid").and_then(|s| s.parse().ok()),
        name: fields.child_value("name").map(str::to_string),
        detail: fields.child_value("detail").map(str::to_string),
        time: now(),
        progress: None,
    })
}
