//! The console UART: a 16550 (vm-superio) on COM1 (0x3f8, IRQ 4) whose
//! output feeds the domain console (history, client, log) and whose receive
//! FIFO takes console input.
use std::io::Write;
use std::sync::{Arc, Mutex, Weak};

use kvm_ioctls::VmFd;
use vm_superio::{Serial, Trigger};

use crate::domain::Domain;

/// Pulses one IOAPIC/PIC line (an edge on an ISA IRQ).
pub struct IrqLine {
    vm: Arc<VmFd>,
    gsi: u32,
}

impl IrqLine {
    /// The line `gsi` of `vm`.
    pub fn new(vm: Arc<VmFd>, gsi: u32) -> IrqLine {
        IrqLine { vm, gsi }
    }

    /// Raise an edge.
    pub fn pulse(&self) -> Result<(), kvm_ioctls::Error> {
        self.vm.set_irq_line(self.gsi, true)?;
        self.vm.set_irq_line(self.gsi, false)
    }
}

impl Trigger for IrqLine {
    type E = kvm_ioctls::Error;

    fn trigger(&self) -> Result<(), Self::E> {
        self.pulse()
    }
}

/// Where the UART's transmitted bytes go: the domain console.
pub struct ConsoleOut(pub Weak<Domain>);

impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(d) = self.0.upgrade() {
            d.console.push_output(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The UART and its lock.
pub struct Uart(Mutex<Serial<IrqLine, vm_superio::serial::NoEvents, ConsoleOut>>);

impl Uart {
    /// A UART raising `irq` and writing to `dom`'s console.
    pub fn new(irq: IrqLine, dom: Weak<Domain>) -> Uart {
        Uart(Mutex::new(Serial::new(irq, ConsoleOut(dom))))
    }

    /// A guest read of register `offset`.
    pub fn read(&self, offset: u8) -> u8 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read(offset)
    }

    /// A guest write of register `offset`.
    pub fn write(&self, offset: u8, value: u8) {
        // An error here is a failed interrupt injection; the byte is taken.
        let _ = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(offset, value);
    }

    /// Queue console input; returns how many bytes the FIFO took (0 when full).
    pub fn input(&self, data: &[u8]) -> usize {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = s.fifo_capacity();
        if room == 0 {
            return 0;
        }
        let n = data.len().min(room);
        match s.enqueue_raw_bytes(&data[..n]) {
            Ok(k) => k,
            Err(vm_superio::serial::Error::FullFifo) => 0,
            // Queued, but the interrupt could not be raised.
            Err(_) => n,
        }
    }
}
