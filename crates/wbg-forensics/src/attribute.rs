//! Attribution: from the matched waybills, every principal that was shown them, ranked by how likely it is to
//! be the leak's source.
//!
//! The model, stated so that a score can be explained: a leak's records were drawn either from one
//! principal's haul — each of the `n` waybills it was shown, with the view the record needs, equally likely —
//! or, with chance `NOISE`, from anywhere among the carrier's `N` waybills. A record then has likelihood
//! `(1 − NOISE)·[covered]/n + NOISE/N` under a principal, and `1/N` under "nobody in particular". A principal's
//! score is the log-likelihood ratio of the two, in bits, summed over records weighted by match confidence; it
//! rewards covering much of the leak (coverage) and having been shown little else (an agent who saw the whole
//! carrier covers everything and explains nothing). The posterior is the score normalised over all principals
//! shown any of the leak. Two colluding principals are scored the same way, a record drawn from one or the
//! other in proportion to how much of the leak each covers.
use crate::index::{Posting, Postings, Shown};
use crate::matching::Matching;
use crate::watermark::{order_match, OrderMatch};
use crate::ForensicsError;
use std::collections::{HashMap, HashSet};

/// Share of a leak assumed to be noise (padding, records from elsewhere) whoever produced it.
pub const NOISE: f64 = 0.3;

/// Principals ranked in a report.
pub const TOP: usize = 10;

/// Principals whose pairs are tried.
const PAIR_POOL: usize = 16;

/// Evidence entries cited per suspect.
pub const EVIDENCE: usize = 10;

/// One audit entry a suspect's score rests on.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Evidence {
    /// Audit sequence number.
    pub seq: u64,
    /// The waybill read.
    pub waybill: String,
    /// `full` or `masked`.
    pub view: String,
    /// When (ms since epoch).
    pub at: i64,
    /// Inclusion proof of the entry in the checkpoint the report cites (hex hashes, RFC 6962 order); filled in
    /// by whoever holds the log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proof: Vec<String>,
}

/// One ranked principal.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Suspect {
    /// Rank, from 1; principals whose accesses explain the leak equally well share a rank (`1, 1, 3`): nothing
    /// in the access record tells them apart, and the report says so instead of picking one.
    pub rank: usize,
    /// Account id, or `export:<id>`.
    pub principal: String,
    /// Role or kind, when known (`courier`, `print_station`, `export`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Matched leak records this principal could have produced (was shown with the view the record needs).
    pub covered: usize,
    /// `covered` over the matched records.
    pub coverage: f64,
    /// Of those, records no other principal could have produced.
    pub exclusive: usize,
    /// Distinct waybills it was shown in full, over all time.
    pub shown_full: u64,
    /// Distinct waybills it was shown masked or full.
    pub shown_any: u64,
    /// Log-likelihood ratio against "nobody in particular", in bits (see the module doc).
    pub score_bits: f64,
    /// Probability it is the source, if one of the principals shown the leak is.
    pub posterior: f64,
    /// First access to a covered record (ms since epoch).
    pub first_access: i64,
    /// Latest access to a covered record (ms).
    pub last_access: i64,
    /// The earliest accesses that covered the leak, with the view each showed.
    pub evidence: Vec<Evidence>,
    /// A planted record in the leak that only this principal was shown, or its export file's row order kept in
    /// the leak: the source beyond doubt.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub certain: bool,
    /// For an export file: how far the leak keeps the file's keyed row order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<OrderMatch>,
    /// For an export file: who asked for it and who approved it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportOrigin>,
    /// Risk alerts raised on the account, when known: not part of the score, but the order among equals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<usize>,
    /// The account's status when the report was made (`active`, `suspended`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Where an export file came from: the accounts that answer for it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ExportOrigin {
    /// The account that asked for it and downloaded it.
    pub requested_by: String,
    /// The second account, that approved it.
    pub approved_by: Option<String>,
    /// When it was handed over (ms since epoch).
    pub delivered_at: Option<i64>,
}

/// Two principals that together explain a leak.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Pair {
    /// The two principals.
    pub principals: [String; 2],
    /// Records either could have produced.
    pub covered: usize,
    /// `covered` over the matched records.
    pub coverage: f64,
    /// The pair's score, bits.
    pub score_bits: f64,
    /// How many bits better the pair explains the leak than its better member alone.
    pub gain_bits: f64,
    /// Whether the gain beats the price of naming a second principal (`log2` of the principals there were to
    /// choose from): a pair worth investigating as colluders.
    pub explains_better: bool,
}

