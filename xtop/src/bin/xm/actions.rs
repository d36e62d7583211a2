//! Commands that change things: create, console, shutdown/reboot, pinning, top.
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use console_client::{
    ConnectOptions, Console, EscapeKey, ExitReason, InteractiveOptions, PipeOptions,
};
use xend::client::ShutdownReason;

use crate::error::{Result, XmError};
use crate::{Xm, args, config, format};

/// How often `shutdown -w` looks at the domains again.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// `xm create [-c] [-n] [-p] CONFIG [VAR=VAL...]`.
pub async fn create(xm: &Xm, a: args::Create) -> Result<()> {
    let (path, text) = config::read(&a.config)?;
    let (parsed, text) = config::prepare(&path, &text, &a.vars)?;
    if a.dry_run {
        println!("{}", sxp::pretty(&parsed.to_sxp()));
        return Ok(());
    }
    let dom = if a.paused {
        xm.client.create_paused(&text).await?
    } else {
        xm.client.create(&text).await?
    };
    match dom.console_port {
        Some(port) => println!("Started domain {}, console on port {port}", dom.name),
        None => println!("Started domain {}", dom.name),
    }
    if a.console {
        let port = dom
            .console_port
            .ok_or_else(|| XmError::NoConsole(dom.name.clone()))?;
        attach(xm, port, EscapeKey::DEFAULT)?;
    }
    Ok(())
}

/// `xm console [-e ^X] DOM`.
pub async fn console(xm: &Xm, a: args::Console) -> Result<ExitCode> {
    let dom = xm.client.domain(&a.dom).await?;
    let port = dom
        .console_port
        .ok_or_else(|| XmError::NoConsole(dom.name.clone()))?;
    Ok(match attach(xm, port, a.escape)? {
        ExitReason::Signal(sig) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        _ => ExitCode::SUCCESS,
    })
}

/// Attaches this terminal (or, without one, standard input and output) to
/// the console on `port` of xend's host.
fn attach(xm: &Xm, port: u16, escape: EscapeKey) -> Result<ExitReason> {
    let opts = ConnectOptions {
        token: xm.token.clone(),
        tls: xm.client.console_tls().cloned(),
        ..ConnectOptions::default()
    };
    let mut console = Console::connect(&xm.host(), port, &opts)?;
    let reason = if std::io::stdin().is_terminal() {
        console.run_interactive(InteractiveOptions {
            escape,
            ..InteractiveOptions::default()
        })?
    } else {
        console.run_pipe(std::io::stdin(), std::io::stdout(), &PipeOptions::default())?
    };
    match reason {
        ExitReason::Refused { token_sent } => Err(XmError::ConsoleRefused(
            console_client::refusal::hint(token_sent),
        )),
        reason => Ok(reason),
    }
}

/// `xm shutdown [-w] [-a] [-H|-R] DOM` (and `xm reboot`).
pub async fn shutdown(xm: &Xm, a: args::Shutdown) -> Result<()> {
    let reason = if a.halt {
        ShutdownReason::Halt
    } else if a.reboot {
        ShutdownReason::Reboot
    } else {
        ShutdownReason::Poweroff
    };
    let targets = if a.all {
        xm.client
            .snapshot()
            .await?
            .domains
            .into_iter()
            .filter(|d| d.id != 0)
            .collect()
    } else {
        vec![
            xm.client
                .domain(a.dom.as_deref().unwrap_or_default())
                .await?,
        ]
    };
    for d in &targets {
        xm.client.shutdown(&d.id.to_string(), reason).await?;
    }
    if !a.wait {
        return Ok(());
    }
    for d in &targets {
        let id = d.id.to_string();
        loop {
            match xm.client.domain(&id).await {
                Err(xend::client::Error::Api { status: 404, .. }) => {
                    println!("Domain {} terminated", d.name);
                    break;
                }
                Err(e) => return Err(e.into()),
                Ok(now) if reason == ShutdownReason::Reboot && now.start_time != d.start_time => {
                    println!("Domain {} rebooted", d.name);
                    break;
                }
                Ok(_) => tokio::time::sleep(WAIT_POLL).await,
            }
        }
    }
    if a.all {
        println!("All domains terminated");
    }
    Ok(())
}

/// `xm vcpu-pin DOM VCPU|all CPUS|all`.
pub async fn vcpu_pin(xm: &Xm, a: args::VcpuPin) -> Result<()> {
    let cpus = format::parse_cpu_set(&a.cpus).map_err(|e| XmError::Usage(e.to_string()))?;
    let vcpus: Vec<u32> = if a.vcpu == "all" {
        let d = xm.client.domain(&a.dom).await?;
        (0..d.vcpus.max(1)).collect()
    } else {
        vec![a.vcpu.parse().map_err(|_| {
            XmError::Usage(format!(
                "invalid vCPU '{}': expected a vCPU number or all",
                a.vcpu
            ))
        })?]
    };
    for v in vcpus {
        xm.client.pincpu(&a.dom, v, &cpus).await?;
    }
    Ok(())
}

/// `xm pincpu DOM CPU`: every vCPU of the domain on that CPU.
pub async fn pincpu(xm: &Xm, a: args::PinCpu) -> Result<()> {
    let d = xm.client.domain(&a.dom).await?;
    for v in 0..d.vcpus.max(1) {
        xm.client.pincpu(&a.dom, v, &[a.cpu]).await?;
    }
    Ok(())
}

/// `xm top [ARGS...]`: runs the `xtop` installed next to `xm`, pointed at the
/// same xend (through `$XEND_URL` and `$XEND_TOKEN`).
pub fn top(xm: &Xm, rest: &[String]) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|source| XmError::Exec {
        path: "xm".into(),
        source,
    })?;
    let path = exe.with_file_name("xtop");
    let mut cmd = std::process::Command::new(&path);
    cmd.args(rest).env(xend::client::URL_ENV, xm.client.url());
    if let Some(token) = &xm.token {
        cmd.env(xend::client::TOKEN_ENV, token);
    }
    // exec only returns on failure.
    let source = cmd.exec();
    Err(XmError::Exec { path, source })
}
