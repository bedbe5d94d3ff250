//! Public tracking without personal data: anyone may ask where a parcel is (`GET /track/{no}`), and is told its
//! status and its scans — what happened, where (the carrier's outlet) and when — never a name, phone, street or
//! courier. The lookups themselves are what scrapers abuse (seed 002: the consumer-facing lookup is where lists
//! are harvested, and the Express Market Measures ask carriers to block unauthorised queries by number), so every
//! source is metered: per address and per network prefix (/24, /48) a minute, and an address is **blocked** — and
//! an alert raised in the same queue as insiders' — when its lookups look like enumeration: many numbers that do
//! not exist, numbers close to ones it already asked for (sequential guessing), or more distinct numbers in an
//! hour than a household has parcels. Blocks are audited; lookups are counted in metrics (not audited one by one:
//! a carrier's public lookups would outnumber every other entry of the log).
//!
//! Counting is each node's own (a lookup must not wait on a shared counter), but what counting decides is
//! shared: a block and a number's lasting last-four lock are kept in the store (case files `track_block`,
//! `track_lock`, written with their audit entry), so they hold across a restart from the start and reach every
//! other node within its upkeep's next refresh ([`Guard::reload_tracking`]). Behind a balancer spreading one
//! source over N nodes, a source is blocked after at most N times the allowance, then everywhere.
use crate::{Guard, GuardError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use wbg_core::{Millis, WaybillNo};
use wbg_risk::RiskAlert;
use wbg_store::StoreError;

const MINUTE_MS: Millis = 60_000;
/// Case-file kind of the blocks in force (id `a:<address>` or `n:<network>`, body `{"until": ms}`).
const BLOCKS: &str = "track_block";
/// Case-file kind of numbers whose last-four check is locked for good (id: the number).
const LOCKS: &str = "track_lock";
/// Blocks taken in from the store at most (the newest): more at once is a flood, met by the per-node limits.
const SHARED_BLOCKS: usize = 10_000;
/// Lasting locks taken in from the store at most (the newest).
const SHARED_LOCKS: usize = 100_000;

/// A block as the store keeps it.
#[derive(Serialize, Deserialize)]
struct StoredBlock {
    until: Millis,
}
const HOUR_MS: Millis = 3_600_000;
/// Sources (or prefixes, or numbers) remembered before the stale ones are first swept: a scraper rotating
/// addresses must not grow the tracker's memory without end.
const SWEEP_AT: usize = 100_000;
/// Past this many, a sweep keeps only what the last minute holds and the blocks in force: under a flood of
/// addresses, memory is bounded and only the hour-long watches of the quiet ones are lost.
const FLOOD_AT: usize = 2_000_000;

/// A map of the tracker's, swept of stale entries once it reaches a threshold that then doubles what is left:
/// a lookup pays O(1) for sweeping on average however many sources stay alive (sweeping at a fixed size would
/// walk the whole map on every lookup once that many were alive).
struct Swept<K, V> {
    map: HashMap<K, V>,
    next: usize,
}

impl<K, V> Default for Swept<K, V> {
    fn default() -> Self {
        Swept {
            map: HashMap::new(),
            next: SWEEP_AT,
        }
    }
}

impl<K: std::hash::Hash + Eq, V> Swept<K, V> {
    /// Sweeps once the map has reached its threshold: `keep` decides, or `keep_in_flood` past [`FLOOD_AT`].
    fn sweep(
        &mut self,
        keep: impl FnMut(&K, &mut V) -> bool,
        keep_in_flood: impl FnMut(&K, &mut V) -> bool,
    ) {
        if self.map.len() < self.next {
            return;
        }
        self.map.retain(keep);
        if self.map.len() >= FLOOD_AT / 2 {
            self.map.retain(keep_in_flood);
        }
        self.next = (self.map.len() * 2).clamp(SWEEP_AT, FLOOD_AT);
    }
}

/// `[tracking]`: the public lookup and its limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    /// Serve `/track` (default true).
    pub enabled: bool,
    /// Lookups a minute from one address (default 30).
    pub per_address_per_minute: u32,
    /// Lookups a minute from one /24 (IPv4) or /48 (IPv6) network (default 600).
    pub per_prefix_per_minute: u32,
    /// Distinct numbers one address may look up in an hour (default 40).
    pub distinct_per_hour: u32,
    /// Lookups of numbers that do not exist, in an hour, past which an address is blocked (default 10).
    pub misses_per_hour: u32,
    /// Lookups of a number within 20 of one the address already asked for, in an hour (default 8).
    pub near_misses_per_hour: u32,
    /// How long a block lasts, in minutes (default 60).
    pub block_minutes: u32,
    /// Wrong last-four-digit checks one number may take in an hour, from anyone, before its check locks for the
    /// rest of the hour (default 5).
    pub last4_tries_per_hour: u32,
    /// Wrong last-four-digit checks one number may take in all, from anyone, before its check locks for good
    /// (on every node and across restarts: the lock is kept in the store; default 10).
    pub last4_tries_total: u32,
    /// Lookups naming no parcel from one /24 (or /48) network in an hour, past which the whole network is blocked
    /// (default 30): a scraper rotating through a network's addresses is one scraper.
    pub prefix_misses_per_hour: u32,
    /// Lookups from one network of a number close to one the network asked for before, in an hour (default 24).
    pub prefix_near_misses_per_hour: u32,
    /// Distinct numbers one network may look up in an hour (default 400).
    pub prefix_distinct_per_hour: u32,
    /// Lookups naming no parcel in a minute, from every source together (this node), at which — once they are
    /// also `distributed_miss_percent` of the minute's lookups — the distributed-enumeration alert is raised
    /// (default 120): a botnet asking each number once from another network passes every per-source watch.
    pub distributed_misses_per_minute: u32,
    /// The share of a minute's lookups (1-100) naming no parcel that, with `distributed_misses_per_minute`,
    /// raises that alert (default 30; customers mistype a few percent).
    pub distributed_miss_percent: u32,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            enabled: true,
            per_address_per_minute: 30,
            per_prefix_per_minute: 600,
            distinct_per_hour: 40,
            misses_per_hour: 10,
            near_misses_per_hour: 8,
            block_minutes: 60,
            last4_tries_per_hour: 5,
            last4_tries_total: 10,
            prefix_misses_per_hour: 30,
            prefix_near_misses_per_hour: 24,
            prefix_distinct_per_hour: 400,
            distributed_misses_per_minute: 120,
            distributed_miss_percent: 30,
        }
    }
}