/// The ranking.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Ranking {
    /// Principals shown any matched record.
    pub principals_considered: usize,
    /// Suspects, best first.
    pub suspects: Vec<Suspect>,
    /// The best pair, when one was tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_pair: Option<Pair>,
}

/// One principal's view of the leak: which records it covers, with the access that covers each.
struct Cover {
    records: Vec<(usize, Posting, String)>,
    n_full: u64,
    n_any: u64,
}

/// What marks a leak's source outright, beyond the likelihood.
pub struct Marks<'a> {
    /// Canary waybills: whoever was shown one that is in the leak is the source.
    pub canaries: &'a HashSet<String>,
    /// `order(principal, waybill)`: the waybill's position key in the principal's export file; `None` for a
    /// principal that is not an export, or a waybill not in its file.
    pub order: &'a dyn Fn(&str, &str) -> Option<u64>,
}

impl std::fmt::Debug for Marks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marks")
            .field("canaries", &self.canaries.len())
            .finish_non_exhaustive()
    }
}

/// Ranks the principals shown the matched records. `universe` is the number of waybills a record could have
/// been drawn from at random (the store's count). Principals pinned by `marks` (a canary in the leak, or their
/// export file's order kept in it) are marked `certain` and ranked first.
pub fn rank(
    matching: &Matching,
    index: &dyn Postings,
    universe: u64,
    marks: &Marks<'_>,
) -> Result<Ranking, ForensicsError> {
    let canaries = marks.canaries;
    let m = &matching.matched;
    let n_univ = universe.max(1) as f64;
    let mut covers: HashMap<u32, Cover> = HashMap::new();
    let mut postings_cache: HashMap<&str, Vec<Posting>> = HashMap::new();
    for (i, r) in m.iter().enumerate() {
        let need = if r.needs_full {
            Shown::Full
        } else {
            Shown::Masked
        };
        // Per principal, the earliest access among the record's candidate waybills.
        let mut best: HashMap<u32, (Posting, &str)> = HashMap::new();
        for w in &r.waybills {
            let postings = match postings_cache.entry(w.as_str()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(index.postings(w)?),
            };
            for p in postings.iter() {
                if p.shown < need {
                    continue;
                }
                let e = best.entry(p.principal).or_insert((*p, w.as_str()));
                if p.first_seq < e.0.first_seq {
                    *e = (*p, w.as_str());
                }
            }
        }
        for (id, (p, w)) in best {
            let c = covers.entry(id).or_insert_with(|| {
                let pr = index.principal(id);
                Cover {
                    records: Vec::new(),
                    n_full: pr.map_or(0, |p| p.full),
                    n_any: pr.map_or(0, |p| p.seen),
                }
            });
            c.records.push((i, p, w.to_owned()));
        }
    }
    // How many principals could have produced each record, for exclusivity.
    let mut producers = vec![0usize; m.len()];
    for c in covers.values() {
        for (i, ..) in &c.records {
            producers[*i] += 1;
        }
    }
    let weight = |i: usize| m[i].confidence;
    let haul = |c: &Cover, i: usize| {
        let n = if m[i].needs_full { c.n_full } else { c.n_any };
        n.max(1) as f64
    };
    // log2 of P(record | principal) / P(record | nobody), per covered record; uncovered records score
    // log2(NOISE) each.
    let uncovered_bits = NOISE.log2();
    let total_weight: f64 = (0..m.len()).map(weight).sum();
    let covered_bits =
        |c: &Cover, i: usize| (((1.0 - NOISE) / haul(c, i) + NOISE / n_univ) * n_univ).log2();
    // Export files' orders, over the records each could have produced (in leak order, as they were pushed).
    let orders: HashMap<u32, OrderMatch> = covers
        .iter()
        .filter_map(|(id, c)| {
            let name = &index.principal(*id)?.name;
            let keys: Vec<u64> = c
                .records
                .iter()
                .filter_map(|(_, _, w)| (marks.order)(name, w))
                .collect();
            (!keys.is_empty()).then(|| (*id, order_match(&keys)))
        })
        .collect();
    // Principals shown a canary that is in the leak, or whose file's order the leak keeps.
    let certain: HashSet<u32> = covers
        .iter()
        .filter(|(id, c)| {
            c.records.iter().any(|(_, _, w)| canaries.contains(w))
                || orders.get(id).is_some_and(|o| o.conclusive)
        })
        .map(|(id, _)| *id)
        .collect();
    let mut scored: Vec<(u32, f64)> = covers
        .iter()
        .map(|(id, c)| {
            let covered_weight: f64 = c.records.iter().map(|(i, ..)| weight(*i)).sum();
            let bits: f64 = c
                .records
                .iter()
                .map(|(i, ..)| weight(*i) * covered_bits(c, *i))
                .sum::<f64>()
                + (total_weight - covered_weight) * uncovered_bits;
            (*id, bits)
        })
        .collect();
    // Equal scores in the order the principals first touched the leak's records, then by name: what the log
    // says, the same whichever store numbered the principals (ids are an index's own).
    let first_touch: HashMap<u32, (Option<u64>, Option<&str>)> = covers
        .iter()
        .map(|(id, c)| {
            let first = c.records.iter().map(|(_, p, _)| p.first_seq).min();
            (*id, (first, index.principal(*id).map(|p| p.name.as_str())))
        })
        .collect();
    scored.sort_by(|a, b| {
        let (ca, cb) = (certain.contains(&a.0), certain.contains(&b.0));
        cb.cmp(&ca)
            .then(b.1.total_cmp(&a.1))
            .then_with(|| first_touch.get(&a.0).cmp(&first_touch.get(&b.0)))
    });
    let max_bits = scored.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    let norm: f64 = scored.iter().map(|s| (s.1 - max_bits).exp2()).sum();
    let matched = m.len().max(1) as f64;
    // Competition ranking: equal scores (to a millionth of a bit per record) share a rank.
    let tolerance = 1e-6 * matched;
    let rank_of = |id: u32, bits: f64| {
        if certain.contains(&id) {
            1
        } else {
            1 + certain.len()
                + scored
                    .iter()
                    .filter(|s| !certain.contains(&s.0) && s.1 > bits + tolerance)
                    .count()
        }
    };
    let suspects = scored
        .iter()
        .take(TOP)
        .filter_map(|(id, bits)| {
            let c = covers.get(id)?;
            let p = index.principal(*id)?;
            let mut ev: Vec<Evidence> = c
                .records
                .iter()
                .map(|(_, post, w)| Evidence {
                    seq: post.full_seq.unwrap_or(post.first_seq),
                    waybill: w.clone(),
                    view: if post.full_seq.is_some() {
                        "full"
                    } else {
                        "masked"
                    }
                    .into(),
                    at: post.first_at,
                    proof: Vec::new(),
                })
                .collect();
            ev.sort_by_key(|e| e.seq);
            ev.truncate(EVIDENCE);
            Some(Suspect {
                rank: rank_of(*id, *bits),
                principal: p.name.clone(),
                role: None,
                covered: c.records.len(),
                coverage: c.records.len() as f64 / matched,
                exclusive: c
                    .records
                    .iter()
                    .filter(|(i, ..)| producers[*i] == 1)
                    .count(),
                shown_full: c.n_full,
                shown_any: c.n_any,
                score_bits: *bits,
                posterior: (bits - max_bits).exp2() / norm,
                first_access: c.records.iter().map(|r| r.1.first_at).min().unwrap_or(0),
                last_access: c.records.iter().map(|r| r.1.last_at).max().unwrap_or(0),
                evidence: ev,
                certain: certain.contains(id),
                watermark: orders.get(id).copied(),
                export: None,
                alerts: None,
                status: None,
            })
        })
        .collect();
    let confidences: Vec<f64> = (0..m.len()).map(weight).collect();
    let draw = |c: &Cover, i: usize| (1.0 - NOISE) / haul(c, i);
    let top_pair = best_pair(&scored, &covers, &confidences, &draw, n_univ, index);
    Ok(Ranking {
        principals_considered: covers.len(),
        suspects,
        top_pair,
    })
}

