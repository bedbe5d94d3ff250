//! Retention and crypto-shredding [T3]: personal data dies when its purpose ends. A retention bucket (a day of
//! ingest) whose every waybill was signed for or returned more than `days_after_delivery` ago — or, for one
//! never finished, created more than `undelivered_days` ago — has its data key destroyed: its ciphertext can no
//! longer be opened by anyone, the master key's holder included, and its waybills' blind-index entries go with
//! it. Routing data (numbers, outlets, statuses, events) and the audit log stay; every shredding is audited, and
//! from then on reads of those waybills get the routing view at most.
use crate::{Actor, Guard, GuardError, RequestMeta};
use serde::{Deserialize, Serialize};
use wbg_core::Millis;
use wbg_store::BucketAge;
use wbg_vault::bucket_of;

const DAY_MS: Millis = 86_400_000;

/// `[retention]`: how long personal fields are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPolicy {
    /// Run retention in the server's background job (hourly).
    pub enabled: bool,
    /// Days after a waybill was signed for or returned that its personal fields are kept.
    pub days_after_delivery: u32,
    /// Days after creation that a waybill never signed for nor returned keeps them.
    pub undelivered_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            enabled: true,
            days_after_delivery: 30,
            undelivered_days: 180,
        }
    }
}

impl RetentionPolicy {
    /// Whether all of bucket `b` is past retention at `now` (today's bucket, still filling, never is).
    pub fn expired(&self, b: &BucketAge, now: Millis) -> bool {
        let past =
            |t: Option<Millis>, days: u32| t.is_none_or(|t| t + Millis::from(days) * DAY_MS <= now);
        b.bucket < bucket_of(now)
            && past(b.last_finished, self.days_after_delivery)
            && past(b.newest_unfinished, self.undelivered_days)
    }
}

/// One bucket shredded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShreddedBucket {
    /// The bucket: days since the epoch.
    pub bucket: i64,
    /// The day it holds (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// Waybills whose personal fields are gone.
    pub waybills: u64,
    /// Blind-index entries removed.
    pub index_entries: u64,
    /// The audit entry recording it.
    pub audit_seq: u64,
}

impl Guard {
    /// Shreds every bucket past `policy` now. Local operators only: the CLI and the server's own job.
    pub fn run_retention(
        &self,
        actor: Actor<'_>,
        policy: &RetentionPolicy,
        meta: &RequestMeta,
    ) -> Result<Vec<ShreddedBucket>, GuardError> {
        let who = crate::guard::local_only(actor, "retention runs")?;
        let now = self.clock.now();
        let done: std::collections::HashSet<i64> =
            self.store.shredded_buckets()?.into_iter().collect();
        let mut out = Vec::new();
        for b in self.store.bucket_ages()? {
            if done.contains(&b.bucket) || !policy.expired(&b, now) {
                continue;
            }
            let mut e = self.entry(&who, meta, "shred");
            e.detail = Some(format!(
                "bucket={} waybills={} days_after_delivery={} undelivered_days={}",
                b.bucket, b.waybills, policy.days_after_delivery, policy.undelivered_days
            ));
            let s = self.store.shred_bucket(b.bucket, e)?;
            self.forget_shredded(b.bucket);
            metrics::counter!("wbguard_shredded_waybills_total").increment(s.waybills);
            out.push(ShreddedBucket {
                bucket: b.bucket,
                day: wbg_core::utc_text(b.bucket * DAY_MS)[..10].to_owned(),
                waybills: s.waybills,
                index_entries: s.index_entries,
                audit_seq: s.audit_seq,
            });
        }
        Ok(out)
    }

    /// Takes in buckets shredded by another process (the CLI beside a running server): their keys leave this
    /// guard's memory and their waybills read as routing only. Called by the server's upkeep.
    pub fn refresh_shredded(&self) -> Result<(), GuardError> {
        for b in self.store.shredded_buckets()? {
            if !self.is_shredded(b) {
                self.forget_shredded(b);
            }
        }
        Ok(())
    }

    fn forget_shredded(&self, bucket: i64) {
        self.vault.forget_bucket(bucket);
        if let Ok(mut s) = self.shredded.write() {
            s.insert(bucket);
        }
    }

    /// Whether bucket `bucket`'s personal data is gone.
    pub(crate) fn is_shredded(&self, bucket: i64) -> bool {
        self.shredded
            .read()
            .map(|s| s.contains(&bucket))
            .unwrap_or(true)
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
    fn a_bucket_expires_when_its_last_waybill_does() {
        let p = RetentionPolicy::default();
        let day = |d: i64| d * DAY_MS;
        let now = day(100);
        assert!(
            p.expired(&age(60, Some(day(70)), None), now),
            "delivered 30 days ago"
        );
        assert!(
            !p.expired(&age(60, Some(day(71)), None), now),
            "delivered 29 days ago"
        );
        assert!(
            !p.expired(&age(60, Some(day(61)), Some(day(60))), now),
            "one still under way"
        );
        assert!(
            p.expired(&age(-90, Some(day(-85)), Some(day(-80))), now),
            "lost for 180 days"
        );
        assert!(
            !p.expired(&age(100, None, None), now),
            "today's bucket is still filling"
        );
    }
}
