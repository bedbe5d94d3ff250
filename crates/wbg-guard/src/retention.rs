//! Retention and crypto-shredding [T3]: personal data dies when its purpose ends. Each retention bucket (a day
//! of ingest) has one data key per field group — contact (names, phones), address (streets), region (province,
//! city, district), items — and each group is kept for its own time. A group of a bucket falls due once its day
//! is over and its last parcel signed for or returned was that group's days ago; then its key is destroyed: its
//! ciphertext can no longer be opened by anyone, the master key's holder included, and the blind-index entries
//! built from it go with it. Routing data (numbers, outlets, statuses, events), the other groups and the audit
//! log stay; every shredding is audited. Once a bucket's contact or region is gone its waybills read as routing
//! only; a shredded address or item list is left out of the views that would show it.
//!
//! **Stragglers do not hold a day.** Parcels still open the group's days after their day ended, once the rest
//! of the day is due, are *carried*: their fields
//! re-encrypted under today's keys and moved to today's bucket (audited, `retention_carry`), so one parcel stuck
//! in a depot never keeps the other 99 % of its day's contacts. A parcel open longer than `undelivered_days`
//! since it was created is not carried: it goes with its day. **Minimums** (`[retention.minimum]`) are periods a
//! rule requires a group to be kept; where one is longer than the configured maximum it wins, and the plan says
//! so.
use crate::{Actor, Guard, GuardError, RequestMeta};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use wbg_core::{Millis, WaybillNo};
use wbg_store::BucketAge;
use wbg_vault::{bucket_of, Field, FieldGroup};

const DAY_MS: Millis = 86_400_000;

/// `[retention]`: how long personal fields are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPolicy {
    /// Run retention in the server's background job (hourly).
    pub enabled: bool,
    /// Days after a waybill was signed for or returned that its personal fields are kept (each group's
    /// default).
    pub days_after_delivery: u32,
    /// Days after creation that a waybill never signed for nor returned keeps them.
    pub undelivered_days: u32,
    /// `[retention.groups]`: days after delivery per field group, where it differs from the default.
    pub groups: GroupDays,
    /// `[retention.minimum]`: days after delivery a rule requires a field group to be kept; a minimum longer
    /// than the group's days wins.
    pub minimum: Minimums,
}

/// A period some rule requires a field group to be kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Minimum {
    /// Days after delivery (or creation, for a parcel never finished).
    pub days: u32,
    /// The rule that requires it (shown in plans and `config check`), e.g. `E-Commerce Law art. 31`.
    pub rule: String,
}

/// Minimum periods per field group; an absent group has none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Minimums {
    /// Names and phones.
    pub contact: Option<Minimum>,
    /// Street addresses.
    pub address: Option<Minimum>,
    /// Province, city and district.
    pub region: Option<Minimum>,
    /// Item descriptions.
    pub items: Option<Minimum>,
}

impl Minimums {
    /// The minimum of `group`, if a rule sets one.
    pub fn of(&self, group: FieldGroup) -> Option<&Minimum> {
        match group {
            FieldGroup::Contact => self.contact.as_ref(),
            FieldGroup::Address => self.address.as_ref(),
            FieldGroup::Region => self.region.as_ref(),
            FieldGroup::Items => self.items.as_ref(),
        }
    }
}

/// Days after delivery that each field group is kept; an absent group keeps `days_after_delivery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupDays {
    /// Names and phones.
    pub contact: Option<u32>,
    /// Street addresses.
    pub address: Option<u32>,
    /// Province, city and district.
    pub region: Option<u32>,
    /// Item descriptions.
    pub items: Option<u32>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            enabled: true,
            days_after_delivery: 30,
            undelivered_days: 180,
            groups: GroupDays::default(),
            minimum: Minimums::default(),
        }
    }
}

impl RetentionPolicy {
    /// Days after delivery that `group` is kept: its configured days, or the minimum a rule sets if longer.
    pub fn days_for(&self, group: FieldGroup) -> u32 {
        self.configured_days(group)
            .max(self.minimum.of(group).map_or(0, |m| m.days))
    }

