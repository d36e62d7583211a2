//! The bulk reply (`GET /xend/domain?op=stats`, what xtop and scripts poll):
//! each domain's entry is rendered once per change and kept; a reply renders
//! only the domains whose state moved since the last reply and splices the
//! kept texts between the head and the end.
//!
//! A domain's entry depends only on its identity and console port (which
//! never change) and its state, whose version moves on every mutable access
//! ([`crate::supervisor::Domain::stats_since`]); so a kept entry is exactly
//! what rendering afresh would give, and a change (a sample, a pause, a
//! config edit) shows in the very next reply. Each format is rendered the
//! first time it is asked for at a version. The bytes are those of
//! [`crate::render::snapshot_text`] and of `serde_json` over the whole
//! [`Snapshot`](crate::api::Snapshot), field for field (tests below).
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::api::{ConsoleInfo, DomainRecord, DomainStats, NodeInfo};
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{Format, sxp_text};
use crate::supervisor::Domain;

/// How long after a client last asked for a format [`BulkCache::prepare`]
/// keeps rendering it.
pub const KEEP_WARM_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Room for the snapshot's head (time, version, node, Domain-0), bytes.
const HEAD_BYTES: usize = 4096;

/// One domain's kept entry.
#[derive(Debug)]
struct Entry {
    /// The version of the domain state it was made from.
    version: u64,
    stats: DomainStats,
    sxp: Option<Box<str>>,
    json: Option<Box<RawValue>>,
    /// The reply that last listed the domain.
    seen: u64,
}

/// One domain's kept full record (`?detail=1`), in the compact form.
#[derive(Debug)]
struct KeptRecord {
    /// The version of the domain state it was made from.
    version: u64,
    /// The console's fields it holds (they change apart from the state).
    console: ConsoleInfo,
    sxp: Box<str>,
    /// The pass that last listed the domain.
    seen: u64,
}

#[derive(Debug, Default)]
struct Kept {
    /// By domain id: the reply's order.
    entries: BTreeMap<u32, Entry>,
    /// Passes over the domains so far (replies and [`BulkCache::prepare`]).
    replies: u64,
    /// When a client last asked for each format.
    json_asked: Option<std::time::Instant>,
    sxp_asked: Option<std::time::Instant>,
    /// By domain id: the full records (`?detail=1`, what `xm list -l` asks).
    records: BTreeMap<u32, KeptRecord>,
    /// Passes over the records so far.
    record_passes: u64,
    /// When a client last asked for the full records.
    records_asked: Option<std::time::Instant>,
}

/// Every domain's kept entry (one per xend, in the app state).
#[derive(Debug, Default)]
pub struct BulkCache {
    kept: Mutex<Kept>,
}

/// The JSON snapshot with its domains already written: the field names and
/// order of [`crate::api::Snapshot`].
#[derive(Serialize)]
struct SnapshotJson<'a> {
    time: f64,
    xend_version: &'a str,
    node: &'a NodeInfo,
    domains: Vec<&'a RawValue>,
}

/// What the cache asks of a domain (the supervisor's [`Domain`]).
pub trait Source {
    /// The domain id (unique among the domains of one reply).
    fn id(&self) -> u32;
    /// The version of the domain's state now and, unless it is still
    /// `seen`, the stats made from it.
    fn stats_since(&self, seen: Option<u64>) -> (u64, Option<DomainStats>);
    /// The version of the domain's state and its console's fields now and,
    /// unless both are still `seen`, the full record made from them.
    fn record_since(
        &self,
        seen: Option<(u64, &ConsoleInfo)>,
    ) -> (u64, ConsoleInfo, Option<DomainRecord>);
}

impl Source for std::sync::Arc<Domain> {
    fn id(&self) -> u32 {
        self.id
    }

    fn stats_since(&self, seen: Option<u64>) -> (u64, Option<DomainStats>) {
        Domain::stats_since(self, seen)
    }

