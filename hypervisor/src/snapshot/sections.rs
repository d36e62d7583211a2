//! The extension point for device state: every device that has state worth
//! keeping registers itself on [`crate::domain::Domain::sections`] and gets a
//! named `DEV ` section in every image.
//!
//! A device implements [`DeviceState`] and calls
//! `dom.sections.register(Arc::new(dev))` when it is created (before the
//! vCPUs start). On save, [`DeviceState::save_state`] is called with every
//! vCPU paused; on restore, the section with the device's name is handed to
//! [`DeviceState::restore_state`], whether the device registers before or
//! after the image is loaded. A device that writes guest RAM from VMM threads
//! (not through the vCPUs) lists those ranges in
//! [`DeviceState::vmm_written`], because KVM's dirty log only sees guest
//! writes: live migration sends them again with the final round.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device whose state travels in images.
pub trait DeviceState: Send + Sync {
    /// Unique section name (e.g. `vbd/0`, `vif/1`).
    fn section_name(&self) -> String;
    /// The device's state, as bytes it can read back (called while paused).
    fn save_state(&self) -> Vec<u8>;
    /// Take back state saved by `save_state` (before the vCPUs start).
    fn restore_state(&self, data: &[u8]) -> Result<(), String>;
    /// Guest RAM ranges `(gpa, len)` the device may have written from VMM
    /// threads since the last call; sent again in the final migration round.
    fn vmm_written(&self) -> Vec<(u64, u64)> {
        Vec::new()
    }
}

/// The registered devices of one domain, and sections read from an image
/// that no device has claimed yet.
#[derive(Default)]
pub struct Sections {
    devices: Mutex<Vec<Arc<dyn DeviceState>>>,
    pending: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Sections {
    /// Register a device; if a restored image carried its section, the
    /// device's state is restored now.
    pub fn register(&self, dev: Arc<dyn DeviceState>) -> Result<(), String> {
        let name = dev.section_name();
        if let Some(data) = self.pending.lock().unwrap().remove(&name) {
            dev.restore_state(&data)
                .map_err(|e| format!("device {name}: {e}"))?;
        }
        self.devices.lock().unwrap().push(dev);
        Ok(())
    }

    /// Every registered device's `(name, state)`.
    pub fn save_all(&self) -> Vec<(String, Vec<u8>)> {
        self.devices
            .lock()
            .unwrap()
            .iter()
            .map(|d| (d.section_name(), d.save_state()))
            .collect()
    }

    /// Guest RAM the devices wrote from VMM threads.
    pub fn vmm_written(&self) -> Vec<(u64, u64)> {
        self.devices
            .lock()
            .unwrap()
            .iter()
            .flat_map(|d| d.vmm_written())
            .collect()
    }

    /// Hand restored sections to registered devices; keep the rest for
    /// devices that register later.
    pub fn restore(&self, sections: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let devices = self.devices.lock().unwrap().clone();
        let mut pending = self.pending.lock().unwrap();
        for (name, data) in sections {
            match devices.iter().find(|d| d.section_name() == name) {
                Some(d) => d
                    .restore_state(&data)
                    .map_err(|e| format!("device {name}: {e}"))?,
                None => {
                    pending.insert(name, data);
                }
            }
        }
        Ok(())
    }

    /// Names of restored sections no device has claimed.
    pub fn unclaimed(&self) -> Vec<String> {
        self.pending.lock().unwrap().keys().cloned().collect()
    }
}

/// Encode a `DEV ` record body.
pub fn encode(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + name.len() + data.len());
    b.extend_from_slice(&(name.len() as u16).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(data);
    b
}

/// Decode a `DEV ` record body into `(name, data)`.
pub fn decode(b: &[u8]) -> Result<(String, Vec<u8>), String> {
    if b.len() < 2 {
        return Err("shorter than its name length".into());
    }
    let n = u16::from_le_bytes([b[0], b[1]]) as usize;
    let name = b
        .get(2..2 + n)
        .ok_or_else(|| format!("name of {n} bytes runs past the record"))?;
    let name = std::str::from_utf8(name).map_err(|_| "the name is not UTF-8".to_string())?;
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    Ok((name.to_string(), b[2 + n..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Reg(Mutex<Vec<u8>>);
    impl DeviceState for Reg {
        fn section_name(&self) -> String {
            "test/0".into()
        }
        fn save_state(&self) -> Vec<u8> {
            self.0.lock().unwrap().clone()
        }
        fn restore_state(&self, data: &[u8]) -> Result<(), String> {
            *self.0.lock().unwrap() = data.to_vec();
            Ok(())
        }
    }

    #[test]
    fn sections_reach_devices_registered_before_or_after() {
        let saved = Sections::default();
        saved
            .register(Arc::new(Reg(Mutex::new(b"state".to_vec()))))
            .unwrap();
        let all = saved.save_all();
        let (name, data) = decode(&encode(&all[0].0, &all[0].1)).unwrap();
        assert_eq!((name.as_str(), data.as_slice()), ("test/0", &b"state"[..]));

        let later = Sections::default();
        later.restore(all.clone()).unwrap();
        assert_eq!(later.unclaimed(), vec!["test/0".to_string()]);
        let dev = Arc::new(Reg(Mutex::new(Vec::new())));
        later.register(dev.clone()).unwrap();
        assert_eq!(dev.save_state(), b"state");
        assert!(later.unclaimed().is_empty());

        let before = Sections::default();
        let dev = Arc::new(Reg(Mutex::new(Vec::new())));
        before.register(dev.clone()).unwrap();
        before.restore(all).unwrap();
        assert_eq!(dev.save_state(), b"state");
    }

    #[test]
    fn bad_device_records_are_errors() {
        assert!(decode(&[5, 0, b'a']).is_err());
        assert!(decode(&[0, 0]).is_err());
        assert!(decode(&[2, 0, 0xff, 0xfe]).is_err());
    }
}
