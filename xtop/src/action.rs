//! Everything the user can do, as one enum. Keys, the `:` prompt and script
//! mode all go through [`Action::parse`], so a key binding is just a command
//! line (`"sort cpu"`, `"pause"`).
use crate::columns::{Column, SortSpec};

/// A view of the main table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum View {
    /// 0: domains (xentop's table).
    #[default]
    Domains,
    /// 1: host CPUs.
    HostCpus,
    /// 2: network interfaces.
    Networks,
    /// 3: block devices.
    Blocks,
    /// 4: vCPUs.
    Vcpus,
}

impl View {
    /// The view numbered `n` (virt-top's 0-3, plus 4 for vCPUs).
    pub fn from_number(n: u8) -> Option<View> {
        Some(match n {
            0 => View::Domains,
            1 => View::HostCpus,
            2 => View::Networks,
            3 => View::Blocks,
            4 => View::Vcpus,
            _ => return None,
        })
    }

    /// Its number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            View::Domains => "domains",
            View::HostCpus => "host CPUs",
            View::Networks => "networks",
            View::Blocks => "block devices",
            View::Vcpus => "vCPUs",
        }
    }
}

/// Something the user can do. `Option<String>` targets name a domain; `None`
/// means the selected (or tagged) domains.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Leave xtop.
    Quit,
    /// Poll now.
    Refresh,
    /// Repaint the whole screen.
    Redraw,
    /// Stop/restart updating the table.
    Freeze,
    /// Move the selection.
    Up,
    /// Move the selection.
    Down,
    /// Move the selection a page.
    PageUp,
    /// Move the selection a page.
    PageDown,
    /// First row.
    Home,
    /// Last row.
    End,
    /// Sort by the next column (xentop's S).
    SortNext,
    /// Sort by a column (`None` toggles the direction of the current one).
    Sort(Option<SortSpec>),
    /// Reverse the sort.
    SortReverse,
    /// Show a view.
    View(View),
    /// xentop N: network rows under each domain.
    ToggleNets,
    /// xentop B: block device rows under each domain.
    ToggleVbds,
    /// xentop V: vCPU rows under each domain.
    ToggleVcpus,
    /// xentop R: repeat the table header between rows.
    RepeatHeader,
    /// Switch between the xentop and virt-top CPU% conventions.
    CpuMode,
    /// Collapse the header's host groups to one line per host, or expand them.
    Hosts,
    /// Show or hide the detail pane of the selected domain.
    Detail,
    /// The key list.
    Help,
    /// Open the `:` prompt.
    Prompt,
    /// Open the `/` filter prompt (`None`) or set the filter (empty clears).
    Filter(Option<String>),
    /// The column chooser (F).
    Columns,
    /// Show/hide one column.
    ToggleColumn(Column),
    /// Set the refresh delay in seconds (`None` opens a prompt).
    Delay(Option<f64>),
    /// Tag or untag the selected row.
    Tag,
    /// Tag every visible row.
    TagAll,
    /// Clear the tags.
    UntagAll,
    /// Pause or unpause, whichever fits.
    TogglePause(Option<String>),
    /// Pause.
    Pause(Option<String>),
    /// Unpause.
    Unpause(Option<String>),
    /// Shut down (poweroff).
    Shutdown(Option<String>),
    /// Reboot.
    Reboot(Option<String>),
    /// Destroy (asks first).
    Destroy(Option<String>),
    /// Attach to the console in a pane.
    Console(Option<String>),
    /// Hand the whole terminal to the console client.
    ConsoleFull(Option<String>),
    /// Edit the stored config.
    Edit(Option<String>),
    /// Set the credit-scheduler weight and/or cap of a domain (the selected
    /// or tagged ones without a name).
    Sched {
        /// The domain, if named.
        dom: Option<String>,
        /// New weight.
        weight: Option<u32>,
        /// New cap, percent of one CPU.
        cap: Option<u32>,
    },
    /// Save the selected domain to FILE in xend's `save-dir` (it ends);
    /// `None` opens the prompt.
    Save(Option<String>),
    /// Migrate the selected domain to the xend at HOST[:PORT], live if the
    /// flag says so; `None` opens the prompt.
    Migrate(Option<(String, bool)>),
    /// Create a new domain from a template.
    New,
    /// Write the settings to the config file.
    SaveSettings,
    /// Switch theme.
    Theme(String),
    /// Turn mouse support on or off.
    Mouse,
    /// Suspend xtop (Ctrl-Z).
    Suspend,
}

