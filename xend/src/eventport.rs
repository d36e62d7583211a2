//! The event port (`xend-event-port`), speaking Xen 2.0's protocol. With a
//! token configured, the first line a client sends must be the token. With
//! `xend-tls-cert`/`xend-tls-key` the port speaks TLS (the API's
//! certificate), the token line included.
//!
//! A connection is subscribed to every event (`*`) and receives each as
//! `(event NAME VALUE)`, VALUE in 2.0's shape: `(DOMNAME DOMID [DETAIL])` for
//! a domain event (`(event xend.domain.create (web 1))`), the event's own
//! sxpr for an injected one. The client may send requests, one SXP list each
//! (a bare word is read as a list of one), answered `(ok VALUE)` or `(err
//! (type T) (value MESSAGE))`, pretty-printed as 2.0 did:
//!
//! - `(help)`: the request names; `(quit)`: close the connection;
//! - `(info)`: `(info (console ...) ...)`, every domain's console;
//! - `(sys.subscribe NAME ...)`: only these events from now on (`a.b.*`
//!   matches every event under `a.b.`, `a.b.?` one more name part, `*` all);
//! - `(sys.inject EVENT)`: publish EVENT, under the rules of `op=inject` (the
//!   port is TCP: only with `(xend-event-inject-tcp yes)`, never `xend.*`);
//! - `(pretty)`: accepted (replies are always pretty-printed);
//! - 2.0's debugging switches of its Python process (`trace`, `traceon`,
//!   `traceoff`, `log.stderr`, `debug.msg`, `debug.controller`) and `exit`
//!   answer an error saying what to use instead.
//!
//! The richer stream (`(domid N) (name X) (detail D) (time T)` fields, JSON)
//! is `GET /xend/event?op=stream`.
use std::sync::Arc;
use std::time::Duration;

use sxp::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;

use crate::api::XendEvent;
use crate::events::EventBus;
use crate::supervisor::Supervisor;
use crate::tcpconn::{Conn, TlsServer};

/// The longest request read (bytes); a longer one closes the connection.
const MAX_REQUEST: usize = 64 * 1024;

/// What the event port serves from.
#[derive(Clone)]
pub struct EventPort {
    /// The bus every event comes from.
    pub events: EventBus,
    /// The token a client's first line must be, when TCP needs one.
    pub token: Option<Arc<String>>,
    /// The domains (for `(info)`).
    pub sup: Arc<Supervisor>,
    /// `xend-event-inject-tcp`: whether `(sys.inject ...)` is allowed.
    pub inject: bool,
    /// TLS, when xend has a certificate.
    pub tls: Option<TlsServer>,
}

/// Serve subscribers on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, port: EventPort) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let port = port.clone();
        tokio::spawn(async move {
            tracing::debug!("event subscriber {peer}");
            let tls = port.tls.as_ref();
            if let Some(conn) = crate::tcpconn::accept(stream, tls, "event port", peer).await {
                subscriber(conn, port).await;
            }
        });
    }
}

async fn subscriber(mut stream: Conn, port: EventPort) {
    if let Some(token) = &port.token {
        let line = tokio::time::timeout(
            Duration::from_secs(10),
            crate::tcpconn::read_line(&mut stream),
        )
        .await
        .ok()
        .flatten();
        let ok = line.is_some_and(|l| crate::auth::same(l.trim_end().as_bytes(), token.as_bytes()));
        if !ok {
            let _ = stream
                .write_all(b"(xend.err 'Authentication failed')\n")
                .await;
            return;
        }
    }
    // Subscribed only once authenticated: a connection that never sends
    // its token holds no place on the bus.
    let mut rx = port.events.subscribe();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut subs = vec!["*".to_string()];
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(e) if subscribed(&subs, &e.event) => {
                    if wr.write_all(reply_text(&event_sxp(&e)).as_bytes()).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
            n = rd.read(&mut chunk) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(req) = take_request(&mut buf) {
                        let reply = match dispatch(&port, &mut subs, req) {
                            Some(reply) => reply,
                            None => return,
                        };
                        if wr.write_all(reply_text(&reply).as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    if buf.len() > MAX_REQUEST {
                        let e = err("XendError", "request too long");
                        let _ = wr.write_all(reply_text(&e).as_bytes()).await;
                        return;
                    }
                }
            },
        }
    }
}

