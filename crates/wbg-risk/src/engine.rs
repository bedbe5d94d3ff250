//! The engine: keyed state per account, per device and per peer group; runs the detector pipeline over every
//! access, keeps two decaying scores per account, and maps them to actions (alert → masked → suspend), explaining
//! each alert with the signals, scores and evidence behind it.
use crate::config::{RiskConfig, ScoreConfig, Thresholds};
use crate::detect::{DetectorState, Event, SharedDevice, SharedDeviceState, Signal};
use crate::event::{AccessEvent, EventSink};
use crate::hook::{Access, RiskAction, RiskAlert, RiskHook, RiskVerdict};
use crate::rate::Bucket;
use crate::RiskError;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wbg_core::{AccountStatus, Role, View};

const SHARDS: usize = 16;
/// Signals kept per account to explain its next alert.
const EXPLAIN: usize = 12;

/// Where an account stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Nothing to act on.
    #[default]
    Normal,
    /// Alerted; reads go on as the policy decides.
    Alert,
    /// Views capped at masked.
    Masked,
    /// Suspended.
    Suspended,
}

impl Level {
    fn of(score: f64, t: &Thresholds) -> Level {
        if score >= t.suspend {
            Level::Suspended
        } else if score >= t.mask {
            Level::Masked
        } else if score >= t.alert {
            Level::Alert
        } else {
            Level::Normal
        }
    }
}

/// An account's standing, for operators and reports.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    /// Level.
    pub level: Level,
    /// Fast score, decayed to the last access.
    pub burst_score: f64,
    /// Slow score, decayed to the last access.
    pub drift_score: f64,
    /// The latest signals.
    pub signals: Vec<Signal>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AccountRisk {
    detectors: DetectorState,
    bucket: Bucket,
    burst: f64,
    drift: f64,
    last: Option<i64>,
    level: Level,
    recent: VecDeque<Signal>,
    peer_hourly: f64,
    /// When this engine suspended the account (the access that did it).
    #[serde(default)]
    suspended_at: Option<i64>,
}

impl AccountRisk {
    /// Starts afresh after a reinstatement; what was learned about the account's normal work stays.
    fn start_afresh(&mut self) {
        self.burst = 0.0;
        self.drift = 0.0;
        self.level = Level::Normal;
        self.recent.clear();
        self.suspended_at = None;
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Peer {
    mean: f64,
    hours: u32,
}

/// The engine's whole state, as [`Engine::restore`] reads it (maps as pairs: their keys are not all strings).
#[derive(Deserialize)]
struct Snapshot {
    version: u32,
    events: u64,
    accounts: Vec<(String, AccountRisk)>,
    devices: Vec<(u64, SharedDeviceState)>,
    peers: Vec<((Role, String), Peer)>,
}

/// The same, borrowed from the live engine, as [`Engine::snapshot`] writes it.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    events: u64,
    accounts: Vec<(&'a String, &'a AccountRisk)>,
    devices: Vec<(&'a u64, &'a SharedDeviceState)>,
    peers: Vec<(&'a (Role, String), &'a Peer)>,
}

const SNAPSHOT_VERSION: u32 = 1;

fn poisoned<T>(_: T) -> RiskError {
    RiskError::Snapshot("a state shard is poisoned".into())
}

#[derive(Serialize)]
struct Explanation<'a> {
    level: Level,
    burst_score: f64,
    drift_score: f64,
    burst_thresholds: &'a Thresholds,
    drift_thresholds: &'a Thresholds,
    signals: Vec<&'a Signal>,
}