    /// Days after delivery configured for `group`, before any minimum.
    pub fn configured_days(&self, group: FieldGroup) -> u32 {
        let g = &self.groups;
        match group {
            FieldGroup::Contact => g.contact,
            FieldGroup::Address => g.address,
            FieldGroup::Region => g.region,
            FieldGroup::Items => g.items,
        }
        .unwrap_or(self.days_after_delivery)
    }

    /// The rule's minimum that sets `group`'s days, when it is longer than the configured ones.
    pub fn minimum_in_force(&self, group: FieldGroup) -> Option<&Minimum> {
        self.minimum
            .of(group)
            .filter(|m| m.days > self.configured_days(group))
    }

    /// Where a rule's minimum overrides the configured maximum: `(group, configured, minimum, rule)` each, for
    /// `config check` to report.
    pub fn overridden_by_minimums(&self) -> Vec<(FieldGroup, u32, u32, String)> {
        FieldGroup::ALL
            .into_iter()
            .filter_map(|g| {
                let m = self.minimum_in_force(g)?;
                Some((g, self.configured_days(g), m.days, m.rule.clone()))
            })
            .collect()
    }

    /// Whether `group` of bucket `b` is past retention at `now`: its day is over and its last parcel was
    /// finished at least the group's days ago — and, if parcels are still open, the day ended that long ago
    /// too. Open parcels do not hold it longer: a run carries them first.
    pub fn expired(&self, b: &BucketAge, group: FieldGroup, now: Millis) -> bool {
        due(self, b, group).0 <= now
    }

    /// Whether an open parcel created at `created_at` is still carried forward at `now`, rather than going
    /// with its day as lost.
    pub fn carries(&self, created_at: Millis, now: Millis) -> bool {
        created_at + Millis::from(self.undelivered_days) * DAY_MS > now
    }
}

/// One field group of one bucket shredded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShreddedBucket {
    /// The bucket: days since the epoch.
    pub bucket: i64,
    /// The day it holds (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// The field group whose key was destroyed: `contact`, `address`, `region` or `items`.
    pub group: String,
    /// Waybills whose fields of that group are gone.
    pub waybills: u64,
    /// Blind-index entries removed.
    pub index_entries: u64,
    /// The audit entry recording it.
    pub audit_seq: u64,
}

/// What retention would do with one field group of one bucket, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RetentionPlan {
    /// The bucket: days since the epoch.
    pub bucket: i64,
    /// The day it holds (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// The field group.
    pub group: String,
    /// Waybills in the bucket.
    pub waybills: u64,
    /// Due now: a run would destroy its key.
    pub due: bool,
    /// When it falls due, if it is not due now (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Millis>,
    /// Why it is kept until then: `day` (the day is still filling), `open` (parcels of it are still open and
    /// the day ended less than the group's days ago: after that they are carried), `delivery` (its last
    /// parcel was signed for or returned less than that ago), `minimum` (a rule's minimum, longer than the
    /// configured days, sets them; see `rule`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_by: Vec<String>,
    /// The rule whose minimum sets the group's days, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Due now: parcels still open that a run carries to today's bucket before destroying the key.
    pub carried: u64,
    /// Due now: parcels open longer than `undelivered_days` that go with their day.
    pub lost: u64,
    /// Due now: parcels a legal hold keeps, carried like open ones whatever their state (counted in `carried`).
    pub held: u64,
}

/// The open parcels of one bucket carried to a later one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CarriedBucket {
    /// The bucket they left.
    pub from: i64,
    /// The bucket they were sealed into (today's).
    pub to: i64,
    /// Parcels moved.
    pub waybills: u64,
    /// Parcels that should have moved but whose fields did not open; they go with their day.
    pub failed: u64,
    /// The audit entry recording the move (0 when nothing moved).
    pub audit_seq: u64,
}

/// What one retention run did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RetentionRun {
    /// Field groups whose keys were destroyed.
    pub shredded: Vec<ShreddedBucket>,
    /// Open parcels carried out of days that fell due.
    pub carried: Vec<CarriedBucket>,
    /// Parcels of deletion requests erased now that they are finished.
    pub erased: u64,
}