/// A reply or event as 2.0 wrote it: pretty-printed, one newline after.
fn reply_text(v: &Value) -> String {
    format!("{}\n", sxp::pretty(v))
}

/// `(event NAME VALUE)`, VALUE in 2.0's shape.
pub fn event_sxp(e: &XendEvent) -> Value {
    let value = match e.domid {
        Some(id) => {
            let mut v = vec![Value::str(e.name.as_deref().unwrap_or("")), Value::from(id)];
            if let Some(d) = &e.detail {
                v.push(Value::str(d));
            }
            Value::List(v)
        }
        None => {
            let mut v = vec![Value::str(&e.event)];
            if let Some(n) = &e.name {
                v.push(Value::pair("name", n));
            }
            if let Some(d) = &e.detail {
                v.push(Value::pair("detail", d));
            }
            Value::List(v)
        }
    };
    Value::list([Value::str("event"), Value::str(&e.event), value])
}

/// Whether `event` matches one of the subscriptions (2.0's `EventServer`).
fn subscribed(subs: &[String], event: &str) -> bool {
    subs.iter().any(|s| {
        if s == "*" || s == event {
            return true;
        }
        if let Some(prefix) = s.strip_suffix(".*") {
            return event
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'));
        }
        if let Some(prefix) = s.strip_suffix(".?") {
            return event
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|last| !last.is_empty() && !last.contains('.'));
        }
        false
    })
}

/// Take the first complete request off `buf`: a top-level list, or a bare
/// word ended by whitespace (read as a list of one).
fn take_request(buf: &mut Vec<u8>) -> Option<Value> {
    loop {
        let start = buf.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = start else {
            buf.clear();
            return None;
        };
        let end = request_end(&buf[start..])? + start;
        let text = String::from_utf8_lossy(&buf[start..end]).into_owned();
        buf.drain(..end);
        if text.starts_with('#') {
            continue;
        }
        return Some(match sxp::parse(&text) {
            Ok(Value::List(l)) => Value::List(l),
            Ok(atom) => Value::List(vec![atom]),
            Err(e) => Value::list([Value::str(" parse"), Value::str(e.to_string())]),
        });
    }
}

