//! Retention and crypto-shredding [T3]: personal data dies when its purpose ends. Each retention bucket (a day
//! of ingest) has one data key per field group — contact (names, phones), address (streets), region (province,
//! city, district), items — and each group is kept for its own time. A group of a bucket whose every waybill was
//! signed for or returned more than that group's days ago — or, for one never finished, created more than
//! `undelivered_days` ago — has its key destroyed: its ciphertext can no longer be opened by anyone, the master
//! key's holder included, and the blind-index entries built from it go with it. Routing data (numbers, outlets,
//! statuses, events), the other groups and the audit log stay; every shredding is audited. Once a bucket's
//! contact or region is gone its waybills read as routing only; a shredded address or item list is left out
//! of the views that would show it.
use crate::{Actor, Guard, GuardError, RequestMeta};
use serde::{Deserialize, Serialize};
use wbg_core::Millis;
use wbg_store::BucketAge;
use wbg_vault::{bucket_of, Field, FieldGroup};

const DAY_MS: Millis = 86_400_000;

/// `[retention]`: how long personal fields are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
        }
    }
}

impl RetentionPolicy {
    /// Days after delivery that `group` is kept.
    pub fn days_for(&self, group: FieldGroup) -> u32 {
        let g = &self.groups;
        match group {
            FieldGroup::Contact => g.contact,
            FieldGroup::Address => g.address,
            FieldGroup::Region => g.region,
            FieldGroup::Items => g.items,
        }
        .unwrap_or(self.days_after_delivery)
    }

    /// Whether `group` of bucket `b` is past retention at `now` (today's bucket, still filling, never is).
    pub fn expired(&self, b: &BucketAge, group: FieldGroup, now: Millis) -> bool {
        let past =
            |t: Option<Millis>, days: u32| t.is_none_or(|t| t + Millis::from(days) * DAY_MS <= now);
        b.bucket < bucket_of(now)
            && past(b.last_finished, self.days_for(group))
            && past(b.newest_unfinished, self.undelivered_days)
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
    /// Why it is kept until then: `today` (the day is still filling), `delivery` (its last delivery is not
    /// `days` old yet), `unfinished` (waybills not yet signed for or returned hold it, up to
    /// `undelivered_days` after the newest was created).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_by: Vec<String>,
}

/// The moment `group` of `b` falls due under `policy`, and what holds it until then.
fn due(policy: &RetentionPolicy, b: &BucketAge, group: FieldGroup) -> (Millis, Vec<String>) {
    let mut at = (b.bucket + 1) * DAY_MS;
    let mut why = vec![("today", at)];
    if let Some(t) = b.last_finished {
        why.push((
            "delivery",
            t + Millis::from(policy.days_for(group)) * DAY_MS,
        ));
    }
    if let Some(t) = b.newest_unfinished {
        why.push((
            "unfinished",
            t + Millis::from(policy.undelivered_days) * DAY_MS,
        ));
    }
    for (_, t) in &why {
        at = at.max(*t);
    }
    let held = why
        .into_iter()
        .filter(|(_, t)| *t == at)
        .map(|(w, _)| w.to_owned())
        .collect();
    (at, held)
}

impl Guard {
    /// What a retention run under `policy` would shred now and, for every field group it keeps, until when and
    /// why (a dry run: nothing changes, nothing is audited). Local operators only.
    pub fn retention_plan(
        &self,
        actor: Actor<'_>,
        policy: &RetentionPolicy,
    ) -> Result<Vec<RetentionPlan>, GuardError> {
        crate::guard::local_only(actor, "retention plans")?;
        let now = self.clock.now();
        let done = self.shredded_set()?;
        let mut out = Vec::new();
        for b in self.store.bucket_ages()? {
            for group in FieldGroup::ALL {
                if done.contains(&(b.bucket, group)) {
                    continue;
                }
                let expired = policy.expired(&b, group, now);
                let (at, held_by) = due(policy, &b, group);
                out.push(RetentionPlan {
                    bucket: b.bucket,
                    day: wbg_core::utc_text(b.bucket * DAY_MS)[..10].to_owned(),
                    group: group.name().to_owned(),
                    waybills: b.waybills,
                    due: expired,
                    due_at: (!expired).then_some(at),
                    held_by: if expired { Vec::new() } else { held_by },
                });
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

    /// Shreds every bucket's field groups past `policy` now. Local operators only: the CLI and the server's own
    /// job.
    pub fn run_retention(
        &self,
        actor: Actor<'_>,
        policy: &RetentionPolicy,
        meta: &RequestMeta,
    ) -> Result<Vec<ShreddedBucket>, GuardError> {
        let who = crate::guard::local_only(actor, "retention runs")?;
        let now = self.clock.now();
        let done = self.shredded_set()?;
        let mut out = Vec::new();
        for b in self.store.bucket_ages()? {
            for group in FieldGroup::ALL {
                if done.contains(&(b.bucket, group)) || !policy.expired(&b, group, now) {
                    continue;
                }
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
                out.push(ShreddedBucket {
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
    fn a_bucket_expires_when_its_last_waybill_does() {
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
            !p.expired(&age(60, Some(day(61)), Some(day(60))), g, now),
            "one still under way"
        );
        assert!(
            p.expired(&age(-90, Some(day(-85)), Some(day(-80))), g, now),
            "lost for 180 days"
        );
        assert!(
            !p.expired(&age(100, None, None), g, now),
            "today's bucket is still filling"
        );
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
        // One parcel never finished holds the day for 180 days after it was created, past the 30 after the
        // last delivery.
        let (at, held) = due(&p, &b, FieldGroup::Contact);
        assert_eq!(at, day * DAY_MS + 3_600_000 + 180 * DAY_MS);
        assert_eq!(held, vec!["unfinished"]);
        assert!(!p.expired(&b, FieldGroup::Contact, at - 1));
        assert!(p.expired(&b, FieldGroup::Contact, at));
        // Every parcel finished: the last delivery decides.
        let done = BucketAge {
            newest_unfinished: None,
            ..b
        };
        let (at, held) = due(&p, &done, FieldGroup::Contact);
        assert_eq!(
            (at, held),
            (day * DAY_MS + 35 * DAY_MS, vec!["delivery".to_owned()])
        );
        assert!(p.expired(&done, FieldGroup::Contact, at));
    }
}