/// The moment `group` of `b` falls due under `policy`, and what holds it until then.
fn due(policy: &RetentionPolicy, b: &BucketAge, group: FieldGroup) -> (Millis, Vec<String>) {
    let keep = Millis::from(policy.days_for(group)) * DAY_MS;
    // A day is done filling at its end; one with parcels still open waits the group's days past it too, before
    // they count as stragglers and are carried.
    let end = (b.bucket + 1) * DAY_MS;
    let mut why = vec![("day", end)];
    if b.newest_unfinished.is_some() {
        why.push(("open", end + keep));
    }
    if let Some(t) = b.last_finished {
        why.push(("delivery", t + keep));
    }
    let at = why.iter().map(|(_, t)| *t).max().unwrap_or(0);
    let mut held: Vec<String> = why
        .into_iter()
        .filter(|(_, t)| *t == at)
        .map(|(w, _)| w.to_owned())
        .collect();
    if policy.minimum_in_force(group).is_some() {
        held.push("minimum".into());
    }
    (at, held)
}

impl Guard {
    /// What a retention run under `policy` would shred now — and carry, and lose — and, for every field group it
    /// keeps, until when and why (a dry run: nothing changes, nothing is audited). Local operators only.
    pub fn retention_plan(
        &self,
        actor: Actor<'_>,
        policy: &RetentionPolicy,
    ) -> Result<Vec<RetentionPlan>, GuardError> {
        crate::guard::local_only(actor, "retention plans")?;
        self.reload_holds()?;
        let now = self.clock.now();
        let done = self.shredded_set()?;
        let held = self.held_by_bucket()?;
        let mut out = Vec::new();
        for b in self.store.bucket_ages()? {
            let mut open = None;
            for group in FieldGroup::ALL {
                if done.contains(&(b.bucket, group)) {
                    continue;
                }
                let (at, held_by) = due(policy, &b, group);
                let expired = at <= now;
                let (carried, lost, kept) = if expired {
                    if open.is_none() {
                        open = Some(self.open_split(&b, policy, now, &held)?);
                    }
                    open.as_ref()
                        .map_or((0, 0, 0), |(c, l, h)| (c.len() as u64, *l, *h))
                } else {
                    (0, 0, 0)
                };
                out.push(RetentionPlan {
                    bucket: b.bucket,
                    day: wbg_core::utc_text(b.bucket * DAY_MS)[..10].to_owned(),
                    group: group.name().to_owned(),
                    waybills: b.waybills,
                    due: expired,
                    due_at: (!expired).then_some(at),
                    rule: policy.minimum_in_force(group).map(|m| m.rule.clone()),
                    held_by: if expired { Vec::new() } else { held_by },
                    carried,
                    lost,
                    held: kept,
                });
            }
        }
        Ok(out)
    }

    /// The parcels of bucket `b` a run carries forward — open ones, and any a legal hold keeps — with how
    /// many open ones go with their day as lost and how many of the carried a hold keeps.
    fn open_split(
        &self,
        b: &BucketAge,
        policy: &RetentionPolicy,
        now: Millis,
        held: &HashMap<i64, Vec<WaybillNo>>,
    ) -> Result<(Vec<WaybillNo>, u64, u64), GuardError> {
        let kept = held.get(&b.bucket).map(Vec::as_slice).unwrap_or_default();
        let mut carried: Vec<WaybillNo> = kept.to_vec();
        let mut lost = 0;
        if b.newest_unfinished.is_some() {
            let kept: std::collections::HashSet<&WaybillNo> = kept.iter().collect();
            for (no, created) in self.store.open_waybills(b.bucket)? {
                if kept.contains(&no) {
                    continue;
                }
                if policy.carries(created, now) {
                    carried.push(no);
                } else {
                    lost += 1;
                }
            }
        }
        let held_here = held.get(&b.bucket).map_or(0, Vec::len) as u64;
        Ok((carried, lost, held_here))
    }

