//! The domain's run-state machine: what the toolstack asked for (running,
//! paused, a save or migration under way, ended) and what each vCPU is doing.
//!
//! Plain data and `std` only: no KVM, no threads, no locks. [`super::Domain`]
//! keeps one `RunMachine` under its mutex, applies a transition, then does the
//! side effects the transition calls for (kick vCPU threads, wake waiters,
//! send an event when [`RunMachine::take_report`] says the state changed).
//!
//! ```text
//!            pause                 begin_transfer
//!  Running ---------> Paused     Running|Paused ----------> Transferring
//!          <---------                                        |  pause: stays, paused
//!            unpause               end_transfer (failed) <---'  unpause: refused
//!                                  back to where it began        begin_transfer: refused
//!  any live state --finish--> Finished (shut down or crashed; nothing leaves it)
//! ```
use crate::control::proto::{Reason, RunState, VcpuState};

/// How the domain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    /// `Shutdown` or `Crashed`.
    pub state: RunState,
    /// The shutdown reason.
    pub reason: Option<Reason>,
    /// What went wrong, for a crash.
    pub crash: Option<String>,
}

/// What the toolstack (or the guest, by ending) made of the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// The vCPUs may run.
    Running,
    /// Stopped by the toolstack.
    Paused,
    /// A save or migration owns the domain: no unpause, no second transfer.
    Transferring {
        /// The transfer has paused the vCPUs.
        paused: bool,
        /// A failed transfer lets the domain run again (it ran when the
        /// transfer began); otherwise it stays paused.
        resume: bool,
    },
    /// Shut down or crashed; no transition leaves this state.
    Finished(Ending),
}

/// Why a transition was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The domain has ended (`Shutdown` or `Crashed`).
    #[error("the domain has ended")]
    Ended(RunState),
    /// A save or migration holds the domain paused.
    #[error("the domain is being saved or migrated; it cannot be unpaused now")]
    Transferring,
    /// Only one save or migration at a time.
    #[error("a save or migration of this domain is already under way")]
    TransferUnderWay,
}

/// What a vCPU thread does at its gate before `KVM_RUN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Enter the guest.
    Run,
    /// Wait (paused); ask again when woken.
    Park,
    /// Leave the loop: the domain has ended.
    Stop,
}

#[derive(Clone, Copy, Debug)]
struct Vcpu {
    state: VcpuState,
    kicked: bool,
}

/// The run state of one domain.
#[derive(Clone, Debug)]
pub struct RunMachine {
    control: Control,
    vcpus: Vec<Vcpu>,
    reported: Option<RunState>,
}

impl RunMachine {
    /// A running domain with `vcpus` vCPUs, each about to run.
    pub fn new(vcpus: usize) -> RunMachine {
        let v = Vcpu {
            state: VcpuState::Running,
            kicked: false,
        };
        RunMachine {
            control: Control::Running,
            vcpus: vec![v; vcpus],
            reported: None,
        }
    }

    /// The toolstack-level state.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// How the domain ended, once it has.
    pub fn ending(&self) -> Option<&Ending> {
        match &self.control {
            Control::Finished(e) => Some(e),
            _ => None,
        }
    }

    /// The domain has ended: vCPU threads leave their loops.
    pub fn stopped(&self) -> bool {
        matches!(self.control, Control::Finished(_))
    }

    /// vCPUs must not run now (paused, also by a transfer).
    pub fn paused(&self) -> bool {
        matches!(
            self.control,
            Control::Paused | Control::Transferring { paused: true, .. }
        )
    }

    /// The domain-level state: an ending, else paused, else running when any
    /// vCPU runs, else blocked.
    pub fn state(&self) -> RunState {
        if let Control::Finished(e) = &self.control {
            return e.state;
        }
        if self.paused() {
            return RunState::Paused;
        }
        if self.vcpus.iter().any(|v| v.state == VcpuState::Running) {
            RunState::Running
        } else {
            RunState::Blocked
        }
    }

    /// The state if it changed since the last call (the first call always
    /// reports).
    pub fn take_report(&mut self) -> Option<RunState> {
        let state = self.state();
        (self.reported != Some(state)).then(|| {
            self.reported = Some(state);
            state
        })
    }

