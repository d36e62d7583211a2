//! Migrating a domain between two xends.
//!
//! Source (`op=migrate destination=HOST[:PORT]`): ask the destination xend
//! (`POST /xend/domain op=migrate_receive config=(vm ...)`, with the
//! destination's bearer token) to start a VMM waiting for the domain; it
//! answers the port and a one-time token. Then the source VMM is told to
//! migrate there (`{"op":"migrate"}`). On success the source VMM has ended:
//! the domain is dropped here and the destination is told to finish
//! (`op=migrate_finish`, which answers once it has adopted the domain). On
//! failure the destination is told to abort (`op=migrate_abort`, which kills
//! its waiting VMM) and the domain runs on here.
//!
//! Destination: `migrate_receive` creates the domain (fresh id, same name,
//! console listener) in [`Phase::Incoming`] with `vmm --incoming ADDR:PORT`
//! (the token in the environment); a task waits for the VMM's record (written
//! once the domain runs there) and attaches to it, or forgets the domain when
//! the VMM gives up.
use std::sync::Arc;
use std::time::{Duration, Instant};

use errchain::error_chain;
use hypervisor::control::proto::{Payload, Request, RunState};
use reqwest::header::{ACCEPT, AUTHORIZATION};

use super::save::long_request;
use super::{Domain, EXIT_GRACE, Launch, Phase, SupError, Supervisor, spawn};
use crate::api::{MigrateReceive, MigrateReply};
use crate::config::DomainConfig;
use crate::vmm_client::VmmError;

/// The destination xend's port when `destination` names none (xend-port's default).
pub const DEFAULT_PORT: u16 = 8000;
/// How long the source VMM may take to migrate (it gives up by itself after
/// 60 s without progress).
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long a call to the destination xend may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a waiting VMM may wait for its source (the VMM's own limit is 10 minutes).
const INCOMING_WAIT: Duration = Duration::from_secs(11 * 60);
/// How long `migrate_finish` waits for the arrived domain to be adopted.
const FINISH_WAIT: Duration = Duration::from_secs(60);

/// Errors talking to the destination xend.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The destination is not `HOST[:PORT]`.
    #[error("Invalid parameter: destination: {0:?}: expected HOST or HOST:PORT")]
    BadDestination(String),
    /// The destination xend does not answer.
    #[error("cannot reach the destination xend at {dest}: {why}")]
    Connect {
        /// `HOST:PORT`.
        dest: String,
        /// Why.
        why: String,
    },
    /// The destination xend refused the request.
    #[error("the destination xend at {dest} refused: {message}")]
    Refused {
        /// `HOST:PORT`.
        dest: String,
        /// Its HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The VMMs could not move the domain.
    #[error("migration to {dest} failed: {why}")]
    Failed {
        /// `HOST:PORT` of the destination xend.
        dest: String,
        /// What the source VMM reported.
        why: String,
    },
    /// The destination xend answered something unreadable.
    #[error("the destination xend at {dest} sent a bad reply: {why}")]
    Bad {
        /// `HOST:PORT`.
        dest: String,
        /// Why.
        why: String,
    },
}

/// Where a migration goes: the destination xend's API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// The xend's HTTP port.
    pub port: u16,
    /// Whether its API speaks HTTPS (`https://HOST:PORT` was given).
    pub tls: bool,
}

impl Destination {
    /// `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`; `port` is used when the
    /// text names none, else [`DEFAULT_PORT`].
    pub fn parse(text: &str, port: Option<u16>) -> Result<Destination, PeerError> {
        let bad = || PeerError::BadDestination(text.to_string());
        let t = text.trim();
        let (tls, t) = match t.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix("http://").unwrap_or(t)),
        };
        let t = t.trim_end_matches('/');
        let (host, p) = if let Some(rest) = t.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad()),
            }
        } else {
            match t.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            }
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_');
        if host.is_empty() || !host.chars().all(valid) {
            return Err(bad());
        }
        let port = match p {
            Some(p) => p.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?,
            None => port.unwrap_or(DEFAULT_PORT),
        };
        Ok(Destination {
            host: host.to_string(),
            port,
            tls,
        })
    }

    /// `HOST:PORT` (`[V6]:PORT`).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The destination xend's API.
