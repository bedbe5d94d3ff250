//! Detectors about *where from*: a new device on an established account, two devices in use at once (the owner
//! works while a renter scrapes, T1; a request without a device id counts as a device of its own), and one device
//! serving many accounts (a fraud ring's machine). Network addresses are not scored: a courier's phone moves
//! between Wi-Fi and mobile networks all day.
use super::{short_hash, Event, Signal};
use serde::{Deserialize, Serialize};

/// `[detectors.device]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Run it.
    pub enabled: bool,
    /// Reads an account makes before a new device is news.
    pub warm_reads: u32,
    /// Points for a device the account has not used before.
    pub new_device_points: f64,
    /// Minutes within which two devices both in use count as concurrent.
    pub concurrent_minutes: i64,
    /// Points for switching back and forth between devices within that time.
    pub concurrent_points: f64,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            enabled: true,
            warm_reads: 50,
            new_device_points: 4.0,
            concurrent_minutes: 10,
            concurrent_points: 5.0,
        }
    }
}

const KNOWN: usize = 8;

/// Recently used devices, with when each was last seen.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Seen {
    items: Vec<(u64, i64)>,
    last: Option<u64>,
}

impl Seen {
    /// Records `key` at `at`; returns (was it known, when it was last seen, the previous event's key).
    fn note(&mut self, key: u64, at: i64) -> (bool, Option<i64>, Option<u64>) {
        let prev = self.last.replace(key);
        if let Some(item) = self.items.iter_mut().find(|(k, _)| *k == key) {
            let before = item.1;
            item.1 = item.1.max(at);
            return (true, Some(before), prev);
        }
        if self.items.len() >= KNOWN {
            // Forget the least recently used.
            if let Some(oldest) = (0..self.items.len()).min_by_key(|i| self.items[*i].1) {
                self.items.swap_remove(oldest);
            }
        }
        self.items.push((key, at));
        (false, None, prev)
    }

    fn last_seen(&self, key: u64) -> Option<i64> {
        self.items.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct DeviceState {
    reads: u32,
    devices: Seen,
    last_concurrent: Option<i64>,
}

impl DeviceConfig {
    pub(crate) fn observe(&self, st: &mut DeviceState, ev: &Event<'_>) -> Option<Signal> {
        if !self.enabled {
            return None;
        }
        let at = ev.at();
        st.reads = st.reads.saturating_add(1);
        let window = self.concurrent_minutes * 60_000;
        let device = ev.access.device.unwrap_or("(none)");
        let key = short_hash(device.as_bytes());
        let seen = &mut st.devices;
        let (known, before, prev) = seen.note(key, at);
        // Back to a device used minutes ago, while another was in use in between: two at once.
        if let (Some(prev), Some(before)) = (prev, before) {
            let prev_recent = seen.last_seen(prev).is_some_and(|t| at - t <= window);
            if prev != key
                && at - before <= window
                && prev_recent
                && st.last_concurrent.is_none_or(|t| at - t > window)
            {
                st.last_concurrent = Some(at);
                return Some(Signal {
                    detector: "device",
                    points: self.concurrent_points,
                    at,
                    evidence: format!(
                        "two devices in use within {} minutes (now {device})",
                        self.concurrent_minutes
                    ),
                });
            }
        }
        (!known && st.reads > self.warm_reads).then(|| Signal {
            detector: "device",
            points: self.new_device_points,
            at,
            evidence: format!("first read from device {device} after {} reads", st.reads),
        })
    }
}

/// `[detectors.shared_device]`: one device presenting many accounts' tokens within a day.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedDeviceConfig {
    /// Run it.
    pub enabled: bool,
    /// Accounts one device may serve in a day (a shared outlet terminal serves a shift's staff).
    pub max_accounts: usize,
    /// Points to each account beyond that.
    pub points: f64,
}

impl Default for SharedDeviceConfig {
    fn default() -> Self {
        SharedDeviceConfig {
            enabled: true,
            max_accounts: 6,
            points: 6.0,
        }
    }
}

/// Per device: the accounts seen on it and when.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct SharedDeviceState {
    accounts: Vec<(u64, i64)>,
    flagged: Vec<u64>,
}

