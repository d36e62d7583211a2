//! Collection: one task per host polls xend's bulk endpoint at the refresh
//! delay (or at once when asked, or when xend reports an event), and one
//! follows its event stream; both send [`Msg`]s to the event loop. A slow or
//! dead host holds up only its own tasks.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use xend::client::Client;

use crate::effects::Msg;

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
    delay: watch::Sender<Duration>,
    refresh: Vec<Arc<Notify>>,
}

impl Collectors {
    /// Changes the delay between polls (at once: a poller waiting wakes up).
    pub fn set_delay(&self, d: Duration) {
        let _ = self.delay.send(d);
    }

    /// Starts one poller and one event follower per host, sending to `tx`.
    pub fn start(
        clients: &[Client],
        delay: Duration,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Collectors {
        let (delay_tx, delay_rx) = watch::channel(delay);
        let mut refresh = Vec::new();
        for (host, client) in clients.iter().enumerate() {
            let notify = Arc::new(Notify::new());
            refresh.push(notify.clone());
            tokio::spawn(poll_host(
                host,
                client.clone(),
                tx.clone(),
                delay_rx.clone(),
                notify.clone(),
            ));
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
    mut delay: watch::Receiver<Duration>,
    refresh: Arc<Notify>,
) {
    loop {
        let result = client.snapshot().await;
        if tx.send(Msg::Snapshot(host, result)).is_err() {
            return;
        }
        let d = *delay.borrow_and_update();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = refresh.notified() => {}
            _ = delay.changed() => {}
        }
    }
}

async fn follow_events(
    host: usize,
    client: Client,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
    delay: watch::Receiver<Duration>,
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
        let d = *delay.borrow();
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
