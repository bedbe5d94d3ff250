//! Canaries nobody can tell apart from the carrier's parcels: each is drawn from the carrier's own waybills —
//! a route (merchant, origin and destination outlet) of a real waybill, a recipient district and street of a
//! real waybill to that same outlet (building and room numbers scrambled), a sender district and street of a
//! real waybill from that same merchant, the item description of a real waybill of that merchant; each party's
//! surname and the first three and last two digits of its phone — what a masked view shows — from a real
//! waybill of the same kind, the given name and the six middle digits made up (no real person's name or number
//! as a whole). Its number is one the carrier's own
//! allocator issued (the integration passes them in), so nothing about a canary marks it: neither its fields,
//! nor its number, nor — since it enters through the integration's normal ingestion and is scanned like any
//! parcel — its history.
//!
//! Building the profile opens the fields of a sample of waybills in this process only, keeps of names and phones
//! no more than those fragments, and shows or logs nothing. It is audited as one entry (`canary_profile`, the
//! sample's size).
use crate::guard::Guard;
use crate::{Actor, GuardError, RequestMeta};
use rand::Rng;
use std::collections::HashMap;
use wbg_core::{Address, MerchantId, NewWaybill, OutletId, Party, WaybillMeta, WaybillNo};
use wbg_policy::AdminAction;
use wbg_vault::{split_region, Field};

/// Waybills a profile is built from at most.
pub const PROFILE_SAMPLE: usize = 200_000;

/// One sampled waybill, reduced to what canaries copy.
#[derive(Debug, Clone)]
struct Seen {
    merchant: MerchantId,
    origin: OutletId,
    destination: OutletId,
    recipient: Place,
    sender: Place,
    items: String,
}

/// A party of a sampled waybill, reduced to what a canary copies: where (province, city, district, street) and
/// the fragments of who a masked view shows (surname, phone's first three and last two digits).
#[derive(Debug, Clone)]
struct Place {
    province: String,
    city: String,
    district: String,
    detail: String,
    surname: String,
    phone_head: String,
    phone_tail: String,
}

/// What canaries are drawn from: a sample of the carrier's own waybills (see the module). Holds streets and
/// item descriptions, so its `Debug` shows only its size.
pub struct CanaryProfile {
    seen: Vec<Seen>,
    by_destination: HashMap<OutletId, Vec<usize>>,
    by_merchant: HashMap<MerchantId, Vec<usize>>,
}

impl std::fmt::Debug for CanaryProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanaryProfile")
            .field("waybills", &self.seen.len())
            .finish_non_exhaustive()
    }
}

/// Which of the carrier's waybills a canary must look like: those an account sees.
#[derive(Debug, Clone, Default)]
pub struct DrawScope {
    /// Only routes ending at this outlet (its couriers and staff).
    pub destination: Option<OutletId>,
    /// Only routes starting at this outlet (its print station).
    pub origin: Option<OutletId>,
    /// Only this merchant's orders.
    pub merchant: Option<MerchantId>,
}

impl CanaryProfile {
    /// Waybills sampled.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing was sampled.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// One canary per number in `numbers`, drawn within `scope`. `Invalid` if the carrier has no waybill in
    /// that scope to draw from.
    pub fn draw(
        &self,
        rng: &mut impl Rng,
        numbers: &[WaybillNo],
        scope: &DrawScope,
    ) -> Result<Vec<NewWaybill>, GuardError> {
        let routes: Vec<usize> = (0..self.seen.len())
            .filter(|&i| {
                let s = &self.seen[i];
                scope
                    .destination
                    .as_ref()
                    .is_none_or(|o| *o == s.destination)
                    && scope.origin.as_ref().is_none_or(|o| *o == s.origin)
                    && scope.merchant.as_ref().is_none_or(|m| *m == s.merchant)
            })
            .collect();
        if routes.is_empty() {
            return Err(GuardError::Invalid(
                "the carrier has no waybill in that scope to draw canaries from".into(),
            ));
        }
        let pick = |rng: &mut _, pool: &[usize]| pool[Rng::gen_range(rng, 0..pool.len())];
        numbers
            .iter()
            .map(|no| {
                let route = &self.seen[pick(rng, &routes)];
                let to = self
                    .by_destination
                    .get(&route.destination)
                    .map_or(route, |p| &self.seen[pick(rng, p)]);
                let from = self
                    .by_merchant
                    .get(&route.merchant)
                    .map_or(route, |p| &self.seen[pick(rng, p)]);
                let goods = self
                    .by_merchant
                    .get(&route.merchant)
                    .map_or(route, |p| &self.seen[pick(rng, p)]);
                let party = |rng: &mut _, at: &Place| Party {
                    name: at
                        .surname
                        .chars()
                        .chain(wbg_sim::synthetic_name(rng).chars().skip(1))
                        .collect(),
                    phone: format!(
                        "{}{:06}{}",
                        at.phone_head,
                        Rng::gen_range(rng, 0..1_000_000u32),
                        at.phone_tail
                    ),
                    address: Address {
                        province: at.province.clone(),
                        city: at.city.clone(),
                        district: at.district.clone(),
                        detail: scramble_digits(rng, &at.detail),
                    },
                };
                Ok(NewWaybill {
                    waybill_no: no.clone(),
                    merchant: route.merchant.clone(),
                    origin_outlet: route.origin.clone(),
                    destination_outlet: route.destination.clone(),
                    sender: party(rng, &from.sender),
                    recipient: party(rng, &to.recipient),
                    items: goods.items.clone(),
                })
            })
            .collect()
    }
}