    /// The waybills active legal holds keep, by the bucket each is in now (the caller has read the holds afresh).
    fn held_by_bucket(&self) -> Result<HashMap<i64, Vec<WaybillNo>>, GuardError> {
        let nos: Vec<WaybillNo> = self
            .active_holds()
            .waybills()
            .filter_map(|n| WaybillNo::parse(n).ok())
            .collect();
        let mut out: HashMap<i64, Vec<WaybillNo>> = HashMap::new();
        for chunk in nos.chunks(10_000) {
            let metas = self.store.waybill_metas(chunk).wait()?;
            for (no, m) in chunk.iter().zip(metas) {
                if let Some(m) = m {
                    out.entry(m.bucket).or_default().push(no.clone());
                }
            }
        }
        Ok(out)
    }

    /// Sets the retention gauges from the plan under `policy`: groups due, groups held, groups shredded.
    pub fn retention_gauges(&self, policy: &RetentionPolicy) -> Result<(), GuardError> {
        let plan = self.retention_plan(Actor::Local("retention"), policy)?;
        let due = plan.iter().filter(|p| p.due).count();
        metrics::gauge!("wbguard_retention_groups", "state" => "due").set(due as f64);
        metrics::gauge!("wbguard_retention_groups", "state" => "held")
            .set((plan.len() - due) as f64);
        metrics::gauge!("wbguard_retention_shredded_groups").set(self.shredded_set()?.len() as f64);
        Ok(())
    }

    /// Shreds every bucket's field groups past `policy` now, first carrying each such bucket's open parcels to
    /// today's bucket. Local operators only: the CLI and the server's own job.
    pub fn run_retention(
        &self,
        actor: Actor<'_>,
        policy: &RetentionPolicy,
        meta: &RequestMeta,
    ) -> Result<RetentionRun, GuardError> {
        let who = crate::guard::local_only(actor, "retention runs")?;
        // Holds placed anywhere count: read afresh, once, for the deletions and the carrying alike.
        self.reload_holds()?;
        let mut out = RetentionRun {
            erased: self.erase_finished(&who, meta)?,
            ..RetentionRun::default()
        };
        let now = self.clock.now();
        let done = self.shredded_set()?;
        let held = self.held_by_bucket()?;
        for b in self.store.bucket_ages()? {
            let due: Vec<FieldGroup> = FieldGroup::ALL
                .into_iter()
                .filter(|g| !done.contains(&(b.bucket, *g)) && policy.expired(&b, *g, now))
                .collect();
            if due.is_empty() {
                continue;
            }
            let (open, _, _) = self.open_split(&b, policy, now, &held)?;
            if !open.is_empty() {
                out.carried.push(self.carry(&who, meta, b.bucket, &open)?);
            }
            for group in due {
                let mut e = self.entry(&who, meta, "shred");
                e.detail = Some(format!(
                    "bucket={} group={} waybills={} days_after_delivery={} undelivered_days={}",
                    b.bucket,
                    group.name(),
                    b.waybills,
                    policy.days_for(group),
                    policy.undelivered_days
                ));
                let kinds: Vec<u8> = group.index_kinds().iter().map(|k| *k as u8).collect();
                let s = self
                    .store
                    .shred_key(&group.key_id(b.bucket), b.bucket, &kinds, e)?;
                self.forget_shredded(b.bucket, group);
                metrics::counter!("wbguard_shredded_waybills_total", "group" => group.name())
                    .increment(s.waybills);
                out.shredded.push(ShreddedBucket {
                    bucket: b.bucket,
                    day: wbg_core::utc_text(b.bucket * DAY_MS)[..10].to_owned(),
                    group: group.name().to_owned(),
                    waybills: s.waybills,
                    index_entries: s.index_entries,
                    audit_seq: s.audit_seq,
                });
            }
        }
        Ok(out)
    }

