//! Script mode (`xtop --script FILE|-`): the commands of the `:` prompt, plus
//! `create`, `wait`, `send`, `expect`, `print` and `sleep`, one per line, with
//! no terminal. Stops at the first failure unless told to keep going.
//!
//! Operations and `create` go through the same [`App`] as keys and the
//! prompt: the line is dispatched, the effects it queues are carried out by
//! the same [`Executor`] as in the UI, and the result is what the app's
//! status line says. `wait`, `send`, `expect`, `print` and `sleep` are the
//! script's own.
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use xend::client::Client;

use crate::action::Action;
use crate::app::{App, DomOp, Mode, Options};
use crate::batch::{BatchOptions, Format, Printer};
use crate::collector::url_label;
use crate::effects::{Executor, Msg};
use crate::error::error_chain;
use crate::keymap::Keymap;
use crate::model::{CpuMode, Store};
use crate::settings::Settings;
use crate::theme::{ColorDepth, Theme};

/// How long `wait` and `expect` wait unless told.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong with one script line.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScriptError {
    /// The line does not parse.
    #[error("line {line}: {message}")]
    Parse {
        /// Line number (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The app refused or the operation failed: its status line.
    #[error("{0}")]
    App(String),
    /// xend refused or did not answer.
    #[error(transparent)]
    Xend(#[from] xend::client::Error),
    /// A config file could not be read.
    #[error("cannot read {file}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `wait` timed out.
    #[error("{dom} not {state} after {secs:.1} s (last: {last})")]
    Timeout {
        /// The domain.
        dom: String,
        /// The state waited for.
        state: String,
        /// How long.
        secs: f64,
        /// The last state or error seen.
        last: String,
    },
    /// `--readonly` and a command that acts.
    #[error("{}", crate::app::READ_ONLY)]
    ReadOnly,
    /// The domain has no console.
    #[error("{0} has no console")]
    NoConsole(String),
    /// Connecting to the console failed.
    #[error(transparent)]
    ConsoleConnect(#[from] console_client::ConnectError),
    /// Typing into the console failed.
    #[error("console of {dom}")]
    ConsoleSend {
        /// The domain.
        dom: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `expect` did not see its text.
    #[error(transparent)]
    Expect(#[from] console_client::ExpectError),
    /// `print` could not format the table.
    #[error("print")]
    Print(#[source] std::io::Error),
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// An operation on a domain (the same words as the `:` prompt).
    Op(DomOp, String),
    /// Create a domain from a config file.
    Create(String),
    /// Wait until a domain is in a state (`running`, `blocked`, `paused`,
    /// `shutdown`, `crashed`, `dying`, `present`, `gone`).
    Wait(String, String, Duration),
    /// Type text (and Enter) into a domain's console.
    Send(String, String),
    /// Wait for text in a domain's console output.
    Expect(String, String, Duration),
    /// Print the domains table.
    Print,
    /// Sleep.
    Sleep(Duration),
}

impl Command {
    /// Whether the command changes something or takes a console, which
    /// `--readonly` refuses (as it refuses the same actions on keys).
    pub fn acts(&self) -> bool {
        matches!(
            self,
            Command::Op(..) | Command::Create(_) | Command::Send(..) | Command::Expect(..)
        )
    }
}

/// Why a script line does not split into words.
#[derive(Debug, thiserror::Error)]
enum WordsError {
    /// A backslash ends the line.
    #[error("a trailing backslash")]
    TrailingBackslash,
    /// A quote is never closed.
    #[error("an unclosed quote")]
    UnclosedQuote,
}

/// Splits a line into words; single or double quotes group, `\` escapes.
fn words(line: &str) -> Result<Vec<String>, WordsError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (_, '\\') => {
                let n = chars.next().ok_or(WordsError::TrailingBackslash)?;
                cur.push(match n {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    other => other,
                });
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(WordsError::UnclosedQuote);
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `s` as seconds; `None` unless a finite number >= 0.
fn secs(s: &str) -> Option<Duration> {
    s.parse::<f64>()
        .ok()
        .filter(|v| *v >= 0.0 && v.is_finite())
        .map(Duration::from_secs_f64)
}

const STATES: &[&str] = &[
    "running", "blocked", "paused", "shutdown", "crashed", "dying", "present", "gone",
];

/// Parses a script: one command per line, `#` comments, blank lines ignored.
pub fn parse(text: &str) -> Result<Vec<(usize, String, Command)>, ScriptError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| ScriptError::Parse {
            line: i + 1,
            message,
        };
        let w = words(line).map_err(|e| err(format!("{e} in '{line}'")))?;
        let usage = |u: &str| err(format!("usage: {u}"));
        let secs =
            |s: &str| secs(s).ok_or_else(|| err(format!("'{s}' is not a number of seconds")));
        let cmd = match w[0].as_str() {
            "create" if w.len() == 2 => Command::Create(w[1].clone()),
            "create" => return Err(usage("create FILE")),
            "wait" if (3..=4).contains(&w.len()) => {
                if !STATES.contains(&w[2].as_str()) {
                    return Err(err(format!(
                        "unknown state '{}'; expected one of {}",
                        w[2],
                        STATES.join(", ")
                    )));
                }
                let t = w
                    .get(3)
                    .map(|s| secs(s))
                    .transpose()?
                    .unwrap_or(DEFAULT_TIMEOUT);
                Command::Wait(w[1].clone(), w[2].clone(), t)
            }
            "wait" => return Err(usage("wait DOM STATE [TIMEOUT]")),
            "send" if w.len() == 3 => Command::Send(w[1].clone(), w[2].clone()),
            "send" => return Err(usage("send DOM TEXT (quote TEXT with spaces)")),
            "expect" if (3..=4).contains(&w.len()) => {
                let t = w
                    .get(3)
                    .map(|s| secs(s))
                    .transpose()?
                    .unwrap_or(DEFAULT_TIMEOUT);
                Command::Expect(w[1].clone(), w[2].clone(), t)
            }
            "expect" => return Err(usage("expect DOM TEXT [TIMEOUT] (quote TEXT with spaces)")),
            "print" if w.len() == 1 => Command::Print,
            "sleep" if w.len() == 2 => Command::Sleep(secs(&w[1])?),
            "sleep" => return Err(usage("sleep SECS")),
            _ => match Action::parse(line).map_err(|e| err(e.to_string()))? {
                Action::Pause(Some(d)) => Command::Op(DomOp::Pause, d),
                Action::Unpause(Some(d)) => Command::Op(DomOp::Unpause, d),
                Action::Shutdown(Some(d)) => Command::Op(DomOp::Shutdown, d),
                Action::Reboot(Some(d)) => Command::Op(DomOp::Reboot, d),
                Action::Destroy(Some(d)) => Command::Op(DomOp::Destroy, d),
                Action::Pause(None)
                | Action::Unpause(None)
                | Action::Shutdown(None)
                | Action::Reboot(None)
                | Action::Destroy(None) => {
                    return Err(err(format!("'{line}' needs a domain: {line} DOM")));
                }
                other => {
                    return Err(err(format!(
                        "'{}' works in the UI only, not in scripts",
                        crate::action::COMMANDS
                            .iter()
                            .find(|c| line.starts_with(c.name))
                            .map(|c| c.name)
                            .unwrap_or(&format!("{other:?}"))
                    )));
                }
            },
        };
        out.push((i + 1, line.to_owned(), cmd));
    }
    Ok(out)
}

/// Script mode settings.
#[derive(Clone, Debug)]
pub struct ScriptOptions {
    /// Go on after a failure (the exit status still says it failed).
    pub keep_going: bool,
    /// Results as JSON lines.
    pub json: bool,
    /// Refuse every command that acts ([`Command::acts`]).
    pub readonly: bool,
}

/// The app scripts dispatch through: one host, the default keys, no
/// terminal (nothing is drawn).
fn headless_app(client: &Client, readonly: bool) -> App {
    let store = Store::new([(url_label(client.url()), client.url().to_owned())]);
    let keymap = Keymap::new(&BTreeMap::new(), false).unwrap_or_else(|_| {
        unreachable!("the built-in key bindings parse (keymap tests check them)")
    });
    let theme = Theme::load("monochrome", ColorDepth::None)
        .unwrap_or_else(|_| unreachable!("the monochrome preset loads (theme tests check it)"));
    let opts = Options {
        readonly,
        external_editor: None,
        escape: 0x1d,
        escape_label: "Ctrl-]".into(),
        settings_path: None,
        theme_name: "monochrome".into(),
    };
    App::new(store, keymap, theme, opts, Settings::default())
}

/// The app and what carries out its effects, as the interactive loop has them.
struct Session {
    app: App,
    executor: Executor,
    rx: mpsc::UnboundedReceiver<Msg>,
}

impl Session {
    fn new(client: &Client, readonly: bool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Session {
            app: headless_app(client, readonly),
            executor: Executor::new(vec![client.clone()], tx),
            rx,
        }
    }

    /// Takes a fresh snapshot, so the app knows the domains a line names.
    async fn refresh(&mut self) -> Result<(), StepError> {
        let snap = self.executor.client(0).snapshot().await?;
        self.app.on_snapshot(0, Ok(snap));
        Ok(())
    }

    /// Runs the effects the app queued until every request it sent is
    /// answered; the result is the app's status line.
    async fn settle(&mut self) -> Result<String, StepError> {
        loop {
            for effect in self.app.take_effects() {
                // Only requests to xend matter here: no screen, no polling.
                let _ = self.executor.start(effect);
            }
            if self.app.pending == 0 {
                break;
            }
            match self.rx.recv().await {
                Some(msg) => self.app.on_msg(msg),
                None => break,
            }
        }
        match self.app.status.take() {
            Some(s) if s.error => Err(StepError::App(s.text)),
            Some(s) => Ok(s.text),
            None => Ok(String::new()),
        }
    }

    /// A `:` command line, as typed at the prompt; a confirm dialog it opens
    /// (destroy) is answered yes: the script said so.
    async fn command(&mut self, line: &str) -> Result<String, StepError> {
        self.refresh().await?;
        self.app.status = None;
        self.app.run_command(line);
        if let Mode::Confirm(c) = std::mem::replace(&mut self.app.mode, Mode::Normal) {
            self.app.confirmed(c);
        }
        self.settle().await
    }

    /// A new domain from `text`, as `n` creates one after its review.
    async fn create(&mut self, text: String) -> Result<String, StepError> {
        self.app.status = None;
        self.app.create(0, text);
        self.settle().await
    }
}

/// Runs a parsed script against `client`; returns whether every command worked.
pub async fn run(
    client: &Client,
    script: &[(usize, String, Command)],
    opts: &ScriptOptions,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let mut session = Session::new(client, opts.readonly);
    let mut consoles: HashMap<String, console_client::Console> = HashMap::new();
    let mut all_ok = true;
    for (line, text, cmd) in script {
        let start = Instant::now();
        let result = step(&mut session, client, text, cmd, &mut consoles)
            .await
            .map_err(|e| error_chain(&e));
        let secs = start.elapsed().as_secs_f64();
        match (&result, opts.json) {
            (Ok(output), true) => writeln!(
                out,
                "{}",
                serde_json::json!({"line": line, "command": text, "ok": true, "output": output, "seconds": secs})
            )?,
            (Err(e), true) => writeln!(
                out,
                "{}",
                serde_json::json!({"line": line, "command": text, "ok": false, "error": e, "seconds": secs})
            )?,
            (Ok(output), false) => {
                writeln!(out, "ok   {line}: {text}")?;
                if !output.is_empty() {
                    write!(out, "{output}")?;
                    if !output.ends_with('\n') {
                        writeln!(out)?;
                    }
                }
            }
            (Err(e), false) => writeln!(out, "FAIL {line}: {text}: {e}")?,
        }
        out.flush()?;
        if result.is_err() {
            all_ok = false;
            if !opts.keep_going {
                break;
            }
        }
    }
    Ok(all_ok)
}

async fn step(
    session: &mut Session,
    client: &Client,
    line: &str,
    cmd: &Command,
    consoles: &mut HashMap<String, console_client::Console>,
) -> Result<String, StepError> {
    if cmd.acts() && session.app.opts.readonly {
        return Err(StepError::ReadOnly);
    }
    match cmd {
        // Through the app, like the prompt; its "paused web" line is not
        // printed (an operation prints nothing when it works).
        Command::Op(..) => session.command(line).await.map(|_| String::new()),
        Command::Create(file) => {
            let text = std::fs::read_to_string(file).map_err(|source| StepError::Read {
                file: file.clone(),
                source,
            })?;
            session.create(text).await.map(|s| s + "\n")
        }
        Command::Wait(dom, state, timeout) => {
            let deadline = Instant::now() + *timeout;
            let mut last = String::new();
            loop {
                let r = client.domain(dom).await;
                let ok = match (&r, state.as_str()) {
                    (Err(xend::client::Error::Api { status: 404, .. }), "gone") => true,
                    (Ok(_), "present") => true,
                    (Ok(d), s) => {
                        let letter = match s {
                            "running" => 'r',
                            "blocked" => 'b',
                            "paused" => 'p',
                            "shutdown" => 's',
                            "crashed" => 'c',
                            _ => 'd',
                        };
                        last = d.state.clone();
                        d.state.contains(letter)
                    }
                    (Err(e), _) if e.is_connect() => return Err(r.unwrap_err().into()),
                    (Err(e), _) => {
                        last = e.to_string();
                        false
                    }
                };
                if ok {
                    return Ok(String::new());
                }
                if Instant::now() > deadline {
                    return Err(StepError::Timeout {
                        dom: dom.clone(),
                        state: state.clone(),
                        secs: timeout.as_secs_f64(),
                        last,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Command::Send(dom, text) => {
            let con = console(client, dom, consoles).await?;
            let mut bytes = text.clone().into_bytes();
            bytes.push(b'\r');
            tokio::task::block_in_place(|| con.send(&bytes)).map_err(|source| {
                StepError::ConsoleSend {
                    dom: dom.clone(),
                    source,
                }
            })?;
            Ok(String::new())
        }
        Command::Expect(dom, text, timeout) => {
            let con = console(client, dom, consoles).await?;
            tokio::task::block_in_place(|| con.expect(text.as_bytes(), *timeout))?;
            Ok(String::new())
        }
        Command::Print => {
            let snap = client.snapshot().await?;
            let mut store = Store::new([(url_label(client.url()), client.url().to_owned())]);
            store.ingest(0, snap);
            let opts = BatchOptions {
                delay: Duration::from_secs(1),
                iterations: Some(1),
                nets: false,
                vbds: false,
                vcpus: false,
                repeat_header: false,
                full_names: true,
                dom0_first: true,
                format: Format::Text,
                fields: None,
                sort: None,
                filter: None,
                end_time: None,
                cpu_mode: CpuMode::Xentop,
            };
            let mut buf = Vec::new();
            Printer::new(&opts, false)
                .record(&store, &mut buf)
                .map_err(StepError::Print)?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        Command::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Ok(String::new())
        }
    }
}

async fn console<'a>(
    client: &Client,
    dom: &str,
    consoles: &'a mut HashMap<String, console_client::Console>,
) -> Result<&'a mut console_client::Console, StepError> {
    if !consoles.contains_key(dom) {
        let d = client.domain(dom).await?;
        let port = d
            .console_port
            .ok_or_else(|| StepError::NoConsole(dom.to_owned()))?;
        let host = client.console_host().to_owned();
        let opts = console_client::ConnectOptions {
            timeout: Duration::from_secs(5),
            token: client.token(),
            tls: client.console_tls().cloned(),
        };
        let con =
            tokio::task::block_in_place(|| console_client::Console::connect(&host, port, &opts))?;
        consoles.insert(dom.to_owned(), con);
    }
    Ok(consoles
        .get_mut(dom)
        .unwrap_or_else(|| unreachable!("inserted above")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse() {
        let s = parse(
            "# demo\ncreate web.cfg\n\nexpect web 'minios@web# ' 20\nsend web \"echo hi there\"\nwait web paused 2.5\npause web\nprint\nsleep 0.1\n",
        )
        .unwrap();
        let cmds: Vec<&Command> = s.iter().map(|(_, _, c)| c).collect();
        assert_eq!(
            cmds,
            [
                &Command::Create("web.cfg".into()),
                &Command::Expect("web".into(), "minios@web# ".into(), Duration::from_secs(20)),
                &Command::Send("web".into(), "echo hi there".into()),
                &Command::Wait("web".into(), "paused".into(), Duration::from_secs_f64(2.5)),
                &Command::Op(DomOp::Pause, "web".into()),
                &Command::Print,
                &Command::Sleep(Duration::from_millis(100)),
            ]
        );
        assert_eq!(s[1].0, 4, "line numbers count comments and blanks");
    }

    #[test]
    fn script_errors_name_the_line() {
        #[track_caller]
        fn check(text: &str, want: &str) {
            assert_eq!(parse(text).unwrap_err().to_string(), want);
        }
        check("pause", "line 1: 'pause' needs a domain: pause DOM");
        check(
            "\nwait web sleeping",
            "line 2: unknown state 'sleeping'; expected one of running, blocked, paused, shutdown, crashed, dying, present, gone",
        );
        check(
            "send web 'oops",
            "line 1: an unclosed quote in 'send web 'oops'",
        );
        check(
            "explode web",
            "line 1: unknown command 'explode'; type ? for the list",
        );
        check(
            "sort cpu",
            "line 1: 'sort' works in the UI only, not in scripts",
        );
        check("sleep x", "line 1: 'x' is not a number of seconds");
    }
}