/// One command's name, argument synopsis and help line.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    /// The command word.
    pub name: &'static str,
    /// Argument synopsis.
    pub args: &'static str,
    /// What it does.
    pub help: &'static str,
    /// Changes domains (left unbound with `--readonly`).
    pub acts: bool,
}

const fn spec(
    name: &'static str,
    args: &'static str,
    help: &'static str,
    acts: bool,
) -> CommandSpec {
    CommandSpec {
        name,
        args,
        help,
        acts,
    }
}

/// Every command, in help order.
pub const COMMANDS: &[CommandSpec] = &[
    spec("quit", "", "leave xtop", false),
    spec("refresh", "", "poll xend now", false),
    spec("redraw", "", "repaint the screen", false),
    spec("freeze", "", "stop/resume updating the table", false),
    spec("up", "", "select the previous row", false),
    spec("down", "", "select the next row", false),
    spec("page-up", "", "select a page up", false),
    spec("page-down", "", "select a page down", false),
    spec("home", "", "select the first row", false),
    spec("end", "", "select the last row", false),
    spec("sort-next", "", "sort by the next column", false),
    spec(
        "sort",
        "[-]FIELD",
        "sort by FIELD (- reverses); no FIELD flips the order",
        false,
    ),
    spec("sort-reverse", "", "reverse the sort order", false),
    spec(
        "view",
        "0-4",
        "0 domains, 1 host CPUs, 2 networks, 3 block devices, 4 vCPUs",
        false,
    ),
    spec(
        "nets",
        "",
        "show/hide network rows under each domain",
        false,
    ),
    spec(
        "vbds",
        "",
        "show/hide block device rows under each domain",
        false,
    ),
    spec("vcpus", "", "show/hide vCPU rows under each domain", false),
    spec(
        "repeat-header",
        "",
        "repeat the table header between domains",
        false,
    ),
    spec(
        "cpu-mode",
        "",
        "CPU% as share of one CPU (xentop) or of the host (virt-top)",
        false,
    ),
    spec(
        "hosts",
        "",
        "header: one line per host (collapsed) or two (expanded)",
        false,
    ),
    spec("detail", "", "show/hide the detail pane", false),
    spec("help", "", "list every key", false),
    spec("prompt", "", "open the command prompt", false),
    spec(
        "filter",
        "[!]REGEX",
        "show matching domains only (! inverts; empty clears)",
        false,
    ),
    spec("columns", "", "choose the columns", false),
    spec("column", "FIELD", "show/hide one column", false),
    spec("delay", "[SECS]", "set the refresh delay", false),
    spec("tag", "", "tag/untag the selected domain", false),
    spec("tag-all", "", "tag every shown domain", false),
    spec("untag-all", "", "clear the tags", false),
    spec("toggle-pause", "[DOM]", "pause or unpause", true),
    spec("pause", "[DOM]", "pause", true),
    spec("unpause", "[DOM]", "unpause", true),
    spec("shutdown", "[DOM]", "shut down", true),
    spec("reboot", "[DOM]", "reboot", true),
    spec("destroy", "[DOM]", "destroy (asks first)", true),
    spec("console", "[DOM]", "attach to the console in a pane", true),
    spec(
        "console-full",
        "[DOM]",
        "hand the terminal to the console client",
        true,
    ),
    spec("edit", "[DOM]", "edit the config", true),
    spec(
        "sched",
        "[DOM] WEIGHT|- [CAP]",
        "set CPU weight (1-65535, - keeps it) and cap (% of one CPU, 0 = none)",
        true,
    ),
    spec(
        "save",
        "FILE",
        "save the selected domain to FILE in xend's save-dir (it ends there)",
        true,
    ),
    spec(
        "migrate",
        "HOST[:PORT] [live]",
        "migrate the selected domain to the xend at HOST[:PORT]",
        true,
    ),
    spec("new", "", "create a domain from a template", true),
    spec(
        "save-settings",
        "",
        "write settings to the config file",
        false,
    ),
    spec(
        "theme",
        "NAME",
        "switch theme (dark, light, high-contrast, monochrome)",
        false,
    ),
    spec("mouse", "", "turn the mouse on/off", false),
    spec("suspend", "", "suspend xtop (resume with fg)", false),
];

