//! The event port (`xend-event-port`): a TCP subscription that receives every
//! event as one SXP line. With a token configured, the first line a client
//! sends must be the token.
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;

use crate::events::EventBus;

/// Serve subscribers on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, events: EventBus, token: Option<Arc<String>>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let events = events.clone();
        let token = token.clone();
        tokio::spawn(async move {
            tracing::debug!("event subscriber {peer}");
            subscriber(stream, events, token).await;
        });
    }
}

async fn subscriber(mut stream: TcpStream, events: EventBus, token: Option<Arc<String>>) {
    let mut rx = events.subscribe();
    if let Some(token) = token {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        let read = async {
            while line.len() < 4096 {
                match stream.read(&mut byte).await {
                    Ok(1) if byte[0] == b'\n' => return true,
                    Ok(1) => line.push(byte[0]),
                    _ => return false,
                }
            }
            false
        };
        let ok = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .unwrap_or(false);
        let given = String::from_utf8_lossy(&line);
        if !ok || !crate::auth::same(given.trim_end().as_bytes(), token.as_bytes()) {
            let _ = stream
                .write_all(b"(xend.err 'Authentication failed')\n")
                .await;
            return;
        }
    }
    let (mut rd, mut wr) = stream.into_split();
    let mut sink = [0u8; 256];
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(e) => {
                    let line = format!("{}\n", crate::events::to_sxp(&e));
                    if wr.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
            n = rd.read(&mut sink) => match n {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
        }
    }
}