/// The streaming risk engine. Cheap to consult inline: one shard lock, a few counters per detector.
pub struct Engine {
    cfg: RiskConfig,
    /// The score thresholds in force: `cfg.score` at start, replaced whole by [`Engine::set_score`] (a change an
    /// auditor backtested and applied), read once per judgement.
    score: arc_swap::ArcSwap<ScoreConfig>,
    accounts: Vec<Mutex<HashMap<String, AccountRisk>>>,
    devices: Vec<Mutex<HashMap<u64, SharedDeviceState>>>,
    peers: Mutex<HashMap<(Role, String), Peer>>,
    sink: Option<Arc<dyn EventSink>>,
    events: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("events", &self.events.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn shard_of(key: &[u8]) -> usize {
    (crate::detect::short_hash(key) % SHARDS as u64) as usize
}

fn decay(score: f64, elapsed_ms: i64, half_life_ms: f64) -> f64 {
    if elapsed_ms <= 0 {
        return score;
    }
    score * (-(elapsed_ms as f64) * std::f64::consts::LN_2 / half_life_ms).exp()
}

impl Engine {
    /// An engine with these settings and no state.
    pub fn new(cfg: RiskConfig) -> Engine {
        Engine {
            score: arc_swap::ArcSwap::from_pointee(cfg.score.clone()),
            cfg,
            accounts: (0..SHARDS).map(|_| Mutex::default()).collect(),
            devices: (0..SHARDS).map(|_| Mutex::default()).collect(),
            peers: Mutex::default(),
            sink: None,
            events: AtomicU64::new(0),
        }
    }

    /// The engine's state (every account's detectors and scores, shared devices, peer groups) as bytes, for a
    /// worker to restart from instead of replaying its whole stream. Holds identifiers, counts and hashes only.
    /// Every lock is taken, in the order `judge` takes them, for the time it takes to write.
    pub fn snapshot(&self) -> Result<Vec<u8>, RiskError> {
        let accounts = self
            .accounts
            .iter()
            .map(|s| s.lock().map_err(poisoned))
            .collect::<Result<Vec<_>, _>>()?;
        let devices = self
            .devices
            .iter()
            .map(|s| s.lock().map_err(poisoned))
            .collect::<Result<Vec<_>, _>>()?;
        let peers = self.peers.lock().map_err(poisoned)?;
        let snap = SnapshotRef {
            version: SNAPSHOT_VERSION,
            events: self.events.load(Ordering::Relaxed),
            accounts: accounts.iter().flat_map(|m| m.iter()).collect(),
            devices: devices.iter().flat_map(|m| m.iter()).collect(),
            peers: peers.iter().collect(),
        };
        serde_json::to_vec(&snap).map_err(|e| RiskError::Snapshot(e.into()))
    }

    /// Replaces the engine's state with a [`snapshot`](Engine::snapshot)'s (the settings stay this engine's).
    pub fn restore(&self, bytes: &[u8]) -> Result<(), RiskError> {
        let snap: Snapshot =
            serde_json::from_slice(bytes).map_err(|e| RiskError::Snapshot(e.into()))?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(RiskError::Snapshot(
                format!(
                    "snapshot version {} (this build reads {SNAPSHOT_VERSION})",
                    snap.version
                )
                .into(),
            ));
        }
        for shard in &self.accounts {
            shard.lock().map_err(poisoned)?.clear();
        }
        for shard in &self.devices {
            shard.lock().map_err(poisoned)?.clear();
        }
        for (id, st) in snap.accounts {
            self.accounts[shard_of(id.as_bytes())]
                .lock()
                .map_err(poisoned)?
                .insert(id, st);
        }
        for (key, st) in snap.devices {
            self.devices[(key % SHARDS as u64) as usize]
                .lock()
                .map_err(poisoned)?
                .insert(key, st);
        }
        *self.peers.lock().map_err(poisoned)? = snap.peers.into_iter().collect();
        self.events.store(snap.events, Ordering::Relaxed);
        Ok(())
    }

    /// Also publishes every assessed access to `sink` (other consumers, other nodes). Publishing never blocks.
    pub fn with_sink(mut self, sink: Arc<dyn EventSink>) -> Engine {
        self.sink = Some(sink);
        self
    }

    /// The settings as the engine was made with them; the score thresholds in force are [`Engine::score`].
    pub fn config(&self) -> &RiskConfig {
        &self.cfg
    }

    /// The score thresholds and half-lives in force.
    pub fn score(&self) -> ScoreConfig {
        (**self.score.load()).clone()
    }

    /// Puts `score` in force from the next judgement on (the accounts' scores carry over; an account already
    /// masked or suspended stays so until it falls under the new thresholds' rules); whether it differed from
    /// those in force. Refused when out of order.
    pub fn set_score(&self, score: ScoreConfig) -> Result<bool, RiskError> {
        score.check()?;
        if **self.score.load() == score {
            return Ok(false);
        }
        self.score.store(Arc::new(score));
        Ok(true)
    }

    /// Accesses assessed or observed so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Feeds an access that was decided elsewhere (another node, a replay) into the state; returns the verdict
    /// the engine would have given.
    pub fn observe(&self, ev: &AccessEvent) -> RiskVerdict {
        self.judge(&ev.as_access())
    }

    /// Where `account` stands now, if the engine has seen it.
    pub fn standing(&self, account: &str) -> Option<Standing> {
        let shard = self.accounts[shard_of(account.as_bytes())].lock().ok()?;
        let st = shard.get(account)?;
        Some(Standing {
            level: st.level,
            burst_score: st.burst,
            drift_score: st.drift,
            signals: st.recent.iter().cloned().collect(),
        })
    }

    fn peer_hour(&self, role: Role, outlet: &str, count: u32) -> f64 {
        let Ok(mut peers) = self.peers.lock() else {
            return 0.0;
        };
        let p = peers.entry((role, outlet.to_owned())).or_default();
        p.hours = p.hours.saturating_add(1);
        let alpha = (1.0 / f64::from(p.hours)).max(0.02);
        p.mean += alpha * (f64::from(count) - p.mean);
        p.mean
    }

    fn shared_device(&self, ev: &Event<'_>) -> Option<Signal> {
        let device = ev.access.device?;
        let key = crate::detect::short_hash(device.as_bytes());
        let mut shard = self.devices[(key % SHARDS as u64) as usize].lock().ok()?;
        SharedDevice::observe(
            &self.cfg.detectors.shared_device,
            shard.entry(key).or_default(),
            ev,
        )
    }

    fn judge(&self, a: &Access<'_>) -> RiskVerdict {
        self.events.fetch_add(1, Ordering::Relaxed);
        if a.policy_view == Some(View::Routing) {
            // Routing data holds nothing personal: an auditor tracing parcels is not a risk to contain.
            return RiskVerdict::allow();
        }
        let id = a.account.id.as_str();
        let Ok(mut shard) = self.accounts[shard_of(id.as_bytes())].lock() else {
            // Fail closed: a broken engine must not wave reads through.
            return RiskVerdict {
                action: RiskAction::Refuse,
                alert: None,
            };
        };
        let st = match shard.get_mut(id) {
            Some(st) => st,
            None => shard.entry(id.to_owned()).or_default(),
        };
        // An account this engine suspended that is active again was reinstated by an operator since (its status
        // changed after the suspension), on whichever node: start afresh, as `reinstated` does on the node that
        // took the reinstatement. A read that raced the suspension still carries the older status time.
        if st.level == Level::Suspended
            && a.account.status == AccountStatus::Active
            && st.suspended_at.is_some_and(|t| a.account.status_since > t)
        {
            st.start_afresh();
        }
        let ceiling = self.cfg.rate_limit.take(&mut st.bucket, a);
        if let Some(done) = st.detectors.roll_hour(a.at) {
            if let Some(outlet) = &a.account.outlet {
                st.peer_hourly = self.peer_hour(a.account.role, outlet.as_str(), done);
            }
        }
        let ev = Event::new(a, self.cfg.offset_ms(), st.peer_hourly).after(st.last);
        let mut signals = Vec::new();
        self.cfg.detectors.run(&mut st.detectors, &ev, &mut signals);
        signals.extend(self.shared_device(&ev));

        let s = self.score.load();
        let elapsed = st.last.map_or(0, |t| a.at - t);
        st.last = Some(st.last.map_or(a.at, |t| t.max(a.at)));
        st.burst = decay(st.burst, elapsed, s.burst_half_life_minutes * 60_000.0);
        st.drift = decay(st.drift, elapsed, s.drift_half_life_hours * 3_600_000.0);
        for sig in signals {
            st.burst += sig.points;
            st.drift += sig.points;
            if st.recent.len() == EXPLAIN {
                st.recent.pop_front();
            }
            st.recent.push_back(sig);
        }
        let now = Level::of(st.burst, &s.burst).max(Level::of(st.drift, &s.drift));
        let was = st.level;
        // Suspension is undone only by an administrator; a masked account stays masked until both scores have
        // fallen to half their mask thresholds, so that an attacker cannot pace reads just under the line.
        let level = match was {
            Level::Suspended => Level::Suspended,
            Level::Masked
                if now < Level::Masked
                    && (st.burst >= s.burst.mask / 2.0 || st.drift >= s.drift.mask / 2.0) =>
            {
                Level::Masked
            }
            _ => now,
        };
        st.level = level;
        if level == Level::Suspended && was < Level::Suspended {
            st.suspended_at = Some(a.at);
        }
        let alert = (level > was).then(|| self.explain(st, level));
        drop(shard);

        let action = match level {
            Level::Suspended if was < Level::Suspended => RiskAction::Suspend,
            Level::Suspended => RiskAction::Refuse,
            Level::Masked => RiskAction::Cap(View::Masked),
            Level::Normal | Level::Alert => RiskAction::Allow,
        };
        let action = match (action, ceiling.action) {
            (RiskAction::Allow | RiskAction::Cap(_), RiskAction::Refuse) => RiskAction::Refuse,
            (a, _) => a,
        };
        RiskVerdict {
            action,
            alert: alert.or(ceiling.alert),
        }
    }

    fn explain(&self, st: &AccountRisk, level: Level) -> RiskAlert {
        let s = self.score.load();
        let detail = serde_json::to_string(&Explanation {
            level,
            burst_score: (st.burst * 10.0).round() / 10.0,
            drift_score: (st.drift * 10.0).round() / 10.0,
            burst_thresholds: &s.burst,
            drift_thresholds: &s.drift,
            signals: st.recent.iter().collect(),
        })
        .unwrap_or_else(|e| format!("{{\"error\": \"explanation unavailable: {e}\"}}"));
        let (kind, severity) = match level {
            Level::Suspended => ("risk_suspend", "critical"),
            Level::Masked => ("risk_mask", "warning"),
            Level::Alert | Level::Normal => ("risk_alert", "warning"),
        };
        RiskAlert {
            kind: kind.into(),
            severity: severity.into(),
            detail,
        }
    }
}

impl RiskHook for Engine {
    fn assess(&self, access: &Access<'_>) -> RiskVerdict {
        let verdict = self.judge(access);
        if let Some(sink) = &self.sink {
            sink.publish(AccessEvent::from_access(access));
        }
        verdict
    }

