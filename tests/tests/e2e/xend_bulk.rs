//! The bulk reply (`GET /xend/domain?op=stats`) keeps each domain's
//! rendered entry until the domain's state changes: every change (a new
//! sample, a pause, a memory setting) shows in the very next reply in SXP
//! and in JSON, and replies with nothing changed between them carry the
//! same bytes. The sampler is slowed to once an hour here so that nothing
//! but the test's own requests changes a domain (the first pass runs at
//! start, before any domain exists); `GET /xend/domain/DOM` takes a fresh
//! sample of one domain.
use e2e::{Accept, STATE, Xend, XendOptions, wait_until};
use xend::api::{DomainStats, Snapshot};

fn start() -> Xend {
    Xend::start_with(XendOptions {
        extra_config: "(xend-sample-interval 3600)".into(),
        ..XendOptions::default()
    })
}

/// The bulk reply in SXP: its text and parsed form.
fn bulk_sxp(xend: &Xend) -> (String, sxp::Value) {
    let body = xend
        .request("GET", "/xend/domain", Accept::Sxp, &[("op", "stats")])
        .ok()
        .body;
    let v = sxp::parse(&body).unwrap_or_else(|e| panic!("not SXP ({e}): {body}"));
    (body, v)
}

/// The bulk reply in JSON: its text and parsed form.
fn bulk_json(xend: &Xend) -> (String, Snapshot) {
    let body = xend
        .request("GET", "/xend/domain", Accept::Json, &[("op", "stats")])
        .ok()
        .body;
    let snap = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (body, snap)
}

/// Domain `id`'s entry in an SXP snapshot.
#[track_caller]
fn sxp_entry(snap: &sxp::Value, id: u32) -> sxp::Value {
    let id = id.to_string();
    snap.child("domains")
        .expect("(domains ...)")
        .rest()
        .iter()
        .find(|d| d.child_value("id") == Some(id.as_str()))
        .unwrap_or_else(|| panic!("no domain {id} in {snap}"))
        .clone()
}

/// Domain `id`'s entry in a JSON snapshot.
#[track_caller]
fn json_entry(snap: &Snapshot, id: u32) -> DomainStats {
    snap.domains
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no domain {id} in {snap:?}"))
        .clone()
}

/// Wait until the guests `ids` sit idle at their prompts (blocked): a VMM
/// tells xend when its guest blocks or runs apart from samples, so until
/// then a domain's entry may change on its own.
fn settle(xend: &Xend, ids: &[u32]) {
    wait_until(STATE, "the domains blocked at their prompts", || {
        let (_, snap) = bulk_json(xend);
        ids.iter()
            .all(|&id| json_entry(&snap, id).state.starts_with("-b"))
            .then_some(())
    });
}

/// The reply's text from the first domain after Domain-0 to its end (what
/// a reply keeps; the head has the reply's time and the host's figures).
#[track_caller]
fn domains_text<'a>(body: &'a str, first: &str) -> &'a str {
    let at = body
        .find(first)
        .unwrap_or_else(|| panic!("no {first:?} in {body}"));
    &body[at..]
}

/// Every field of the bulk entry `entry` as the domain's full record
/// `record` has it (the record adds console, restart state and config).
#[track_caller]
fn same_fields(entry: &sxp::Value, record: &sxp::Value) {
    for field in entry.rest() {
        let head = field.head().expect("(key ...)");
        assert_eq!(
            record.child(head),
            Some(field),
            "{head}: bulk {entry}\nrecord {record}"
        );
    }
}

