//! Every route of the API in one place.
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::Redirect;
use axum::routing::get;

use crate::handlers::{console, domain, event, node, root, vnet};
use crate::state::AppState;

/// The application: routes, body cap, token check, error rendering, tracing.
pub fn app(state: AppState) -> Router {
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
        .fallback(|| async { crate::error::ApiError::not_found("no such resource") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .layer(middleware::from_fn(crate::negotiate::render_errors))
        .layer(middleware::from_fn(trace))
        .with_state(state)
}

/// Log every request with its status and duration.
async fn trace(req: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    let method = req.method().clone();
    let uri = req.uri().path().to_string();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let took: Duration = start.elapsed();
    tracing::debug!(%method, uri, status = resp.status().as_u16(), ?took, "request");
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
            file_modes: Default::default(),
            vmm_path: "vmm".into(),
            token: token.map(|t| Arc::new(t.to_string())),
            min_restart_time: 20.0,
            max_request_bytes: 1024,
            vif_bridge: "xenbr0".into(),
        });
        let events = EventBus::new();
        let db = crate::db::Db::open(&settings.dbroot).unwrap();
        let (_, stopping) = tokio::sync::watch::channel(false);
        AppState {
            sup: Supervisor::new(settings.clone(), db, events.clone()),
            settings,
            events,
            stopping,
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
}
