//! The device page: the vbds and vifs the host gave us (ABI v2).
//!
//! The host rewrites a slot with the page's generation odd (a seqlock) and
//! raises `Events::DEVICE_CHANGE`; we copy the slots at an even generation
//! and retry if it moved meanwhile. Reading the page costs no exit.

use core::sync::atomic::Ordering;

use guest_abi::{DeviceDesc, DeviceKind, DevicePage, MAX_DEVICES, layout};

use crate::hypercall;

fn page() -> &'static DevicePage {
    // SAFETY: the device page is identity-mapped guest RAM the host keeps for
    // the life of the domain; its generation is an atomic and the slots are
    // only read through volatile copies below, so a shared reference is sound.
    unsafe { &*(layout::DEVICES as *const DevicePage) }
}

/// The page's current generation (changes on every attach and detach).
pub fn generation() -> u32 {
    page().generation.load(Ordering::Acquire)
}

/// A consistent copy of every slot.
pub fn scan() -> [DeviceDesc; MAX_DEVICES] {
    let page = page();
    loop {
        let before = page.generation.load(Ordering::Acquire);
        if before % 2 == 1 {
            core::hint::spin_loop();
            continue;
        }
        // SAFETY: the slots are plain data inside the page (see `page`);
        // a torn copy is detected by the generation check and retried.
        let copy = unsafe { core::ptr::read_volatile(&raw const page.devices) };
        if page.generation.load(Ordering::Acquire) == before {
            return copy;
        }
    }
}

/// The slot's kind (a corrupt value reads as none).
pub fn kind(d: &DeviceDesc) -> DeviceKind {
    DeviceKind::from_u32(d.kind).unwrap_or(DeviceKind::None)
}

/// The device's name (`xvda`, `eth0`).
pub fn name(d: &DeviceDesc) -> &str {
    let len = d.name.iter().position(|&b| b == 0).unwrap_or(d.name.len());
    core::str::from_utf8(&d.name[..len]).unwrap_or("?")
}

/// Tell the host requests are waiting on device `slot` (one exit).
pub fn notify(slot: usize) {
    hypercall::device_notify(slot as u32);
}