    /// Carries waybills `nos` of bucket `from` to today's bucket: each one's fields re-encrypted under today's
    /// keys and moved, a thousand to a transaction, each transaction audited (`retention_carry`). One whose
    /// fields do not open stays, and goes with its day.
    fn carry(
        &self,
        who: &str,
        meta: &RequestMeta,
        from: i64,
        nos: &[WaybillNo],
    ) -> Result<CarriedBucket, GuardError> {
        let to = bucket_of(self.clock.now());
        let mut done = CarriedBucket {
            from,
            to,
            waybills: 0,
            failed: 0,
            audit_seq: 0,
        };
        for chunk in nos.chunks(1000) {
            let mut moved = Vec::with_capacity(chunk.len());
            for no in chunk {
                let Some((m, sealed)) = self.store.waybill(no)? else {
                    continue;
                };
                if m.bucket != from {
                    continue;
                }
                // Every field still there: a held parcel may be carried out of a day one of whose groups is
                // already destroyed.
                let kept = self.fields_left(from, &sealed);
                match self.vault.reseal(no, from, to, &sealed, &kept) {
                    Ok(s) => moved.push((no.clone(), s.0)),
                    Err(_) => done.failed += 1,
                }
            }
            if moved.is_empty() {
                continue;
            }
            let mut e = self.entry(who, meta, "retention_carry");
            e.detail = Some(format!("from={from} to={to} waybills={}", moved.len()));
            let (seq, n) = self.store.move_waybills(from, to, &moved, e)?;
            metrics::counter!("wbguard_retention_carried_total").increment(n);
            done.waybills += n;
            done.audit_seq = seq;
        }
        Ok(done)
    }

    /// Erases the personal fields of waybills `nos` for good, as retention destroys a day's: each is moved, with
    /// the fields it still has, into a bucket of its own (random, far below every day's), whose four keys are
    /// then destroyed — with the blind-index entries built from them. Routing data stays. Every step is
    /// audited (`erase`, then one `shred` per group, each naming `why`). Returns the waybills erased and those
    /// that had no personal field left already.
    pub(crate) fn erase(
        &self,
        who: &str,
        meta: &RequestMeta,
        nos: &[WaybillNo],
        why: &str,
    ) -> Result<(Vec<WaybillNo>, Vec<WaybillNo>), GuardError> {
        use rand::Rng;
        let private = -rand::thread_rng().gen_range(10_000_000_000i64..20_000_000_000);
        let mut by_bucket: std::collections::BTreeMap<i64, Vec<(WaybillNo, Vec<u8>)>> =
            Default::default();
        let mut gone_already = Vec::new();
        for no in nos {
            let Some((m, sealed)) = self.store.waybill(no)? else {
                continue;
            };
            let kept = self.fields_left(m.bucket, &sealed);
            if kept.is_empty() {
                gone_already.push(no.clone());
                continue;
            }
            let moved = self
                .vault
                .reseal(no, m.bucket, private, &sealed, &kept)
                .map_err(|err| {
                    GuardError::internal_from(
                        format!("waybill {no} could not be moved to be erased"),
                        err,
                    )
                })?;
            by_bucket
                .entry(m.bucket)
                .or_default()
                .push((no.clone(), moved.0));
        }
        let mut erased = Vec::new();
        for (from, moved) in by_bucket {
            let mut e = self.entry(who, meta, "erase");
            e.detail = Some(format!(
                "from={from} to={private} waybills={} {why}",
                moved.len()
            ));
            self.store.move_waybills(from, private, &moved, e)?;
            erased.extend(moved.into_iter().map(|(no, _)| no));
        }
        if !erased.is_empty() {
            for group in FieldGroup::ALL {
                let mut e = self.entry(who, meta, "shred");
                e.detail = Some(format!(
                    "bucket={private} group={} waybills={} {why}",
                    group.name(),
                    erased.len()
                ));
                let kinds: Vec<u8> = group.index_kinds().iter().map(|k| *k as u8).collect();
                self.store
                    .shred_key(&group.key_id(private), private, &kinds, e)?;
                self.forget_shredded(private, group);
            }
            metrics::counter!("wbguard_erased_waybills_total").increment(erased.len() as u64);
        }
        Ok((erased, gone_already))
    }