    fn record_since(
        &self,
        seen: Option<(u64, &ConsoleInfo)>,
    ) -> (u64, ConsoleInfo, Option<DomainRecord>) {
        Domain::record_since(self, seen)
    }
}

/// Keep `cache` warm for `sup`'s domains: after each sampler pass, render
/// what moved ([`BulkCache::prepare`]) off the request path, so a bulk
/// reply is a splice of kept texts. Runs until xend stops.
pub async fn keep_warm(
    cache: std::sync::Arc<BulkCache>,
    sup: std::sync::Arc<crate::supervisor::Supervisor>,
) {
    let mut passes = sup.passes();
    while passes.changed().await.is_ok() {
        let (cache, sup) = (cache.clone(), sup.clone());
        let done = tokio::task::spawn_blocking(move || cache.prepare(&sup.domains())).await;
        if let Ok(Err(e)) = done {
            tracing::warn!("bulk reply: cannot render JSON ahead: {e}");
        }
    }
}

/// A reply's body.
#[derive(Debug)]
enum Body {
    Json(Vec<u8>),
    Sxp(String),
}

/// The snapshot's fields besides the supervisor's domains.
#[derive(Debug)]
pub struct Head<'a> {
    /// When the reply is made (wall clock).
    pub time: f64,
    /// xend's version.
    pub xend_version: &'a str,
    /// The host.
    pub node: &'a NodeInfo,
    /// Domain-0 (rendered afresh each time).
    pub domain0: &'a DomainStats,
}

impl BulkCache {
    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bulk reply in `format` (JSON, else SXP): `head`, then
    /// `domains` (by id, as the supervisor lists them).
    pub fn reply(
        &self,
        format: Format,
        head: &Head<'_>,
        domains: &[impl Source],
    ) -> ApiResult<Response> {
        Ok(
            match self
                .body(format == Format::Json, head, domains)
                .map_err(|e| ApiError::internal(format!("cannot encode JSON: {e}")))?
            {
                Body::Json(body) => ([(CONTENT_TYPE, "application/json")], body).into_response(),
                Body::Sxp(body) => sxp_text(body),
            },
        )
    }

    /// Bring every kept entry up to date with `domains` (dropping those of
    /// domains gone) and render the formats asked for; the bytes the
    /// entries take in the `json` or SXP form, whichever `bytes_of_json`
    /// names.
    fn refresh(
        kept: &mut Kept,
        domains: &[impl Source],
        json: bool,
        sxp: bool,
        bytes_of_json: bool,
    ) -> Result<usize, serde_json::Error> {
        kept.replies += 1;
        let pass = kept.replies;
        let mut bytes = HEAD_BYTES;
        for dom in domains {
            let id = dom.id();
            let old = kept.entries.get(&id).map(|e| e.version);
            let (version, fresh) = dom.stats_since(old);
            if let Some(stats) = fresh {
                let entry = Entry {
                    version,
                    stats,
                    sxp: None,
                    json: None,
                    seen: pass,
                };
                kept.entries.insert(id, entry);
            }
            // Kept now: `stats_since` gives stats unless told this version.
            let Some(entry) = kept.entries.get_mut(&id) else {
                continue;
            };
            entry.seen = pass;
            if json && entry.json.is_none() {
                entry.json = Some(serde_json::value::to_raw_value(&entry.stats)?);
            }
            if sxp && entry.sxp.is_none() {
                entry.sxp = Some(crate::render::bulk_domain_text(&entry.stats).into());
            }
            bytes += 1 + if bytes_of_json {
                entry.json.as_ref().map_or(0, |t| t.get().len())
            } else {
                entry.sxp.as_ref().map_or(0, |t| t.len())
            };
        }
        // Domains gone since the last pass.
        kept.entries.retain(|_, e| e.seen == pass);
        Ok(bytes)
    }