/// Why a command line was not understood.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    /// No command of that name.
    #[error("unknown command '{0}'; type ? for the list")]
    Unknown(String),
    /// Bad or missing argument.
    #[error("{name}: {problem}; usage: {name} {usage}")]
    BadArgs {
        /// The command.
        name: String,
        /// What was wrong.
        problem: String,
        /// Its synopsis.
        usage: String,
    },
}

/// The pattern of the actions that change domains: [`Action::acts`], and
/// what `App::dispatch` hands to its domain actions (one list for both, so
/// every action dispatched as one is refused in read-only mode).
macro_rules! acting_actions {
    () => {
        Action::TogglePause(_)
            | Action::Pause(_)
            | Action::Unpause(_)
            | Action::Shutdown(_)
            | Action::Reboot(_)
            | Action::Destroy(_)
            | Action::Console(_)
            | Action::ConsoleFull(_)
            | Action::Edit(_)
            | Action::Sched { .. }
            | Action::Save(_)
            | Action::Migrate(_)
            | Action::New
    };
}
pub(crate) use acting_actions;

impl Action {
    /// Parses a command line such as `pause web` or `sort -cpu`.
    pub fn parse(line: &str) -> Result<Action, ParseError> {
        let line = line.trim();
        let (name, rest) = match line.split_once(char::is_whitespace) {
            Some((n, r)) => (n, r.trim()),
            None => (line, ""),
        };
        let spec = COMMANDS
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ParseError::Unknown(name.to_owned()))?;
        let bad = |problem: String| ParseError::BadArgs {
            name: spec.name.to_owned(),
            problem,
            usage: spec.args.to_owned(),
        };
        let target = (!rest.is_empty()).then(|| rest.to_owned());
        let no_args = |a: Action| {
            if rest.is_empty() {
                Ok(a)
            } else {
                Err(bad(format!("unexpected '{rest}'")))
            }
        };
        match spec.name {
            "quit" => no_args(Action::Quit),
            "refresh" => no_args(Action::Refresh),
            "redraw" => no_args(Action::Redraw),
            "freeze" => no_args(Action::Freeze),
            "up" => no_args(Action::Up),
            "down" => no_args(Action::Down),
            "page-up" => no_args(Action::PageUp),
            "page-down" => no_args(Action::PageDown),
            "home" => no_args(Action::Home),
            "end" => no_args(Action::End),
            "sort-next" => no_args(Action::SortNext),
            "sort" if rest.is_empty() => Ok(Action::Sort(None)),
            "sort" => SortSpec::parse(rest)
                .map(|s| Action::Sort(Some(s)))
                .ok_or_else(|| bad(format!("unknown field '{rest}'"))),
            "sort-reverse" => no_args(Action::SortReverse),
            "view" => rest
                .parse::<u8>()
                .ok()
                .and_then(View::from_number)
                .map(Action::View)
                .ok_or_else(|| bad(format!("'{rest}' is not a view number"))),
            "nets" => no_args(Action::ToggleNets),
            "vbds" => no_args(Action::ToggleVbds),
            "vcpus" => no_args(Action::ToggleVcpus),
            "repeat-header" => no_args(Action::RepeatHeader),
            "cpu-mode" => no_args(Action::CpuMode),
            "hosts" => no_args(Action::Hosts),
            "detail" => no_args(Action::Detail),
            "help" => no_args(Action::Help),
            "prompt" => no_args(Action::Prompt),
            "filter" => Ok(Action::Filter(if line.contains(char::is_whitespace) {
                Some(rest.to_owned())
            } else {
                None
            })),
            "columns" => no_args(Action::Columns),
            "column" => Column::parse(rest)
                .map(Action::ToggleColumn)
                .ok_or_else(|| bad(format!("unknown field '{rest}'"))),
            "delay" if rest.is_empty() => Ok(Action::Delay(None)),
            "delay" => match rest.parse::<f64>() {
                Ok(d) if d > 0.0 && d.is_finite() => Ok(Action::Delay(Some(d))),
                _ => Err(bad(format!("'{rest}' is not a positive number of seconds"))),
            },
            "tag" => no_args(Action::Tag),
            "tag-all" => no_args(Action::TagAll),
            "untag-all" => no_args(Action::UntagAll),
            "toggle-pause" => Ok(Action::TogglePause(target)),
            "pause" => Ok(Action::Pause(target)),
            "unpause" => Ok(Action::Unpause(target)),
            "shutdown" => Ok(Action::Shutdown(target)),
            "reboot" => Ok(Action::Reboot(target)),
            "destroy" => Ok(Action::Destroy(target)),
            "console" => Ok(Action::Console(target)),
            "console-full" => Ok(Action::ConsoleFull(target)),
            "edit" => Ok(Action::Edit(target)),
            "sched" => parse_sched(rest).map_err(|e| bad(e.to_string())),
            "save" if rest.is_empty() => Ok(Action::Save(None)),
            "save" if rest.contains(char::is_whitespace) => {
                Err(bad(format!("'{rest}' is not one file name")))
            }
            "save" => Ok(Action::Save(Some(rest.to_owned()))),
            "migrate" if rest.is_empty() => Ok(Action::Migrate(None)),
            "migrate" => {
                let mut words = rest.split_whitespace();
                let dest = words.next().unwrap_or_default().to_owned();
                match (words.next(), words.next()) {
                    (None, _) => Ok(Action::Migrate(Some((dest, false)))),
                    (Some("live" | "-l" | "--live"), None) => {
                        Ok(Action::Migrate(Some((dest, true))))
                    }
                    (Some(w), _) => Err(bad(format!("unexpected '{w}'"))),
                }
            }
            "new" => no_args(Action::New),
            "save-settings" => no_args(Action::SaveSettings),
            "theme" if rest.is_empty() => Err(bad("missing theme name".to_owned())),
            "theme" => Ok(Action::Theme(rest.to_owned())),
            "mouse" => no_args(Action::Mouse),
            "suspend" => no_args(Action::Suspend),
            other => Err(ParseError::Unknown(other.to_owned())),
        }
    }

    /// True for actions that change domains (unbound with `--readonly`).
    pub fn acts(&self) -> bool {
        matches!(self, acting_actions!())
    }
}

