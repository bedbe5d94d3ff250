//! Export watermarks: each export file lists its rows in an order keyed to that file alone, so a leak that kept
//! a file's order names the file, even among several exports of the very same rows (where coverage cannot tell
//! them apart). The test is the longest run of the leak's rows that appear in the file's order.
//!
//! The chance figure: among `n` rows in random order, the expected number of increasing subsequences of length
//! `k` is `C(n, k) / k!`, which bounds the probability that a random order has one. A leak whose rows are in a
//! file's order far beyond that bound was cut from that file.

/// Fewest leak rows an order can be judged on.
pub const MIN_ROWS: usize = 8;

/// `log10` of the chance bound below which an order match is conclusive: one in a billion.
pub const CONCLUSIVE_LOG10: f64 = -9.0;

/// How far a leak keeps one export file's order.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct OrderMatch {
    /// Leak rows this file could have produced.
    pub rows: usize,
    /// The most of them that appear in the file's order.
    pub in_order: usize,
    /// `log10` of the chance that a random order keeps that many in order (see the module doc).
    pub chance_log10: f64,
    /// Whether the chance is under one in a billion (and there are at least [`MIN_ROWS`] rows).
    pub conclusive: bool,
}

/// The order evidence of `keys`: a file's position keys of the leak's rows, in leak order.
pub fn order_match(keys: &[u64]) -> OrderMatch {
    let n = keys.len();
    let k = longest_increasing(keys);
    let chance_log10 = if k == 0 {
        0.0
    } else {
        (ln_choose(n, k) - ln_factorial(k)).min(0.0) / std::f64::consts::LN_10
    };
    OrderMatch {
        rows: n,
        in_order: k,
        chance_log10,
        conclusive: n >= MIN_ROWS && chance_log10 < CONCLUSIVE_LOG10,
    }
}

/// Length of the longest strictly increasing subsequence (patience sorting, `O(n log n)`).
pub fn longest_increasing(keys: &[u64]) -> usize {
    let mut tails: Vec<u64> = Vec::new();
    for &k in keys {
        let at = tails.partition_point(|t| *t < k);
        if at == tails.len() {
            tails.push(k);
        } else {
            tails[at] = k;
        }
    }
    tails.len()
}

fn ln_factorial(n: usize) -> f64 {
    (2..=n).map(|i| (i as f64).ln()).sum()
}

fn ln_choose(n: usize, k: usize) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    #[test]
    fn longest_increasing_runs() {
        assert_eq!(longest_increasing(&[]), 0);
        assert_eq!(longest_increasing(&[5]), 1);
        assert_eq!(longest_increasing(&[3, 1, 2, 5, 4, 6]), 4);
        assert_eq!(longest_increasing(&[2, 2, 2]), 1);
        assert_eq!(longest_increasing(&[9, 8, 7]), 1);
    }

    #[test]
    fn a_kept_order_is_conclusive_a_shuffled_one_is_not() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut keys: Vec<u64> = (0..200).map(|i| i * 7).collect();
        let kept = order_match(&keys);
        assert!(kept.conclusive && kept.in_order == 200, "{kept:?}");
        // Noise interleaved (30 % rows from elsewhere) and a few rows dropped: still conclusive.
        let mut noisy: Vec<u64> = keys.iter().copied().step_by(2).collect();
        for i in (0..noisy.len()).step_by(3) {
            noisy.insert(i, rand::Rng::gen_range(&mut rng, 0..1_400));
        }
        assert!(order_match(&noisy).conclusive, "{:?}", order_match(&noisy));
        keys.shuffle(&mut rng);
        let shuffled = order_match(&keys);
        assert!(
            !shuffled.conclusive && shuffled.chance_log10 > -1.0,
            "{shuffled:?}"
        );
        // Too few rows are never conclusive, however ordered.
        assert!(!order_match(&[1, 2, 3, 4, 5, 6, 7]).conclusive);
    }

    proptest! {
        /// A random order of any length is never taken for a kept one.
        #[test]
        fn random_orders_are_not_conclusive(seed in any::<u64>(), n in 0usize..400) {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut keys: Vec<u64> = (0..n as u64).collect();
            keys.shuffle(&mut rng);
            let m = order_match(&keys);
            prop_assert!(!m.conclusive, "{:?}", m);
            prop_assert!(m.in_order <= n);
        }
    }
}