    /// Render, ahead of the next reply, every entry that moved, in each
    /// format a client asked for within [`KEEP_WARM_FOR`] (none asked: no
    /// work). Called after each sampler pass ([`keep_warm`]): a pass moves
    /// every running domain, so without it the first reply after each pass
    /// (for a client polling every few seconds, every reply) would render
    /// them all.
    pub fn prepare(&self, domains: &[impl Source]) -> Result<(), serde_json::Error> {
        let mut kept = self.kept();
        let wanted =
            |asked: Option<std::time::Instant>| asked.is_some_and(|t| t.elapsed() < KEEP_WARM_FOR);
        let (json, sxp) = (wanted(kept.json_asked), wanted(kept.sxp_asked));
        if json || sxp {
            Self::refresh(&mut kept, domains, json, sxp, json)?;
        }
        if wanted(kept.records_asked) {
            Self::refresh_records(&mut kept, domains);
        }
        Ok(())
    }

    /// Bring every kept record up to date with `domains` (dropping those of
    /// domains gone); the bytes they take.
    fn refresh_records(kept: &mut Kept, domains: &[impl Source]) -> usize {
        kept.record_passes += 1;
        let pass = kept.record_passes;
        let mut bytes = HEAD_BYTES;
        for dom in domains {
            let id = dom.id();
            let old = kept.records.get(&id).map(|r| (r.version, &r.console));
            let (version, console, fresh) = dom.record_since(old);
            if let Some(record) = fresh {
                let sxp = crate::render::record_text(&record).into();
                let kept_record = KeptRecord {
                    version,
                    console,
                    sxp,
                    seen: pass,
                };
                kept.records.insert(id, kept_record);
            }
            if let Some(r) = kept.records.get_mut(&id) {
                r.seen = pass;
                bytes += 1 + r.sxp.len();
            }
        }
        kept.records.retain(|_, r| r.seen == pass);
        bytes
    }

    /// `GET /xend/domain?detail=1` in SXP: `(R0 R1 ...)` with `domain0`'s
    /// record (rendered afresh) and every domain's, each rendered once per
    /// change; the bytes of [`crate::render::records_text`].
    pub fn records_text(&self, domain0: &DomainRecord, domains: &[impl Source]) -> String {
        let mut kept = self.kept();
        kept.records_asked = Some(std::time::Instant::now());
        let bytes = Self::refresh_records(&mut kept, domains);
        let d0 = crate::render::record_text(domain0);
        let list = std::iter::once(d0.as_str()).chain(kept.records.values().map(|r| &*r.sxp));
        crate::render::records_text_spliced(list, bytes)
    }

