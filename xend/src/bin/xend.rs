//! `xend [--config FILE] start | stop | restart | status | foreground`
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use xend::cli::{Cli, Command};
use xend::config::{ConfigError, XendConfig};
use xend::daemon;
use xend::settings::{Settings, SettingsError};

/// The default config file.
const DEFAULT_CONFIG: &str = "/etc/xen/xend-config.sxp";

fn config_path(cli: &Cli) -> Option<PathBuf> {
    if let Some(c) = &cli.config {
        return Some(c.clone());
    }
    if let Some(c) = std::env::var_os("XEND_CONFIG") {
        return Some(PathBuf::from(c));
    }
    Path::new(DEFAULT_CONFIG)
        .is_file()
        .then(|| PathBuf::from(DEFAULT_CONFIG))
}

/// Why xend cannot start with its config.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The settings it makes.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

fn load(path: Option<&Path>) -> Result<Settings, LoadError> {
    let cfg = match path {
        Some(p) => XendConfig::load(p)?,
        None => XendConfig::default(),
    };
    Ok(Settings::from_config(&cfg, path.map(Path::to_path_buf))?)
}

fn main() -> ExitCode {
    // Everything xend creates is private unless it says otherwise (set before
    // any thread starts; the VMMs inherit it).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    let path = config_path(&cli);
    let settings = match load(path.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xend: {e}");
            return ExitCode::from(2);
        }
    };
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("xend: {e}");
        ExitCode::FAILURE
    };
    match cli.command {
        Command::Foreground { detached } => {
            if detached {
                let _ = nix::unistd::setsid();
            }
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(&e),
            };
            match rt.block_on(daemon::run(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Start => start(&settings, path.as_deref()),
        Command::Stop => match daemon::stop(&settings) {
            Ok(Some(pid)) => {
                println!("xend stopped (pid {pid})");
                ExitCode::SUCCESS
            }
            Ok(None) => {
                println!("xend is not running");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Restart => match daemon::stop(&settings) {
            Ok(_) => start(&settings, path.as_deref()),
            Err(e) => fail(&e),
        },
        Command::Status => match daemon::running_pid(&settings) {
            Some(pid) if daemon::answers(&settings) => {
                println!("xend is running (pid {pid}) at {}", settings.base_url());
                ExitCode::SUCCESS
            }
            Some(pid) => {
                println!(
                    "xend (pid {pid}) is not answering at {}",
                    settings.base_url()
                );
                ExitCode::from(1)
            }
            None => {
                println!("xend is not running");
                ExitCode::from(3)
            }
        },
    }
}

fn start(settings: &Settings, config: Option<&Path>) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("xend: {e}");
            return ExitCode::FAILURE;
        }
    };
    match daemon::start(settings, &exe, config) {
        Ok(pid) => {
            println!("xend started (pid {pid}) at {}", settings.base_url());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xend: {e}");
            ExitCode::FAILURE
        }
    }
}