/// What is wrong with the arguments of `sched`.
#[derive(Debug, thiserror::Error)]
enum SchedError {
    /// No weight (nor `-`).
    #[error("missing WEIGHT")]
    MissingWeight,
    /// A word after the cap.
    #[error("unexpected '{0}'")]
    Unexpected(String),
    /// A weight out of range or no number.
    #[error("weight '{0}' is not 1-65535")]
    Weight(String),
    /// A cap that is no whole percentage.
    #[error("cap '{0}' is not a whole percentage")]
    Cap(String),
    /// Neither a weight nor a cap.
    #[error("nothing to set")]
    NothingToSet,
}

/// `sched [DOM] WEIGHT|- [CAP]`: a first word that is no number (nor `-`)
/// names the domain.
fn parse_sched(rest: &str) -> Result<Action, SchedError> {
    let mut words: Vec<&str> = rest.split_whitespace().collect();
    let numeric = |w: &str| w == "-" || w.parse::<u64>().is_ok();
    let dom = match words.first() {
        Some(w) if !numeric(w) => Some(words.remove(0).to_owned()),
        _ => None,
    };
    let (w, c) = match words.as_slice() {
        [w] => (*w, None),
        [w, c] => (*w, Some(*c)),
        [] => return Err(SchedError::MissingWeight),
        [_, _, extra, ..] => return Err(SchedError::Unexpected((*extra).to_owned())),
    };
    let weight = match w {
        "-" => None,
        w => match w.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Some(n),
            _ => return Err(SchedError::Weight(w.to_owned())),
        },
    };
    let cap = match c {
        None => None,
        Some(c) => Some(
            c.trim_end_matches('%')
                .parse::<u32>()
                .map_err(|_| SchedError::Cap(c.to_owned()))?,
        ),
    };
    if weight.is_none() && cap.is_none() {
        return Err(SchedError::NothingToSet);
    }
    Ok(Action::Sched { dom, weight, cap })
}