    fn live(&self) -> Result<(), Refused> {
        match &self.control {
            Control::Finished(e) => Err(Refused::Ended(e.state)),
            _ => Ok(()),
        }
    }

    /// Stop the vCPUs (the caller kicks the running ones).
    pub fn pause(&mut self) -> Result<(), Refused> {
        self.live()?;
        self.control = match self.control {
            Control::Transferring { resume, .. } => Control::Transferring {
                paused: true,
                resume,
            },
            _ => Control::Paused,
        };
        Ok(())
    }

    /// Let the vCPUs run again; refused while a transfer holds the domain.
    pub fn unpause(&mut self) -> Result<(), Refused> {
        self.live()?;
        if matches!(self.control, Control::Transferring { .. }) {
            return Err(Refused::Transferring);
        }
        self.control = Control::Running;
        self.resume_vcpus();
        Ok(())
    }

    fn resume_vcpus(&mut self) {
        // Blocked vCPUs go back to sleeping; the rest mark themselves running.
        for v in &mut self.vcpus {
            if v.state == VcpuState::Paused {
                v.state = VcpuState::Running;
            }
        }
    }

    /// A save or migration takes the domain.
    pub fn begin_transfer(&mut self) -> Result<(), Refused> {
        self.live()?;
        self.control = match self.control {
            Control::Running => Control::Transferring {
                paused: false,
                resume: true,
            },
            Control::Paused => Control::Transferring {
                paused: true,
                resume: false,
            },
            _ => return Err(Refused::TransferUnderWay),
        };
        Ok(())
    }

    /// A transfer failed: back to running or paused, as it began. A domain
    /// that ended meanwhile stays ended.
    pub fn end_transfer(&mut self) {
        if let Control::Transferring { resume, .. } = self.control {
            if resume {
                self.control = Control::Running;
                self.resume_vcpus();
            } else {
                self.control = Control::Paused;
            }
        }
    }

    /// The guest shut down or crashed. The first ending wins: `false` if the
    /// domain had ended already.
    pub fn finish(&mut self, ending: Ending) -> bool {
        if self.stopped() {
            return false;
        }
        self.control = Control::Finished(ending);
        true
    }

    /// vCPU `index`'s gate before `KVM_RUN`; marks it running or paused.
    pub fn gate(&mut self, index: usize) -> Step {
        if self.stopped() {
            return Step::Stop;
        }
        if self.paused() {
            self.vcpus[index].state = VcpuState::Paused;
            return Step::Park;
        }
        self.vcpus[index].state = VcpuState::Running;
        Step::Run
    }

    /// Set vCPU `index`'s state (blocked, paused, offline) as its thread
    /// reports it; `true` if that changed it.
    pub fn set_vcpu(&mut self, index: usize, state: VcpuState) -> bool {
        let old = std::mem::replace(&mut self.vcpus[index].state, state);
        old != state
    }

    /// vCPU `index`'s state.
    pub fn vcpu(&self, index: usize) -> VcpuState {
        self.vcpus[index].state
    }

