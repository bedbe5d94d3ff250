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

impl Guard {
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
        let done: std::collections::HashSet<(i64, FieldGroup)> = self
            .store
            .shredded_keys()?
            .iter()
            .filter_map(|id| FieldGroup::of_key_id(id))
            .collect();
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