impl TrackingConfig {
    /// Refuses limits that would block nothing or everything.
    pub fn check(&self) -> Result<(), String> {
        let all = [
            self.per_address_per_minute,
            self.per_prefix_per_minute,
            self.distinct_per_hour,
            self.misses_per_hour,
            self.near_misses_per_hour,
            self.block_minutes,
            self.last4_tries_per_hour,
            self.last4_tries_total,
            self.prefix_misses_per_hour,
            self.prefix_near_misses_per_hour,
            self.prefix_distinct_per_hour,
            self.distributed_misses_per_minute,
        ];
        if all.iter().any(|n| *n == 0 || *n > 1_000_000) {
            return Err("[tracking] limits must each be 1-1000000".into());
        }
        if !(1..=100).contains(&self.distributed_miss_percent) {
            return Err("[tracking] distributed_miss_percent must be 1-100".into());
        }
        Ok(())
    }
}

/// One scan, as the public sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrackedScan {
    /// When (ms since the epoch).
    pub at: Millis,
    /// When, ISO 8601 in China Standard Time.
    pub at_local: String,
    /// What happened (`picked_up`, `in_transit`, `at_outlet`, `out_for_delivery`, `signed`, …).
    pub event: String,
    /// The carrier's outlet where it happened.
    pub place: String,
}

/// What a caller who knows the last four digits of the recipient's phone is shown: the masked name and the
/// district, enough to tell their parcel from another, never the phone or the street.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrackedRecipient {
    /// The name as masked views show it (`王*`).
    pub name: String,
    /// The district.
    pub district: String,
}

/// A parcel, as the public sees it: no name, phone, street or courier.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tracking {
    /// The number asked for.
    pub waybill_no: String,
    /// Its status now.
    pub status: String,
    /// Its scans, oldest first.
    pub scans: Vec<TrackedScan>,
    /// The result of a last-four-digit check, when one was asked: `shown`, `wrong`, `locked` (too many wrong
    /// tries on this number this hour) or `unavailable` (retention has destroyed what it would show).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// The recipient, masked, after a right check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<TrackedRecipient>,
}