/// The best-scoring pair among the top single principals.
fn best_pair(
    scored: &[(u32, f64)],
    covers: &HashMap<u32, Cover>,
    confidences: &[f64],
    draw: &dyn Fn(&Cover, usize) -> f64,
    n_univ: f64,
    index: &dyn Postings,
) -> Option<Pair> {
    let pool: Vec<&(u32, f64)> = scored.iter().take(PAIR_POOL).collect();
    if pool.len() < 2 {
        return None;
    }
    let records = confidences.len();
    // Per pool member: its draw probability for each record it covers (0 elsewhere).
    let draws: Vec<Vec<f64>> = pool
        .iter()
        .map(|(id, _)| {
            let mut v = vec![0.0; records];
            if let Some(c) = covers.get(id) {
                for (i, ..) in &c.records {
                    v[*i] = draw(c, *i);
                }
            }
            v
        })
        .collect();
    let mut best: Option<(f64, usize, usize, usize)> = None;
    for a in 0..pool.len() {
        for b in a + 1..pool.len() {
            // Each member's share of the leak is taken as its share of the records they cover.
            let count = |k: usize| draws[k].iter().filter(|d| **d > 0.0).count() as f64;
            let (ca, cb) = (count(a), count(b));
            let pa = if ca + cb > 0.0 { ca / (ca + cb) } else { 0.5 };
            let mut bits = 0.0;
            let mut covered = 0;
            for i in 0..records {
                let d = pa * draws[a][i] + (1.0 - pa) * draws[b][i];
                if d > 0.0 {
                    covered += 1;
                }
                bits += confidences[i] * ((d + NOISE / n_univ) * n_univ).log2();
            }
            if best.is_none_or(|(bb, ..)| bits > bb) {
                best = Some((bits, a, b, covered));
            }
        }
    }
    let (bits, a, b, covered) = best?;
    let name = |k: usize| {
        index
            .principal(pool[k].0)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    };
    let single = pool[a].1.max(pool[b].1);
    let gain = bits - single;
    let price = (covers.len().max(2) as f64).log2();
    Some(Pair {
        principals: [name(a), name(b)],
        covered,
        coverage: covered as f64 / records.max(1) as f64,
        score_bits: bits,
        gain_bits: gain,
        explains_better: gain > price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Posting, Principal, Shown};
    use crate::matching::RecordMatch;

    /// Postings held in memory, the principals numbered as given.
    struct Held(HashMap<String, Vec<Posting>>, Vec<Principal>);

    impl Postings for Held {
        fn postings(&self, waybill: &str) -> Result<Vec<Posting>, ForensicsError> {
            Ok(self.0.get(waybill).cloned().unwrap_or_default())
        }
        fn principal(&self, id: u32) -> Option<&Principal> {
            self.1.get(id as usize)
        }
    }

    /// `names`' accesses (name, waybill, first seq), all full views, numbered in `names`' order.
    fn held(names: &[&str], accesses: &[(&str, &str, u64)]) -> Held {
        let mut by_waybill: HashMap<String, Vec<Posting>> = HashMap::new();
        let mut principals: Vec<Principal> = names
            .iter()
            .map(|n| Principal {
                name: (*n).into(),
                ..Principal::default()
            })
            .collect();
        for (name, waybill, seq) in accesses {
            let id = names.iter().position(|n| n == name).unwrap();
            principals[id].full += 1;
            principals[id].seen += 1;
            by_waybill
                .entry((*waybill).into())
                .or_default()
                .push(Posting {
                    principal: id as u32,
                    shown: Shown::Full,
                    first_seq: *seq,
                    first_at: *seq as i64,
                    last_at: *seq as i64,
                    full_seq: Some(*seq),
                });
        }
        Held(by_waybill, principals)
    }

    /// Principals whose accesses explain a leak equally well share a rank; the order they are listed in is
    /// the log's (who first touched the leak's records, then the name), not the index's numbering — so an
    /// embedded node and a PostgreSQL node, which number principals differently, list them alike (and cut the
    /// same ones at the top's end).
    #[test]
    fn equal_suspects_are_listed_in_the_logs_order_whatever_their_ids() {
        let leak = Matching {
            matched: ["W1", "W2"]
                .iter()
                .enumerate()
                .map(|(row, w)| RecordMatch {
                    row,
                    waybills: vec![(*w).into()],
                    confidence: 1.0,
                    agreed: Vec::new(),
                    disagreed: Vec::new(),
                    needs_full: true,
                    ambiguous: false,
                })
                .collect(),
            ..Matching::default()
        };
        // C2 touched W1 first (seq 3), then C1 (seq 5), then C0 (seq 7); each was shown both waybills.
        let accesses = [
            ("C2", "W1", 3),
            ("C2", "W2", 10),
            ("C1", "W1", 5),
            ("C1", "W2", 9),
            ("C0", "W1", 7),
            ("C0", "W2", 8),
        ];
        let none = HashSet::new();
        let marks = Marks {
            canaries: &none,
            order: &|_, _| None,
        };
        let listed = |names: &[&str]| {
            let r = rank(&leak, &held(names, &accesses), 1_000, &marks).unwrap();
            r.suspects
                .iter()
                .map(|s| (s.rank, s.principal.clone()))
                .collect::<Vec<_>>()
        };
        let expected = vec![(1, "C2".to_string()), (1, "C1".into()), (1, "C0".into())];
        assert_eq!(listed(&["C0", "C1", "C2"]), expected);
        assert_eq!(listed(&["C2", "C0", "C1"]), expected);
        assert_eq!(listed(&["C1", "C2", "C0"]), expected);
    }
}