    /// The fields a waybill of `bucket` still has: its group's key not destroyed, and carried by `sealed`.
    fn fields_left(&self, bucket: i64, sealed: &[u8]) -> Vec<Field> {
        let gone = self.shredded_groups(bucket);
        let carried = wbg_vault::SealedFields::carried(sealed);
        Field::ALL
            .into_iter()
            .filter(|f| gone.keeps(*f) && carried(*f))
            .collect()
    }

    /// Every `(bucket, group)` whose key is already destroyed.
    fn shredded_set(&self) -> Result<std::collections::HashSet<(i64, FieldGroup)>, GuardError> {
        Ok(self
            .store
            .shredded_keys()?
            .iter()
            .filter_map(|id| FieldGroup::of_key_id(id))
            .collect())
    }

    /// Takes in keys shredded by another process (the CLI beside a running server): they leave this guard's
    /// memory and their fields are no longer shown. Called by the server's upkeep.
    pub fn refresh_shredded(&self) -> Result<(), GuardError> {
        for id in self.store.shredded_keys()? {
            if let Some((bucket, group)) = FieldGroup::of_key_id(&id) {
                if !self.group_shredded(bucket, group) {
                    self.forget_shredded(bucket, group);
                }
            }
        }
        Ok(())
    }

    fn forget_shredded(&self, bucket: i64, group: FieldGroup) {
        self.vault.forget_key(bucket, group);
        if let Ok(mut s) = self.shredded.write() {
            s.insert((bucket, group));
        }
    }

    /// Whether `group` of bucket `bucket` is gone.
    pub(crate) fn group_shredded(&self, bucket: i64, group: FieldGroup) -> bool {
        self.shredded_groups(bucket).0 & (1 << group as u8) != 0
    }

    /// The groups of `bucket` that are gone, in one look at the set.
    pub(crate) fn shredded_groups(&self, bucket: i64) -> Gone {
        match self.shredded.read() {
            Ok(s) if s.is_empty() => Gone(0),
            Ok(s) => Gone(
                FieldGroup::ALL
                    .into_iter()
                    .filter(|g| s.contains(&(bucket, *g)))
                    .fold(0, |m, g| m | 1 << g as u8),
            ),
            // A poisoned set: assume the worst and show nothing personal.
            Err(_) => Gone(0x0f),
        }
    }

    /// Whether bucket `bucket`'s waybills can no longer show a party: its contact or its region is gone.
    pub(crate) fn is_shredded(&self, bucket: i64) -> bool {
        self.shredded_groups(bucket).hides_parties()
    }

    /// Whether `field` of a waybill in `bucket` can still be opened.
    pub(crate) fn field_kept(&self, bucket: i64, field: Field) -> bool {
        self.shredded_groups(bucket).keeps(field)
    }
}

/// The field groups of one bucket that retention destroyed, as a bit per [`FieldGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gone(u8);

impl Gone {
    /// Nothing is gone.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `field` can still be opened.
    pub(crate) fn keeps(self, field: Field) -> bool {
        self.0 & (1 << field.group() as u8) == 0
    }

    /// Whether no party can be shown (contact or region gone).
    pub(crate) fn hides_parties(self) -> bool {
        !self.keeps(Field::RecipientName) || !self.keeps(Field::RecipientRegion)
    }