/// Why a lookup was not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackRefusal {
    /// Too many lookups from this address or network this minute; try again after the seconds given.
    Slow(u64),
    /// The address is blocked for enumeration until the time given (ms).
    Blocked(Millis),
}

/// One source's (an address's, or a network's) last hour of lookups, with the counts enumeration is judged by
/// kept as lookups come and go, so judging one costs the same however busy the source is.
#[derive(Default)]
struct Watch {
    /// (time, number, existed) in the last hour.
    hour: VecDeque<(Millis, String, bool)>,
    /// How many times each number was asked in it.
    asked: HashMap<String, u32>,
    /// The numbers' (letters, numeric tail) in it, counted, to find guesses close to earlier ones.
    tails: BTreeMap<(String, u64), u32>,
    /// Lookups in it of numbers that name no parcel.
    misses: usize,
    /// Times in it of lookups near a number asked for before.
    nears: VecDeque<Millis>,
    blocked_until: Option<Millis>,
}

/// How much enumeration a watched source may show in an hour.
struct Limits {
    misses: usize,
    nears: usize,
    distinct: usize,
}

impl Watch {
    fn key(no: &str) -> Option<(String, u64)> {
        numeric_tail(no).map(|n| (stem(no).to_owned(), n))
    }

    /// Takes in lookup `no` at `now` and says why the source now looks like enumeration, if it does (and then
    /// forgets its hour: the block is the verdict).
    fn observe(&mut self, no: &str, existed: bool, now: Millis, limits: &Limits) -> Option<String> {
        while let Some((t, old, found)) = self.hour.front() {
            if *t > now - HOUR_MS {
                break;
            }
            let (old, found) = (old.clone(), *found);
            self.hour.pop_front();
            self.misses -= usize::from(!found);
            if let Some(n) = self.asked.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    self.asked.remove(&old);
                }
            }
            if let Some(k) = Self::key(&old) {
                if let Some(n) = self.tails.get_mut(&k) {
                    *n -= 1;
                    if *n == 0 {
                        self.tails.remove(&k);
                    }
                }
            }
        }
        forget_before(&mut self.nears, now - HOUR_MS);
        // A guess near a number asked for before (same letters, numeric tail within 20, not the same number).
        let key = Self::key(no);
        let near = key.as_ref().is_some_and(|(st, n)| {
            let same = self.tails.get(&(st.clone(), *n)).copied().unwrap_or(0);
            let around: u32 = self
                .tails
                .range((st.clone(), n.saturating_sub(20))..=(st.clone(), n.saturating_add(20)))
                .map(|(_, c)| *c)
                .sum();
            around > same
        });
        if near {
            self.nears.push_back(now);
        }
        self.hour.push_back((now, no.to_owned(), existed));
        self.misses += usize::from(!existed);
        *self.asked.entry(no.to_owned()).or_default() += 1;
        if let Some(k) = key {
            *self.tails.entry(k).or_default() += 1;
        }
        let why = if self.misses > limits.misses {
            Some(format!(
                "{} of its {} lookups in the last hour named no parcel",
                self.misses,
                self.hour.len()
            ))
        } else if self.nears.len() > limits.nears {
            Some(format!(
                "{} lookups in the last hour were numbers close to ones it had asked for",
                self.nears.len()
            ))
        } else if self.asked.len() > limits.distinct {
            Some(format!(
                "{} distinct numbers in the last hour",
                self.asked.len()
            ))
        } else {
            None
        };
        if why.is_some() {
            *self = Watch::default();
        }
        why
    }

    /// Whether anything of the last hour, or a block, is still remembered at `now`.
    fn alive(&self, now: Millis) -> bool {
        self.blocked_until.is_some_and(|u| u > now)
            || self.hour.back().is_some_and(|(t, _, _)| *t > now - HOUR_MS)
    }
}

/// An address, or a network (/24, /48): its last minute of lookups and its watch.
#[derive(Default)]
struct Source {
    /// Lookup times in the last minute.
    minute: VecDeque<Millis>,
    watch: Watch,
}