/// The shared-device detector; its state is keyed by device, not by account.
pub(crate) struct SharedDevice;

impl SharedDevice {
    pub(crate) fn observe(
        cfg: &SharedDeviceConfig,
        st: &mut SharedDeviceState,
        ev: &Event<'_>,
    ) -> Option<Signal> {
        let device = ev.access.device?;
        if !cfg.enabled {
            return None;
        }
        let at = ev.at();
        let me = short_hash(ev.access.account.id.as_str().as_bytes());
        st.accounts.retain(|(_, t)| at - t <= 86_400_000);
        match st.accounts.iter_mut().find(|(a, _)| *a == me) {
            Some(entry) => entry.1 = entry.1.max(at),
            None => st.accounts.push((me, at)),
        }
        if st.accounts.len() <= cfg.max_accounts || st.flagged.contains(&me) {
            return None;
        }
        st.flagged.push(me);
        Some(Signal {
            detector: "shared_device",
            points: cfg.points,
            at,
            evidence: format!(
                "device {device} presented {} accounts' tokens within a day",
                st.accounts.len()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Event;
    use super::*;
    use wbg_core::{Role, View, WaybillStatus};

    #[test]
    fn new_device_after_warm_up_and_two_devices_at_once() {
        let cfg = DeviceConfig::default();
        let a = account("S001", Role::OutletStaff, "O001");
        let w = waybill(1, "O001", WaybillStatus::AtOutlet);
        let mut st = DeviceState::default();
        let mut at = 0;
        let mut read = |st: &mut DeviceState, dev: &str, ip: &str| {
            at += 30_000;
            let mut acc = access(&a, &w, Some(View::Masked), at);
            acc.device = Some(dev);
            acc.ip = Some(ip);
            cfg.observe(st, &Event::new(&acc, 0, 0.0))
        };
        for _ in 0..60 {
            assert!(read(&mut st, "phone-1", "10.0.0.7").is_none());
        }
        let s = read(&mut st, "laptop-9", "10.0.0.7").expect("new device");
        assert!(
            s.evidence.contains("first read from device"),
            "{}",
            s.evidence
        );
        // Back and forth between the two within minutes.
        let s = read(&mut st, "phone-1", "10.0.0.7").expect("concurrent");
        assert!(s.evidence.contains("two devices"), "{}", s.evidence);
        // Switching once for good (a new phone) is not concurrency.
        let mut st2 = DeviceState::default();
        for _ in 0..60 {
            read(&mut st2, "phone-1", "10.0.0.7");
        }
        assert!(
            read(&mut st2, "phone-2", "10.0.0.7").is_some(),
            "new device"
        );
        for _ in 0..20 {
            assert!(read(&mut st2, "phone-2", "10.0.0.7").is_none());
        }
    }

    #[test]
    fn shared_device_flags_each_extra_account_once() {
        let cfg = SharedDeviceConfig::default();
        let w = waybill(1, "O001", WaybillStatus::AtOutlet);
        let accounts: Vec<_> = (0..9)
            .map(|i| account(&format!("S{i:03}"), Role::OutletStaff, "O001"))
            .collect();
        let mut st = SharedDeviceState::default();
        let mut flagged = 0;
        for round in 0..2 {
            for (i, a) in accounts.iter().enumerate() {
                let mut acc = access(a, &w, Some(View::Masked), (round * 10 + i as i64) * 1000);
                acc.device = Some("pc-1");
                flagged += usize::from(
                    SharedDevice::observe(&cfg, &mut st, &Event::new(&acc, 0, 0.0)).is_some(),
                );
            }
        }
        assert_eq!(
            flagged, 9,
            "once past six accounts, every account on it, once each"
        );
    }
}
