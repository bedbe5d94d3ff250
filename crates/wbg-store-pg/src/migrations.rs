//! Versioned schema migrations: numbered SQL files in `migrations/` (`0001_initial.sql`, …), embedded in the
//! binary and applied in order, each in its own transaction with its version recorded in `wbg_migrations`;
//! `wbguard migrate` runs them, and so does a start-up that asks.

/// `(version, description, SQL)`, in order. A released migration is never edited: a change is a new file.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema: vault, accounts, waybills, blind index, audit log partitioned by day, cases, privacy numbers",
        include_str!("../migrations/0001_initial.sql"),
    ),
    (
        2,
        "accounts remember when their status last changed (a reinstatement that every node's engine can tell)",
        include_str!("../migrations/0002_account_status_since.sql"),
    ),
    (
        3,
        "audit entries are queued under numbers from a sequence and integrated into the log in batches, so no append waits on a global row lock",
        include_str!("../migrations/0003_audit_queue.sql"),
    ),
    (
        4,
        "customer-service tickets registered by the carrier's ticketing system, and the waybills each concerns",
        include_str!("../migrations/0004_work_registries.sql"),
    ),
    (
        5,
        "tokens carry an expiry and how they were issued",
        include_str!("../migrations/0005_token_expiry.sql"),
    ),
    (
        6,
        "when each account was last active, for dormancy",
        include_str!("../migrations/0006_account_activity.sql"),
    ),
    (
        7,
        "alerts carry their audit seqs and triage; the audit log gets a search index, filled from the entries already integrated",
        include_str!("../migrations/0007_alert_triage_and_audit_search.sql"),
    ),
    (
        8,
        "the audit log's separate index on seq goes: the primary key (seq, day) serves every lookup by number",
        include_str!("../migrations/0008_drop_redundant_audit_seq_index.sql"),
    ),
    (
        9,
        "the forensics access index is kept in the store, one for every node, filled from the log so far",
        include_str!("../migrations/0009_shared_access_index.sql"),
    ),
    (
        10,
        "the numbers in service are indexed in the order they rested, so a binding finds the free one rested longest without reading the whole pool",
        include_str!("../migrations/0010_privacy_numbers_in_rest_order.sql"),
    ),
];

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn every_numbered_file_is_a_migration_in_order() {
        let listed: Vec<(i64, &str)> = MIGRATIONS.iter().map(|(v, _, sql)| (*v, *sql)).collect();
        assert_eq!(listed.first().map(|m| m.0), Some(1));
        wbg_store::conformance::check_numbered_migrations(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"),
            &listed,
        );
    }
}
