//! The state every handler shares.
use std::sync::Arc;

use crate::events::EventBus;
use crate::settings::Settings;
use crate::supervisor::Supervisor;

/// Shared by every request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The daemon's settings.
    pub settings: Arc<Settings>,
    /// Every domain.
    pub sup: Arc<Supervisor>,
    /// The event bus.
    pub events: EventBus,
    /// The CSRF token xend's pages embed in their forms (new at every start).
    pub csrf: Arc<str>,
    /// Turns true when xend begins to stop (long-lived responses end then).
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Every domain's rendered bulk entry (`op=stats`).
    pub bulk: Arc<crate::bulk::BulkCache>,
}
