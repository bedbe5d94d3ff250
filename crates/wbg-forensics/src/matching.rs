//! Matching: each leak record to the waybills it could be, through the blind indexes only (never by
//! decrypting the vault), with a confidence that says which clues agreed and which did not.
use crate::{ForensicsError, LeakRecord, NameClue, PhoneClue};
use std::collections::{BTreeSet, HashMap};
use wbg_vault::BlindIndex;

/// How the matcher looks waybills up. [`StoreLookup`] is the real one; anything that answers the same
/// questions (a test double, a remote store) will do.
pub trait Lookup {
    /// Waybills whose recipient has blind-index `token`, sorted.
    fn recipients_by_token(&self, token: &[u8; 16]) -> Result<Vec<String>, ForensicsError>;
    /// Whether waybill `no` exists.
    fn exists(&self, no: &str) -> Result<bool, ForensicsError>;
}

/// The store's blind index as a [`Lookup`].
pub struct StoreLookup<'a>(pub &'a dyn wbg_store::Store);

impl Lookup for StoreLookup<'_> {
    fn recipients_by_token(&self, token: &[u8; 16]) -> Result<Vec<String>, ForensicsError> {
        Ok(self
            .0
            .find_by_token_of(token, 0)?
            .into_iter()
            .map(|n| n.to_string())
            .collect())
    }
    fn exists(&self, no: &str) -> Result<bool, ForensicsError> {
        let Ok(no) = wbg_core::WaybillNo::parse(no) else {
            return Ok(false);
        };
        Ok(self.0.waybill(&no)?.is_some())
    }
}

/// One kind of clue, with the weight of its agreement: how sure a match on it alone makes us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clue {
    /// The waybill number.
    WaybillNo,
    /// The whole phone.
    Phone,
    /// The whole address.
    Address,
    /// The masked phone with province, city and district.
    MaskedPhoneRegion,
    /// The name.
    Name,
    /// The masked phone alone.
    MaskedPhone,
}

impl Clue {
    /// How sure agreement on this clue alone makes a match. Phones and waybill numbers are near-unique; a full
    /// address nearly so (a household shares one); a masked phone within a district is rare to share; names are
    /// common; a masked phone alone is shared by about one number in 10⁴ of a prefix.
    pub fn weight(self) -> f64 {
        match self {
            Clue::WaybillNo | Clue::Phone => 0.9,
            Clue::Address | Clue::MaskedPhoneRegion => 0.8,
            Clue::Name => 0.5,
            Clue::MaskedPhone => 0.3,
        }
    }
}

/// A match below this confidence is not taken (a name alone, a masked phone alone).
pub const MIN_CONFIDENCE: f64 = 0.6;

/// A clue given by more waybills than this says too little to use (a very common name).
pub const MAX_POSTINGS: usize = 5_000;

/// A record that matches more waybills than this at its best confidence is reported as ambiguous, with the
/// first ones kept.
pub const MAX_CANDIDATES: usize = 20;

/// One leak record matched.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordMatch {
    /// The leak row.
    pub row: usize,
    /// The waybills it could be (the same person's parcels), best first.
    pub waybills: Vec<String>,
    /// How sure: `1 − Π(1 − weight)` over the clues that agree, halved for each clue that disagrees.
    pub confidence: f64,
    /// The clues that agreed.
    pub agreed: Vec<Clue>,
    /// The clues the leak gave that the waybill does not have.
    pub disagreed: Vec<Clue>,
    /// Whether only a full view shows what the row shows.
    pub needs_full: bool,
    /// More waybills matched equally well than are listed.
    pub ambiguous: bool,
}

/// What matching made of a leak.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Matching {
    /// Matched records, in leak order.
    pub matched: Vec<RecordMatch>,
    /// Rows with clues that matched nothing (fabricated, or from elsewhere).
    pub unmatched: usize,
    /// Clues left unused because too many waybills share them.
    pub too_common: usize,
}