/// Each source boxed: the map then moves 8 bytes an entry when it grows, not a `Source`'s ~200. A rotating
/// scraper (the bench: every lookup from an address of its own) grows it by 30,000 a second, and each doubling
/// wrote the whole table afresh under the lock (at 229,000 sources, some 100 MB): the lookups' p99 was 230–245 ms,
/// and is 10–11 ms boxed (embedded node, `BENCH_LOADS=track scripts/bench embedded`).
type Sources = Mutex<Swept<IpAddr, Box<Source>>>;

impl Source {
    /// Admits a lookup from source `key` of `sources` at `now` unless it is blocked or past `per_minute`.
    fn admit(
        sources: &Sources,
        key: IpAddr,
        per_minute: u32,
        now: Millis,
    ) -> Result<(), TrackRefusal> {
        let mut sources = sources.lock().unwrap_or_else(|p| p.into_inner());
        // Forget sources with nothing in their last hour and no block in force (in a flood: their last minute).
        sources.sweep(
            |_, s| s.watch.alive(now) || s.minute.back().is_some_and(|t| *t > now - MINUTE_MS),
            |_, s| {
                s.watch.blocked_until.is_some_and(|u| u > now)
                    || s.minute.back().is_some_and(|t| *t > now - MINUTE_MS)
            },
        );
        let s = sources.map.entry(key).or_default();
        if let Some(until) = s.watch.blocked_until {
            if now < until {
                return Err(TrackRefusal::Blocked(until));
            }
            s.watch.blocked_until = None;
        }
        forget_before(&mut s.minute, now - MINUTE_MS);
        if s.minute.len() >= per_minute as usize {
            let retry = s
                .minute
                .front()
                .map_or(1, |t| ((t + MINUTE_MS - now).max(1000) / 1000) as u64);
            return Err(TrackRefusal::Slow(retry));
        }
        s.minute.push_back(now);
        Ok(())
    }

    /// Takes lookup `no` into source `key`'s watch; blocks it until `until` and says why when it enumerates.
    fn judge(
        sources: &Sources,
        key: IpAddr,
        no: &str,
        existed: bool,
        now: Millis,
        limits: &Limits,
        until: Millis,
    ) -> Option<String> {
        let mut sources = sources.lock().unwrap_or_else(|p| p.into_inner());
        let s = sources.map.entry(key).or_default();
        let why = s.watch.observe(no, existed, now, limits);
        if why.is_some() {
            s.watch.blocked_until = Some(until);
        }
        why
    }
}

/// A number's wrong last-four checks: times in the last hour, and the count in all.
#[derive(Default)]
struct Tries {
    hour: VecDeque<Millis>,
    total: u32,
}

/// Every source's lookups together, per second of the last minute: what a botnet — one guess per network,
/// never twice from anywhere — cannot hide, its share of lookups naming no parcel.
struct Everyone {
    /// `(second, lookups, misses)`, indexed by the second modulo 60.
    seconds: [(i64, u32, u32); 60],
    /// No second alert before this (ms): one per `block_minutes` while it lasts.
    quiet_until: Millis,
}

impl Default for Everyone {
    fn default() -> Self {
        Everyone {
            seconds: [(-1, 0, 0); 60],
            quiet_until: 0,
        }
    }
}

impl Everyone {
    /// Counts a lookup at `now`; the minute's lookups and misses when they cross the limits and no alert was
    /// raised lately.
    fn observe(
        &mut self,
        now: Millis,
        missed: bool,
        misses_at: u32,
        percent: u32,
        quiet: Millis,
    ) -> Option<(u32, u32)> {
        let second = now.div_euclid(1000);
        let slot = &mut self.seconds[second.rem_euclid(60) as usize];
        if slot.0 != second {
            *slot = (second, 0, 0);
        }
        slot.1 += 1;
        slot.2 += u32::from(missed);
        if !missed || now < self.quiet_until {
            return None;
        }
        let (lookups, misses) = self
            .seconds
            .iter()
            .filter(|(s, ..)| *s > second - 60)
            .fold((0u32, 0u32), |(l, m), (_, sl, sm)| (l + sl, m + sm));
        if misses >= misses_at && u64::from(misses) * 100 >= u64::from(lookups) * u64::from(percent)
        {
            self.quiet_until = now + quiet;
            return Some((lookups, misses));
        }
        None
    }
}