struct Peer {
    http: reqwest::Client,
    dest: String,
    scheme: &'static str,
    token: Option<String>,
}

impl Peer {
    fn new(dest: &Destination, token: Option<String>) -> Result<Peer, PeerError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(PEER_TIMEOUT)
            .build()
            .map_err(|e| PeerError::Connect {
                dest: dest.authority(),
                why: e.to_string(),
            })?;
        Ok(Peer {
            http,
            dest: dest.authority(),
            scheme: if dest.tls { "https" } else { "http" },
            token,
        })
    }

    /// POST a form to `/xend/PATH`, asking for JSON.
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<T, PeerError> {
        let url = format!("{}://{}/xend/{path}", self.scheme, self.dest);
        let mut req = self
            .http
            .post(&url)
            .header(ACCEPT, "application/json")
            .form(form);
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = req.send().await.map_err(|e| PeerError::Connect {
            dest: self.dest.clone(),
            why: error_chain(&e),
        })?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| PeerError::Bad {
            dest: self.dest.clone(),
            why: error_chain(&e),
        })?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| format!("{status}: {}", body.trim()));
            return Err(PeerError::Refused {
                dest: self.dest.clone(),
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_str(&body).map_err(|e| PeerError::Bad {
            dest: self.dest.clone(),
            why: format!("{e}: {}", body.trim()),
        })
    }
}