/// Matches every record of a leak.
pub fn match_records(
    records: &[LeakRecord],
    blind: &BlindIndex,
    lookup: &dyn Lookup,
) -> Result<Matching, ForensicsError> {
    let mut out = Matching::default();
    // Leaks repeat people; one lookup per distinct token.
    let mut cache: HashMap<[u8; 16], Option<Vec<String>>> = HashMap::new();
    for r in records {
        let mut clues: Vec<(Clue, Vec<String>)> = Vec::new();
        if let Some(no) = &r.waybill_no {
            let found = lookup.exists(no)?;
            clues.push((
                Clue::WaybillNo,
                if found { vec![no.clone()] } else { vec![] },
            ));
        }
        // A clue is what the first of its tokens that finds anything finds: a masked phone may be indexed under
        // more than one form, the most telling given first.
        let mut by_tokens = |clue: Clue, tokens: &[[u8; 16]]| -> Result<(), ForensicsError> {
            for token in tokens {
                let known = match cache.entry(*token) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let found = lookup.recipients_by_token(token)?;
                        e.insert((found.len() <= MAX_POSTINGS).then_some(found))
                    }
                };
                match known {
                    Some(found) if found.is_empty() => continue,
                    Some(found) => {
                        clues.push((clue, found.clone()));
                        return Ok(());
                    }
                    None => {
                        out.too_common += 1;
                        return Ok(());
                    }
                }
            }
            clues.push((clue, Vec::new()));
            Ok(())
        };
        match &r.phone {
            Some(PhoneClue::Full(p)) => {
                by_tokens(Clue::Phone, &[blind.token(wbg_vault::BlindKind::Phone, p)])?
            }
            Some(PhoneClue::Masked(forms)) => match &r.region {
                Some([p, c, d]) => by_tokens(
                    Clue::MaskedPhoneRegion,
                    &forms
                        .iter()
                        .map(|m| blind.masked_phone_region(m, &[p, c, d]))
                        .collect::<Vec<_>>(),
                )?,
                None => by_tokens(
                    Clue::MaskedPhone,
                    &forms
                        .iter()
                        .map(|m| blind.masked_phone(m))
                        .collect::<Vec<_>>(),
                )?,
            },
            None => {}
        }
        if let Some(NameClue::Full(n)) = &r.name {
            by_tokens(Clue::Name, &[blind.token(wbg_vault::BlindKind::Name, n)])?;
        }
        if let Some(a) = &r.address {
            by_tokens(
                Clue::Address,
                &[blind.token(wbg_vault::BlindKind::Address, a)],
            )?;
        }
        match best(&clues) {
            Some((waybills, confidence, agreed, disagreed, ambiguous)) => {
                out.matched.push(RecordMatch {
                    row: r.row,
                    waybills,
                    confidence,
                    agreed,
                    disagreed,
                    needs_full: r.needs_full(),
                    ambiguous,
                })
            }
            None => out.unmatched += 1,
        }
    }
    Ok(out)
}

type Best = (Vec<String>, f64, Vec<Clue>, Vec<Clue>, bool);

