//! Command-line arguments and the start-up paths: interactive, `--launch`.
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use xend::client::Client;
use xtop::app::{App, Options};
use xtop::keymap::{Keymap, escape_byte};
use xtop::model::Store;
use xtop::runtime::{error_chain, url_label};
use xtop::settings::Settings;
use xtop::theme::{ColorDepth, Theme};

/// xtop: watch and manage xend's domains (xentop/virt-top style).
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// xend URL; repeat for several hosts in one table [default: $XEND_URL or http://127.0.0.1:8000].
    #[arg(short = 'H', long = "host", value_name = "URL")]
    pub hosts: Vec<String>,
    /// Bearer token for xend [default: $XEND_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// No actions: pause, shutdown, destroy, console, edit and new are not bound.
    #[arg(long)]
    pub readonly: bool,
    /// Theme: dark, light, high-contrast, monochrome, or a .toml file.
    #[arg(long, value_name = "NAME|FILE")]
    pub theme: Option<String>,
    /// Seconds between refreshes (fractions allowed) [default: 3].
    #[arg(short = 'd', long = "delay", value_name = "SECS")]
    pub delay: Option<f64>,
    /// Sort by FIELD (`-FIELD` reverses), e.g. `-cpu`.
    #[arg(long, value_name = "[-]FIELD", allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Columns to show, comma-separated (e.g. `id,name,state,cpu`).
    #[arg(long, value_name = "FIELDS")]
    pub fields: Option<String>,
    /// Show only domains whose name matches REGEX (`!REGEX` inverts).
    #[arg(long, value_name = "REGEX")]
    pub filter: Option<String>,
    /// CPU% as a share of the whole host (virt-top) rather than of one CPU.
    #[arg(long)]
    pub host_cpu_percent: bool,
    /// Turn the mouse on (click to select, click a header to sort).
    #[arg(long)]
    pub mouse: bool,
    /// Console escape key (`^]`, `ctrl-t`, ...) [default: Ctrl-]].
    #[arg(short = 'e', long = "escape", value_name = "KEY")]
    pub escape: Option<String>,
    /// Settings file [default: $XTOP_CONFIG or ~/.config/xtop/config.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Start a local xend if none answers and create example domains if there are none, then open xtop.
    #[arg(long)]
    pub launch: bool,
    /// What to run (default: the interactive UI).
    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Same as `--launch`: start xend and example domains if needed, then open xtop.
    Up,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async_main(args))
}

async fn async_main(args: Args) -> anyhow::Result<ExitCode> {
    let settings_path = args.config.clone().or_else(Settings::default_path);
    let settings = match &settings_path {
        Some(p) => Settings::load(p)?,
        None => Settings::default(),
    };
    let urls: Vec<Option<&str>> = if args.hosts.is_empty() {
        vec![None]
    } else {
        args.hosts.iter().map(|h| Some(h.as_str())).collect()
    };
    let clients = urls
        .iter()
        .map(|u| Client::from_env(*u, args.token.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    if args.launch || matches!(args.command, Some(Sub::Up)) {
        launch(&clients[0]).await?;
    }
    interactive(args, settings, settings_path, clients).await?;
    Ok(ExitCode::SUCCESS)
}

async fn interactive(
    args: Args,
    mut settings: Settings,
    settings_path: Option<std::path::PathBuf>,
    clients: Vec<Client>,
) -> anyhow::Result<()> {
    let depth = ColorDepth::detect();
    let theme_name = args
        .theme
        .clone()
        .or_else(|| settings.theme.clone())
        .unwrap_or_else(|| {
            if depth == ColorDepth::None {
                "monochrome".into()
            } else {
                "dark".into()
            }
        });
    let theme = Theme::load(&theme_name, depth)?;
    let escape_spec = args
        .escape
        .clone()
        .or_else(|| settings.escape.clone())
        .unwrap_or_else(|| "ctrl-]".into());
    let escape = escape_byte(&escape_spec)
        .with_context(|| format!("bad escape key '{escape_spec}'; expected e.g. ctrl-] or ^T"))?;
    let escape_label = format!("Ctrl-{}", (escape + 0x40) as char);
    let keymap = Keymap::new(&settings.keys, args.readonly)?;
    if let Some(d) = args.delay {
        if !(d > 0.0 && d.is_finite()) {
            bail!("--delay {d}: expected a positive number of seconds");
        }
        settings.delay = Some(d);
    }
    if let Some(s) = &args.sort {
        xtop::columns::SortSpec::parse(s).with_context(|| format!("--sort {s}: unknown field"))?;
        settings.sort = Some(s.clone());
    }
    if let Some(f) = &args.fields {
        xtop::columns::parse_fields(f).map_err(anyhow::Error::msg)?;
        settings.columns = Some(f.split(',').map(|s| s.trim().to_owned()).collect());
    }
    if args.host_cpu_percent {
        settings.cpu_mode = Some(xtop::model::CpuMode::VirtTop);
    }
    if args.mouse {
        settings.mouse = Some(true);
    }
    let external_editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty());
    let store = Store::new(
        clients
            .iter()
            .map(|c| (url_label(c.url()), c.url().to_owned())),
    );
    let opts = Options {
        readonly: args.readonly,
        external_editor,
        escape,
        escape_label,
        settings_path,
        theme_name,
    };
    let mut app = App::new(store, keymap, theme, opts, settings);
    if let Some(f) = &args.filter {
        app.dispatch(xtop::action::Action::Filter(Some(f.clone())));
    }
    xtop::tui::install_panic_hook();
    let tui = xtop::tui::Tui::enter(app.mouse)?;
    xtop::runtime::run(app, clients, tui).await
}

/// Example domains `--launch` creates on an empty xend: one busy so the figures move.
pub const EXAMPLES: &[&str] = &[
    "(vm (name busy) (memory 32) (image (minios (args 'autorun=burn 100000'))))",
    "(vm (name idle) (memory 16) (image (minios)))",
    "(vm (name spare) (memory 16) (vcpus 2) (image (minios)))",
];

/// Makes sure a xend answers at `client` (starting the `xend` next to this
/// executable if not) and that it has domains (creating the examples if not).
async fn launch(client: &Client) -> anyhow::Result<()> {
    match client.node().await {
        Ok(_) => {}
        Err(e) if e.is_connect() => start_xend(client).await?,
        Err(e) => return Err(e.into()),
    }
    let snap = client.snapshot().await?;
    if snap.domains.iter().all(|d| d.id == 0) {
        for cfg in EXAMPLES {
            client
                .create(cfg)
                .await
                .with_context(|| format!("creating example domain {cfg}"))?;
        }
    }
    Ok(())
}

async fn start_xend(client: &Client) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let xend = exe.with_file_name("xend");
    if !xend.is_file() {
        bail!(
            "no xend answers at {} and there is no xend binary next to {} to start",
            client.url(),
            exe.display()
        );
    }
    let log_dir = std::env::temp_dir();
    let log_path = log_dir.join("xtop-launch-xend.log");
    let log = std::fs::File::create(&log_path)?;
    eprintln!(
        "xtop: starting {} start (log: {})",
        xend.display(),
        log_path.display()
    );
    let mut child = std::process::Command::new(&xend)
        .arg("start")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot run {}", xend.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        match client.node().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!(
                    "xend did not answer within 30 s ({}); see {}",
                    error_chain(&e),
                    log_path.display()
                )
            }
            Err(_) => {}
        }
        if let Some(status) = child.try_wait()?
            && !status.success()
        {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("xend start failed ({status}):\n{}", log.trim());
        }
    }
}