    /// Every vCPU's state, in order.
    pub fn vcpus(&self) -> impl Iterator<Item = VcpuState> + '_ {
        self.vcpus.iter().map(|v| v.state)
    }

    /// How many vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// Mark the vCPUs in `mask` (bit i = vCPU i, the first 64) as kicked
    /// out of a block.
    pub fn kick(&mut self, mask: u64) {
        for (i, v) in self.vcpus.iter_mut().enumerate().take(64) {
            if mask & (1 << i) != 0 {
                v.kicked = true;
            }
        }
    }

    /// Whether vCPU `index` was kicked since it last asked; clears it.
    pub fn take_kick(&mut self, index: usize) -> bool {
        std::mem::take(&mut self.vcpus[index].kicked)
    }

    /// Every vCPU thread has ended.
    pub fn all_offline(&self) -> bool {
        self.vcpus.iter().all(|v| v.state == VcpuState::Offline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crashed() -> Ending {
        Ending {
            state: RunState::Crashed,
            reason: Some(Reason::Crash),
            crash: Some("boom".into()),
        }
    }

    #[test]
    fn pause_and_unpause() {
        let mut m = RunMachine::new(2);
        assert_eq!(m.state(), RunState::Running);
        m.pause().unwrap();
        assert_eq!(m.state(), RunState::Paused);
        assert_eq!(m.gate(0), Step::Park);
        assert_eq!(m.vcpu(0), VcpuState::Paused);
        m.pause().unwrap();
        assert_eq!(m.control(), &Control::Paused);
        m.unpause().unwrap();
        assert_eq!(m.vcpu(0), VcpuState::Running, "paused vCPUs run again");
        assert_eq!(m.gate(1), Step::Run);
        assert_eq!(m.state(), RunState::Running);
    }

    #[test]
    fn blocked_when_no_vcpu_runs() {
        let mut m = RunMachine::new(2);
        m.set_vcpu(0, VcpuState::Blocked);
        assert_eq!(m.state(), RunState::Running);
        m.set_vcpu(1, VcpuState::Blocked);
        assert_eq!(m.state(), RunState::Blocked);
        m.pause().unwrap();
        m.unpause().unwrap();
        assert_eq!(m.vcpu(1), VcpuState::Blocked, "a blocked vCPU stays asleep");
    }

    #[test]
    fn a_transfer_refuses_unpause_and_a_second_transfer() {
        let mut m = RunMachine::new(1);
        m.begin_transfer().unwrap();
        assert_eq!(m.state(), RunState::Running, "live pre-copy runs the guest");
        assert_eq!(m.begin_transfer(), Err(Refused::TransferUnderWay));
        m.pause().unwrap();
        assert_eq!(m.state(), RunState::Paused);
        assert_eq!(m.unpause(), Err(Refused::Transferring));
        assert_eq!(m.begin_transfer(), Err(Refused::TransferUnderWay));
        assert_eq!(m.state(), RunState::Paused);
    }

    #[test]
    fn a_failed_transfer_goes_back_to_where_it_began() {
        let mut m = RunMachine::new(1);
        m.begin_transfer().unwrap();
        m.pause().unwrap();
        assert_eq!(m.gate(0), Step::Park);
        m.end_transfer();
        assert_eq!(m.control(), &Control::Running);
        assert_eq!(m.vcpu(0), VcpuState::Running);

        let mut m = RunMachine::new(1);
        m.pause().unwrap();
        m.begin_transfer().unwrap();
        assert_eq!(
            m.control(),
            &Control::Transferring {
                paused: true,
                resume: false
            }
        );
        m.end_transfer();
        assert_eq!(m.control(), &Control::Paused, "paused by the toolstack");
        m.unpause().unwrap();
    }

    #[test]
    fn finished_is_final_and_the_first_ending_wins() {
        let mut m = RunMachine::new(1);
        m.begin_transfer().unwrap();
        assert!(m.finish(crashed()));
        assert!(!m.finish(Ending {
            state: RunState::Shutdown,
            reason: Some(Reason::Poweroff),
            crash: None,
        }));
        m.end_transfer();
        assert_eq!(m.state(), RunState::Crashed);
        assert_eq!(m.ending(), Some(&crashed()));
        assert_eq!(m.gate(0), Step::Stop);
        assert_eq!(m.pause(), Err(Refused::Ended(RunState::Crashed)));
        assert_eq!(m.unpause(), Err(Refused::Ended(RunState::Crashed)));
        assert_eq!(m.begin_transfer(), Err(Refused::Ended(RunState::Crashed)));
    }

    #[test]
    fn changes_are_reported_once() {
        let mut m = RunMachine::new(1);
        assert_eq!(m.take_report(), Some(RunState::Running));
        assert_eq!(m.take_report(), None);
        m.pause().unwrap();
        assert_eq!(m.take_report(), Some(RunState::Paused));
        m.pause().unwrap();
        assert_eq!(m.take_report(), None);
    }

    #[test]
    fn kicks_are_taken_once_and_only_for_the_first_64() {
        let mut m = RunMachine::new(3);
        m.kick(0b101 | 1 << 63);
        assert!(m.take_kick(0));
        assert!(!m.take_kick(0));
        assert!(!m.take_kick(1));
        assert!(m.take_kick(2));
    }

    #[test]
    fn all_offline() {
        let mut m = RunMachine::new(2);
        m.set_vcpu(0, VcpuState::Offline);
        assert!(!m.all_offline());
        m.set_vcpu(1, VcpuState::Offline);
        assert!(m.all_offline());
    }
}
