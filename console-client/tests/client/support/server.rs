//! A real TCP console server for the client's tests: sends a greeting on
//! connect (like xend's history flush), echoes every byte back (like a guest
//! shell with echo on), records what it received, and closes the connection
//! when it receives `quit-server`.
#![allow(dead_code)]
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// The greeting sent to each client on connect.
pub const GREETING: &str = "minios@test# ";

/// A running echo server on 127.0.0.1 and an ephemeral port.
pub struct EchoServer {
    pub port: u16,
    received: Arc<Mutex<Vec<u8>>>,
}

impl EchoServer {
    /// Starts the server; it serves connections one after another.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let _ = conn.write_all(GREETING.as_bytes());
                let mut buf = [0u8; 4096];
                loop {
                    let n = match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut log = log.lock().unwrap();
                    log.extend_from_slice(&buf[..n]);
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if log.windows(11).any(|w| w == b"quit-server") {
                        log.clear();
                        break;
                    }
                }
            }
        });
        Self { port, received }
    }

    /// The bytes received on the current connection so far.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}
