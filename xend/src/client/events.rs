//! xend's event stream (`GET /xend/event?op=stream`) as typed events.
use std::collections::VecDeque;
use std::pin::Pin;

use futures::{Stream, StreamExt};

use super::{Error, Result};
use crate::api::XendEvent;

/// xend's events as they arrive, one [`XendEvent`] per line of the stream.
pub struct EventStream {
    pub(super) url: String,
    pub(super) body: Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    pub(super) buf: Vec<u8>,
    pub(super) ready: VecDeque<Result<XendEvent>>,
    pub(super) done: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// The next event; `None` once xend has closed the stream.
    pub async fn next_event(&mut self) -> Option<Result<XendEvent>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => {
                    self.buf.extend_from_slice(&chunk);
                    self.split_lines();
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(Error::Http {
                        url: self.url.clone(),
                        source: e,
                    }));
                }
                None => {
                    self.done = true;
                    if !self.buf.iter().all(u8::is_ascii_whitespace) {
                        let line = std::mem::take(&mut self.buf);
                        self.ready.push_back(self.decode(&line));
                    }
                }
            }
        }
    }

    /// Turns this into a [`Stream`] of events.
    pub fn into_stream(self) -> impl Stream<Item = Result<XendEvent>> + Send {
        futures::stream::unfold(
            self,
            |mut s| async move { s.next_event().await.map(|e| (e, s)) },
        )
    }

    fn split_lines(&mut self) {
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            if !line.iter().all(u8::is_ascii_whitespace) {
                let event = self.decode(&line);
                self.ready.push_back(event);
            }
        }
    }

    fn decode(&self, line: &[u8]) -> Result<XendEvent> {
        serde_json::from_slice(line).map_err(|e| Error::Decode {
            url: self.url.clone(),
            detail: format!(
                "bad event line {:?}: {e}",
                String::from_utf8_lossy(line).trim()
            ),
        })
    }
}
