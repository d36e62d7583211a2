//! `/xend/domain` and `/xend/domain/DOM`: list, bulk stats, create, info,
//! stored config, and every domain action.
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::response::{Html, IntoResponse, Redirect, Response};
use hypervisor::control::proto::{Reason, Request};

use crate::api::{ConfigureReply, DomainRecord, DomainStats, Snapshot};
use crate::config::DomainConfig;
use crate::error::{ApiError, ApiResult};
use crate::negotiate::{Format, SXP_MIME, json, sxp, sxp_text, text};
use crate::params::Params;
use crate::state::AppState;
use crate::supervisor::Domain;

/// The version xend reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Ops of the seed that have their own issues and are not served yet.
const LATER: [&str; 1] = ["device_configure"];

/// Every domain's stats, Domain-0 first, then by id.
pub fn all_stats(state: &AppState) -> (crate::api::NodeInfo, Vec<DomainStats>) {
    let node = crate::hostinfo::node_info();
    let mut doms = vec![crate::hostinfo::domain0(&node)];
    doms.extend(state.sup.domains().iter().map(|d| d.stats()));
    (node, doms)
}

/// The bulk snapshot from the figures the sampler keeps (see
/// [`crate::supervisor::sampler`]); no VMM is asked here.
pub fn snapshot(state: &AppState) -> Snapshot {
    let (node, domains) = all_stats(state);
    Snapshot {
        time: crate::events::now(),
        xend_version: VERSION.to_string(),
        node,
        domains,
    }
}

/// `GET /xend/domain`: names (`detail=1`: every domain sxpr); `op=stats`: the
/// bulk snapshot.
pub async fn list(
    State(state): State<AppState>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    match params.op() {
        None => {}
        Some("stats") => {
            let snap = snapshot(&state);
            return Ok(match format {
                Format::Json => json(&snap),
                _ => sxp_text(crate::render::snapshot_text(&snap)),
            });
        }
        Some("list") => {}
        Some("new") if format == Format::Html => {
            return Ok(Html(crate::html::create_form(&state.csrf)).into_response());
        }
        Some(op) => return Err(ApiError::not_implemented(op)),
    }
    let detail = params
        .get("detail")
        .is_some_and(|d| d == "1" || d == "true");
    if format == Format::Html {
        let (node, doms) = all_stats(&state);
        return Ok(Html(crate::html::index(&state.csrf, &node, &doms)).into_response());
    }
    if detail {
        let node = crate::hostinfo::node_info();
        let mut records = vec![DomainRecord {
            stats: crate::hostinfo::domain0(&node),
            ..DomainRecord::default()
        }];
        records.extend(state.sup.domains().iter().map(|d| d.record()));
        return Ok(match format {
            Format::Json => json(&records.iter().map(|r| &r.stats).collect::<Vec<_>>()),
            _ => sxp_text(crate::render::records_text(&records)),
        });
    }
    let mut names = vec!["Domain-0".to_string()];
    names.extend(state.sup.domains().iter().map(|d| d.name.clone()));
    Ok(match format {
        Format::Json => json(&names),
        _ => sxp(&sxp::Value::list(names.into_iter().map(sxp::Value::Str))),
    })
}