/// Where the request at the start of `b` ends (exclusive), once complete.
fn request_end(b: &[u8]) -> Option<usize> {
    if b[0] == b'#' {
        return b.iter().position(|&c| c == b'\n').map(|i| i + 1);
    }
    if b[0] != b'(' {
        return b.iter().position(|c| c.is_ascii_whitespace());
    }
    let (mut depth, mut quote, mut escaped, mut comment) = (0usize, None, false, false);
    for (i, &c) in b.iter().enumerate() {
        if comment {
            comment = c != b'\n';
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            b'"' | b'\'' => quote = Some(c),
            b'#' => comment = true,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn ok(v: Value) -> Value {
    Value::list([Value::str("ok"), v])
}

fn err(kind: &str, message: impl Into<String>) -> Value {
    Value::list([
        Value::str("err"),
        Value::pair("type", kind),
        Value::pair("value", message.into()),
    ])
}

/// The reply to `req`, or `None` to close the connection.
fn dispatch(port: &EventPort, subs: &mut Vec<String>, req: Value) -> Option<Value> {
    let name = req.head().unwrap_or("").to_string();
    let args = req.rest();
    Some(match name.as_str() {
        "quit" => return None,
        " parse" => err("ParseError", args[0].as_str().unwrap_or("bad SXP")),
        "help" => ok(Value::list(
            [
                "help",
                "quit",
                "info",
                "pretty",
                "sys.subscribe",
                "sys.inject",
            ]
            .map(Value::str),
        )),
        "pretty" => ok(Value::list([Value::str("ok")])),
        "info" => {
            let mut info = vec![Value::str("info")];
            info.extend(
                port.sup
                    .domains()
                    .iter()
                    .map(|d| crate::render::console_sxp(&d.console.info())),
            );
            ok(Value::List(info))
        }
        "sys.subscribe" => {
            *subs = args
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            ok(Value::list([Value::str("ok")]))
        }
        "sys.inject" => inject(port, args.first()),
        "trace" | "traceon" | "traceoff" | "log.stderr" | "debug.msg" | "debug.controller" => err(
            "XendError",
            format!(
                "{name}: xend is not a Python process to trace; set (loglevel DEBUG) in xend-config.sxp"
            ),
        ),
        "exit" => err("XendError", "exit: stop xend with `xend stop`"),
        _ => err("XendError", format!("Invalid operation: {name}")),
    })
}

fn inject(port: &EventPort, event: Option<&Value>) -> Value {
    if !port.inject {
        return err(
            "XendError",
            "sys.inject: events are injected by local clients (POST /xend/event op=inject on the local socket); set (xend-event-inject-tcp yes) to allow it here",
        );
    }
    let Some(event) = event.and_then(crate::events::from_sxp) else {
        return err(
            "XendError",
            "sys.inject: expected (sys.inject (NAME ...)) or (sys.inject (event NAME ...))",
        );
    };
    if event.event == "xend" || event.event.starts_with("xend.") {
        return err(
            "XendError",
            format!(
                "sys.inject: events named xend.* come from xend only; inject {} under another name",
                event.event
            ),
        );
    }
    port.events.send(event);
    ok(Value::list([Value::str("ok")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_match_as_2_0s_event_server() {
        let subs = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        #[track_caller]
        fn check(subs: &[String], event: &str, want: bool) {
            assert_eq!(subscribed(subs, event), want, "{subs:?} {event}");
        }
        check(&subs(&["*"]), "xend.domain.create", true);
        check(&subs(&["xend.domain.*"]), "xend.domain.create", true);
        check(&subs(&["xend.domain.*"]), "xend.domain", false);
        check(&subs(&["xend.domain.*"]), "xend.domainx.create", false);
        check(&subs(&["xend.domain.?"]), "xend.domain.pause", true);
        check(&subs(&["xend.domain.?"]), "xend.domain.a.b", false);
        check(&subs(&["xend.domain.pause"]), "xend.domain.pause", true);
        check(&subs(&["xend.domain.pause"]), "xend.domain.unpause", false);
        check(&subs(&[]), "xend.domain.pause", false);
    }

    #[test]
    fn requests_are_split_as_they_complete() {
        let mut buf = b"(help)\n(sys.subscribe 'a b' \"c)\") # x\n  quit\n(info".to_vec();
        let mut got = Vec::new();
        while let Some(r) = take_request(&mut buf) {
            got.push(r.to_string());
        }
        assert_eq!(got, ["(help)", "(sys.subscribe 'a b' 'c)')", "(quit)"]);
        // The unfinished request waits for the rest.
        assert_eq!(String::from_utf8_lossy(&buf).trim(), "(info");
        buf.extend_from_slice(b")\n");
        assert_eq!(take_request(&mut buf).unwrap().to_string(), "(info)");
    }

    #[test]
    fn events_have_2_0s_shape() {
        let e = |domid, detail: Option<&str>| XendEvent {
            event: "xend.domain.shutdown".into(),
            domid,
            name: domid.map(|_| "web".into()),
            detail: detail.map(str::to_string),
            time: 1.0,
            progress: None,
        };
        assert_eq!(
            event_sxp(&e(Some(3), Some("reboot"))).to_string(),
            "(event xend.domain.shutdown (web 3 reboot))"
        );
        assert_eq!(
            event_sxp(&e(Some(3), None)).to_string(),
            "(event xend.domain.shutdown (web 3))"
        );
        let mut injected = e(None, Some("ok"));
        injected.event = "site.backup".into();
        assert_eq!(
            event_sxp(&injected).to_string(),
            "(event site.backup (site.backup (detail ok)))"
        );
    }
}