/// Completions of a partial command line: command names for the first word,
/// then `candidates` (domain names, fields, themes) for the argument.
pub fn complete(line: &str, domains: &[String]) -> Vec<String> {
    match line.split_once(' ') {
        None => COMMANDS
            .iter()
            .filter(|c| c.name.starts_with(line))
            .map(|c| c.name.to_owned())
            .collect(),
        Some((cmd, arg)) => {
            let pool: Vec<String> = match cmd {
                "sort" | "column" => Column::ALL.iter().map(|c| c.key().to_owned()).collect(),
                "theme" => crate::theme::PRESETS
                    .iter()
                    .map(|(n, _)| (*n).to_owned())
                    .collect(),
                "view" => (0..=4).map(|n| n.to_string()).collect(),
                _ if COMMANDS
                    .iter()
                    .any(|c| c.name == cmd && c.args.contains("DOM")) =>
                {
                    domains.to_vec()
                }
                _ => Vec::new(),
            };
            let (prefix, arg) = match arg.strip_prefix('-') {
                Some(a) if cmd == "sort" => ("-", a),
                _ => ("", arg),
            };
            let mut out: Vec<String> = pool
                .into_iter()
                .filter(|p| p.starts_with(arg))
                .map(|p| format!("{cmd} {prefix}{p}"))
                .collect();
            out.sort();
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses() {
        for c in COMMANDS {
            let line = match c.args {
                "" | "[DOM]" | "[SECS]" | "[!]REGEX" | "[-]FIELD" => c.name.to_owned(),
                "0-4" => format!("{} 2", c.name),
                "FIELD" => format!("{} cpu", c.name),
                "NAME" => format!("{} dark", c.name),
                "FILE" => format!("{} web.img", c.name),
                "HOST[:PORT] [live]" => format!("{} 10.0.0.2:8000 live", c.name),
                "[DOM] WEIGHT|- [CAP]" => format!("{} web 512 50", c.name),
                other => panic!("no sample for {other}"),
            };
            let action = Action::parse(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(action.acts(), c.acts, "{line}");
        }
    }

    #[test]
    fn arguments() {
        assert_eq!(
            Action::parse("pause web").unwrap(),
            Action::Pause(Some("web".into()))
        );
        assert_eq!(
            Action::parse("sort -mem").unwrap(),
            Action::Sort(Some(SortSpec {
                column: Column::Mem,
                reverse: true
            }))
        );
        assert_eq!(
            Action::parse("filter !^Dom").unwrap(),
            Action::Filter(Some("!^Dom".into()))
        );
        assert_eq!(
            Action::parse("delay 0.5").unwrap(),
            Action::Delay(Some(0.5))
        );
        assert_eq!(
            Action::parse("delay -1").unwrap_err().to_string(),
            "delay: '-1' is not a positive number of seconds; usage: delay [SECS]"
        );
        let sched = |dom: Option<&str>, weight, cap| Action::Sched {
            dom: dom.map(str::to_owned),
            weight,
            cap,
        };
        assert_eq!(
            Action::parse("sched web 512 50").unwrap(),
            sched(Some("web"), Some(512), Some(50))
        );
        assert_eq!(
            Action::parse("sched 128").unwrap(),
            sched(None, Some(128), None)
        );
        assert_eq!(
            Action::parse("sched - 25%").unwrap(),
            sched(None, None, Some(25))
        );
        assert_eq!(
            Action::parse("sched web 0").unwrap_err().to_string(),
            "sched: weight '0' is not 1-65535; usage: sched [DOM] WEIGHT|- [CAP]"
        );
        assert!(Action::parse("sched web - x").is_err());
        assert!(Action::parse("sched web").is_err());
        assert!(Action::parse("sched -").is_err());
        assert!(Action::parse("sched 1 2 3").is_err());
        assert_eq!(Action::parse("save").unwrap(), Action::Save(None));
        assert_eq!(
            Action::parse("save web.img").unwrap(),
            Action::Save(Some("web.img".into()))
        );
        assert_eq!(
            Action::parse("save a b").unwrap_err().to_string(),
            "save: 'a b' is not one file name; usage: save FILE"
        );
        assert_eq!(
            Action::parse("migrate h:8000").unwrap(),
            Action::Migrate(Some(("h:8000".into(), false)))
        );
        assert_eq!(
            Action::parse("migrate h live").unwrap(),
            Action::Migrate(Some(("h".into(), true)))
        );
        assert_eq!(
            Action::parse("migrate h fast").unwrap_err().to_string(),
            "migrate: unexpected 'fast'; usage: migrate HOST[:PORT] [live]"
        );
        assert_eq!(
            Action::parse("frobnicate").unwrap_err().to_string(),
            "unknown command 'frobnicate'; type ? for the list"
        );
    }

    #[test]
    fn completion() {
        assert_eq!(complete("paus", &[]), ["pause"]);
        let doms = vec!["web".to_owned(), "db".to_owned()];
        assert_eq!(complete("pause w", &doms), ["pause web"]);
        assert_eq!(complete("sort -cpu", &doms), ["sort -cpu", "sort -cpu_sec"]);
    }
}