fn parse_config(params: &Params) -> ApiResult<DomainConfig> {
    let text = match params.get("config_file").filter(|t| !t.trim().is_empty()) {
        Some(file) => file,
        None => params.required("config")?,
    };
    DomainConfig::parse(text, "config").map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `POST /xend/domain`: `op=create config=TEXT` (SXP or `key = value`),
/// `paused=0|1`.
///
/// Without `paused`, a client asking for SXP gets Xen 2.0's create: the
/// domain is built paused and the client unpauses it (2.0's `xm create` sends
/// `op=unpause` next; `xm create -p` does not). JSON and browser clients
/// without `paused` get a running domain; our own clients always say.
pub async fn create(
    State(state): State<AppState>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    match params.op() {
        None => return Err(ApiError::missing_op()),
        Some("create") => {}
        Some("restore") => return super::save::restore(&state, format, &params).await,
        Some("migrate_receive") => return super::migrate::receive(&state, format, &params).await,
        Some(op) => return Err(ApiError::not_implemented(op)),
    }
    let cfg = parse_config(&params)?;
    let paused = match params.get("paused") {
        Some(_) => super::save::flag(&params, "paused")?,
        None => format == Format::Sxp,
    };
    let dom = state.sup.create(cfg, paused).await?;
    let location = format!("{}/xend/domain/{}", state.settings.base_url(), dom.name);
    if format == Format::Html {
        return Ok(Redirect::to("/xend/").into_response());
    }
    let mut resp = render_domain(&state, &dom, format);
    *resp.status_mut() = StatusCode::CREATED;
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}

/// A domain in the representation asked for.
pub fn render_domain(state: &AppState, dom: &Domain, format: Format) -> Response {
    let record = dom.record();
    match format {
        Format::Json => json(&record.stats),
        Format::Html => {
            let config = dom.state().config.to_xm();
            Html(crate::html::domain(&state.csrf, &record, &config)).into_response()
        }
        Format::Sxp => sxp(&crate::render::record_sxp(&record)),
    }
}

fn lookup(state: &AppState, dom: &str) -> ApiResult<Arc<Domain>> {
    state
        .sup
        .lookup(dom)
        .ok_or_else(|| ApiError::no_domain(dom))
}

/// `GET /xend/domain/DOM`: the domain; `op=config [format=xm]`: its stored config.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    if name == "0" || name == "Domain-0" {
        return domain0(format, params);
    }
    let dom = lookup(&state, &name)?;
    match params.op() {
        None => {
            if dom.unresponsive() {
                // Answer at once from the cache, marked unresponsive; a
                // background refresh notices when the VMM answers again.
                state.sup.refresh_in_background(&dom);
            } else {
                // Bounded by `vmm-timeout`; a miss marks the domain.
                let _ = dom.refresh().await;
            }
            Ok(render_domain(&state, &dom, format))
        }
        Some("config") => {
            let cfg = dom.state().config.clone();
            Ok(match params.get("format") {
                Some("xm") => text(cfg.to_xm()),
                None | Some("sxp") => (
                    [(CONTENT_TYPE, SXP_MIME)],
                    format!("{}\n", sxp::pretty(&cfg.to_sxp())),
                )
                    .into_response(),
                Some(f) => {
                    return Err(ApiError::invalid(
                        "format",
                        format!("{f:?}: expected sxp or xm"),
                    ));
                }
            })
        }
        Some(op) if super::devices::GET_OPS.contains(&op) => {
            super::devices::get(&dom, format, &params, op).await
        }
        Some(op) if LATER.contains(&op) => Err(ApiError::not_implemented(op)),
        Some(op) => Err(ApiError::not_implemented(op)),
    }
}

fn domain0(format: Format, params: Params) -> ApiResult<Response> {
    if let Some(op) = params.op() {
        return Err(ApiError::not_implemented(op));
    }
    let node = crate::hostinfo::node_info();
    let d0 = crate::hostinfo::domain0(&node);
    Ok(match format {
        Format::Json => json(&d0),
        _ => sxp(&crate::render::domain_sxp(
            &d0,
            None,
            Default::default(),
            None,
        )),
    })
}

fn parse_reason(params: &Params, default: &str, allowed: &[&str]) -> ApiResult<Reason> {
    let raw = params.get("reason").unwrap_or(default);
    if !allowed.contains(&raw) {
        return Err(ApiError::invalid(
            "reason",
            format!("{raw:?}: expected {}", allowed.join(", ")),
        ));
    }
    Reason::parse(raw).ok_or_else(|| ApiError::invalid("reason", raw))
}

