//! A minimal i8042 keyboard controller with a PS/2 keyboard behind it (in
//! the mould of Firecracker's): enough for Linux's i8042 and atkbd drivers
//! to probe it as they do on a PC, the reset line (`0xFE` to port 0x64) the
//! guest's reboot uses (`reboot=k`), and Ctrl-Alt-Del, which the host sends
//! to ask for a clean shutdown or reboot. There is no AUX (mouse) port.
//!
//! What Linux does at probe, and what it gets here:
//! - controller self-test (`0xAA`): `0x55`; the control register (CTR)
//!   read (`0x20`, twice until two reads agree) and written (`0x60`): it
//!   has no translation bit, so Linux drives the keyboard in raw scan code
//!   set 2, which is what Ctrl-Alt-Del is sent in; status bit 4 says the
//!   keyboard is not locked;
//! - AUX probe (`0xD3` loop-back, `0xA9` test), skipped with
//!   `i8042.noaux`: the loop-back is not answered (Linux waits 0.5 s for
//!   it) and the AUX test reports a stuck clock line, so Linux registers
//!   no AUX port;
//! - keyboard port test (`0xAB`): `0x00`; enable (`0xAE`);
//! - keyboard commands through port 0x60 (atkbd's probe and activation:
//!   reset `0xFF`, GETID `0xF2`, SETLEDS `0xED` and its mask, typematic
//!   `0xF3` and its rate, scan code set `0xF0` and the set, enable `0xF4`,
//!   disable `0xF5`):
//!   acknowledged (`0xFA`), with the reset's `0xAA`, the ID `0xAB 0x83` of
//!   an MF2 keyboard and set 2 when asked which set. A keyboard's replies
//!   reach the driver by IRQ 1, so every byte a keyboard sends raises it
//!   when the CTR enables it, and reading one byte while more are queued
//!   raises it again (Linux reads one byte per interrupt).
//!
//! Controller replies replace what is queued (so the reply is the next byte
//! read); the queue holds at most 16 bytes and whatever the guest writes,
//! the device neither grows nor panics.
//!
//! A guest honours Ctrl-Alt-Del only with the i8042 and AT keyboard drivers
//! and the VT keyboard handler (`CONFIG_SERIO_I8042`,
//! `CONFIG_KEYBOARD_ATKBD`, `CONFIG_VT`): the kernel then restarts at once,
//! or its init acts on it (`ctrlaltdel` in inittab, systemd's
//! `ctrl-alt-del.target`). README.md, "Linux guests", has the details.
use std::collections::VecDeque;
use std::sync::Mutex;

use super::serial::IrqLine;
use crate::log::log;

/// Data port.
pub const DATA: u16 = 0x60;
/// Status (read) / command (write) port.
pub const COMMAND: u16 = 0x64;

// Status register bits.
const OBF: u8 = 0x01;
const SYS: u8 = 0x04;
const CMD: u8 = 0x08;
const UNLOCKED: u8 = 0x10;

// Control register (CTR) bits.
const KBD_INT: u8 = 0x01;
const POST_OK: u8 = 0x04;
const KBD_DIS: u8 = 0x10;
const AUX_DIS: u8 = 0x20;

/// Bytes the controller queues at most (as Firecracker's).
pub const BUF_MAX: usize = 16;

/// Ctrl, Alt and Delete pressed, then released in reverse order, in scan
/// code set 2 (what a keyboard sends with translation off).
pub const CTRL_ALT_DEL: [u8; 11] = [
    0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14,
];

/// What a write asks of the VMM.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more.
    None,
    /// The guest pulsed the reset line.
    Reset,
}

/// Why Ctrl-Alt-Del could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum CtrlAltDelError {
    /// The guest has not read what is queued (e.g. the last Ctrl-Alt-Del).
    #[error("the guest has not read its keyboard input (no room for Ctrl-Alt-Del)")]
    BufferFull,
    /// Raising IRQ 1 failed.
    #[error("cannot raise the keyboard interrupt: {0}")]
    Irq(#[from] kvm_ioctls::Error),
}

/// The controller and keyboard state: plain data, no locking and no
/// interrupt line (the methods say when IRQ 1 should be raised), so it can
/// be tested alone and captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controller {
    status: u8,
    control: u8,
    output_port: u8,
    /// A controller command waiting for its data byte.
    cmd: Option<u8>,
    /// A keyboard command waiting for its parameter byte.
    kbd_cmd: Option<u8>,
    buf: VecDeque<u8>,
}

impl Default for Controller {
    fn default() -> Controller {
        Controller::new()
    }
}

impl Controller {
    /// After power-on: self-test passed, keyboard interrupt on, no
    /// translation, AUX port disabled, nothing queued.
    pub fn new() -> Controller {
        Controller {
            status: SYS | UNLOCKED,
            control: KBD_INT | POST_OK | AUX_DIS,
            // Reset line high (not in reset), A20 on.
            output_port: 0x03,
            cmd: None,
            kbd_cmd: None,
            buf: VecDeque::with_capacity(BUF_MAX),
        }
    }

