//! Command-line arguments and the start-up paths: interactive, `--launch`.
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xend::client::Client;
use xtop::app::{App, Options};
use xtop::collector::url_label;
use xtop::error::error_chain;
use xtop::keymap::{Keymap, escape_byte};
use xtop::model::Store;
use xtop::settings::Settings;
use xtop::theme::{ColorDepth, Theme};

pub use xtop::args::{Args, Sub};

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async_main(args));
    // Do not wait for blocking work (a DNS lookup, a console session) left
    // behind by a quit on a signal or a hang-up.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

async fn async_main(args: Args) -> anyhow::Result<ExitCode> {
    let settings_path = args.config.clone().or_else(Settings::default_path);
    let settings = match &settings_path {
        Some(p) => Settings::load(p)?,
        None => Settings::default(),
    };
    // `-H` (with --token/--cacert), else the settings' hosts (each with its
    // own token and CA file, or those of the command line), else the default.
    let hosts: Vec<xend::client::ClientOptions> = if !args.hosts.is_empty() {
        args.hosts
            .iter()
            .map(|h| xend::client::ClientOptions {
                url: Some(h.clone()),
                token: args.token.clone(),
                cacert: args.cacert.clone(),
            })
            .collect()
    } else if !settings.hosts.is_empty() {
        settings
            .hosts
            .iter()
            .map(|h| xend::client::ClientOptions {
                url: Some(h.url().to_owned()),
                token: h.token().map(str::to_owned).or_else(|| args.token.clone()),
                cacert: h.cacert().map(Into::into).or_else(|| args.cacert.clone()),
            })
            .collect()
    } else {
        vec![xend::client::ClientOptions {
            url: None,
            token: args.token.clone(),
            cacert: args.cacert.clone(),
        }]
    };
    let clients = hosts
        .iter()
        .map(Client::connect)
        .collect::<Result<Vec<_>, _>>()?;
    if args.launch || matches!(args.command, Some(Sub::Up)) {
        launch(&clients[0]).await?;
    }
    if let Some(file) = &args.script {
        return script_mode(&args, file, &clients[0]).await;
    }
    if args.batch || args.csv.is_some() || args.json {
        return batch_mode(&args, &settings, &clients).await;
    }
    interactive(args, settings, settings_path, clients).await?;
    Ok(ExitCode::SUCCESS)
}

async fn script_mode(args: &Args, file: &str, client: &Client) -> anyhow::Result<ExitCode> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the script from stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read script {file}"))?
    };
    let script = xtop::script::parse(&text).with_context(|| format!("script {file}"))?;
    let opts = xtop::script::ScriptOptions {
        keep_going: args.keep_going,
        json: args.json,
        readonly: args.readonly,
    };
    let ok = xtop::script::run(client, &script, &opts, &mut std::io::stdout().lock()).await?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn batch_mode(
    args: &Args,
    settings: &Settings,
    clients: &[Client],
) -> anyhow::Result<ExitCode> {
    use xtop::batch::{BatchOptions, Format, parse_end_time};
    let delay = args.delay.or(settings.delay).unwrap_or(3.0);
    if !(delay > 0.0 && delay.is_finite()) {
        bail!("--delay {delay}: expected a positive number of seconds");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    let end_time = args
        .end_time
        .as_deref()
        .map(|t| parse_end_time(t, now))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let fields = args
        .fields
        .as_deref()
        .map(xtop::columns::parse_fields)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let sort = args
        .sort
        .as_deref()
        .map(|s| {
            xtop::columns::SortSpec::parse(s).with_context(|| format!("--sort {s}: unknown field"))
        })
        .transpose()?;
    let filter = match &args.filter {
        None => None,
        Some(f) => {
            let (inv, pat) = f
                .strip_prefix('!')
                .map(|p| (true, p))
                .unwrap_or((false, f.as_str()));
            Some((
                regex::Regex::new(pat).with_context(|| format!("--filter {f}: bad regex"))?,
                inv,
            ))
        }
    };
    let format = if args.json {
        Format::Json
    } else if args.csv.is_some() {
        Format::Csv
    } else {
        Format::Text
    };
    let opts = BatchOptions {
        delay: Duration::from_secs_f64(delay),
        iterations: args.iterations,
        nets: args.networks,
        vbds: args.vbds,
        vcpus: args.vcpus,
        repeat_header: args.repeat_header,
        full_names: args.full_name,
        dom0_first: args.dom0_first,
        format,
        fields,
        sort,
        filter,
        end_time,
        cpu_mode: if args.host_cpu_percent {
            xtop::model::CpuMode::VirtTop
        } else {
            settings.cpu_mode.unwrap_or_default()
        },
    };
    let mut out: Box<dyn std::io::Write> = match args.csv.as_deref() {
        Some(path) if path != "-" => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {path}"))?,
        )),
        _ => Box::new(std::io::stdout().lock()),
    };
    match xtop::batch::run(clients, &opts, &mut *out).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(xtop::batch::BatchError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
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