/// The tracker's memory of sources (one node's; several nodes each meter what they see).
#[derive(Default)]
pub(crate) struct Tracker {
    sources: Sources,
    prefixes: Sources,
    /// Wrong last-four checks per number.
    tries: Mutex<Swept<String, Tries>>,
    everyone: Mutex<Everyone>,
}

/// Drops the times at or before `cutoff` from the front of `q` (times are pushed in order).
fn forget_before(q: &mut VecDeque<Millis>, cutoff: Millis) {
    while q.front().is_some_and(|t| *t <= cutoff) {
        q.pop_front();
    }
}

fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            IpAddr::from([o[0], o[1], o[2], 0])
        }
        IpAddr::V6(v) => {
            let mut s = v.segments();
            s[3..].iter_mut().for_each(|x| *x = 0);
            IpAddr::from(s)
        }
    }
}

/// The numeric tail of a waybill number (`YT1234567` → 1234567), for telling guesses near one another.
fn numeric_tail(no: &str) -> Option<u64> {
    let digits: String = no
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.get(digits.len().saturating_sub(15)..)?.parse().ok()
}

fn stem(no: &str) -> &str {
    no.trim_end_matches(|c: char| c.is_ascii_digit())
}

impl Guard {
    /// Takes the `[tracking]` settings.
    pub fn with_tracking(mut self, cfg: &TrackingConfig) -> Result<Guard, GuardError> {
        cfg.check().map_err(GuardError::Config)?;
        self.tracking = cfg.clone();
        self.reload_tracking()?;
        Ok(self)
    }

    /// A public lookup of `no` from `from`: the parcel's status and scans, `Ok(None)` when there is no such parcel,
    /// or a refusal when the source is too fast or blocked. Blocks the calling thread while the store works;
    /// servers use [`Guard::track_async`].
    pub fn track(
        &self,
        no: &str,
        from: IpAddr,
        last4: Option<&str>,
    ) -> Result<Result<Option<Tracking>, TrackRefusal>, GuardError> {
        futures_executor::block_on(self.track_async(no, from, last4))
    }

    /// [`Guard::track`] for async callers: the parcel and its scans are awaited from the store's read path. A
    /// last-four-digit check still works the store on the calling thread (it is rare, and audited): a server
    /// runs lookups that carry one on a blocking thread.
    pub async fn track_async(
        &self,
        no: &str,
        from: IpAddr,
        last4: Option<&str>,
    ) -> Result<Result<Option<Tracking>, TrackRefusal>, GuardError> {
        let now = self.clock.now();
        if let Err(refusal) = self.admit(from, now) {
            metrics::counter!("wbguard_track_refused_total", "why" => match refusal {
                TrackRefusal::Slow(_) => "rate",
                TrackRefusal::Blocked(_) => "blocked",
            })
            .increment(1);
            return Ok(Err(refusal));
        }
        let found = match WaybillNo::parse(no) {
            Ok(parsed) => self
                .store
                .tracking_snapshot(&parsed)
                .await?
                .map(|(meta, events)| (parsed, meta, events)),
            Err(_) => None,
        };
        let answer = match found {
            Some((parsed, meta, events)) => {
                let scans = events
                    .into_iter()
                    .map(|e| TrackedScan {
                        at: e.at,
                        at_local: wbg_core::when::display(e.at),
                        event: e.event.kind.as_str().to_owned(),
                        place: e.event.outlet.to_string(),
                    })
                    .collect();
                let (check, recipient) = match last4 {
                    Some(digits) => self.check_last4(&parsed, &meta, digits, from, now)?,
                    None => (None, None),
                };
                Some(Tracking {
                    waybill_no: parsed.to_string(),
                    status: meta.status.as_str().to_owned(),
                    scans,
                    check,
                    recipient,
                })
            }
            None => None,
        };
        metrics::counter!("wbguard_track_lookups_total", "found" => if answer.is_some() { "yes" } else { "no" })
            .increment(1);
        // A wrong check counts against the source like a number that names no parcel.
        let missed = answer
            .as_ref()
            .is_none_or(|t| t.check.as_deref() == Some("wrong"));
        self.judge(from, no, !missed, now)?;
        self.judge_everyone(missed, now)?;
        Ok(Ok(answer))
    }