    /// Bytes waiting for the guest.
    pub fn queued(&self) -> usize {
        self.buf.len()
    }

    /// Whether the keyboard interrupt (IRQ 1) is enabled in the CTR.
    pub fn kbd_irq_enabled(&self) -> bool {
        self.control & KBD_INT != 0
    }

    fn push(&mut self, byte: u8) {
        if self.buf.len() < BUF_MAX {
            self.buf.push_back(byte);
        }
        self.status |= OBF;
    }

    /// A controller reply: it is the next byte the guest reads.
    fn reply(&mut self, byte: u8) {
        self.buf.clear();
        self.push(byte);
    }

    /// Bytes from the keyboard; whether to raise IRQ 1.
    fn keyboard_sends(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            self.push(b);
        }
        self.kbd_irq_enabled()
    }

    /// A guest read of `port`: the byte, and whether to raise IRQ 1 again
    /// (more bytes are queued).
    pub fn read(&mut self, port: u16) -> (u8, bool) {
        if port == COMMAND {
            return (self.status, false);
        }
        let b = self.buf.pop_front().unwrap_or(0);
        if self.buf.is_empty() {
            self.status &= !OBF;
            (b, false)
        } else {
            (b, self.kbd_irq_enabled())
        }
    }

    /// A guest write of `value` to `port`: what it asks of the VMM, and
    /// whether to raise IRQ 1.
    pub fn write(&mut self, port: u16, value: u8) -> (Action, bool) {
        if port == COMMAND {
            self.status |= CMD;
            return (self.command(value), false);
        }
        self.status &= !CMD;
        match self.cmd.take() {
            Some(0x60) => {
                self.control = value;
                // The CTR's system flag shows in the status register.
                self.status = (self.status & !SYS) | (value & POST_OK);
                (Action::None, false)
            }
            Some(0xd1) => {
                self.output_port = value;
                // Bit 0 low is the reset line.
                let action = if value & 1 == 0 {
                    Action::Reset
                } else {
                    Action::None
                };
                (action, false)
            }
            // Write the keyboard output buffer: as if the keyboard sent it.
            Some(0xd2) => (Action::None, self.keyboard_sends(&[value])),
            // Loop-back through, or a write to, the AUX port: there is none.
            Some(_) => (Action::None, false),
            None => (Action::None, self.keyboard(value)),
        }
    }

    fn command(&mut self, value: u8) -> Action {
        self.cmd = None;
        match value {
            0x20 => self.reply(self.control),
            0x60 | 0xd1 | 0xd2 | 0xd3 | 0xd4 => self.cmd = Some(value),
            0xa7 => self.control |= AUX_DIS,
            0xa8 => self.control &= !AUX_DIS,
            // AUX interface test: clock line stuck high (nothing there).
            0xa9 => self.reply(0x02),
            0xaa => {
                self.status |= SYS;
                self.reply(0x55);
            }
            // Keyboard interface test: no error.
            0xab => self.reply(0x00),
            0xad => self.control |= KBD_DIS,
            0xae => self.control &= !KBD_DIS,
            0xc0 => self.reply(0x00),
            0xd0 => self.reply(self.output_port),
            // Pulse output lines low for a moment: line 0 is the reset.
            0xf0..=0xff if value & 1 == 0 => return Action::Reset,
            _ => {}
        }
        Action::None
    }

    /// A byte sent to the keyboard; whether to raise IRQ 1.
    fn keyboard(&mut self, value: u8) -> bool {
        const ACK: u8 = 0xfa;
        if let Some(cmd) = self.kbd_cmd.take() {
            // The parameter of SETLEDS, typematic or scan code set.
            return if cmd == 0xf0 && value == 0 {
                self.keyboard_sends(&[ACK, 0x02])
            } else {
                self.keyboard_sends(&[ACK])
            };
        }
        match value {
            0xed | 0xf0 | 0xf3 => {
                self.kbd_cmd = Some(value);
                self.keyboard_sends(&[ACK])
            }
            0xee => self.keyboard_sends(&[0xee]),
            0xf2 => self.keyboard_sends(&[ACK, 0xab, 0x83]),
            // Reset: acknowledged, then the self-test passed.
            0xff => self.keyboard_sends(&[ACK, 0xaa]),
            0xf4..=0xfe => self.keyboard_sends(&[ACK]),
            // Not a keyboard command: ask for it again.
            _ => self.keyboard_sends(&[0xfe]),
        }
    }

    /// Queue Ctrl-Alt-Del; whether to raise IRQ 1. Refused (nothing queued)
    /// when the whole sequence does not fit.
    pub fn ctrl_alt_del(&mut self) -> Result<bool, CtrlAltDelError> {
        if BUF_MAX - self.buf.len() < CTRL_ALT_DEL.len() {
            return Err(CtrlAltDelError::BufferFull);
        }
        Ok(self.keyboard_sends(&CTRL_ALT_DEL))
    }
}

