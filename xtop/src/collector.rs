//! Collection: one task per host polls xend's bulk endpoint at the refresh
//! delay (or at once when asked, or when xend reports an event), and one
//! follows its event stream; both send [`Msg`]s to the event loop. A slow or
//! dead host holds up only its own tasks.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use xend::client::Client;

use crate::effects::Msg;
use crate::error::PollError;

/// How long a poll may take in the UI: twice the delay, at least 5 s. A host
/// that does not answer in that time is shown as such (the header says so)
/// and polled again; each host has its own task, so it delays no other.
pub fn poll_deadline(delay: Duration) -> Duration {
    (delay * 2).max(Duration::from_secs(5))
}

/// One poll of `client`, bounded by `deadline`.
pub async fn poll(client: &Client, deadline: Duration) -> Result<xend::api::Snapshot, PollError> {
    match tokio::time::timeout(deadline, client.snapshot()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(PollError::NoAnswer {
            secs: deadline.as_secs_f64(),
        }),
    }
}

/// A label for a URL: `host:port`, or `localhost` for the local socket.
pub fn url_label(url: &str) -> String {
    if url.starts_with("unix:") {
        return "localhost".to_owned();
    }
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The polling and event tasks of every host, and how to steer them.
pub struct Collectors {
    /// The polling timer (`None`: only on demand).
    delay: watch::Sender<Option<Duration>>,
    /// How long one poll may take.
    deadline: watch::Sender<Duration>,
    refresh: Vec<Arc<Notify>>,
}

impl Collectors {
    /// Changes the delay between polls (at once: a poller waiting wakes up).
    pub fn set_delay(&self, d: Duration) {
        let _ = self.deadline.send(poll_deadline(d));
        let _ = self.delay.send(Some(d));
    }

    /// Starts one poller per host (every `delay`, and at once on
    /// [`Collectors::refresh_all`] or an event) and one event follower per
    /// host, sending to `tx`.
    pub fn start(
        clients: &[Client],
        delay: Duration,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Collectors {
        Self::spawn(clients, Some(delay), tx)
    }

    /// Starts one poller per host that polls only on
    /// [`Collectors::refresh_all`] (batch mode's rounds), each poll bounded
    /// by [`poll_deadline`] of `delay`; no event followers.
    pub fn on_demand(
        clients: &[Client],
        delay: Duration,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Collectors {
        Self::spawn(clients, None, tx).with_deadline_of(delay)
    }

    fn with_deadline_of(self, delay: Duration) -> Self {
        let _ = self.deadline.send(poll_deadline(delay));
        self
    }

    fn spawn(
        clients: &[Client],
        timer: Option<Duration>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Collectors {
        let events = timer.is_some();
        let (delay_tx, delay_rx) = watch::channel(timer);
        let (deadline_tx, deadline_rx) =
            watch::channel(poll_deadline(timer.unwrap_or(Duration::ZERO)));
        let mut refresh = Vec::new();
        for (host, client) in clients.iter().enumerate() {
            let notify = Arc::new(Notify::new());
            refresh.push(notify.clone());
            tokio::spawn(poll_host(
                host,
                client.clone(),
                tx.clone(),
                (delay_rx.clone(), deadline_rx.clone()),
                notify.clone(),
            ));
            if !events {
                continue;
            }
            tokio::spawn(follow_events(
                host,
                client.clone(),
                tx.clone(),
                notify,
                delay_rx.clone(),
            ));
        }
        Collectors {
            delay: delay_tx,
            deadline: deadline_tx,
            refresh,
        }
    }

    /// Polls every host now.
    pub fn refresh_all(&self) {
        self.refresh.iter().for_each(|n| n.notify_one());
    }
}

async fn poll_host(
    host: usize,
    client: Client,
    tx: mpsc::UnboundedSender<Msg>,
    (mut delay, deadline): (watch::Receiver<Option<Duration>>, watch::Receiver<Duration>),
    refresh: Arc<Notify>,
) {
    let mut first = delay.borrow().is_some();
    loop {
        if !first {
            let timer = *delay.borrow_and_update();
            tokio::select! {
                _ = async { match timer {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                } } => {}
                _ = refresh.notified() => {}
                _ = delay.changed() => {}
            }
        }
        first = false;
        let d = *deadline.borrow();
        let result = poll(&client, d).await;
        if tx.send(Msg::Snapshot(host, result)).is_err() {
            return;
        }
    }
}

async fn follow_events(
    host: usize,
    client: Client,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
    delay: watch::Receiver<Option<Duration>>,
) {
    loop {
        if let Ok(mut stream) = client.events().await {
            while let Some(Ok(ev)) = stream.next_event().await {
                refresh.notify_one();
                if tx.send(Msg::Event(host, ev)).is_err() {
                    return;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        // Reconnect at the refresh pace while xend is away.
        let d = delay.borrow().unwrap_or(Duration::from_secs(3));
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts() {
        assert_eq!(url_label("unix:/var/run/xend/xend.sock"), "localhost");
        assert_eq!(url_label("http://h:8000/"), "h:8000");
    }
}
