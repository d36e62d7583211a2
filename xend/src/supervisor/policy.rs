//! What happens when a domain ends: restart modes, `on_*` actions, the
//! minimum restart time.
use hypervisor::control::proto::Reason;

use crate::config::{DomainConfig, ExitAction};

/// The decision for a domain that ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Destroy it for good.
    Destroy,
    /// Keep it in its final state for inspection.
    Preserve,
    /// Rebuild it (same name, id, console).
    Restart,
    /// It should restart, but its last restart was too recent: destroy it and
    /// log `VM NAME restarting too fast`.
    TooFast,
}

/// Why a domain ended, given what it reported and the shutdown xend last
/// asked of it (`requested`). A guest that can only stop by resetting
/// answers a requested poweroff or halt with a reset: Linux on the native
/// hypervisor hears the request as Ctrl-Alt-Del, which the kernel (and
/// systemd's `ctrl-alt-del.target`) turns into a reboot, and without ACPI
/// even its `poweroff` ends in a reset (`reboot=k`). That reset is the
/// poweroff that was asked for, so `on_poweroff` applies. A requested
/// reboot answered with a reset, and a reset nobody asked for, stay reboots.
pub fn effective_reason(reported: Reason, requested: Option<Reason>) -> Reason {
    match (reported, requested) {
        (Reason::Reboot, Some(Reason::Poweroff | Reason::Halt)) => Reason::Poweroff,
        (r, _) => r,
    }
}

/// Decide what to do with a domain that ended with `reason`. `halted` is set
/// when a halt was requested (it cancels any restart); `since_restart` is the
/// time since the last restart, if there was one.
pub fn decide(
    cfg: &DomainConfig,
    reason: Reason,
    halted: bool,
    since_restart: Option<f64>,
    min_restart_time: f64,
) -> Decision {
    let action = match reason {
        _ if halted => ExitAction::Destroy,
        Reason::Halt => ExitAction::Destroy,
        Reason::Poweroff => cfg.poweroff_action(),
        Reason::Reboot => cfg.reboot_action(),
        Reason::Crash => cfg.crash_action(),
    };
    match action {
        ExitAction::Destroy => Decision::Destroy,
        ExitAction::Preserve => Decision::Preserve,
        ExitAction::Restart => match since_restart {
            Some(t) if t < min_restart_time => Decision::TooFast,
            _ => Decision::Restart,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RestartMode;

    #[track_caller]
    fn check(
        restart: RestartMode,
        reason: Reason,
        halted: bool,
        since: Option<f64>,
        want: Decision,
    ) {
        let mut cfg = DomainConfig::new("a", 16);
        cfg.restart = restart;
        assert_eq!(decide(&cfg, reason, halted, since, 20.0), want);
    }

    #[test]
    fn restart_modes() {
        use Decision::*;
        use RestartMode::*;
        check(OnReboot, Reason::Reboot, false, None, Restart);
        check(OnReboot, Reason::Poweroff, false, None, Destroy);
        check(Always, Reason::Poweroff, false, None, Restart);
        check(Never, Reason::Reboot, false, None, Destroy);
        check(Always, Reason::Halt, false, None, Destroy);
        check(Always, Reason::Reboot, true, None, Destroy);
        check(OnReboot, Reason::Crash, false, None, Destroy);
        check(OnReboot, Reason::Reboot, false, Some(5.0), TooFast);
        check(OnReboot, Reason::Reboot, false, Some(25.0), Restart);
    }

    #[test]
    fn a_reset_answering_a_requested_poweroff_is_a_poweroff() {
        use Reason::*;
        let cases = [
            // (reported, requested, effective)
            (Reboot, Some(Poweroff), Poweroff),
            (Reboot, Some(Halt), Poweroff),
            (Reboot, Some(Reboot), Reboot),
            (Reboot, None, Reboot),
            (Poweroff, Some(Reboot), Poweroff),
            (Poweroff, None, Poweroff),
            (Halt, Some(Poweroff), Halt),
            (Crash, Some(Poweroff), Crash),
            (Crash, None, Crash),
        ];
        for (reported, requested, want) in cases {
            assert_eq!(
                effective_reason(reported, requested),
                want,
                "{reported:?} after {requested:?}"
            );
        }
        // So `on_poweroff` decides: restart='onreboot' lets it stay down,
        // and an explicit on_poweroff still wins.
        let mut cfg = DomainConfig::new("a", 16);
        cfg.restart = RestartMode::OnReboot;
        let ended = effective_reason(Reboot, Some(Poweroff));
        assert_eq!(decide(&cfg, ended, false, None, 20.0), Decision::Destroy);
        cfg.on_poweroff = Some(ExitAction::Preserve);
        assert_eq!(decide(&cfg, ended, false, None, 20.0), Decision::Preserve);
        let rebooted = effective_reason(Reboot, Some(Reboot));
        assert_eq!(decide(&cfg, rebooted, false, None, 20.0), Decision::Restart);
    }

    #[test]
    fn explicit_actions_win() {
        let mut cfg = DomainConfig::new("a", 16);
        cfg.restart = RestartMode::Never;
        cfg.on_crash = Some(ExitAction::Preserve);
        cfg.on_poweroff = Some(ExitAction::Restart);
        assert_eq!(
            decide(&cfg, Reason::Crash, false, None, 20.0),
            Decision::Preserve
        );
        assert_eq!(
            decide(&cfg, Reason::Poweroff, false, None, 20.0),
            Decision::Restart
        );
    }
}