/// The controller as the machine uses it: locked, with its IRQ line.
pub struct I8042 {
    state: Mutex<Controller>,
    irq: IrqLine,
}

impl I8042 {
    /// A controller raising `irq` (IRQ 1) for keyboard data.
    pub fn new(irq: IrqLine) -> I8042 {
        I8042 {
            state: Mutex::new(Controller::new()),
            irq,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Controller> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn raise(&self, raise: bool) {
        if raise && let Err(e) = self.irq.pulse() {
            log(&format!("i8042: cannot raise IRQ 1: {e}"));
        }
    }

    /// A guest read of `port`.
    pub fn read(&self, port: u16) -> u8 {
        let (b, raise) = self.lock().read(port);
        self.raise(raise);
        b
    }

    /// A guest write of `value` to `port`.
    pub fn write(&self, port: u16, value: u8) -> Action {
        let (action, raise) = self.lock().write(port, value);
        self.raise(raise);
        action
    }

    /// Press and release Ctrl-Alt-Del (scan code set 2, as Firecracker sends
    /// it) and raise the keyboard interrupt if the guest enabled it.
    pub fn ctrl_alt_del(&self) -> Result<(), CtrlAltDelError> {
        let raise = self.lock().ctrl_alt_del()?;
        if raise {
            self.irq.pulse()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drain the queue as Linux's interrupt handler does, one byte per
    /// interrupt: every byte but the first must come with a new IRQ.
    fn drain(c: &mut Controller) -> Vec<u8> {
        let mut got = Vec::new();
        while c.read(COMMAND).0 & OBF != 0 {
            let (b, again) = c.read(DATA);
            got.push(b);
            assert_eq!(again, c.queued() > 0, "IRQ again while bytes remain");
        }
        got
    }

    fn command(c: &mut Controller, cmd: u8) -> Action {
        let (a, irq) = c.write(COMMAND, cmd);
        assert!(!irq, "controller commands raise no IRQ");
        a
    }

    #[test]
    fn linux_probe_sequence() {
        let mut c = Controller::new();
        // i8042_controller_check: flush (nothing there).
        assert_eq!(c.read(COMMAND).0 & OBF, 0);
        // i8042_controller_selftest.
        command(&mut c, 0xaa);
        assert_eq!(drain(&mut c), [0x55]);
        // i8042_controller_init: the CTR read twice, stable; no XLATE bit,
        // so Linux goes direct (raw set 2); the keyboard is not locked.
        command(&mut c, 0x20);
        let ctr = drain(&mut c)[0];
        command(&mut c, 0x20);
        assert_eq!(drain(&mut c), [ctr]);
        assert_eq!(ctr & 0x40, 0, "no translation");
        assert_ne!(c.read(COMMAND).0 & UNLOCKED, 0, "keylock not active");
        let disabled = (ctr | KBD_DIS) & !KBD_INT;
        command(&mut c, 0x60);
        assert_eq!(c.write(DATA, disabled), (Action::None, false));
        command(&mut c, 0x20);
        assert_eq!(drain(&mut c), [disabled]);
        // i8042_check_aux: the loop-back goes unanswered, the AUX test
        // reports a stuck line: no AUX port.
        command(&mut c, 0xd3);
        assert_eq!(c.write(DATA, 0x5a), (Action::None, false));
        assert_eq!(c.read(COMMAND).0 & OBF, 0);
        command(&mut c, 0xa9);
        let aux = drain(&mut c)[0];
        assert!(aux != 0 && aux != 0xfa && aux != 0xff, "{aux:#x}");
        // Keyboard port test, then enable the port and its interrupt.
        command(&mut c, 0xab);
        assert_eq!(drain(&mut c), [0x00]);
        command(&mut c, 0xae);
        command(&mut c, 0x60);
        c.write(DATA, (disabled & !KBD_DIS) | KBD_INT);
        // atkbd: every reply arrives by IRQ 1.
        let kbd = |c: &mut Controller, byte: u8| {
            let (a, irq) = c.write(DATA, byte);
            assert_eq!(a, Action::None);
            assert!(irq, "keyboard reply to {byte:#x} without IRQ 1");
            drain(c)
        };
        assert_eq!(kbd(&mut c, 0xff), [0xfa, 0xaa], "reset");
        assert_eq!(kbd(&mut c, 0xf2), [0xfa, 0xab, 0x83], "GETID");
        assert_eq!(kbd(&mut c, 0xf5), [0xfa], "deactivate");
        assert_eq!(kbd(&mut c, 0xed), [0xfa], "SETLEDS");
        assert_eq!(kbd(&mut c, 0x00), [0xfa], "LED mask");
        assert_eq!(kbd(&mut c, 0xf3), [0xfa], "typematic");
        assert_eq!(kbd(&mut c, 0x00), [0xfa], "rate");
        assert_eq!(kbd(&mut c, 0xf0), [0xfa], "scan code set");
        assert_eq!(kbd(&mut c, 0x00), [0xfa, 0x02], "which set: 2");
        assert_eq!(kbd(&mut c, 0xf4), [0xfa], "enable");
        assert_eq!(kbd(&mut c, 0xee), [0xee], "echo");
        // With the keyboard interrupt off, replies wait for a poll.
        command(&mut c, 0x60);
        c.write(DATA, 0);
        assert_eq!(c.write(DATA, 0xf4), (Action::None, false));
        assert_eq!(drain(&mut c), [0xfa]);
    }

    #[test]
    fn reset_line() {
        let mut c = Controller::new();
        assert_eq!(command(&mut c, 0xfe), Action::Reset);
        // The output port: A20 on keeps the machine running; bit 0 low
        // resets it.
        command(&mut c, 0xd1);
        assert_eq!(c.write(DATA, 0xdf), (Action::None, false));
        command(&mut c, 0xd0);
        assert_eq!(drain(&mut c), [0xdf]);
        command(&mut c, 0xd1);
        assert_eq!(c.write(DATA, 0xde), (Action::Reset, false));
    }

    #[test]
    fn ctrl_alt_del_is_set_2_with_one_irq_per_byte() {
        let mut c = Controller::new();
        assert!(c.ctrl_alt_del().expect("room"), "IRQ 1 raised");
        assert_eq!(drain(&mut c), CTRL_ALT_DEL);
        // Unread, a second one does not fit: refused, nothing half-queued.
        c.ctrl_alt_del().expect("room");
        assert!(matches!(c.ctrl_alt_del(), Err(CtrlAltDelError::BufferFull)));
        assert_eq!(drain(&mut c), CTRL_ALT_DEL);
        // With the keyboard interrupt off, the bytes wait for a poll.
        command(&mut c, 0x60);
        c.write(DATA, 0);
        assert!(!c.ctrl_alt_del().expect("room"));
        assert_eq!(c.read(COMMAND).0 & OBF, OBF);
    }

    #[test]
    fn every_command_and_data_byte_is_safe() {
        // Every controller command followed by every data byte, every
        // keyboard command followed by every parameter: no panic, the queue
        // stays bounded, and only the reset line resets.
        for cmd in 0..=255u8 {
            for data in 0..=255u8 {
                let mut c = Controller::new();
                let a = c.write(COMMAND, cmd).0;
                let want = (0xf0..=0xff).contains(&cmd) && cmd & 1 == 0;
                assert_eq!(a == Action::Reset, want, "command {cmd:#x}");
                let a = c.write(DATA, data).0;
                let want = cmd == 0xd1 && data & 1 == 0;
                assert_eq!(a == Action::Reset, want, "{cmd:#x} then {data:#x}");
                assert!(c.queued() <= BUF_MAX);
                let mut k = Controller::new();
                assert_eq!(k.write(DATA, cmd).0, Action::None);
                assert_eq!(k.write(DATA, data).0, Action::None);
                assert!(k.queued() <= BUF_MAX);
                drain(&mut c);
                drain(&mut k);
            }
        }
        // A long pseudo-random mix of reads and writes on both ports.
        let mut c = Controller::new();
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let port = if x & 0x100 != 0 { COMMAND } else { DATA };
            if x & 0x200 != 0 {
                c.read(port);
            } else {
                c.write(port, x as u8);
            }
            if x & 0x3ff00 == 0 {
                let _ = c.ctrl_alt_del();
            }
            assert!(c.queued() <= BUF_MAX);
        }
    }

    #[test]
    fn guest_cannot_grow_the_buffer() {
        let mut c = Controller::new();
        for _ in 0..10_000 {
            c.write(DATA, 0xf2);
        }
        assert_eq!(drain(&mut c).len(), BUF_MAX);
    }

    #[test]
    fn ctrl_alt_del_raises_irq_1_on_a_real_irqchip() {
        if !crate::require_kvm() {
            return;
        }
        let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm");
        let vm = std::sync::Arc::new(kvm.create_vm().expect("vm"));
        vm.create_irq_chip().expect("irqchip");
        let c = I8042::new(IrqLine::new(vm, 1));
        c.ctrl_alt_del().expect("raise IRQ 1");
        let mut got = Vec::new();
        while c.read(COMMAND) & OBF != 0 {
            got.push(c.read(DATA));
        }
        assert_eq!(got, CTRL_ALT_DEL);
    }
}