/// `detail` with every digit replaced by a random one (a leading digit by a non-zero one): the same street, the
/// same shape, another building and room.
fn scramble_digits(rng: &mut impl Rng, detail: &str) -> String {
    let mut prev_digit = false;
    detail
        .chars()
        .map(|c| {
            let out = if c.is_ascii_digit() {
                let lo = if prev_digit { 0 } else { 1 };
                char::from(b'0' + rng.gen_range(lo..10u8))
            } else {
                c
            };
            prev_digit = c.is_ascii_digit();
            out
        })
        .collect()
}

impl Guard {
    /// The profile canaries are drawn from: up to [`PROFILE_SAMPLE`] of the carrier's waybills picked at random
    /// (canaries and waybills whose address or items are shredded left out). Auditors (and the local operator);
    /// audited `canary_profile`.
    pub fn canary_profile(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<CanaryProfile, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::Investigate, "canary_profile", meta)?;
        let canaries = self.canary_numbers();
        let mut sample = self.store.sample_waybills(PROFILE_SAMPLE)?;
        // In number order, so that a draw depends on its random source and the carrier's waybills, not on the
        // order a database happened to return them in.
        sample.sort_by(|(a, _), (b, _)| a.waybill_no.cmp(&b.waybill_no));
        let mut seen = Vec::new();
        for (m, sealed) in sample {
            if canaries.contains(m.waybill_no.as_str()) {
                continue;
            }
            if let Some(s) = self.seen(&m, &sealed) {
                seen.push(s);
            }
        }
        e.detail = Some(format!("sampled={}", seen.len()));
        self.store.append_audit(e)?;
        Ok(CanaryProfile::of(seen))
    }

    /// A profile of `rows` alone (an export's own orders, whose fields the export opens anyway): what the
    /// canary rows of its file are drawn from, so they come from the very merchant, window, routes and
    /// destinations of the rows beside them. At most `most` rows are read (a random choice of them).
    pub(crate) fn profile_of_rows(
        &self,
        rows: &[(WaybillNo, WaybillMeta, Vec<u8>)],
        most: usize,
    ) -> CanaryProfile {
        let mut rng = rand::thread_rng();
        let picked = rand::seq::index::sample(&mut rng, rows.len(), most.min(rows.len()));
        let mut picked: Vec<usize> = picked.into_iter().collect();
        picked.sort_unstable();
        CanaryProfile::of(
            picked
                .into_iter()
                .filter_map(|i| self.seen(&rows[i].1, &rows[i].2))
                .collect(),
        )
    }

    /// One waybill reduced to what canaries copy; `None` if a field it needs is shredded or does not open, or
    /// a phone is not a mobile number.
    fn seen(&self, m: &WaybillMeta, sealed: &[u8]) -> Option<Seen> {
        let wanted = Field::ALL;
        if !wanted.iter().all(|f| self.field_kept(m.bucket, *f)) {
            return None;
        }
        let opened = self
            .vault
            .open_fields(&m.waybill_no, m.bucket, sealed, &wanted)
            .ok()?;
        let get = |f: Field| {
            opened
                .iter()
                .find(|(g, _)| *g == f)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let place = |[name, phone, region, detail]: [Field; 4]| {
            let (p, c, d) = split_region(get(region))?;
            let phone = get(phone);
            if phone.len() != 11 || !phone.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(Place {
                province: p.to_owned(),
                city: c.to_owned(),
                district: d.to_owned(),
                detail: get(detail).to_owned(),
                surname: get(name).chars().take(1).collect(),
                phone_head: phone[..3].to_owned(),
                phone_tail: phone[9..].to_owned(),
            })
        };
        Some(Seen {
            merchant: m.merchant.clone(),
            origin: m.origin_outlet.clone(),
            destination: m.destination_outlet.clone(),
            recipient: place([
                Field::RecipientName,
                Field::RecipientPhone,
                Field::RecipientRegion,
                Field::RecipientDetail,
            ])?,
            sender: place([
                Field::SenderName,
                Field::SenderPhone,
                Field::SenderRegion,
                Field::SenderDetail,
            ])?,
            items: get(Field::Items).to_owned(),
        })
    }
}

impl CanaryProfile {
    fn of(seen: Vec<Seen>) -> CanaryProfile {
        let mut by_destination: HashMap<OutletId, Vec<usize>> = HashMap::new();
        let mut by_merchant: HashMap<MerchantId, Vec<usize>> = HashMap::new();
        for (i, s) in seen.iter().enumerate() {
            by_destination
                .entry(s.destination.clone())
                .or_default()
                .push(i);
            by_merchant.entry(s.merchant.clone()).or_default().push(i);
        }
        CanaryProfile {
            seen,
            by_destination,
            by_merchant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn scrambled_details_keep_the_street_and_the_shape() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let d = "文三路88号3栋1201室";
        let s = scramble_digits(&mut rng, d);
        assert_eq!(s.chars().count(), d.chars().count());
        assert!(s.starts_with("文三路") && s.ends_with('室'));
        assert_ne!(s, d);
        let digits = |t: &str| t.chars().filter(char::is_ascii_digit).count();
        assert_eq!(digits(&s), digits(d));
        assert!(!s.contains("路0"), "no leading zero: {s}");
    }
}