    /// Checks `digits` against the recipient's phone through the blind index (the phone is never opened) and,
    /// when they are right, opens the name and region to show the masked name and the district — an audited
    /// personal-data read (`track_reveal`, account `public`). Wrong tries lock the number's check for the hour.
    fn check_last4(
        &self,
        no: &WaybillNo,
        meta: &wbg_core::WaybillMeta,
        digits: &str,
        from: IpAddr,
        now: Millis,
    ) -> Result<(Option<String>, Option<TrackedRecipient>), GuardError> {
        let key = no.to_string();
        {
            let mut tries = self.tracker.tries.lock().unwrap_or_else(|p| p.into_inner());
            // Numbers locked for good are kept; of the rest, those with nothing in the last hour go.
            let total = self.tracking.last4_tries_total;
            tries.sweep(
                |_, q| q.total >= total || q.hour.back().is_some_and(|t| *t > now - HOUR_MS),
                |_, q| q.total >= total || q.hour.back().is_some_and(|t| *t > now - MINUTE_MS),
            );
            let q = tries.map.entry(key.clone()).or_default();
            forget_before(&mut q.hour, now - HOUR_MS);
            if q.hour.len() >= self.tracking.last4_tries_per_hour as usize
                || q.total >= self.tracking.last4_tries_total
            {
                metrics::counter!("wbguard_track_checks_total", "result" => "locked").increment(1);
                return Ok((Some("locked".into()), None));
            }
        }
        let right = self
            .vault
            .blind()
            .track_last4(&key, digits)
            .map(|t| self.store.find_by_token_of(&t, 0))
            .transpose()?
            .is_some_and(|hits| hits.contains(no));
        if !right {
            let locks_now = {
                let mut tries = self.tracker.tries.lock().unwrap_or_else(|p| p.into_inner());
                let q = tries.map.entry(key.clone()).or_default();
                q.hour.push_back(now);
                q.total += 1;
                q.total == self.tracking.last4_tries_total
            };
            metrics::counter!("wbguard_track_checks_total", "result" => "wrong").increment(1);
            if locks_now {
                // Locked for good: kept in the store, so every node and a restart keep it.
                let mut e = self.entry(
                    "public",
                    &self.request_meta(None, Some(from.to_string())),
                    "track_lock",
                );
                e.decision = "deny".into();
                e.waybill = Some(key.clone());
                e.detail = Some(format!(
                    "last-four check locked for good after {} wrong tries",
                    self.tracking.last4_tries_total
                ));
                self.share(LOCKS, &key, "{}", e)?;
            }
            return Ok((Some("wrong".into()), None));
        }
        // Destroyed by retention, or kept by a legal hold from every read but its own once the parcel has arrived.
        if self.is_shredded(meta.bucket)
            || (meta.status.is_final() && self.holds.load().holds(no.as_str()))
        {
            return Ok((Some("unavailable".into()), None));
        }
        let Some((_, sealed)) = self.store.waybill(no)? else {
            return Ok((Some("unavailable".into()), None));
        };
        let mut e = self.entry(
            "public",
            &self.request_meta(None, Some(from.to_string())),
            "track_reveal",
        );
        e.waybill = Some(key);
        e.view = Some("masked".into());
        e.fields = vec!["recipient.name:masked".into(), "recipient.region".into()];
        e.detail = Some("public lookup; last four digits checked".into());
        // Audited before anything is opened, as every personal-data read is.
        self.store.append_audit(e)?;
        let opened: HashMap<wbg_vault::Field, String> = self
            .vault
            .open_fields(
                no,
                meta.bucket,
                &sealed,
                &[
                    wbg_vault::Field::RecipientName,
                    wbg_vault::Field::RecipientRegion,
                ],
            )?
            .into_iter()
            .collect();
        let name = opened
            .get(&wbg_vault::Field::RecipientName)
            .map(|n| wbg_vault::mask_name(n))
            .unwrap_or_default();
        let district = opened
            .get(&wbg_vault::Field::RecipientRegion)
            .and_then(|r| wbg_vault::split_region(r))
            .map(|(_, _, d)| d.to_owned())
            .unwrap_or_default();
        metrics::counter!("wbguard_track_checks_total", "result" => "shown").increment(1);
        Ok((
            Some("shown".into()),
            Some(TrackedRecipient { name, district }),
        ))
    }

