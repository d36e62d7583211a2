//! `/xend/domain` and `/xend/domain/DOM`: list, bulk stats, create, info,
//! stored config, and every domain action.
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::response::{Html, IntoResponse, Redirect, Response};
use hypervisor::control::proto::{Reason, Request};

use super::domain_op::DomainOp;
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
            // `snapshot()`'s bytes, from each domain's kept entry.
            let node = crate::hostinfo::node_info();
            let head = crate::bulk::Head {
                time: crate::events::now(),
                xend_version: VERSION,
                node: &node,
                domain0: &crate::hostinfo::domain0(&node),
            };
            return state.bulk.reply(format, &head, &state.sup.domains());
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
        let domain0 = DomainRecord {
            stats: crate::hostinfo::domain0(&node),
            ..DomainRecord::default()
        };
        let domains = state.sup.domains();
        return Ok(match format {
            Format::Json => {
                let mut all = vec![domain0.stats];
                all.extend(domains.iter().map(|d| d.record().stats));
                json(&all)
            }
            // Kept per domain: `xm list -l` asks this over every domain.
            _ => sxp_text(state.bulk.records_text(&domain0, &domains)),
        });
    }
    let mut names = vec!["Domain-0".to_string()];
    names.extend(state.sup.domains().iter().map(|d| d.name.clone()));
    Ok(match format {
        Format::Json => json(&names),
        _ => sxp(&sxp::Value::list(names.into_iter().map(sxp::Value::Str))),
    })
}

/// The `config` (or uploaded `config_file`) parameter as a domain config.
pub(super) fn parse_config(params: &Params) -> ApiResult<DomainConfig> {
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
        Some("sched_credit" | "domain_sched_credit_get") => Ok(super::sched::render(
            state.sup.sched_credit(&dom),
            format,
            &format!("/xend/domain/{}", dom.name),
        )),
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

/// `POST /xend/domain/DOM`: the domain's actions (see [`DomainOp`]).
pub async fn act(
    State(state): State<AppState>,
    Path(name): Path<String>,
    format: Format,
    params: Params,
) -> ApiResult<Response> {
    let op_name = params.op().ok_or_else(ApiError::missing_op)?.to_string();
    if name == "0" || name == "Domain-0" {
        return Err(ApiError::bad_request(format!(
            "Domain-0 is the host; {op_name} does not apply to it"
        )));
    }
    let dom = lookup(&state, &name)?;
    let vcpus = dom.state().config.vcpus.max(1);
    let op = DomainOp::parse(&op_name, &params, &dom.name, vcpus)?;
    tracing::info!("domain {} (id {}): {op_name} requested", dom.name, dom.id);
    let back = format!("/xend/domain/{}", dom.name);
    let sup = &state.sup;
    match op {
        DomainOp::Save => return super::save::save(&state, &dom, format, &params).await,
        DomainOp::Migrate => return super::migrate::migrate(&state, &dom, format, &params).await,
        DomainOp::MigrateFinish | DomainOp::MigrateAbort => {
            return super::migrate::finish_or_abort(&state, &dom, format, &op_name).await;
        }
        DomainOp::DeviceCreate => {
            return super::devices::create(&state, &dom, format, &params).await;
        }
        DomainOp::DeviceDestroy => {
            return super::devices::destroy(&state, &dom, format, &params).await;
        }
        DomainOp::Pause => sup.simple(&dom, Request::Pause).await?,
        DomainOp::Unpause => sup.simple(&dom, Request::Unpause).await?,
        DomainOp::Shutdown(reason) => {
            sup.shutdown(&dom, reason).await?;
            return Ok(super::done(format, StatusCode::ACCEPTED, &back));
        }
        DomainOp::Destroy(reason) => {
            sup.destroy(&dom, reason == Reason::Reboot).await?;
            let back = if reason == Reason::Reboot {
                back.as_str()
            } else {
                "/xend/"
            };
            return Ok(super::done(format, StatusCode::OK, back));
        }
        DomainOp::PinCpu { vcpu, cpus } => {
            for vcpu in vcpu.map(|v| v..v + 1).unwrap_or(0..vcpus) {
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
        DomainOp::MaxMem(mib) => sup.set_max_memory(&dom, mib).await?,
        DomainOp::SchedCredit(set) => {
            let s = match set {
                super::sched::SchedSet {
                    weight: None,
                    cap: None,
                } => sup.sched_credit(&dom),
                _ => sup.set_sched_credit(&dom, set.weight, set.cap).await?,
            };
            return Ok(super::sched::render(s, format, &back));
        }
        DomainOp::MemTarget(mib) => sup.set_memory(&dom, mib).await?,
        DomainOp::Configure(cfg) => {
            let (live, next_boot) = sup.configure(&dom, *cfg).await?;
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
    }
    Ok(super::done(format, StatusCode::OK, &back))
}