    fn reinstated(&self, account: &str) {
        if let Ok(mut shard) = self.accounts[shard_of(account.as_bytes())].lock() {
            if let Some(st) = shard.get_mut(account) {
                st.start_afresh();
            }
        }
    }

    fn standing(&self, account: &str) -> Option<Standing> {
        Engine::standing(self, account)
    }

    fn settings(&self) -> Option<RiskConfig> {
        let mut cfg = self.cfg.clone();
        cfg.score = self.score();
        Some(cfg)
    }

    fn set_score(&self, score: &ScoreConfig) -> Result<bool, RiskError> {
        Engine::set_score(self, score.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testing::{account, waybill};
    use wbg_core::{Purpose, WaybillMeta, WaybillStatus};

    fn read(
        e: &Engine,
        a: &wbg_core::Account,
        w: &WaybillMeta,
        view: Option<View>,
        at: i64,
    ) -> RiskVerdict {
        e.assess(&Access {
            account: a,
            waybill_no: w.waybill_no.as_str(),
            waybill: Some(w),
            purpose: Purpose::Delivery,
            policy_view: view,
            ticket: None,
            at,
            device: Some("phone-1"),
            ip: Some("10.0.0.1"),
        })
    }

    #[test]
    fn a_courier_on_their_round_is_left_alone() {
        let e = Engine::new(RiskConfig::default());
        let c = account("C001", Role::Courier, "O001");
        // Seven days of 300 deliveries, each opened in full once or twice, between 08:00 and 18:00 local.
        let mut no = 0;
        for day in 0..7i64 {
            for i in 0..300i64 {
                no += 1;
                let mut w = waybill(no, "O001", WaybillStatus::OutForDelivery);
                w.courier = Some(c.id.clone());
                let at = day * 86_400_000 + i * 115_000 + (i % 7) * 9_000;
                for again in 0..(1 + i % 2) {
                    let v = read(&e, &c, &w, Some(View::Full), at + again * 30_000);
                    assert_eq!(v.action, RiskAction::Allow, "day {day} read {i}");
                }
            }
        }
        let s = e.standing("C001").unwrap();
        assert_eq!(s.level, Level::Normal, "{s:?}");
    }

    #[test]
    fn staff_handling_a_busy_outlets_exceptions_are_left_alone() {
        // A 6,000-parcel outlet's share of exceptions: 40 a day in full for a week, each a parcel registered as an
        // exception at the staff member's own outlet; the same reads of parcels without one are not the job.
        let e = Engine::new(RiskConfig::default());
        let s = account("S001", Role::OutletStaff, "O001");
        let mut no = 0;
        for day in 0..7i64 {
            for i in 0..40i64 {
                no += 1;
                let w = waybill(no * 13, "O001", WaybillStatus::Exception);
                let at = day * 86_400_000 + 8 * 3_600_000 + i * 700_000 + (i % 5) * 61_000;
                assert_eq!(
                    read(&e, &s, &w, Some(View::Full), at).action,
                    RiskAction::Allow,
                    "day {day} read {i}"
                );
            }
        }
        assert_eq!(e.standing("S001").unwrap().level, Level::Normal);
        let t = account("S002", Role::OutletStaff, "O001");
        let contained = (0..40i64).any(|i| {
            let w = waybill(90_000 + i as u64 * 13, "O001", WaybillStatus::AtOutlet);
            read(&e, &t, &w, Some(View::Full), 8 * 3_600_000 + i * 700_000).action
                != RiskAction::Allow
        });
        assert!(
            contained,
            "full reads of parcels with no exception are counted"
        );
    }

    #[test]
    fn probing_other_outlets_ends_in_suspension_and_refusal() {
        let e = Engine::new(RiskConfig::default());
        let s = account("S001", Role::OutletStaff, "O001");
        let mut actions = Vec::new();
        let mut alerts = Vec::new();
        for i in 0..40i64 {
            let w = waybill(1_000 + i as u64 * 37, "O042", WaybillStatus::AtOutlet);
            let v = read(&e, &s, &w, None, i * 3_000);
            actions.push(v.action);
            alerts.extend(v.alert);
        }
        let first = actions
            .iter()
            .position(|a| *a == RiskAction::Suspend)
            .expect("suspended");
        assert!(first < 25, "suspended after {first} probes");
        assert!(actions[first + 1..]
            .iter()
            .all(|a| *a == RiskAction::Refuse));
        let last = alerts.last().unwrap();
        assert_eq!(last.kind, "risk_suspend");
        let detail: serde_json::Value = serde_json::from_str(&last.detail).unwrap();
        assert!(detail["burst_score"].as_f64().unwrap() >= 50.0);
        assert_eq!(detail["signals"][0]["detector"], "out_of_scope");
        assert!(
            alerts.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>()
                == ["risk_alert", "risk_mask", "risk_suspend"],
            "one alert per level"
        );
        e.reinstated("S001");
        assert_eq!(e.standing("S001").unwrap().level, Level::Normal);
        let w = waybill(1, "O001", WaybillStatus::AtOutlet);
        assert_eq!(
            read(&e, &s, &w, Some(View::Masked), 200_000).action,
            RiskAction::Allow
        );
    }

    #[test]
    fn routing_views_are_not_scored() {
        let e = Engine::new(RiskConfig::default());
        let auditor = account("A001", Role::Auditor, "O001");
        for i in 0..5_000i64 {
            let w = waybill(i as u64, "O042", WaybillStatus::AtOutlet);
            assert_eq!(
                read(&e, &auditor, &w, Some(View::Routing), i).action,
                RiskAction::Allow
            );
        }
        assert!(e.standing("A001").is_none());
    }

    #[test]
    fn bulk_reads_are_capped_to_masked_within_fifty_records() {
        let e = Engine::new(RiskConfig::default());
        let s = account("S002", Role::OutletStaff, "O001");
        let mut full_granted = 0;
        for i in 0..200i64 {
            // A human pace (one every 40-70 s), distinct customers, all within the account's own outlet.
            let w = waybill(50_000 + i as u64 * 7_919, "O001", WaybillStatus::AtOutlet);
            let v = read(&e, &s, &w, Some(View::Full), i * 55_000 + (i % 4) * 7_000);
            if v.action == RiskAction::Allow {
                full_granted += 1;
            }
        }
        assert!(
            full_granted <= 50,
            "{full_granted} full records before containment"
        );
        assert!(e.standing("S002").unwrap().level >= Level::Masked);
    }

    #[test]
    fn an_engine_restored_from_a_snapshot_goes_on_as_the_original() {
        let (a, b) = (
            Engine::new(RiskConfig::default()),
            Engine::new(RiskConfig::default()),
        );
        let courier = account("C001", Role::Courier, "O001");
        let staff = account("S002", Role::OutletStaff, "O001");
        // A courier on its round and a staff account turning into a scraper on two devices, over two days.
        let stream: Vec<(usize, u64, Option<View>, i64, &str)> = (0..2_000u64)
            .map(|i| {
                let at = (i as i64) * 40_000 + 8 * 3_600_000;
                if i % 3 == 0 {
                    (0, i, Some(View::Full), at, "phone-1")
                } else if i < 1_200 {
                    (1, i, Some(View::Masked), at, "desk-2")
                } else {
                    (
                        1,
                        5_000 + i,
                        None,
                        at,
                        if i % 2 == 0 { "desk-2" } else { "tool-9" },
                    )
                }
            })
            .collect();
        let feed =
            |e: &Engine, part: &[(usize, u64, Option<View>, i64, &str)]| -> Vec<RiskAction> {
                part.iter()
                    .map(|&(who, no, view, at, device)| {
                        let acct = if who == 0 { &courier } else { &staff };
                        let mut w = waybill(no, "O001", WaybillStatus::OutForDelivery);
                        w.courier = Some(courier.id.clone());
                        e.assess(&Access {
                            account: acct,
                            waybill_no: w.waybill_no.as_str(),
                            waybill: Some(&w),
                            purpose: Purpose::Delivery,
                            policy_view: view,
                            ticket: None,
                            at,
                            device: Some(device),
                            ip: Some("10.0.0.1"),
                        })
                        .action
                    })
                    .collect()
            };
        let (first, rest) = stream.split_at(1_000);
        feed(&a, first);
        let bytes = a.snapshot().unwrap();
        b.restore(&bytes).unwrap();
        assert_eq!(b.events(), a.events());
        assert_eq!(feed(&a, rest), feed(&b, rest), "the same verdicts");
        // (What the restore carried matters: an engine that starts from nothing ends elsewhere.)
        let fresh = Engine::new(RiskConfig::default());
        feed(&fresh, rest);
        let drift = |e: &Engine| e.standing("S002").unwrap().drift_score;
        assert!((drift(&fresh) - drift(&a)).abs() > 1e-6);
        for id in ["C001", "S002"] {
            let (x, y) = (a.standing(id).unwrap(), b.standing(id).unwrap());
            assert_eq!(x.level, y.level, "{id}");
            assert!((x.burst_score - y.burst_score).abs() < 1e-9, "{id}");
            assert!((x.drift_score - y.drift_score).abs() < 1e-9, "{id}");
            assert_eq!(x.signals, y.signals, "{id}");
        }
        assert!(a.standing("S002").unwrap().level >= Level::Masked);
        // A restore replaces what was there, and garbage or another version is refused.
        let c = Engine::new(RiskConfig::default());
        feed(&c, &stream[..10]);
        c.restore(&bytes).unwrap();
        assert_eq!(c.events(), 1_000);
        assert!(c.restore(b"{}").is_err());
        let newer = String::from_utf8(bytes).unwrap().replacen(
            &format!("\"version\":{SNAPSHOT_VERSION}"),
            "\"version\":99",
            1,
        );
        assert!(
            matches!(c.restore(newer.as_bytes()), Err(RiskError::Snapshot(m)) if m.to_string().contains("99"))
        );
    }

    #[test]
    fn every_detector_name_survives_a_snapshot() {
        for name in crate::detect::DETECTORS {
            let s = Signal {
                detector: name,
                points: 1.0,
                at: 0,
                evidence: String::new(),
            };
            let back: Signal = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
            assert_eq!(back, s);
        }
        let bad = r#"{"detector":"nope","points":1.0,"at":0,"evidence":""}"#;
        assert!(serde_json::from_str::<Signal>(bad).is_err());
    }

    #[test]
    fn an_account_reinstated_through_another_node_starts_afresh_here() {
        let e = Engine::new(RiskConfig::default());
        let mut staff = account("S002", Role::OutletStaff, "O001");
        // Probing other outlets until this engine suspends the account.
        let mut at = 0;
        let mut suspended_at = None;
        for no in 0..200 {
            at += 1_000;
            let w = waybill(no, "O777", WaybillStatus::AtOutlet);
            let v = read(&e, &staff, &w, None, at);
            if v.action == RiskAction::Suspend {
                suspended_at = Some(at);
                break;
            }
        }
        let suspended_at = suspended_at.expect("the probe is suspended");
        let own = waybill(9_999, "O001", WaybillStatus::AtOutlet);
        // A read that raced the suspension (its account snapshot older than it) is still refused.
        let v = read(&e, &staff, &own, Some(View::Masked), at + 10);
        assert_eq!(v.action, RiskAction::Refuse);
        // An operator reinstated it later, on another node: its status time is after the suspension.
        staff.status_since = suspended_at + 60_000;
        let v = read(&e, &staff, &own, Some(View::Masked), suspended_at + 61_000);
        assert_eq!(v.action, RiskAction::Allow);
        assert_eq!(e.standing("S002").unwrap().level, Level::Normal);
        // And the same probing suspends it again.
        let again = (0..200).any(|no| {
            let w = waybill(1_000 + no, "O777", WaybillStatus::AtOutlet);
            read(
                &e,
                &staff,
                &w,
                None,
                suspended_at + 62_000 + no as i64 * 1_000,
            )
            .action
                == RiskAction::Suspend
        });
        assert!(again);
    }
}