#[test]
fn a_change_shows_in_the_next_bulk_reply_in_both_formats() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = start();
    let (a, _con_a) = xend.create_booted("a");
    let (b, _con_b) = xend.create_booted("b");
    let (a, b) = (a.id, b.id);
    settle(&xend, &[a, b]);
    let (_, s0) = bulk_sxp(&xend);
    let (_, j0) = bulk_json(&xend);

    // A new sample of `a` (its VMM's figures and stamp move): in the next
    // SXP reply field for field; then another, in the next JSON reply.
    let record = sxp::parse(&xend.get("/xend/domain/a").ok().body).unwrap();
    assert_ne!(
        record.child("sampled_at"),
        sxp_entry(&s0, a).child("sampled_at"),
        "a GET takes a new sample"
    );
    let (_, s1) = bulk_sxp(&xend);
    same_fields(&sxp_entry(&s1, a), &record);
    let fresh = xend.domain("a");
    assert_ne!(fresh.sampled_at, json_entry(&j0, a).sampled_at);
    let (_, j1) = bulk_json(&xend);
    assert_eq!(json_entry(&j1, a), fresh);
    // `b` did not change: the same entry as before.
    assert_eq!(sxp_entry(&s1, b), sxp_entry(&s0, b));
    assert_eq!(json_entry(&j1, b), json_entry(&j0, b));

    // Pause: SXP first, then JSON; unpause: JSON first, then SXP.
    xend.act("a", "pause", &[]).ok();
    assert_eq!(
        sxp_entry(&bulk_sxp(&xend).1, a).child_value("state"),
        Some("--p--")
    );
    assert_eq!(json_entry(&bulk_json(&xend).1, a).state, "--p---");
    xend.act("a", "unpause", &[]).ok();
    let state = json_entry(&bulk_json(&xend).1, a).state;
    assert!(!state.contains('p'), "{state}");
    let state = sxp_entry(&bulk_sxp(&xend).1, a)
        .child_value("state")
        .map(str::to_string);
    assert!(
        state.as_deref().is_some_and(|s| !s.contains('p')),
        "{state:?}"
    );

    // Memory: the maximum and the target, each seen at once in both.
    xend.act("b", "maxmem_set", &[("memory", "24")]).ok();
    assert_eq!(json_entry(&bulk_json(&xend).1, b).maxmem, 24);
    assert_eq!(
        sxp_entry(&bulk_sxp(&xend).1, b).child_value("maxmem"),
        Some("24")
    );
    xend.act("b", "mem_target_set", &[("target", "12")]).ok();
    assert_eq!(
        sxp_entry(&bulk_sxp(&xend).1, b).child_value("memory"),
        Some("12")
    );
    assert_eq!(json_entry(&bulk_json(&xend).1, b).memory, 12);

    // A config-only change (no VMM asked): the credit weight, in JSON.
    xend.act("b", "sched_credit", &[("weight", "512")]).ok();
    assert_eq!(json_entry(&bulk_json(&xend).1, b).cpu_weight, Some(512));

    // Destroyed: gone from the next reply of each format.
    xend.act("a", "destroy", &[]).ok();
    xend.wait_gone("a");
    let ids: Vec<u32> = bulk_json(&xend).1.domains.iter().map(|d| d.id).collect();
    assert_eq!(ids, [0, b]);
    let (_, s) = bulk_sxp(&xend);
    assert_eq!(s.child("domains").unwrap().rest().len(), 2, "{s}");
}

#[test]
fn replies_with_no_change_between_them_are_the_same_bytes() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = start();
    let (a, _con_a) = xend.create_booted("a");
    let (b, _con_b) = xend.create_booted("b");
    settle(&xend, &[a.id, b.id]);
    let sxp_first = format!("(domain (id {})", a.id);
    let json_first = format!("{{\"id\":{},\"name\":", a.id);
    let (s1, _) = bulk_sxp(&xend);
    let (j1, _) = bulk_json(&xend);
    let (s2, _) = bulk_sxp(&xend);
    let (j2, _) = bulk_json(&xend);
    assert_eq!(domains_text(&s1, &sxp_first), domains_text(&s2, &sxp_first));
    assert_eq!(
        domains_text(&j1, &json_first),
        domains_text(&j2, &json_first)
    );
    // And the bytes follow a change: a fresh sample of `a` alone.
    xend.domain("a");
    let (s3, _) = bulk_sxp(&xend);
    let (j3, _) = bulk_json(&xend);
    assert_ne!(domains_text(&s3, &sxp_first), domains_text(&s2, &sxp_first));
    assert_ne!(
        domains_text(&j3, &json_first),
        domains_text(&j2, &json_first)
    );
    // `b`'s entry, the last, is untouched.
    let sxp_b = format!("(domain (id {})", b.id);
    let json_b = format!("{{\"id\":{},\"name\":", b.id);
    assert_eq!(domains_text(&s3, &sxp_b), domains_text(&s2, &sxp_b));
    assert_eq!(domains_text(&j3, &json_b), domains_text(&j2, &json_b));
}
