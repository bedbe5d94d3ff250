//! The latest committed audit entries' heads, kept for upkeep's two indexes (the audit search index and the
//! forensics access index). Each of them read every entry the log took back from the file and decoded its head
//! again, once an index: counted with `scripts/instructions`, 24 k instructions a guarded read of the node's
//! 294 k (both reads and both decodes). The store thread sequences each entry from its decoded form anyway, so it
//! keeps the entry's head here ([`HeldHead`], one allocation) once the transaction holding it has committed.
//!
//! Only a contiguous run of the log is held, the newest [`KEEP`] entries at most. An index asking for entries
//! before the run, or past its end (entries another handle on the same directory appended are never held here),
//! reads them from the file as before: what is held is what the file holds, only sooner to hand.
use std::collections::VecDeque;
use std::sync::Mutex;
use wbg_audit::{Committed, HeldHead};

/// Entries held at most: upkeep indexes every second, and at 20,000 audited operations a second this is one
/// and a half seconds of the log (some 6 MB).
pub(crate) const KEEP: usize = 1 << 15;

/// The held run of the log: `entries[i]` is entry `first + i`.
#[derive(Default)]
struct Run {
    first: u64,
    entries: VecDeque<HeldHead>,
}

/// Shared by the store's committing paths (which add to it) and upkeep (which reads it).
#[derive(Default)]
pub(crate) struct Recent {
    run: Mutex<Run>,
}

impl Recent {
    /// Keeps the heads of entries `first`… just committed. A run that does not continue the held one (another
    /// handle appended in between) replaces it.
    pub(crate) fn committed(&self, first: u64, entries: Vec<HeldHead>) {
        if entries.is_empty() {
            return;
        }
        // A poisoned lock only means a reader panicked while copying; the run itself is still whole.
        let mut run = self.run.lock().unwrap_or_else(|p| p.into_inner());
        if first != run.first + run.entries.len() as u64 {
            run.entries.clear();
            run.first = first;
        }
        run.entries.extend(entries);
        let over = run.entries.len().saturating_sub(KEEP);
        if over > 0 {
            run.entries.drain(..over);
            run.first += over as u64;
        }
    }

    /// Up to `limit` held entries from `from`; `None` when entry `from` is not held (the caller reads the file).
    pub(crate) fn since(&self, from: u64, limit: usize) -> Option<Vec<Committed>> {
        let run = self.run.lock().unwrap_or_else(|p| p.into_inner());
        let at = usize::try_from(from.checked_sub(run.first)?).ok()?;
        if at >= run.entries.len() || limit == 0 {
            return None;
        }
        Some(
            run.entries
                .range(at..)
                .take(limit)
                .map(|h| Committed::Held(h.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(first: u64, n: u64) -> Vec<HeldHead> {
        (first..first + n)
            .map(|seq| {
                let mut e = wbg_audit::AuditEntry::new(seq as i64, "a", "view");
                e.seq = seq;
                HeldHead::of(&e)
            })
            .collect()
    }

    fn seqs(held: Option<Vec<Committed>>) -> Option<Vec<u64>> {
        held.map(|v| v.iter().map(Committed::seq).collect())
    }

    #[test]
    fn hands_out_held_entries_and_nothing_outside_the_run() {
        let r = Recent::default();
        assert_eq!(seqs(r.since(0, 10)), None);
        r.committed(5, entries(5, 3));
        r.committed(8, entries(8, 2));
        assert_eq!(seqs(r.since(5, 10)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(seqs(r.since(6, 2)), Some(vec![6, 7]));
        // Before the run and at its end: the file answers.
        assert_eq!(seqs(r.since(4, 10)), None);
        assert_eq!(seqs(r.since(10, 10)), None);
        assert_eq!(seqs(r.since(7, 0)), None);
    }

    #[test]
    fn a_run_with_a_gap_replaces_the_held_one() {
        let r = Recent::default();
        r.committed(0, entries(0, 3));
        // Entries 3 and 4 were appended by another handle: never held here.
        r.committed(5, entries(5, 1));
        assert_eq!(seqs(r.since(0, 10)), None);
        assert_eq!(seqs(r.since(3, 10)), None);
        assert_eq!(seqs(r.since(5, 10)), Some(vec![5]));
    }

    #[test]
    fn keeps_the_newest_entries_only() {
        let r = Recent::default();
        let n = KEEP as u64 + 10;
        for first in (0..n).step_by(1000) {
            r.committed(first, entries(first, 1000.min(n - first)));
        }
        assert_eq!(seqs(r.since(9, 1)), None);
        assert_eq!(seqs(r.since(10, 1)), Some(vec![10]));
        assert_eq!(seqs(r.since(n - 1, 5)), Some(vec![n - 1]));
    }
}