    /// Meters a lookup from `ip` at `now` against the per-minute limits and any block in force (of the address
    /// or of its network).
    fn admit(&self, ip: IpAddr, now: Millis) -> Result<(), TrackRefusal> {
        let cfg = &self.tracking;
        Source::admit(&self.tracker.sources, ip, cfg.per_address_per_minute, now)?;
        Source::admit(
            &self.tracker.prefixes,
            prefix(ip),
            cfg.per_prefix_per_minute,
            now,
        )
    }

    /// Takes lookup `no` from `ip` into its address's and its network's last hour once it is answered; blocks
    /// either (audited, alerted) when its lookups look like enumeration.
    fn judge(&self, ip: IpAddr, no: &str, existed: bool, now: Millis) -> Result<(), GuardError> {
        let cfg = &self.tracking;
        let until = now + i64::from(cfg.block_minutes) * MINUTE_MS;
        let address = Limits {
            misses: cfg.misses_per_hour as usize,
            nears: cfg.near_misses_per_hour as usize,
            distinct: cfg.distinct_per_hour as usize,
        };
        if let Some(why) =
            Source::judge(&self.tracker.sources, ip, no, existed, now, &address, until)
        {
            let what = format!("address {ip}");
            self.blocked(&what, &format!("a:{ip}"), &ip.to_string(), &why, now, until)?;
        }
        let net = prefix(ip);
        let network = Limits {
            misses: cfg.prefix_misses_per_hour as usize,
            nears: cfg.prefix_near_misses_per_hour as usize,
            distinct: cfg.prefix_distinct_per_hour as usize,
        };
        if let Some(why) = Source::judge(
            &self.tracker.prefixes,
            net,
            no,
            existed,
            now,
            &network,
            until,
        ) {
            let bits = if net.is_ipv4() { 24 } else { 48 };
            let what = format!("network {net}/{bits}");
            self.blocked(
                &what,
                &format!("n:{net}"),
                &ip.to_string(),
                &why,
                now,
                until,
            )?;
        }
        Ok(())
    }

    /// Takes a lookup into every source's last minute; raises the distributed-enumeration alert (audited
    /// `track_distributed`) when lookups naming no parcel are both many and a large share: nothing to block, as
    /// each source asked once, but the analysts learn that the public lookup is being harvested — of routing
    /// data only, since it shows nothing else.
    fn judge_everyone(&self, missed: bool, now: Millis) -> Result<(), GuardError> {
        let cfg = &self.tracking;
        let crossed = self
            .tracker
            .everyone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(
                now,
                missed,
                cfg.distributed_misses_per_minute,
                cfg.distributed_miss_percent,
                i64::from(cfg.block_minutes) * MINUTE_MS,
            );
        let Some((lookups, misses)) = crossed else {
            return Ok(());
        };
        let why = format!(
            "{misses} of {lookups} public lookups in the last minute named no parcel, from every source together \
             (limits {} and {} %): enumeration spread over many networks",
            cfg.distributed_misses_per_minute, cfg.distributed_miss_percent
        );
        let mut e = self.entry(
            "public",
            &crate::RequestMeta::default(),
            "track_distributed",
        );
        e.decision = "deny".into();
        e.detail = Some(why.clone());
        self.store.append_audit(e)?;
        metrics::counter!("wbguard_track_distributed_alerts_total").increment(1);
        self.record_alert(
            "public",
            RiskAlert {
                kind: "public_enumeration_distributed".into(),
                severity: "warning".into(),
                detail: format!("public tracking: {why}"),
            },
            now,
        );
        Ok(())
    }

