//! A real browser for tests: headless Chromium (Debian's `chromium`) driven
//! over the Chrome DevTools Protocol, so a test can load xend's pages and
//! click their forms as a person would (same origin, cookies, the page's own
//! CSRF token) without relaxing anything in the browser or in xend.
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

/// The Chromium binary, or `None` (with a skip message; a failure under CI).
pub fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let why = "headless Chromium is needed (apt-get install chromium)";
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// One headless Chromium with one page, killed on drop.
pub struct Browser {
    child: Child,
    page: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("pid", &self.child.id())
            .finish()
    }
}

/// How long a page may take to load or a script to answer.
const PAGE: Duration = Duration::from_secs(20);

impl Browser {
    /// Starts `binary` headless with a fresh profile in `profile` and
    /// attaches to its first page.
    pub fn start(binary: &Path, profile: &Path) -> Browser {
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            // Its own process group: the renderer and helper processes go
            // with it at the end (they write into the profile until then).
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("chromium ended before its DevTools port")
                .expect("read chromium's stderr");
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                break rest
                    .split('/')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .expect("a DevTools port");
            }
        };
        // Keep draining stderr so chromium never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let targets: Value = reqwest::blocking::get(format!("http://127.0.0.1:{port}/json/list"))
            .and_then(|r| r.json())
            .expect("DevTools target list");
        let ws_url = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (page, _) = tungstenite::connect(ws_url).expect("attach to the page");
        let mut browser = Browser {
            child,
            page,
            next_id: 0,
        };
        browser.call("Page.enable", json!({}));
        browser
    }

    /// Sends one DevTools command and returns its result (events that arrive
    /// meanwhile are skipped); panics on an error reply.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(msg.to_string()))
            .expect("send to chromium");
        loop {
            let msg = self.page.read().expect("read from chromium");
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if v["id"] == id {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
        }
    }

    /// The value of the JavaScript expression `js` in the page (`null`
    /// while the page is between two documents).
    pub fn eval(&mut self, js: &str) -> Value {
        self.try_call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true }),
        )
        .map(|r| r["result"]["value"].clone())
        .unwrap_or(Value::Null)
    }

    /// Loads `url` and waits until its document has loaded.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_loaded(url);
    }

    fn wait_loaded(&mut self, what: &str) {
        crate::wait_for(PAGE, &format!("{what} to load"), || {
            self.eval("document.readyState").as_str() == Some("complete")
        });
    }

    /// The page's whole DOM as HTML.
    pub fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Submits the page's form with id `form`, as a click on its button
    /// does, and waits for the page the server answers with.
    pub fn submit(&mut self, form: &str) {
        let before = self.eval("performance.timeOrigin");
        let found = self.eval(&format!(
            "(() => {{ const f = document.getElementById({form:?}); \
             if (!f) return false; f.requestSubmit(); return true; }})()"
        ));
        assert_eq!(found, Value::Bool(true), "no form {form}: {}", self.dom());
        crate::wait_for(PAGE, &format!("the page {form} leads to"), || {
            let now = self.eval("performance.timeOrigin");
            !now.is_null() && now != before
        });
        self.wait_loaded(form);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group, then wait until none of it is left, so the
        // profile (in the caller's temporary dir) can be removed.
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        // No panic in a drop (it may run while a failed test unwinds).
        let _ = testkit::poll_until(Duration::from_secs(10), || {
            nix::sys::signal::kill(group, None).is_err().then_some(())
        });
    }
}
