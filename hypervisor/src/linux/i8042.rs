//! A minimal i8042 keyboard controller (as Firecracker's): enough for the
//! Linux driver to probe it, the reset line (`0xFE` to port 0x64) the
//! guest's reboot uses, and Ctrl-Alt-Del, which the host sends to ask for a
//! clean shutdown. A guest honours Ctrl-Alt-Del only with the i8042 and AT
//! keyboard drivers (`CONFIG_SERIO_I8042`, `CONFIG_KEYBOARD_ATKBD`) and an
//! init that acts on it (`ctrlaltdel` in inittab or systemd's
//! `ctrl-alt-del.target`).
use std::collections::VecDeque;
use std::sync::Mutex;

use super::serial::IrqLine;

/// Data port.
pub const DATA: u16 = 0x60;
/// Status (read) / command (write) port.
pub const COMMAND: u16 = 0x64;

const OBF: u8 = 0x01;
const SYS: u8 = 0x04;
const CMD: u8 = 0x08;
const KBD_INT: u8 = 0x01;
const BUF_MAX: usize = 16;

/// What a write asks of the VMM.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more.
    None,
    /// The guest pulsed the reset line.
    Reset,
}

struct State {
    status: u8,
    control: u8,
    cmd: u8,
    buf: VecDeque<u8>,
}

/// The controller.
pub struct I8042 {
    state: Mutex<State>,
    irq: IrqLine,
}

impl I8042 {
    /// A controller raising `irq` (IRQ 1) for keyboard data.
    pub fn new(irq: IrqLine) -> I8042 {
        I8042 {
            state: Mutex::new(State {
                status: SYS,
                control: KBD_INT,
                cmd: 0,
                buf: VecDeque::new(),
            }),
            irq,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(st: &mut State, byte: u8) {
        if st.buf.len() < BUF_MAX {
            st.buf.push_back(byte);
        }
        st.status |= OBF;
    }

    /// A guest read of `port`.
    pub fn read(&self, port: u16) -> u8 {
        let mut st = self.lock();
        match port {
            COMMAND => st.status,
            _ => {
                let b = st.buf.pop_front().unwrap_or(0);
                if st.buf.is_empty() {
                    st.status &= !OBF;
                }
                b
            }
        }
    }

    /// A guest write of `value` to `port`.
    pub fn write(&self, port: u16, value: u8) -> Action {
        let mut st = self.lock();
        if port == COMMAND {
            st.status |= CMD;
            st.cmd = 0;
            match value {
                0xfe => return Action::Reset,
                0x20 => {
                    let c = st.control;
                    Self::push(&mut st, c);
                }
                0x60 | 0xd1 | 0xd2 | 0xd3 | 0xd4 => st.cmd = value,
                0xaa => Self::push(&mut st, 0x55),
                0xa9 | 0xab => Self::push(&mut st, 0x00),
                0xca => {
                    let c = st.control;
                    Self::push(&mut st, c);
                }
                _ => {}
            }
            return Action::None;
        }
        st.status &= !CMD;
        match std::mem::take(&mut st.cmd) {
            0x60 => st.control = value,
            0xd2 => Self::push(&mut st, value),
            0xd1 => {
                // Output port: bit 0 low is the reset line.
                if value & 1 == 0 {
                    return Action::Reset;
                }
            }
            _ => {
                // A keyboard command: acknowledge it (reset also passes its test).
                Self::push(&mut st, 0xfa);
                if value == 0xff {
                    Self::push(&mut st, 0xaa);
                }
            }
        }
        Action::None
    }

    /// Press and release Ctrl-Alt-Del (scan code set 2, as Firecracker sends
    /// it) and raise the keyboard interrupt.
    pub fn ctrl_alt_del(&self) -> Result<(), kvm_ioctls::Error> {
        let raise = {
            let mut st = self.lock();
            for b in [
                0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14,
            ] {
                Self::push(&mut st, b);
            }
            st.control & KBD_INT != 0
        };
        if raise { self.irq.pulse() } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl() -> (kvm_ioctls::Kvm, I8042) {
        // An IrqLine needs a VM; these tests never raise it.
        let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm");
        let vm = std::sync::Arc::new(kvm.create_vm().expect("vm"));
        (kvm, I8042::new(IrqLine::new(vm, 1)))
    }

    #[test]
    fn reset_line_and_self_test() {
        if !crate::require_kvm() {
            return;
        }
        let (_k, c) = ctl();
        assert_eq!(c.write(COMMAND, 0xaa), Action::None);
        assert_eq!(c.read(COMMAND) & OBF, OBF);
        assert_eq!(c.read(DATA), 0x55);
        assert_eq!(c.read(COMMAND) & OBF, 0);
        assert_eq!(c.write(COMMAND, 0xfe), Action::Reset);
        assert_eq!(c.write(COMMAND, 0xd1), Action::None);
        assert_eq!(c.write(DATA, 0xfe), Action::Reset);
    }

    #[test]
    fn ctrl_alt_del_reaches_the_guest_as_set_2_scan_codes_with_irq_1() {
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
        // Ctrl, Alt, Del (extended) pressed, then released in reverse.
        assert_eq!(
            got,
            [
                0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14
            ]
        );
        // With the keyboard interrupt off, the bytes wait for a poll.
        assert_eq!(c.write(COMMAND, 0x60), Action::None);
        assert_eq!(c.write(DATA, 0), Action::None);
        c.ctrl_alt_del().expect("no IRQ to raise");
        assert_eq!(c.read(COMMAND) & OBF, OBF);
    }

    #[test]
    fn guest_cannot_grow_the_buffer() {
        if !crate::require_kvm() {
            return;
        }
        let (_k, c) = ctl();
        for _ in 0..10_000 {
            c.write(DATA, 0xf4);
        }
        let mut n = 0;
        while c.read(COMMAND) & OBF != 0 {
            c.read(DATA);
            n += 1;
        }
        assert_eq!(n, BUF_MAX);
    }
}