    /// The names of the groups gone, comma-separated.
    pub(crate) fn names(self) -> String {
        FieldGroup::ALL
            .into_iter()
            .filter(|g| self.0 & (1 << *g as u8) != 0)
            .map(FieldGroup::name)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(bucket: i64, finished: Option<Millis>, unfinished: Option<Millis>) -> BucketAge {
        BucketAge {
            bucket,
            waybills: 1,
            last_finished: finished,
            newest_unfinished: unfinished,
        }
    }

    #[test]
    fn each_group_keeps_its_own_days() {
        let p = RetentionPolicy {
            groups: GroupDays {
                contact: Some(7),
                region: Some(365),
                ..GroupDays::default()
            },
            ..RetentionPolicy::default()
        };
        let day = |d: i64| d * DAY_MS;
        let b = age(50, Some(day(60)), None);
        let now = day(70);
        assert!(
            p.expired(&b, FieldGroup::Contact, now),
            "7 days for contact"
        );
        assert!(
            !p.expired(&b, FieldGroup::Address, now),
            "the default 30 for address"
        );
        assert!(p.expired(&b, FieldGroup::Address, day(90)));
        assert!(
            !p.expired(&b, FieldGroup::Region, day(90)),
            "a year for region"
        );
        let e = toml::from_str::<RetentionPolicy>("[groups]\ncontacts = 3\n").unwrap_err();
        assert!(e.to_string().contains("contacts"), "{e}");
    }

    #[test]
    fn a_bucket_expires_when_its_last_delivery_does_and_open_parcels_do_not_hold_it() {
        let p = RetentionPolicy::default();
        let g = FieldGroup::Contact;
        let day = |d: i64| d * DAY_MS;
        let now = day(100);
        assert!(
            p.expired(&age(60, Some(day(70)), None), g, now),
            "delivered 30 days ago"
        );
        assert!(
            !p.expired(&age(60, Some(day(71)), None), g, now),
            "delivered 29 days ago"
        );
        assert!(
            p.expired(&age(60, Some(day(61)), Some(day(60))), g, now),
            "one still under way is carried, it does not hold the day"
        );
        assert!(
            !p.expired(&age(80, None, Some(day(80))), g, now),
            "a day that ended 19 days ago, nothing delivered yet: too soon"
        );
        assert!(
            p.expired(&age(69, None, Some(day(69))), g, now),
            "a day that ended 30 days ago"
        );
        assert!(
            !p.expired(&age(100, None, None), g, now),
            "today's bucket is still filling"
        );
        assert!(p.carries(day(-79), now), "open 179 days: carried");
        assert!(!p.carries(day(-80), now), "open 180 days: lost, it goes");
    }

    #[test]
    fn a_rules_minimum_wins_over_a_shorter_maximum_and_says_so() {
        let p: RetentionPolicy = toml::from_str(
            "[groups]\nregion = 365\n[minimum]\nregion = { days = 1095, rule = \"E-Commerce Law art. 31\" }\n\
             contact = { days = 3, rule = \"r\" }\n",
        )
        .unwrap();
        assert_eq!(p.days_for(FieldGroup::Region), 1095);
        assert_eq!(
            p.days_for(FieldGroup::Contact),
            30,
            "a shorter minimum changes nothing"
        );
        assert_eq!(
            p.overridden_by_minimums(),
            vec![(
                FieldGroup::Region,
                365,
                1095,
                "E-Commerce Law art. 31".to_owned()
            )]
        );
        let b = age(10, Some(20 * DAY_MS), None);
        let (at, held) = due(&p, &b, FieldGroup::Region);
        assert_eq!(at, 20 * DAY_MS + 1095 * DAY_MS);
        assert_eq!(held, vec!["delivery", "minimum"]);
        assert!(toml::from_str::<RetentionPolicy>("[minimum]\nregion = { days = 3 }\n").is_err());
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    #[test]
    fn a_group_falls_due_when_the_last_thing_holding_it_lets_go() {
        let p = RetentionPolicy::default();
        let day = 20_000;
        let b = BucketAge {
            bucket: day,
            waybills: 10,
            last_finished: Some(day * DAY_MS + 5 * DAY_MS),
            newest_unfinished: Some(day * DAY_MS + 3_600_000),
        };
        // One parcel never finished does not hold the day: the last delivery decides.
        let (at, held) = due(&p, &b, FieldGroup::Contact);
        assert_eq!(
            (at, held),
            (day * DAY_MS + 35 * DAY_MS, vec!["delivery".to_owned()])
        );
        assert!(!p.expired(&b, FieldGroup::Contact, at - 1));
        assert!(p.expired(&b, FieldGroup::Contact, at));
        // Nothing delivered: the day's own end, plus the group's days.
        let none = BucketAge {
            last_finished: None,
            ..b
        };
        let (at, held) = due(&p, &none, FieldGroup::Contact);
        assert_eq!(
            (at, held),
            (day * DAY_MS + 31 * DAY_MS, vec!["open".to_owned()])
        );
    }
}
