//! Every route of the API in one place.
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::Redirect;
use axum::routing::get;

use crate::handlers::{console, domain, event, metrics, node, root, vnet};
use crate::state::AppState;

/// The application: routes, body cap, token check, error rendering, tracing.
/// Every request's path is normalized first ([`trim_trailing_slash`]), so
/// `/xend/domain/` is `/xend/domain` for every route at once.
pub fn app(state: AppState) -> Router {
    let routes = routes(state);
    Router::new().fallback_service(tower::ServiceExt::map_request(routes, trim_trailing_slash))
}

/// Xen 2.0's client names collections with a trailing `/` (`GET
/// /xend/domain/?detail=1`, `/xend/node/`), and its xend ignored empty path
/// segments: drop trailing slashes, except on `/` and the root `/xend/`.
fn trim_trailing_slash(mut req: axum::extract::Request) -> axum::extract::Request {
    let path = req.uri().path();
    let trimmed = path.trim_end_matches('/');
    if trimmed.len() == path.len() || trimmed.is_empty() || trimmed == "/xend" {
        return req;
    }
    let pq = match req.uri().query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    match pq.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return req,
    }
    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req
}

fn routes(state: AppState) -> Router {
    let limit = state.settings.max_request_bytes;
    Router::new()
        .route("/", get(|| async { Redirect::to("/xend/") }))
        .route("/xend", get(|| async { Redirect::to("/xend/") }))
        .route("/xend/", get(root::index))
        .route("/xend/node", get(node::info).post(node::op))
        .route("/xend/node/dmesg", get(node::dmesg).post(node::dmesg_op))
        .route("/xend/node/log", get(node::log))
        .route("/xend/domain", get(domain::list).post(domain::create))
        .route("/xend/domain/{dom}", get(domain::get).post(domain::act))
        .route("/xend/console", get(console::list))
        .route(
            "/xend/console/{port}",
            get(console::get).post(console::post),
        )
        .route("/xend/event", get(event::get).post(event::post))
        .route("/xend/vnet", get(vnet::list).post(vnet::create))
        .route("/xend/vnet/{id}", get(vnet::get).post(vnet::act))
        .route("/metrics", get(metrics::get))
        .fallback(|| async { crate::error::ApiError::not_found("no such resource") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::guard,
        ))
        .layer(middleware::from_fn(crate::negotiate::render_errors))
        .layer(middleware::from_fn(trace))
        .with_state(state)
}