    fn body(
        &self,
        json: bool,
        head: &Head<'_>,
        domains: &[impl Source],
    ) -> Result<Body, serde_json::Error> {
        let mut kept = self.kept();
        let now = Some(std::time::Instant::now());
        if json {
            kept.json_asked = now;
        } else {
            kept.sxp_asked = now;
        }
        let bytes = Self::refresh(&mut kept, domains, json, !json, json)?;
        if json {
            let d0 = serde_json::value::to_raw_value(head.domain0)?;
            let mut list: Vec<&RawValue> = Vec::with_capacity(kept.entries.len() + 1);
            list.push(&d0);
            list.extend(kept.entries.values().filter_map(|e| e.json.as_deref()));
            let mut body = Vec::with_capacity(bytes);
            serde_json::to_writer(
                &mut body,
                &SnapshotJson {
                    time: head.time,
                    xend_version: head.xend_version,
                    node: head.node,
                    domains: list,
                },
            )?;
            return Ok(Body::Json(body));
        }
        let d0 = crate::render::bulk_domain_text(head.domain0);
        let list = std::iter::once(d0.as_str())
            .chain(kept.entries.values().filter_map(|e| e.sxp.as_deref()));
        Ok(Body::Sxp(crate::render::snapshot_text_spliced(
            head.time,
            head.xend_version,
            head.node,
            list,
            bytes,
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::api::{NetStats, OpProgress, SampleTime, Snapshot, VbdStats, VcpuStats};

    /// A domain as the cache sees one: its stats at a version, and the
    /// versions it was asked about.
    struct Dom {
        version: Cell<u64>,
        stats: RefCell<DomainStats>,
        console: RefCell<ConsoleInfo>,
        asked: RefCell<Vec<Option<u64>>>,
        /// How many records were made.
        records_made: Cell<usize>,
    }

    impl Dom {
        fn new(stats: DomainStats) -> Dom {
            Dom {
                version: Cell::new(1),
                console: RefCell::new(ConsoleInfo {
                    status: "listening".into(),
                    id: stats.id,
                    domain: stats.id,
                    console_port: 9600 + stats.id as u16,
                    ..ConsoleInfo::default()
                }),
                stats: RefCell::new(stats),
                asked: RefCell::new(Vec::new()),
                records_made: Cell::new(0),
            }
        }

        fn change(&self, f: impl FnOnce(&mut DomainStats)) {
            f(&mut self.stats.borrow_mut());
            self.version.set(self.version.get() + 1);
        }

        fn record(&self) -> DomainRecord {
            let stats = self.stats.borrow().clone();
            DomainRecord {
                config: Some(
                    sxp::parse(&format!("(vm (name '{}') (memory 16))", stats.name)).unwrap(),
                ),
                restart: crate::api::RestartInfo {
                    state: None,
                    time: Some(1_764_000_001.5),
                },
                console: Some(self.console.borrow().clone()),
                stats,
            }
        }
    }

    impl Source for Dom {
        fn id(&self) -> u32 {
            self.stats.borrow().id
        }

        fn stats_since(&self, seen: Option<u64>) -> (u64, Option<DomainStats>) {
            self.asked.borrow_mut().push(seen);
            let v = self.version.get();
            (v, (seen != Some(v)).then(|| self.stats.borrow().clone()))
        }

        fn record_since(
            &self,
            seen: Option<(u64, &ConsoleInfo)>,
        ) -> (u64, ConsoleInfo, Option<DomainRecord>) {
            let (v, console) = (self.version.get(), self.console.borrow().clone());
            if seen == Some((v, &console)) {
                return (v, console, None);
            }
            self.records_made.set(self.records_made.get() + 1);
            (v, console, Some(self.record()))
        }
    }

    fn stats(id: u32, name: &str) -> DomainStats {
        let mut exits = BTreeMap::new();
        exits.insert("io".to_string(), 12);
        exits.insert("hypercall.block".to_string(), 3);
        DomainStats {
            id,
            name: name.into(),
            uuid: Some(format!("00000000-0000-4000-8000-{id:012}")),
            memory: 16,
            maxmem: 32,
            state: "-b----".into(),
            cpu: None,
            cpu_weight: Some(256),
            cpu_cap: Some(0),
            cpu_time: 1.0 / 3.0,
            up_time: 12.25,
            start_time: 1_764_000_000.123_456,
            vcpus: 2,
            vcpu_info: (0..2)
                .map(|i| VcpuStats {
                    id: i,
                    cpu_time: 0.1 * f64::from(i + 1),
                    state: "blocked".into(),
                    affinity: vec![0, 1],
                    cpu: Some(i as usize),
                })
                .collect(),
            kernel: "/srv/k/vmlinuz 6.1".into(),
            image: "bzImage".into(),
            mem_kib: 16384,
            maxmem_kib: 32768,
            console_port: Some(9600 + id as u16),
            restart: "onreboot".into(),
            console_bytes_out: 1234,
            exits: 15,
            exits_by_kind: exits,
            nets: vec![NetStats {
                idx: 0,
                vifname: format!("vif{id}.0"),
                mac: "aa:00:00:00:00:01".into(),
                bridge: "xenbr0".into(),
                rx_bytes: 99,
                ..NetStats::default()
            }],
            vbds: vec![VbdStats {
                idx: 0,
                dev: "xvda".into(),
                uname: "file:/srv/it's here.img".into(),
                mode: "w".into(),
                rd_req: 5,
                ..VbdStats::default()
            }],
            sampled_at: Some(SampleTime {
                mono: 5000.5,
                wall: 1_764_000_012.5,
            }),
            last_answer: Some(1_764_000_012.6),
            ..DomainStats::default()
        }
    }

    fn node() -> NodeInfo {
        NodeInfo {
            system: "Linux".into(),
            host: "dom0 host".into(),
            nr_cpus: 2,
            ..NodeInfo::default()
        }
    }

    fn domain0() -> DomainStats {
        DomainStats {
            name: "Domain-0".into(),
            state: "r-----".into(),
            cpu_time: 77.5,
            ..DomainStats::default()
        }
    }

    /// Both bodies through the cache, and as the whole snapshot renders.
    #[track_caller]
    fn check(cache: &BulkCache, doms: &[Dom]) {
        let node = node();
        let d0 = domain0();
        let head = Head {
            time: 1_764_000_013.25,
            xend_version: "0.1.0",
            node: &node,
            domain0: &d0,
        };
        let snap = Snapshot {
            time: head.time,
            xend_version: head.xend_version.into(),
            node: node.clone(),
            domains: std::iter::once(d0.clone())
                .chain(doms.iter().map(|d| d.stats.borrow().clone()))
                .collect(),
        };
        match cache.body(true, &head, doms).unwrap() {
            Body::Json(b) => assert_eq!(
                String::from_utf8(b).unwrap(),
                serde_json::to_string(&snap).unwrap()
            ),
            other => panic!("{other:?}"),
        }
        match cache.body(false, &head, doms).unwrap() {
            Body::Sxp(b) => assert_eq!(b, crate::render::snapshot_text(&snap)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kept_entries_give_the_bytes_of_a_whole_render() {
        let cache = BulkCache::default();
        check(&cache, &[]);
        let doms = [
            Dom::new(stats(1, "alpha")),
            Dom::new(stats(2, "web server")),
            Dom::new(stats(7, "it's")),
        ];
        doms[1].change(|d| {
            d.progress = Some(OpProgress {
                op: "save".into(),
                phase: "memory".into(),
                done_bytes: 1,
                total_bytes: 3,
                seconds: 0.5,
                ..OpProgress::default()
            });
            d.unresponsive_since = Some(1_764_000_013.0);
            d.shutdown_reason = Some("crash".into());
            d.crash_reason = Some("triple fault\n".into());
        });
        check(&cache, &doms);
        // Again from what is kept.
        check(&cache, &doms);
    }

    #[test]
    fn a_change_shows_in_the_next_reply_and_nothing_else_is_rendered_again() {
        let cache = BulkCache::default();
        let doms = [Dom::new(stats(1, "a")), Dom::new(stats(2, "b"))];
        check(&cache, &doms);
        let v1 = doms[0].version.get();
        assert_eq!(*doms[0].asked.borrow(), [None, Some(v1)]);
        doms[0].change(|d| d.state = "--p---".into());
        doms[1].change(|d| {
            d.cpu_time += 1.0;
            d.sampled_at = Some(SampleTime {
                mono: 5001.5,
                wall: 1_764_000_013.5,
            });
        });
        check(&cache, &doms);
        assert_eq!(doms[0].asked.borrow()[2], Some(v1));
        // Unchanged: asked with its version, given nothing to render.
        let v2 = doms[0].version.get();
        check(&cache, &doms);
        assert_eq!(doms[0].asked.borrow()[4..], [Some(v2), Some(v2)]);
    }

    #[test]
    fn gone_domains_leave_and_a_reused_id_is_rendered_anew() {
        let cache = BulkCache::default();
        let doms = [Dom::new(stats(1, "a")), Dom::new(stats(2, "b"))];
        check(&cache, &doms);
        check(&cache, &doms[1..]);
        assert_eq!(cache.kept().entries.len(), 1);
        // A new domain with id 2 whose version is not the old one's.
        let again = Dom::new(stats(2, "c"));
        again.version.set(100);
        check(&cache, &[again]);
    }

    #[test]
    fn prepare_renders_ahead_only_the_formats_clients_ask_for() {
        let cache = BulkCache::default();
        let doms = [Dom::new(stats(1, "a")), Dom::new(stats(2, "b"))];
        // Nobody asked yet: no work at all.
        cache.prepare(&doms).unwrap();
        assert!(doms[0].asked.borrow().is_empty());
        check(&cache, &doms);
        let asked = doms[0].asked.borrow().len();
        // A sample moves a domain; prepare renders it in both formats (both
        // were asked for), so the next replies find it kept.
        doms[0].change(|d| d.cpu_time += 2.0);
        cache.prepare(&doms).unwrap();
        let v = doms[0].version.get();
        assert_eq!(doms[0].asked.borrow()[asked], Some(v - 1));
        {
            let kept = cache.kept();
            let e = &kept.entries[&1];
            assert_eq!(e.version, v);
            assert!(e.json.is_some() && e.sxp.is_some());
        }
        check(&cache, &doms);
        assert_eq!(doms[0].asked.borrow()[asked + 1..], [Some(v), Some(v)]);
        // A format not asked for within KEEP_WARM_FOR is not rendered ahead.
        cache.kept().sxp_asked = None;
        doms[1].change(|d| d.cpu_time += 1.0);
        cache.prepare(&doms).unwrap();
        let kept = cache.kept();
        assert!(kept.entries[&2].json.is_some());
        assert!(kept.entries[&2].sxp.is_none());
    }

    /// The full records through the cache, as a whole render gives them.
    #[track_caller]
    fn check_records(cache: &BulkCache, doms: &[Dom]) {
        let d0 = DomainRecord {
            stats: domain0(),
            ..DomainRecord::default()
        };
        let all: Vec<DomainRecord> = std::iter::once(d0.clone())
            .chain(doms.iter().map(Dom::record))
            .collect();
        assert_eq!(
            cache.records_text(&d0, doms),
            crate::render::records_text(&all)
        );
    }

    #[test]
    fn kept_records_follow_the_state_and_the_console() {
        let cache = BulkCache::default();
        check_records(&cache, &[]);
        let doms = [Dom::new(stats(1, "a")), Dom::new(stats(2, "it's b"))];
        check_records(&cache, &doms);
        check_records(&cache, &doms);
        assert_eq!(doms[0].records_made.get(), 1, "kept, not made again");
        // A change of state, and a console client (not in the state).
        doms[0].change(|d| d.state = "--p---".into());
        {
            let mut console = doms[1].console.borrow_mut();
            console.status = "connected".into();
            console.connected = Some("127.0.0.1:40000".into());
        }
        check_records(&cache, &doms);
        assert_eq!(doms[0].records_made.get(), 2);
        assert_eq!(doms[1].records_made.get(), 2);
        // A domain gone leaves; prepare keeps the rest warm once asked.
        check_records(&cache, &doms[1..]);
        assert_eq!(cache.kept().records.len(), 1);
        doms[1].change(|d| d.cpu_time += 1.0);
        cache.prepare(&doms[1..]).unwrap();
        assert_eq!(doms[1].records_made.get(), 3);
        check_records(&cache, &doms[1..]);
        assert_eq!(doms[1].records_made.get(), 3, "rendered ahead by prepare");
    }

    #[test]
    fn prepare_makes_no_records_nobody_asked_for() {
        let cache = BulkCache::default();
        let doms = [Dom::new(stats(1, "a"))];
        check(&cache, &doms);
        doms[0].change(|d| d.cpu_time += 1.0);
        cache.prepare(&doms).unwrap();
        assert_eq!(doms[0].records_made.get(), 0);
        assert!(cache.kept().records.is_empty());
    }
}