/// The best-supported waybills of one record's clues, if any reaches [`MIN_CONFIDENCE`].
fn best(clues: &[(Clue, Vec<String>)]) -> Option<Best> {
    // Clues that could not reach the bar even if all agreed (a name alone) are not worth walking.
    let most = 1.0 - clues.iter().map(|(c, _)| 1.0 - c.weight()).product::<f64>();
    if most < MIN_CONFIDENCE {
        return None;
    }
    let mut candidates: BTreeSet<&str> = BTreeSet::new();
    for (c, found) in clues {
        if c.weight() >= 0.5 {
            candidates.extend(found.iter().map(String::as_str));
        }
    }
    let mut scored: Vec<(f64, &str, Vec<Clue>, Vec<Clue>)> = candidates
        .into_iter()
        .map(|w| {
            let (mut agreed, mut disagreed) = (Vec::new(), Vec::new());
            for (c, found) in clues {
                if found.binary_search_by(|x| x.as_str().cmp(w)).is_ok() {
                    agreed.push(*c);
                } else {
                    disagreed.push(*c);
                }
            }
            let miss: f64 = agreed.iter().map(|c| 1.0 - c.weight()).product();
            let conf = (1.0 - miss) * 0.5f64.powi(disagreed.len() as i32);
            (conf, w, agreed, disagreed)
        })
        .filter(|(conf, ..)| *conf >= MIN_CONFIDENCE)
        .collect();
    let top = scored.iter().map(|s| s.0).fold(0.0, f64::max);
    scored.retain(|s| s.0 >= top - 1e-9);
    let (_, _, agreed, disagreed) = scored.first()?.clone();
    let ambiguous = scored.len() > MAX_CANDIDATES;
    let waybills = scored
        .iter()
        .take(MAX_CANDIDATES)
        .map(|s| s.1.to_owned())
        .collect();
    Some((waybills, top, agreed, disagreed, ambiguous))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{parse_leak, Limits};
    use std::collections::HashMap;

    /// A blind index over a handful of made-up recipients.
    struct Fake {
        blind: BlindIndex,
        by_token: HashMap<[u8; 16], Vec<String>>,
    }

    impl Fake {
        fn new(people: &[(&str, &str, &str, [&str; 4])]) -> Fake {
            let blind = BlindIndex::new([9u8; 32]);
            let mut by_token: HashMap<[u8; 16], Vec<String>> = HashMap::new();
            for (no, name, phone, [p, c, d, detail]) in people {
                let party = wbg_core::Party {
                    name: (*name).into(),
                    phone: (*phone).into(),
                    address: wbg_core::Address {
                        province: (*p).into(),
                        city: (*c).into(),
                        district: (*d).into(),
                        detail: (*detail).into(),
                    },
                };
                for (_, t) in blind.party(&party) {
                    let v = by_token.entry(t).or_default();
                    v.push((*no).to_owned());
                    v.sort();
                }
            }
            Fake { blind, by_token }
        }
    }

    impl Lookup for Fake {
        fn recipients_by_token(&self, token: &[u8; 16]) -> Result<Vec<String>, ForensicsError> {
            Ok(self.by_token.get(token).cloned().unwrap_or_default())
        }
        fn exists(&self, no: &str) -> Result<bool, ForensicsError> {
            Ok(self.by_token.values().any(|v| v.iter().any(|n| n == no)))
        }
    }

    fn people() -> Fake {
        Fake::new(&[
            (
                "W1",
                "王芳",
                "13800138000",
                ["浙江省", "杭州市", "萧山区", "建设一路66号"],
            ),
            (
                "W2",
                "王芳",
                "13900139000",
                ["浙江省", "杭州市", "余杭区", "文一西路1号"],
            ),
            (
                "W3",
                "李雷",
                "13800138000",
                ["浙江省", "杭州市", "萧山区", "建设一路66号"],
            ),
            (
                "W4",
                "韩梅梅",
                "13712345678",
                ["上海市", "上海市", "浦东新区", "世纪大道100号"],
            ),
        ])
    }

    fn matched(f: &Fake, csv: &str) -> Matching {
        let leak = parse_leak(csv.as_bytes(), &Limits::default()).unwrap();
        match_records(&leak.records, &f.blind, f).unwrap()
    }

    #[test]
    fn quirky_rows_match_their_waybills() {
        let f = people();
        let m = matched(
            &f,
            "姓名,手机号,地址,备注\n\
             王 芳,+86 138-0013-8000,浙江省杭州市萧山区建设一路66号,x\n\
             韩梅梅,137 1234 5678,上海市浦东新区世纪大道100号,\n\
             王*,139****9000,浙江省 杭州市 余杭区,\n\
             张三,13000000000,北京市朝阳区,\n\
             王芳,,,\n",
        );
        let rows: Vec<(usize, Vec<String>)> = m
            .matched
            .iter()
            .map(|r| (r.row, r.waybills.clone()))
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, vec!["W1".to_owned()]),
                (2, vec!["W4".to_owned()]),
                (3, vec!["W2".to_owned()]),
            ]
        );
        assert!(m.matched[0].confidence > 0.98);
        assert!(m.matched[0].needs_full && !m.matched[2].needs_full);
        // The fabricated row matches nothing (the bare name was never a record: nothing to match on).
        assert_eq!(m.unmatched, 1);
    }

    #[test]
    fn a_shared_phone_is_settled_by_the_name_and_a_contradiction_costs() {
        let f = people();
        let m = matched(&f, "name,phone\n李雷,13800138000\n韩梅梅,13800138000\n");
        assert_eq!(m.matched[0].waybills, vec!["W3".to_owned()]);
        // A phone that matches a waybill whose name disagrees: halved, below the bar.
        assert_eq!(m.matched.len(), 1);
        assert_eq!(m.unmatched, 1);
    }

    #[test]
    fn a_waybill_number_alone_is_enough() {
        let f = people();
        let m = matched(&f, "单号\nW2\nW9\n");
        assert_eq!(m.matched.len(), 1);
        assert_eq!(m.matched[0].waybills, vec!["W2".to_owned()]);
    }
}