/// Log every request with its status and duration, and count it for
/// `/metrics` by its route's pattern (never its path: that is the client's).
async fn trace(req: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    let method = req.method().clone();
    let uri = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string());
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let took: Duration = start.elapsed();
    let status = resp.status().as_u16();
    crate::metrics::observe_request(route.as_deref(), method.as_str(), status, took);
    tracing::debug!(%method, uri, status, ?took, "request");
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::app;
    use crate::events::EventBus;
    use crate::settings::Settings;
    use crate::state::AppState;
    use crate::supervisor::Supervisor;

    fn state(dir: &std::path::Path, token: Option<&str>) -> AppState {
        let settings = Arc::new(Settings {
            config_path: None,
            port: 0,
            address: "127.0.0.1".into(),
            event_port: 0,
            event_address: "127.0.0.1".into(),
            console_base: 0,
            console_address: "127.0.0.1".into(),
            logfile: dir.join("xend.log"),
            loglevel: "INFO".into(),
            log_max_bytes: 0,
            log_keep: 1,
            dbroot: dir.join("db"),
            state_dir: dir.join("state"),
            save_dir: dir.join("state/save"),
            confinement: Default::default(),
            file_modes: Default::default(),
            vmm_path: "vmm".into(),
            token: token.map(|t| Arc::new(t.to_string())),
            token_file: dir.join("token"),
            tcp_auth: if token.is_some() {
                crate::config::TcpAuth::Token
            } else {
                crate::config::TcpAuth::None
            },
            unix_path: dir.join("state/xend.sock"),
            admin_gid: None,
            tls: None,
            tls_server: None,
            server_names: vec!["xend.example".into()],
            event_inject_tcp: false,
            max_connections: 16,
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            min_restart_time: 20.0,
            max_request_bytes: 1024,
            vmm_timeout: std::time::Duration::from_secs(2),
            vmm_jail: None,
            sample_interval: std::time::Duration::from_secs(1),
            vif_bridge: "xenbr0".into(),
            cgroup_parent: None,
            config_warnings: Vec::new(),
        });
        let events = EventBus::new();
        let db = crate::db::Db::open(&settings.dbroot).unwrap();
        let (_, stopping) = tokio::sync::watch::channel(false);
        AppState {
            sup: Supervisor::new(settings.clone(), db, events.clone()),
            settings,
            events,
            csrf: "c5rf".into(),
            stopping,
            bulk: Default::default(),
        }
    }

    /// `(status, content type, body)` of one request.
    async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, String, String) {
        let resp = app(state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }

    fn get(uri: &str, accept: Option<&str>) -> Request<Body> {
        let mut b = Request::get(uri);
        if let Some(a) = accept {
            b = b.header("accept", a).header("user-agent", "test");
        }
        b.body(Body::empty()).unwrap()
    }

    fn post(uri: &str, form: &str) -> Request<Body> {
        Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap()
    }

    #[tokio::test]
    async fn representations_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), None);
        #[track_caller]
        fn check(got: (StatusCode, String, String), status: u16, ctype: &str, body: &str) {
            assert_eq!(got.0.as_u16(), status, "{got:?}");
            assert!(got.1.starts_with(ctype), "{got:?}");
            assert_eq!(got.2, body);
        }
        check(
            call(&s, get("/xend/", None)).await,
            200,
            "application/sxp",
            "(ls node domain console event vnet)",
        );
        check(
            call(&s, get("/xend/", Some("application/json"))).await,
            200,
            "application/json",
            r#"["node","domain","console","event","vnet"]"#,
        );
        check(
            call(&s, get("/xend/domain", None)).await,
            200,
            "application/sxp",
            "(Domain-0)",
        );
        check(
            call(&s, get("/xend/console", None)).await,
            200,
            "application/sxp",
            "()",
        );
        check(
            call(&s, get("/xend/domain/x", None)).await,
            404,
            "application/sxp",
            "(xend.err 'invalid domain:x')",
        );
        check(
            call(&s, get("/xend/domain/x", Some("application/json"))).await,
            404,
            "application/json",
            r#"{"error":"invalid domain:x"}"#,
        );
        check(
            call(&s, post("/xend/domain", "")).await,
            406,
            "application/sxp",
            "(xend.err 'Missing parameter: op')",
        );
        check(
            call(&s, post("/xend/domain", "op=explode")).await,
            501,
            "application/sxp",
            "(xend.err 'Operation not implemented: explode')",
        );
        check(
            call(
                &s,
                post(
                    "/xend/domain",
                    &format!("op=create&config={}", "x".repeat(2000)),
                ),
            )
            .await,
            413,
            "application/sxp",
            "(xend.err 'Request body too large: the limit is 1024 bytes (max-request-bytes)')",
        );
        check(
            call(&s, get("/nowhere", None)).await,
            404,
            "application/sxp",
            "(xend.err 'no such resource')",
        );
        // Browsers get pages, errors included.
        let (status, ctype, body) = call(&s, get("/xend/", Some("text/html"))).await;
        assert_eq!(
            (status.as_u16(), ctype.as_str()),
            (200, "text/html; charset=utf-8")
        );
        assert!(
            body.contains("id=\"domains\"") && body.contains("Domain-0"),
            "{body}"
        );
        let (_, _, body) = call(&s, get("/xend/domain?op=new", Some("text/html"))).await;
        assert!(
            body.contains("id=\"create\"") && body.contains("enctype=\"multipart/form-data\""),
            "{body}"
        );
        let (status, _, body) = call(&s, get("/xend/domain/x", Some("text/html"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body.contains("<p class=\"err\" id=\"error\">invalid domain:x</p>"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_trailing_slash_names_the_same_resource() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), None);
        for (with, without) in [
            ("/xend/node/", "/xend/node"),
            ("/xend/domain/", "/xend/domain"),
            ("/xend/domain/?detail=1", "/xend/domain?detail=1"),
            ("/xend/domain//", "/xend/domain"),
            ("/xend/console/", "/xend/console"),
            ("/xend/vnet/", "/xend/vnet"),
            ("/xend/domain/Domain-0/", "/xend/domain/Domain-0"),
        ] {
            let a = call(&s, get(with, None)).await;
            let b = call(&s, get(without, None)).await;
            assert_eq!(a.0, StatusCode::OK, "{with}: {a:?}");
            // Figures (free memory, CPU time) move between two calls: the
            // same resource is the same kind of answer.
            let head = |body: &str| body.split(' ').take(2).collect::<Vec<_>>().join(" ");
            assert_eq!((a.0, head(&a.2)), (b.0, head(&b.2)), "{with}");
        }
        // POST too; the root keeps its slash (`/xend` redirects to it).
        let (status, _, body) = call(&s, post("/xend/domain/", "op=explode")).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
        assert_eq!(call(&s, get("/xend/", None)).await.0, StatusCode::OK);
        assert_eq!(call(&s, get("/xend", None)).await.0, StatusCode::SEE_OTHER);
    }

    #[tokio::test]
    async fn the_token_guards_every_route() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), Some("tok"));
        let (status, _, body) = call(&s, get("/xend/node", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            body.starts_with("(xend.err 'Authentication required"),
            "{body}"
        );
        let req = Request::get("/xend/")
            .header("authorization", "Bearer tok")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&s, req).await.0, StatusCode::OK);
        let req = Request::get("/xend/")
            .header("authorization", "Bearer tok2")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&s, req).await.0, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn metrics_behind_the_token_in_the_text_format() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), Some("tok"));
        let (status, _, _) = call(&s, get("/metrics", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let req = Request::get("/metrics")
            .header("authorization", "Bearer tok")
            .body(Body::empty())
            .unwrap();
        let (status, ctype, body) = call(&s, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(ctype, crate::metrics::CONTENT_TYPE_TEXT);
        assert!(body.contains("xend_domains 0\n"), "{body}");
        assert!(
            body.contains(
                "xend_domain_state{domain=\"Domain-0\",domid=\"0\",uuid=\"\",state=\"running\"} 1"
            ),
            "{body}"
        );
        // The request just answered is counted by its route.
        let req = Request::get("/metrics")
            .header("authorization", "Bearer tok")
            .header("accept", "application/openmetrics-text; version=1.0.0")
            .body(Body::empty())
            .unwrap();
        let (status, ctype, body) = call(&s, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(ctype, crate::metrics::CONTENT_TYPE_OPENMETRICS);
        assert!(
            body.contains(
                "xend_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"}"
            ),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    fn with_peer(mut req: Request<Body>, peer: crate::listen::Peer) -> Request<Body> {
        req.extensions_mut().insert(peer);
        req
    }

    fn tcp() -> crate::listen::Peer {
        crate::listen::Peer::Tcp {
            addr: "127.0.0.1:40000".parse().unwrap(),
            tls: false,
        }
    }

    #[tokio::test]
    async fn the_local_socket_needs_no_token_but_the_right_user() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), Some("tok"));
        let me = nix::unistd::geteuid().as_raw();
        let local = |uid| crate::listen::Peer::Local {
            uid,
            gid: 65534,
            pid: None,
        };
        let (status, _, _) = call(&s, with_peer(get("/xend/node", None), local(me))).await;
        assert_eq!(status, StatusCode::OK);
        // Another user (not root, not xend's, no admin group) is refused.
        let (status, _, body) = call(&s, with_peer(get("/xend/node", None), local(4242))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        // TCP without the token is not.
        let (status, _, _) = call(&s, with_peer(get("/xend/node", None), tcp())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn hosts_that_do_not_name_xend_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), None);
        for (host, want) in [
            ("127.0.0.1:8000", 200),
            ("[::1]:8000", 200),
            ("localhost:8000", 200),
            ("XEND.example:8000", 200),
            ("evil.example:8000", 403),
            ("127.0.0.1.evil.example", 403),
        ] {
            let req = Request::get("/xend/node")
                .header("host", host)
                .body(Body::empty())
                .unwrap();
            let (status, _, body) = call(&s, req).await;
            assert_eq!(status.as_u16(), want, "{host}: {body}");
        }
    }

    #[tokio::test]
    async fn browser_writes_need_the_same_origin_and_the_csrf_token() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), None);
        let form = |uri: &str, origin: Option<&str>| {
            let mut b = Request::post(uri)
                .header("host", "127.0.0.1:8000")
                .header("content-type", "application/x-www-form-urlencoded");
            if let Some(o) = origin {
                b = b.header("origin", o);
            }
            b.body(Body::from("op=explode")).unwrap()
        };
        // A cross-site form (even with the right token), a same-origin form
        // without it: refused before any handler runs.
        for req in [
            form("/xend/domain?csrf=c5rf", Some("http://evil.example")),
            form("/xend/domain", Some("http://127.0.0.1:8000")),
            form("/xend/domain?csrf=wrong", Some("http://127.0.0.1:8000")),
        ] {
            let (status, _, body) = call(&s, req).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        }
        // Same origin with the page's token reaches the handler (which knows
        // no such op); so does a program (no browser headers).
        let (status, _, _) = call(
            &s,
            form("/xend/domain?csrf=c5rf", Some("http://127.0.0.1:8000")),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        let (status, _, _) = call(&s, form("/xend/domain", None)).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        // Fetch metadata saying cross-site is refused too.
        let mut req = form("/xend/domain?csrf=c5rf", None);
        req.headers_mut()
            .insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert_eq!(call(&s, req).await.0, StatusCode::FORBIDDEN);
        // xend's pages carry the token in their forms.
        let (_, _, body) = call(&s, get("/xend/domain?op=new", Some("text/html"))).await;
        assert!(body.contains("action=\"/xend/domain?csrf=c5rf\""), "{body}");
    }

    #[tokio::test]
    async fn events_under_xend_names_or_from_tcp_cannot_be_injected() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), None);
        let me = nix::unistd::geteuid().as_raw();
        let local = crate::listen::Peer::Local {
            uid: me,
            gid: 0,
            pid: None,
        };
        let inject = |event: &str| post("/xend/event", &format!("op=inject&event={event}"));
        let (status, _, body) = call(&s, with_peer(inject("(event x.y)"), tcp())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _, body) = call(
            &s,
            with_peer(
                inject("(event xend.domain.destroy (domid 1))"),
                local.clone(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("xend.* come from xend only"), "{body}");
        let mut rx = s.events.subscribe();
        let (status, _, _) = call(
            &s,
            with_peer(inject("(event site.backup (domid 1))"), local),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(rx.try_recv().unwrap().event, "site.backup");
    }
}