/// A one-time migration token: 128 random bits, hex.
fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Supervisor {
    /// Migrate `dom` to the xend at `dest` (stop-and-copy, or pre-copy when
    /// `live`), authenticating with `token` (default: this xend's own).
    pub async fn migrate(
        self: &Arc<Self>,
        dom: &Arc<Domain>,
        dest: &Destination,
        live: bool,
        token: Option<String>,
    ) -> Result<MigrateReply, SupError> {
        let _life = self.ready(dom).await?;
        let started = Instant::now();
        let _ = dom.refresh().await;
        let (config, paused) = {
            let st = dom.state();
            let paused = st
                .info
                .as_ref()
                .is_some_and(|i| i.state == RunState::Paused);
            (st.config.to_sxp().to_string(), paused)
        };
        let token = token.or_else(|| self.settings.token.as_deref().cloned());
        let peer = Peer::new(dest, token)?;
        tracing::info!(
            "migrating domain {} (id {}) to {}{}",
            dom.name,
            dom.id,
            dest.authority(),
            if live { " (live)" } else { "" }
        );
        let paused_flag = if paused { "1" } else { "0" };
        let recv: MigrateReceive = peer
            .post(
                "domain",
                &[
                    ("op", "migrate_receive"),
                    ("config", &config),
                    ("paused", paused_flag),
                ],
            )
            .await?;
        dom.state().phase = Phase::Migrating;
        let req = Request::Migrate {
            host: dest.host.clone(),
            port: recv.port,
            token: recv.token.clone(),
            live,
        };
        let remote = format!("domain/{}", recv.domid);
        let follower = self.follow_progress(dom);
        let result = long_request(dom, &req, MIGRATE_TIMEOUT).await;
        drop(follower);
        if !matches!(result, Ok(Payload::Migrated(_))) {
            self.clear_progress(dom);
        }
        match result {
            Ok(Payload::Migrated(info)) => {
                self.finish_progress(dom, "migrate", info.bytes, info.total_seconds);
                self.end_moved(dom).await;
                tracing::info!(
                    "domain {} (id {}) migrated to {} as id {} in {:.3} s (downtime {:.3} s)",
                    dom.name,
                    dom.id,
                    dest.authority(),
                    recv.domid,
                    info.total_seconds,
                    info.downtime_seconds
                );
                self.events.domain(
                    "xend.domain.migrate",
                    dom.id,
                    &dom.name,
                    Some(format!("to {}", dest.authority())),
                );
                if let Err(e) = peer
                    .post::<serde_json::Value>(&remote, &[("op", "migrate_finish")])
                    .await
                {
                    tracing::warn!("domain {} runs at {} but: {e}", dom.name, dest.authority());
                }
                Ok(MigrateReply {
                    name: dom.name.clone(),
                    destination: dest.authority(),
                    domid: recv.domid,
                    live: info.live,
                    total_seconds: started.elapsed().as_secs_f64(),
                    downtime_seconds: info.downtime_seconds,
                    bytes: info.bytes,
                    rounds: info.rounds,
                })
            }
            other => {
                let err = match other {
                    Err(SupError::Vmm {
                        source: VmmError::Refused(why),
                        ..
                    }) => SupError::Peer(PeerError::Failed {
                        dest: dest.authority(),
                        why,
                    }),
                    Err(e) => e,
                    Ok(p) => SupError::Vmm {
                        name: dom.name.clone(),
                        source: VmmError::Bad(format!("expected migrated, got {p:?}")),
                    },
                };
                tracing::error!("migration of domain {} failed: {err}", dom.name);
                if let Err(e) = peer
                    .post::<serde_json::Value>(&remote, &[("op", "migrate_abort")])
                    .await
                {
                    tracing::warn!(
                        "could not abort the incoming domain at {}: {e}",
                        dest.authority()
                    );
                }
                self.resume_after_failure(dom);
                Err(err)
            }
        }
    }

    /// Destination side: create `cfg` as a domain waiting for its migration;
    /// returns where its VMM listens and the token it expects.
    pub async fn migrate_receive(
        self: &Arc<Self>,
        cfg: DomainConfig,
        paused: bool,
    ) -> Result<MigrateReceive, SupError> {
        let addr = match self.settings.address.as_str() {
            "" | "0.0.0.0" => "0.0.0.0".to_string(),
            "::" => "::".to_string(),
            a => a.to_string(),
        };
        let spawn_err = |why: String| SupError::Spawn {
            name: cfg.name.clone(),
            why,
        };
        let port = std::net::TcpListener::bind((addr.as_str(), 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| spawn_err(format!("no free port on {addr}: {e}")))?
            .port();
        let token = random_token().map_err(|e| spawn_err(format!("no random token: {e}")))?;
        let listen = if addr.contains(':') {
            format!("[{addr}]:{port}")
        } else {
            format!("{addr}:{port}")
        };
        let dom = self
            .create_with(
                cfg,
                Launch::Incoming {
                    listen,
                    token: token.clone(),
                    paused,
                },
            )
            .await?;
        Ok(MigrateReceive {
            domid: dom.id,
            name: dom.name.clone(),
            port,
            token,
        })
    }

    /// Watch a domain waiting for its migration until its VMM runs it (then
    /// attach) or gives up (then forget it).
    pub(super) fn spawn_incoming_wait(self: &Arc<Self>, dom: &Arc<Domain>) {
        let sup = self.clone();
        let dom = dom.clone();
        tokio::spawn(async move { sup.incoming_wait(&dom).await });
    }

    async fn incoming_wait(self: &Arc<Self>, dom: &Arc<Domain>) {
        let pid = dom.state().pid;
        let deadline = Instant::now() + INCOMING_WAIT;
        let arrived = loop {
            if dom.state().phase != Phase::Incoming {
                return;
            }
            if dom.paths.record.exists() {
                break true;
            }
            if pid.is_none_or(|p| !spawn::pid_alive(p)) || Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let _life = dom.lifecycle.lock().await;
        if dom.state().phase != Phase::Incoming {
            return;
        }
        if arrived {
            match self.attach(dom, true).await {
                Ok(()) => {
                    self.remember_macs(dom);
                    dom.state().phase = Phase::Running;
                    if let Err(e) = self.save(dom) {
                        tracing::error!("domain {}: {e}", dom.name);
                    }
                    tracing::info!("domain {} (id {}) arrived by migration", dom.name, dom.id);
                    self.events.domain(
                        "xend.domain.migrate",
                        dom.id,
                        &dom.name,
                        Some("arrived".into()),
                    );
                    return;
                }
                Err(e) => tracing::error!("domain {} arrived but: {e}", dom.name),
            }
        } else {
            tracing::warn!(
                "domain {} (id {}): the migration did not arrive (see {})",
                dom.name,
                dom.id,
                dom.paths.log.display()
            );
        }
        self.drop_incoming(dom).await;
    }

    /// Kill a waiting (or half-arrived) VMM and forget its domain.
    async fn drop_incoming(&self, dom: &Arc<Domain>) {
        dom.state().phase = Phase::Dying;
        if let Some(w) = dom.state().watcher.take() {
            w.abort();
        }
        let pid = dom.state().pid.take();
        if let Some(pid) = pid {
            use nix::sys::signal::{Signal, kill};
            let _ = kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            spawn::wait_exit(pid, EXIT_GRACE).await;
        }
        *dom.ctl.lock().await = None;
        dom.paths.remove_stale();
        self.forget(dom).await;
    }

    /// Destination side, `op=migrate_finish`: wait until the migrated domain
    /// runs here and is adopted.
    pub async fn migrate_finish(&self, dom: &Arc<Domain>) -> Result<(), SupError> {
        let deadline = Instant::now() + FINISH_WAIT;
        loop {
            if self.lookup(&dom.id.to_string()).is_none() {
                return Err(SupError::Invalid(format!(
                    "the migration of domain {} did not arrive (see its VMM log)",
                    dom.name
                )));
            }
            let phase = dom.state().phase;
            match phase {
                Phase::Running => return Ok(()),
                Phase::Incoming if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                p => return Err(SupError::Busy(dom.name.clone(), p.as_str())),
            }
        }
    }

    /// Destination side, `op=migrate_abort`: the source gave up; kill the
    /// waiting VMM and forget the domain.
    pub async fn migrate_abort(&self, dom: &Arc<Domain>) -> Result<(), SupError> {
        let _life = dom.lifecycle.lock().await;
        if dom.state().phase != Phase::Incoming {
            return Err(SupError::Invalid(format!(
                "Invalid parameter: op: domain {} is not arriving by migration",
                dom.name
            )));
        }
        tracing::info!(
            "domain {} (id {}): migration aborted by the source",
            dom.name,
            dom.id
        );
        self.drop_incoming(dom).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let d = |h: &str, p| Destination {
            host: h.into(),
            port: p,
            tls: false,
        };
        assert_eq!(Destination::parse("h", None).unwrap(), d("h", 8000));
        assert_eq!(Destination::parse("h", Some(9)).unwrap(), d("h", 9));
        assert_eq!(
            Destination::parse("10.0.0.2:8002", Some(9)).unwrap(),
            d("10.0.0.2", 8002)
        );
        assert_eq!(Destination::parse("[::1]:7", None).unwrap(), d("::1", 7));
        assert_eq!(Destination::parse("http://h:7/", None).unwrap(), d("h", 7));
        let tls = Destination::parse("https://h:8443", None).unwrap();
        assert_eq!((tls.tls, tls.authority()), (true, "h:8443".into()));
        assert_eq!(
            Destination::parse("[::1]", None).unwrap().authority(),
            "[::1]:8000"
        );
        for bad in [
            "", ":80", "h:0", "h:x", "h:99999", "a b", "h/x", "[::1", "[::1]x", "h@x",
        ] {
            assert!(Destination::parse(bad, None).is_err(), "{bad:?} accepted");
        }
    }
}