fn parse_cpus(raw: &str) -> ApiResult<Vec<usize>> {
    let nr = crate::hostinfo::node_info().nr_cpus as usize;
    let mut cpus = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let bad = || {
            ApiError::invalid(
                "cpumap",
                format!("{raw:?}: expected host CPU numbers like 0,1 or 0-3"),
            )
        };
        let a: usize = a.parse().map_err(|_| bad())?;
        let b: usize = b.parse().map_err(|_| bad())?;
        if a > b || b >= nr {
            return Err(ApiError::invalid(
                "cpumap",
                format!("{raw:?}: this host has CPUs 0-{}", nr.saturating_sub(1)),
            ));
        }
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

/// `POST /xend/domain/DOM`: the domain's actions.
pub async fn act(
    State(state): State<AppState>,
    Path(name): Path<String>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    let op = params.op().ok_or_else(ApiError::missing_op)?.to_string();
    if name == "0" || name == "Domain-0" {
        return Err(ApiError::bad_request(format!(
            "Domain-0 is the host; {op} does not apply to it"
        )));
    }
    let dom = lookup(&state, &name)?;
    if let Some(e) = super::sched::unsupported(&op) {
        return Err(e);
    }
    tracing::info!("domain {} (id {}): {op} requested", dom.name, dom.id);
    let back = format!("/xend/domain/{}", dom.name);
    let sup = &state.sup;
    match op.as_str() {
        "save" => return super::save::save(&state, &dom, format, &params).await,
        "migrate" => return super::migrate::migrate(&state, &dom, format, &params).await,
        "migrate_finish" | "migrate_abort" => {
            return super::migrate::finish_or_abort(&state, &dom, format, &op).await;
        }
        "device_create" => return super::devices::create(&state, &dom, format, &params).await,
        "device_destroy" => return super::devices::destroy(&state, &dom, format, &params).await,
        "pause" => sup.simple(&dom, Request::Pause).await?,
        "unpause" => sup.simple(&dom, Request::Unpause).await?,
        "shutdown" => {
            let reason = parse_reason(&params, "poweroff", &["poweroff", "reboot", "halt"])?;
            sup.shutdown(&dom, reason).await?;
            return Ok(super::done(format, StatusCode::ACCEPTED, &back));
        }
        "destroy" => {
            let reason = parse_reason(&params, "halt", &["halt", "reboot"])?;
            sup.destroy(&dom, reason == Reason::Reboot).await?;
            let back = if reason == Reason::Reboot {
                back.as_str()
            } else {
                "/xend/"
            };
            return Ok(super::done(format, StatusCode::OK, back));
        }
        "pincpu" => {
            let vcpus = dom.state().config.vcpus.max(1);
            let (which, cpus) = match (params.get("cpumap"), params.get("cpu")) {
                (Some(map), _) => (None, parse_cpus(map)?),
                (None, Some(cpu)) => (None, parse_cpus(cpu)?),
                (None, None) => return Err(ApiError::missing("cpumap")),
            };
            let which = match params.get("vcpu") {
                Some(_) => {
                    let v: u32 = params.parse("vcpu")?;
                    if v >= vcpus {
                        return Err(ApiError::invalid(
                            "vcpu",
                            format!("{v}: domain {} has {vcpus} vCPUs", dom.name),
                        ));
                    }
                    Some(v)
                }
                None => which,
            };
            for vcpu in which.map(|v| v..v + 1).unwrap_or(0..vcpus) {
                sup.simple(
                    &dom,
                    Request::PinVcpu {
                        vcpu,
                        cpus: cpus.clone(),
                    },
                )
                .await?;
            }
        }
        "maxmem_set" => {
            let mib: u64 = params.parse("memory")?;
            check_mib("memory", mib)?;
            sup.simple(&dom, Request::SetMaxMem { mib }).await?;
        }
        "mem_target_set" => {
            let mib: u64 = params.parse("target")?;
            check_mib("target", mib)?;
            sup.set_memory(&dom, mib).await?;
        }
        "configure" => {
            let cfg = parse_config(&params)?;
            let (live, next_boot) = sup.configure(&dom, cfg).await?;
            let reply = ConfigureReply { live, next_boot };
            return Ok(match format {
                Format::Json => json(&reply),
                Format::Html => Redirect::to(&back).into_response(),
                Format::Sxp => {
                    let mut l = vec![sxp::Value::str("live")];
                    l.extend(reply.live.iter().map(sxp::Value::from));
                    let mut n = vec![sxp::Value::str("next_boot")];
                    n.extend(reply.next_boot.iter().map(sxp::Value::from));
                    sxp(&sxp::Value::list([
                        sxp::Value::str("configure"),
                        sxp::Value::List(l),
                        sxp::Value::List(n),
                    ]))
                }
            });
        }
        op => return Err(ApiError::not_implemented(op)),
    }
    Ok(super::done(format, StatusCode::OK, &back))
}

fn check_mib(param: &str, mib: u64) -> ApiResult<()> {
    if !(crate::config::MIN_MEMORY_MIB..=crate::config::MAX_MEMORY_MIB).contains(&mib) {
        return Err(ApiError::invalid(
            param,
            format!(
                "{mib} MiB: expected {}..{} MiB",
                crate::config::MIN_MEMORY_MIB,
                crate::config::MAX_MEMORY_MIB
            ),
        ));
    }
    Ok(())
}