    /// Records a block of `what` (kept in the store as `key`, seen from `ip`) until `until`: audited
    /// `track_block`, counted, alerted `public_enumeration`.
    fn blocked(
        &self,
        what: &str,
        key: &str,
        ip: &str,
        why: &str,
        now: Millis,
        until: Millis,
    ) -> Result<(), GuardError> {
        let minutes = self.tracking.block_minutes;
        let mut e = self.entry(
            "public",
            &self.request_meta(None, Some(ip.to_owned())),
            "track_block",
        );
        e.decision = "deny".into();
        e.detail = Some(format!("{what} blocked for {minutes} minutes: {why}"));
        let body = serde_json::to_string(&StoredBlock { until })
            .map_err(|err| GuardError::internal_from("track block", err))?;
        self.share(BLOCKS, key, &body, e)?;
        metrics::counter!("wbguard_track_blocks_total").increment(1);
        self.record_alert(
            "public",
            RiskAlert {
                kind: "public_enumeration".into(),
                severity: "warning".into(),
                detail: format!("public tracking: {what} blocked for {minutes} minutes: {why}"),
            },
            now,
        );
        Ok(())
    }

    /// Writes the case file `kind`/`key` with its audit entry `e`, over whatever an earlier block (or another
    /// node, at the same moment) left there.
    fn share(
        &self,
        kind: &str,
        key: &str,
        body: &str,
        e: wbg_audit::AuditEntry,
    ) -> Result<(), GuardError> {
        for _ in 0..3 {
            let before = self.store.case(kind, key)?;
            match self
                .store
                .put_case(kind, key, body, before.as_deref(), e.clone())
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        // Another node keeps writing it: its record stands, and this decision is still on the log.
        self.store.append_audit(e)?;
        Ok(())
    }

    /// Takes in the blocks in force and the lasting last-four locks the store keeps — from this node before a
    /// restart, or from any other: at start, then from the server's upkeep.
    pub fn reload_tracking(&self) -> Result<(), GuardError> {
        let now = self.clock.now();
        for (key, body) in self.store.cases(BLOCKS, SHARED_BLOCKS)? {
            let Ok(b) = serde_json::from_str::<StoredBlock>(&body) else {
                continue;
            };
            let (sources, ip) = match key.split_once(':') {
                Some(("a", ip)) => (&self.tracker.sources, ip),
                Some(("n", net)) => (&self.tracker.prefixes, net),
                _ => continue,
            };
            let Ok(ip) = ip.parse::<IpAddr>() else {
                continue;
            };
            if b.until <= now {
                continue;
            }
            let mut sources = sources.lock().unwrap_or_else(|p| p.into_inner());
            let s = sources.map.entry(ip).or_default();
            if s.watch.blocked_until.is_none_or(|u| u < b.until) {
                s.watch.blocked_until = Some(b.until);
            }
        }
        let total = self.tracking.last4_tries_total;
        let locked = self.store.cases(LOCKS, SHARED_LOCKS)?;
        let mut tries = self.tracker.tries.lock().unwrap_or_else(|p| p.into_inner());
        for (no, _) in locked {
            let q = tries.map.entry(no).or_default();
            q.total = q.total.max(total);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swept_map_sweeps_rarely_however_many_stay_alive() {
        let mut m: Swept<u32, u32> = Swept::default();
        let mut sweeps = 0;
        for i in 0..(SWEEP_AT as u32 * 3) {
            let before = m.next;
            m.sweep(|_, _| true, |_, _| false);
            sweeps += usize::from(m.next != before);
            m.map.insert(i, i);
        }
        assert_eq!(
            sweeps, 2,
            "at 100,000 and at 200,000, not on every lookup after"
        );
        assert_eq!(m.map.len(), SWEEP_AT * 3);
        m.next = 0;
        m.sweep(|k, _| k % 2 == 0, |_, _| true);
        assert_eq!(m.map.len(), SWEEP_AT * 3 / 2, "the stale go");
        assert_eq!(m.next, SWEEP_AT * 3);
    }

    #[test]
    fn numbers_and_networks_are_read_as_a_scraper_would_use_them() {
        assert_eq!(numeric_tail("YT1234567"), Some(1_234_567));
        assert_eq!(stem("YT1234567"), "YT");
        assert_eq!(numeric_tail("ABC"), None);
        assert_eq!(
            prefix("203.0.113.77".parse().unwrap()),
            "203.0.113.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            prefix("2001:db8:1:2:3::9".parse().unwrap()),
            "2001:db8:1::".parse::<IpAddr>().unwrap()
        );
    }
}
