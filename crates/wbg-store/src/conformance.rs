//! The behavioural test suite every [`Store`] backend must pass: the same checks run against the embedded
//! store (this crate's tests) and the PostgreSQL store (`wbg-store-pg`'s tests), each on a fresh, empty store.
//! Each check panics on the first failure, naming what did not hold.
#![allow(clippy::unwrap_used, missing_docs)]
use crate::{
    BindOutcome, EventRecord, NewToken, NumberRelease, PoolState, ReadSnapshot, ScanSnapshot,
    SealedWaybill, Store, StoreError,
};
use std::collections::{BTreeMap, BTreeSet};
use wbg_audit::note::NoteSigner;
use wbg_audit::{verify_log, AuditEntry, Checkpoint};
use wbg_core::{
    Account, AccountId, AccountStatus, EventType, MerchantId, Millis, OutletId, Role, StatusEvent,
    WaybillMeta, WaybillNo, WaybillStatus,
};

/// Checks a backend's numbered SQL migrations: the files in `dir` (`0001_initial.sql`, …) and the list the
/// backend embeds, `(number, SQL)` in order, are the same files in the same order, every number one more than
/// the one before — a file added without its line (or a line without its file) would never run, or not where
/// its number says.
pub fn check_numbered_migrations(dir: &std::path::Path, listed: &[(i64, &str)]) {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), listed.len(), "files in {}", dir.display());
    for (file, (number, sql)) in files.iter().zip(listed) {
        assert!(file.starts_with(&format!("{number:04}_")), "{file}");
        assert_eq!(std::fs::read_to_string(dir.join(file)).unwrap(), *sql);
    }
    assert!(listed.windows(2).all(|w| w[1].0 == w[0].0 + 1));
}

/// One named check.
type Check = (&'static str, fn(&dyn Store));

/// Every check, each on a store from `fresh`.
pub fn run_all(fresh: &dyn Fn() -> Box<dyn Store>) {
    let checks: &[Check] = &[
        ("accounts_and_tokens", accounts_and_tokens),
        (
            "tokens_expire_list_and_revoke",
            tokens_expire_list_and_revoke,
        ),
        ("activity_keeps_the_latest", activity_keeps_the_latest),
        (
            "batch_insert_is_all_or_nothing",
            batch_insert_is_all_or_nothing,
        ),
        (
            "events_check_the_expected_status",
            events_check_the_expected_status,
        ),
        (
            "a_tracking_snapshot_is_the_waybill_and_its_events",
            a_tracking_snapshot_is_the_waybill_and_its_events,
        ),
        (
            "a_guarded_read_snapshots_and_group_commits_its_entry",
            a_guarded_read_snapshots_and_group_commits_its_entry,
        ),
        (
            "a_read_by_account_sees_what_its_token_sees",
            a_read_by_account_sees_what_its_token_sees,
        ),
        (
            "a_scan_snapshot_is_the_account_and_the_waybills_metadata",
            a_scan_snapshot_is_the_account_and_the_waybills_metadata,
        ),
        (
            "case_files_change_only_by_compare_and_set",
            case_files_change_only_by_compare_and_set,
        ),
        (
            "a_batch_of_audit_entries_is_one_verifiable_run",
            a_batch_of_audit_entries_is_one_verifiable_run,
        ),
        (
            "a_merchants_orders_by_creation_time",
            a_merchants_orders_by_creation_time,
        ),
        (
            "privacy_numbers_bind_wait_rebind_and_rest_before_reuse",
            privacy_numbers_bind_wait_rebind_and_rest_before_reuse,
        ),
        (
            "privacy_numbers_bound_side_by_side",
            privacy_numbers_bound_side_by_side,
        ),
        (
            "privacy_numbers_bound_in_batches",
            privacy_numbers_bound_in_batches,
        ),
        (
            "a_shredded_key_is_gone_for_good",
            a_shredded_key_is_gone_for_good,
        ),
        (
            "a_moved_waybill_leaves_its_bucket_and_its_shredding",
            a_moved_waybill_leaves_its_bucket_and_its_shredding,
        ),
        ("keys_rewrap_all_or_nothing", keys_rewrap_all_or_nothing),
        (
            "a_key_wrapped_under_another_master_key_is_refused",
            a_key_wrapped_under_another_master_key_is_refused,
        ),
        (
            "label_prints_count_with_their_entries",
            label_prints_count_with_their_entries,
        ),
        ("alerts_filter", alerts_filter),
        ("canaries_are_planted_once", canaries_are_planted_once),
        (
            "alerts_keep_their_evidence_and_triage_by_compare_and_set",
            alerts_keep_their_evidence_and_triage_by_compare_and_set,
        ),
        (
            "audit_search_filters_and_pages_over_index_and_tail",
            audit_search_filters_and_pages_over_index_and_tail,
        ),
        (
            "tickets_open_count_and_close_once",
            tickets_open_count_and_close_once,
        ),
    ];
    for (name, check) in checks {
        let store = fresh();
        eprintln!("conformance: {name}");
        check(store.as_ref());
    }
}

/// An audit entry for `action` (its seq and link are the store's to set).
pub fn entry(action: &str) -> AuditEntry {
    AuditEntry::new(1, "admin", action)
}

/// A courier account of outlet O1, created at 5.
pub fn account(id: &str) -> Account {
    Account {
        id: AccountId::parse(id).unwrap(),
        role: Role::Courier,
        outlet: Some(OutletId::parse("O1").unwrap()),
        merchant: None,
        status: AccountStatus::Active,
        status_reason: None,
        created_at: 5,
        status_since: 5,
    }
}

/// A sealed waybill `no` of merchant M1 from O1 to O2, with one blind-index token `[7; 16]`.
pub fn waybill(no: &str) -> SealedWaybill {
    SealedWaybill {
        meta: WaybillMeta {
            waybill_no: WaybillNo::parse(no).unwrap(),
            merchant: MerchantId::parse("M1").unwrap(),
            origin_outlet: OutletId::parse("O1").unwrap(),
            destination_outlet: OutletId::parse("O2").unwrap(),
            courier: None,
            status: WaybillStatus::Created,
            created_at: 1,
            updated_at: 1,
            signed_at: None,
            bucket: 0,
        },
        sealed: vec![1, 2, 3],
        blind: vec![(1, 0, [7u8; 16])],
    }
}

/// A pick-up scan at outlet O1 at `at`, filed by the integration I1.
pub fn picked_up(at: i64) -> EventRecord {
    EventRecord {
        at,
        event: StatusEvent {
            kind: EventType::PickedUp,
            outlet: OutletId::parse("O1").unwrap(),
            courier: None,
            at: None,
        },
        actor: "I1".into(),
    }
}

/// Signs and stores a checkpoint of the log as it is now.
pub fn sign_head(store: &dyn Store, signer: &NoteSigner) {
    let (size, root) = store.audit_head().unwrap();
    let cp = Checkpoint {
        origin: signer.name().into(),
        size,
        root,
    };
    store
        .put_checkpoint(size, &signer.sign(&cp.to_text()).unwrap())
        .unwrap();
}

/// Verifies the whole log against its checkpoints.
pub fn verify(
    store: &dyn Store,
    signer: &NoteSigner,
) -> Result<wbg_audit::VerifyReport, wbg_audit::VerifyFailure> {
    let entries = store.audit_entries(0, usize::MAX >> 1).unwrap();
    verify_log(
        entries.into_iter().map(Ok),
        &store.checkpoints().unwrap(),
        &signer.verifier(),
    )
}

/// The release windows of the privacy-number checks: a second of grace after signing, ten of quarantine.
const RELEASE: NumberRelease = NumberRelease {
    grace_ms: 1_000,
    quarantine_ms: 10_000,
};

/// Moves waybill `no` to `status` (with `courier`, and signed at `at` when signing) through `record_event`.
fn move_to(
    s: &dyn Store,
    no: &str,
    from: WaybillStatus,
    status: WaybillStatus,
    courier: &str,
    at: i64,
) {
    let (mut m, _) = s.waybill(&WaybillNo::parse(no).unwrap()).unwrap().unwrap();
    m.status = status;
    m.courier = Some(AccountId::parse(courier).unwrap());
    m.updated_at = at;
    if status == WaybillStatus::Signed {
        m.signed_at = Some(at);
    }
    let kind = match status {
        WaybillStatus::OutForDelivery => EventType::OutForDelivery,
        WaybillStatus::Signed => EventType::Signed,
        _ => EventType::Exception,
    };
    let ev = EventRecord {
        at,
        event: StatusEvent {
            kind,
            outlet: OutletId::parse("O2").unwrap(),
            courier: (kind == EventType::OutForDelivery)
                .then(|| AccountId::parse(courier).unwrap()),
            at: Some(at),
        },
        actor: courier.into(),
    };
    s.record_event(&m, from, &ev, entry("event")).unwrap();
}

/// A token of hash `[n; 32]` that expires at `expires_at`.
pub fn token(n: u8, expires_at: Option<i64>) -> NewToken {
    NewToken {
        hash: [n; 32],
        expires_at,
        issued_by: format!("test {n}"),
    }
}

/// Accounts, tokens, status and the audit entries of successful writes only.
pub fn accounts_and_tokens(s: &dyn Store) {
    let a = account("C1");
    s.create_account(&a, Some(&token(1, None)), entry("account_create"))
        .unwrap();
    assert!(matches!(
        s.create_account(&a, Some(&token(2, None)), entry("account_create")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.account_by_token(&[1u8; 32]).unwrap(), Some(a.clone()));
    assert_eq!(s.account_by_token(&[2u8; 32]).unwrap(), None);
    s.add_token(&a.id, &token(3, None), true, entry("token_issue"))
        .unwrap();
    assert_eq!(s.account_by_token(&[3u8; 32]).unwrap().unwrap().id, a.id);
    assert!(s.account_by_token(&[1u8; 32]).unwrap().is_some(), "kept");
    // A reissue without keeping revokes every older token of the account.
    s.add_token(&a.id, &token(4, None), false, entry("token_issue"))
        .unwrap();
    assert_eq!(s.account_by_token(&[4u8; 32]).unwrap().unwrap().id, a.id);
    assert_eq!(s.account_by_token(&[1u8; 32]).unwrap(), None);
    assert_eq!(s.account_by_token(&[3u8; 32]).unwrap(), None);
    let at = |time: i64, action: &str| AuditEntry::new(time, "admin", action);
    s.set_account_status(
        &a.id,
        AccountStatus::Suspended,
        Some("test"),
        at(40, "suspend"),
    )
    .unwrap();
    let stored = s.account(&a.id).unwrap().unwrap();
    assert_eq!(stored.status, AccountStatus::Suspended);
    // An async caller's lookup finds the same, and nothing for an id nobody has.
    assert_eq!(s.account_later(&a.id).wait().unwrap(), Some(stored.clone()));
    let nobody = AccountId::parse("nobody-here").unwrap();
    assert_eq!(s.account_later(&nobody).wait().unwrap(), None);
    assert_eq!(
        (a.status_since, stored.status_since),
        (5, 40),
        "the status time is the change's"
    );
    // Setting the status it has changes nothing; a reinstatement moves the time on.
    s.set_account_status(
        &a.id,
        AccountStatus::Suspended,
        Some("again"),
        at(50, "suspend"),
    )
    .unwrap();
    assert_eq!(s.account(&a.id).unwrap().unwrap().status_since, 40);
    s.set_account_status(&a.id, AccountStatus::Active, None, at(60, "reinstate"))
        .unwrap();
    assert_eq!(s.account(&a.id).unwrap().unwrap().status_since, 60);
    s.set_account_status(
        &a.id,
        AccountStatus::Suspended,
        Some("test"),
        at(70, "suspend"),
    )
    .unwrap();
    assert!(s
        .set_account_status(
            &AccountId::parse("nobody").unwrap(),
            AccountStatus::Active,
            None,
            entry("x")
        )
        .is_err());
    assert_eq!(s.accounts().unwrap().len(), 1);
    // A failed write appends no audit entry: 7 successful writes, 7 entries.
    assert_eq!(s.audit_size().unwrap(), 7);
}

/// An expired token authenticates nothing and is not listed; tokens list as metadata (never a hash) and are
/// revoked one by one by their handle; an account created without a token has none.
pub fn tokens_expire_list_and_revoke(s: &dyn Store) {
    let now = wbg_core::now_millis();
    let a = account("C1");
    s.create_account(&a, None, entry("account_create")).unwrap();
    assert!(s.tokens_of(&a.id, now).unwrap().is_empty());
    s.add_token(&a.id, &token(1, Some(now - 1_000)), true, entry("t"))
        .unwrap();
    s.add_token(&a.id, &token(2, Some(now + 3_600_000)), true, entry("t"))
        .unwrap();
    s.add_token(&a.id, &token(3, None), true, entry("t"))
        .unwrap();
    assert_eq!(s.account_by_token(&[1u8; 32]).unwrap(), None, "expired");
    assert_eq!(s.account_by_token(&[2u8; 32]).unwrap().unwrap().id, a.id);
    let w = WaybillNo::parse("W1").unwrap();
    assert!(s
        .read_snapshot(&[1u8; 32], &w)
        .wait()
        .unwrap()
        .account
        .is_none());
    assert!(s
        .read_snapshot(&[2u8; 32], &w)
        .wait()
        .unwrap()
        .account
        .is_some());
    let listed = s.tokens_of(&a.id, now).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|t| t.issued_by.as_str())
            .collect::<Vec<_>>(),
        ["test 2", "test 3"]
    );
    assert_eq!(listed[0].id, crate::token_id(&[2u8; 32]));
    assert_eq!(listed[0].expires_at, Some(now + 3_600_000));
    let before = s.audit_size().unwrap();
    assert!(matches!(
        s.revoke_token(&a.id, "000000000000", entry("revoke")),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.revoke_token(&account("C9").id, &listed[0].id, entry("revoke")),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.audit_size().unwrap(),
        before,
        "a refused revocation writes nothing"
    );
    s.revoke_token(&a.id, &listed[0].id, entry("revoke"))
        .unwrap();
    assert_eq!(s.account_by_token(&[2u8; 32]).unwrap(), None);
    assert_eq!(s.account_by_token(&[3u8; 32]).unwrap().unwrap().id, a.id);
    assert_eq!(s.tokens_of(&a.id, now).unwrap().len(), 1);
    assert_eq!(s.audit_size().unwrap(), before + 1);
}

/// Last activity: the later of what is stored and what is recorded wins, per account.
pub fn activity_keeps_the_latest(s: &dyn Store) {
    let (c1, c2) = (account("C1").id, account("C2").id);
    assert!(s.last_activity().unwrap().is_empty());
    let since = s
        .activity_since()
        .unwrap()
        .expect("recorded from the store's making");
    assert!((since - wbg_core::now_millis()).abs() < 600_000, "{since}");
    s.record_activity(&[]).unwrap();
    s.record_activity(&[(c1.clone(), 10), (c2.clone(), 5)])
        .unwrap();
    s.record_activity(&[(c1.clone(), 7), (c2.clone(), 20)])
        .unwrap();
    assert_eq!(s.last_activity().unwrap(), [(c1, 10), (c2, 20)]);
}

/// A batch with a number that exists is refused whole, index included.
pub fn batch_insert_is_all_or_nothing(s: &dyn Store) {
    s.insert_waybills(&[waybill("W1"), waybill("W2")], entry("ingest"))
        .unwrap();
    let err = s
        .insert_waybills(&[waybill("W3"), waybill("W1")], entry("ingest"))
        .unwrap_err();
    assert!(err.to_string().contains("W1"));
    assert!(s
        .waybill(&WaybillNo::parse("W3").unwrap())
        .unwrap()
        .is_none());
    assert_eq!(s.waybill_count().unwrap(), 2);
    assert_eq!(s.audit_size().unwrap(), 1);
    assert_eq!(s.find_by_token(&[7u8; 16]).unwrap().len(), 2);
    assert_eq!(s.find_by_token_of(&[7u8; 16], 0).unwrap().len(), 2);
    assert!(s.find_by_token_of(&[7u8; 16], 1).unwrap().is_empty());
    // A number the batch names twice is a conflict too (a caller that did not check).
    let err = s
        .insert_waybills(
            &[waybill("W4"), waybill("W5"), waybill("W4")],
            entry("ingest"),
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(why) if why.contains("W4")),
        "{err}"
    );
    assert_eq!(s.waybill_count().unwrap(), 2);
    assert_eq!(s.audit_size().unwrap(), 1);
}

/// An event applies only from the expected status.
pub fn events_check_the_expected_status(s: &dyn Store) {
    s.insert_waybills(&[waybill("W1")], entry("ingest"))
        .unwrap();
    let (mut meta, _) = s
        .waybill(&WaybillNo::parse("W1").unwrap())
        .unwrap()
        .unwrap();
    meta.status = WaybillStatus::PickedUp;
    let ev = picked_up(9);
    s.record_event(&meta, WaybillStatus::Created, &ev, entry("event"))
        .unwrap();
    assert!(matches!(
        s.record_event(&meta, WaybillStatus::Created, &ev, entry("event")),
        Err(StoreError::Conflict(_))
    ));
    let evs = s.events(&meta.waybill_no).unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].event.kind, EventType::PickedUp);
}

/// A public tracking lookup sees a waybill's metadata and its events in the order recorded, and nothing of a
/// waybill not stored; lookups asked together (as a busy tracking page asks them) each get their own.
pub fn a_tracking_snapshot_is_the_waybill_and_its_events(s: &dyn Store) {
    s.insert_waybills(&[waybill("W1"), waybill("W2")], entry("ingest"))
        .unwrap();
    let no = |n: &str| WaybillNo::parse(n).unwrap();
    let (mut meta, _) = s.waybill(&no("W1")).unwrap().unwrap();
    meta.status = WaybillStatus::PickedUp;
    s.record_event(&meta, WaybillStatus::Created, &picked_up(9), entry("event"))
        .unwrap();
    meta.status = WaybillStatus::InTransit;
    let mut onward = picked_up(12);
    onward.event.kind = EventType::InTransit;
    s.record_event(&meta, WaybillStatus::PickedUp, &onward, entry("event"))
        .unwrap();
    let asked = ["W1", "W2", "W9", "W1"];
    let tickets: Vec<_> = asked.iter().map(|n| s.tracking_snapshot(&no(n))).collect();
    let found: Vec<_> = tickets.into_iter().map(|t| t.wait().unwrap()).collect();
    for (n, f) in asked.iter().zip(&found) {
        let stored = s.waybill(&no(n)).unwrap().map(|(meta, _)| meta);
        assert_eq!(f.as_ref().map(|(meta, _)| meta), stored.as_ref(), "{n}");
    }
    let kinds = |f: &Option<(WaybillMeta, Vec<EventRecord>)>| {
        f.as_ref()
            .map(|(_, evs)| evs.iter().map(|e| (e.at, e.event.kind)).collect::<Vec<_>>())
    };
    let w1 = Some(vec![(9, EventType::PickedUp), (12, EventType::InTransit)]);
    assert_eq!(kinds(&found[0]), w1);
    assert_eq!(kinds(&found[1]), Some(vec![]));
    assert_eq!(kinds(&found[2]), None);
    assert_eq!(kinds(&found[3]), w1);
}

/// A read for an account an identity provider vouched for (known by its id, not by a token) sees what a read by
/// that account's token sees: the account, the waybill, its events and, for a courier, the waybill's privacy
/// number; an unknown account sees nothing, and a waybill that does not exist nothing but the account. Many such
/// reads at once, beside reads by token (a backend may answer them together), each get their own.
pub fn a_read_by_account_sees_what_its_token_sees(s: &dyn Store) {
    let mut staff = account("S1");
    staff.role = Role::CustomerService;
    for (n, a) in [(1, account("C1")), (2, staff)] {
        s.create_account(&a, Some(&token(n, None)), entry("account_create"))
            .unwrap();
    }
    s.sync_number_pool(&["17100000001".to_string()]).unwrap();
    w1_out_for_delivery_w2_created(s);
    let release = RELEASE;
    let (bound, _) = s
        .bind_number(
            &WaybillNo::parse("W1").unwrap(),
            &AccountId::parse("C1").unwrap(),
            110,
            release,
            &mut |_: &BindOutcome| Some(entry("number_bind")),
        )
        .unwrap();
    assert!(matches!(bound, BindOutcome::Bound(_)), "{bound:?}");
    let size = s.audit_size().unwrap();
    let no = |n: &str| WaybillNo::parse(n).unwrap();
    let by_token = |t: u8, w: &str| s.read_snapshot(&[t; 32], &no(w)).wait().unwrap();
    let by_id = |id: &str, w: &str| {
        s.read_snapshot_of_account(&AccountId::parse(id).unwrap(), &no(w))
            .wait()
            .unwrap()
    };
    let courier = by_id("C1", "W1");
    assert_eq!(courier, by_token(1, "W1"));
    assert_eq!(courier.account.as_ref().map(|a| a.id.as_str()), Some("C1"));
    assert_eq!(courier.waybill, s.waybill(&no("W1")).unwrap());
    assert_eq!(courier.events, s.events(&no("W1")).unwrap());
    assert_eq!(courier.events.len(), 1);
    assert_eq!(courier.number, s.number_of_waybill(&no("W1")).unwrap());
    assert!(courier.number.is_some(), "a courier sees the binding");
    let cs = by_id("S1", "W1");
    assert_eq!(cs, by_token(2, "W1"));
    assert_eq!(
        cs.account.as_ref().map(|a| a.role),
        Some(Role::CustomerService)
    );
    assert!(
        cs.waybill.is_some() && cs.number.is_none(),
        "a binding is for couriers"
    );
    let missing = by_id("C1", "W9");
    assert!(missing.account.is_some() && missing.waybill.is_none() && missing.events.is_empty());
    assert_eq!(
        by_id("X9", "W1"),
        ReadSnapshot::default(),
        "an unknown account sees nothing"
    );
    // At once, reads by id and by token mixed: each told its own.
    std::thread::scope(|sc| {
        for t in 0..6u8 {
            sc.spawn(move || {
                for i in 0..20u8 {
                    let (id, n) = if (t + i) % 2 == 0 {
                        ("C1", 1)
                    } else {
                        ("S1", 2)
                    };
                    let w = if i % 3 == 0 { "W2" } else { "W1" };
                    let (a, b) = if i % 2 == 0 {
                        (by_id(id, w), by_token(n, w))
                    } else {
                        (by_token(n, w), by_id(id, w))
                    };
                    assert_eq!(a, b, "{id} {w}");
                    assert_eq!(a.account.map(|a| a.id.to_string()), Some(id.to_string()));
                    assert_eq!(
                        a.waybill.map(|(m, _)| m.waybill_no.to_string()),
                        Some(w.to_string())
                    );
                    assert_eq!(by_id("X9", w), ReadSnapshot::default());
                }
            });
        }
    });
    assert_eq!(s.audit_size().unwrap(), size, "lookups write nothing");
}

/// A scan's snapshot is what a read's would say of the account and the waybill's metadata, nothing more; an
/// unknown or expired token sees nothing; scans and reads asked at once, in the same groups, each get their own.
pub fn a_scan_snapshot_is_the_account_and_the_waybills_metadata(s: &dyn Store) {
    s.create_account(
        &account("C1"),
        Some(&token(1, None)),
        entry("account_create"),
    )
    .unwrap();
    s.create_account(
        &account("C2"),
        Some(&token(2, Some(10))),
        entry("account_create"),
    )
    .unwrap();
    w1_out_for_delivery_w2_created(s);
    let size = s.audit_size().unwrap();
    let no = |n: &str| WaybillNo::parse(n).unwrap();
    let scan = |t: u8, w: &str| s.scan_snapshot(&[t; 32], &no(w)).wait().unwrap();
    let read = |t: u8, w: &str| s.read_snapshot(&[t; 32], &no(w)).wait().unwrap();
    for w in ["W1", "W2"] {
        let (scanned, read) = (scan(1, w), read(1, w));
        assert_eq!(scanned.account, read.account);
        assert_eq!(scanned.waybill, read.waybill.map(|(meta, _)| meta), "{w}");
        assert!(
            scanned.account.is_some() && scanned.waybill.is_some(),
            "{w}"
        );
    }
    assert_eq!(
        scan(1, "W1").waybill.map(|m| (m.status, m.courier)),
        Some((
            WaybillStatus::OutForDelivery,
            Some(AccountId::parse("C1").unwrap())
        ))
    );
    let missing = scan(1, "W9");
    assert!(missing.account.is_some() && missing.waybill.is_none());
    assert_eq!(scan(9, "W1"), ScanSnapshot::default(), "an unknown token");
    assert_eq!(scan(2, "W1"), ScanSnapshot::default(), "an expired token");
    // At once, scans and reads mixed (on PostgreSQL in the same lookup groups): a read still sees the sealed
    // fields and the events, a scan its own answer.
    std::thread::scope(|sc| {
        for t in 0..6u8 {
            sc.spawn(move || {
                for i in 0..20u8 {
                    let w = if (t + i) % 3 == 0 { "W2" } else { "W1" };
                    let (scanned, full) = if (t + i) % 2 == 0 {
                        (scan(1, w), read(1, w))
                    } else {
                        let full = read(1, w);
                        (scan(1, w), full)
                    };
                    let (meta, sealed) = full.waybill.clone().unwrap();
                    assert_eq!(sealed, vec![1, 2, 3], "a read's sealed fields, {w}");
                    assert_eq!(full.events.len(), usize::from(w == "W1"), "{w}");
                    assert_eq!(scanned.waybill, Some(meta), "{w}");
                    assert_eq!(scanned.account, full.account);
                    assert_eq!(scan(9, w), ScanSnapshot::default());
                }
            });
        }
    });
    assert_eq!(s.audit_size().unwrap(), size, "lookups write nothing");
}

/// Waybills W1 and W2 stored, and W1 sent out for delivery with courier C1 at 100.
fn w1_out_for_delivery_w2_created(s: &dyn Store) {
    for no in ["W1", "W2"] {
        s.insert_waybills(&[waybill(no)], entry("ingest")).unwrap();
    }
    move_to(
        s,
        "W1",
        WaybillStatus::Created,
        WaybillStatus::OutForDelivery,
        "C1",
        100,
    );
}

/// A guarded read's snapshot holds the account, the waybill and its events; an unknown token sees nothing; its
/// entry goes through the group commit, many callers at once, each told its own seq, in one unbroken log.
pub fn a_guarded_read_snapshots_and_group_commits_its_entry(s: &dyn Store) {
    let a = account("C1");
    s.create_account(&a, Some(&token(1, None)), entry("account_create"))
        .unwrap();
    s.insert_waybills(&[waybill("W1")], entry("ingest"))
        .unwrap();
    let w1 = WaybillNo::parse("W1").unwrap();
    let snap = s.read_snapshot(&[1u8; 32], &w1).wait().unwrap();
    assert_eq!(snap.account, Some(a));
    assert_eq!(snap.waybill, s.waybill(&w1).unwrap());
    assert_eq!(snap.events, s.events(&w1).unwrap());
    assert_eq!(
        s.append_audit_grouped(vec![entry("view")]).wait().unwrap(),
        2
    );
    assert_eq!(s.audit_size().unwrap(), 3);

    // An unknown token sees nothing else; a waybill that does not exist has no events.
    let snap = s.read_snapshot(&[9u8; 32], &w1).wait().unwrap();
    assert!(snap.account.is_none() && snap.waybill.is_none());
    let snap = s
        .read_snapshot(&[1u8; 32], &WaybillNo::parse("W9").unwrap())
        .wait()
        .unwrap();
    assert!(snap.account.is_some() && snap.waybill.is_none() && snap.events.is_empty());
    assert_eq!(s.audit_size().unwrap(), 3);

    // Concurrent callers: every seq handed out once, the log gapless and chained.
    let seqs = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for t in 0..8 {
            let seqs = &seqs;
            sc.spawn(move || {
                for i in 0..25 {
                    let n = if i % 5 == 0 { 2 } else { 1 };
                    let first = s
                        .append_audit_grouped((0..n).map(|_| entry(&format!("t{t}"))).collect())
                        .wait()
                        .unwrap();
                    seqs.lock().unwrap().extend(first..first + n);
                }
            });
        }
    });
    let mut seqs = seqs.into_inner().unwrap();
    seqs.sort_unstable();
    assert_eq!(seqs, (3..3 + 8 * 30).collect::<Vec<u64>>());
    assert_eq!(s.audit_size().unwrap(), 3 + 240);
    let entries = s.audit_entries(0, 1_000).unwrap();
    for w in entries.windows(2) {
        let prev = wbg_audit::AuditEntry::decode(&w[1].bytes).unwrap().prev;
        assert_eq!(prev, hex::encode(wbg_audit::merkle::leaf_hash(&w[0].bytes)));
    }
    // A plain append still follows.
    s.append_audit(entry("after")).unwrap();
    assert_eq!(s.audit_size().unwrap(), 244);
}

/// Case files change only by compare-and-set.
pub fn case_files_change_only_by_compare_and_set(s: &dyn Store) {
    s.put_case("export", "E1", "{\"v\":1}", None, entry("export_request"))
        .unwrap();
    // A second creation, and a change from a body that is no longer current, both lose and write nothing.
    let before = s.audit_size().unwrap();
    assert!(matches!(
        s.put_case("export", "E1", "{\"v\":9}", None, entry("x")),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.put_case("export", "E1", "{\"v\":9}", Some("{\"v\":0}"), entry("x")),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.put_case("export", "E2", "{}", Some("{}"), entry("x")),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.audit_size().unwrap(), before);
    s.put_case(
        "export",
        "E1",
        "{\"v\":2}",
        Some("{\"v\":1}"),
        entry("export_approve"),
    )
    .unwrap();
    assert_eq!(
        s.case("export", "E1").unwrap().as_deref(),
        Some("{\"v\":2}")
    );
    assert_eq!(s.case("incident", "E1").unwrap(), None);
    s.put_case("incident", "I1", "{}", None, entry("incident_open"))
        .unwrap();
    let listed = s.cases("export", 10).unwrap();
    assert_eq!(listed, [("E1".to_owned(), "{\"v\":2}".to_owned())]);
    assert_eq!(s.cases("incident", 10).unwrap().len(), 1);
    assert!(s.cases("nothing", 10).unwrap().is_empty());
}

/// An alert keeps the audit seqs behind it; triage moves it by compare-and-set on its revision, each change in
/// its history with the entry that records it; a live queue reads alerts past an id, oldest first.
pub fn alerts_keep_their_evidence_and_triage_by_compare_and_set(s: &dyn Store) {
    let mut a = wbg_core::Alert::raised(50, "C1", "risk_mask", "warning", "{}");
    a.audit_seqs = vec![9, 4, 2];
    let id = s.insert_alert(&a).unwrap();
    let id2 = s
        .insert_alert(&wbg_core::Alert::raised(
            60,
            "C2",
            "rate_limit",
            "info",
            "{}",
        ))
        .unwrap();
    let got = s.alert(id).unwrap().unwrap();
    assert_eq!(got.audit_seqs, [9, 4, 2]);
    assert_eq!(
        (got.state.as_str(), got.revision, got.updated_at),
        ("new", 0, 50)
    );
    assert_eq!(s.alert(id2 + 100).unwrap(), None);
    let after: Vec<i64> = s
        .alerts_after(id, 10)
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(after, [id2]);
    assert_eq!(s.alerts_after(0, 1).unwrap()[0].id, id);

    let rec = crate::TriageRecord {
        at: 70,
        by: "AUD1".into(),
        state: "investigating".into(),
        assignee: Some("AUD2".into()),
        reason: "needs_investigation".into(),
        note: Some("sealed:xyz".into()),
        audit_seq: 0,
    };
    let before = s.audit_size().unwrap();
    let seq = s.triage_alert(id, 0, &rec, entry("alert_triage")).unwrap();
    assert_eq!(seq, before);
    // The same change against the old revision loses and writes nothing.
    assert!(matches!(
        s.triage_alert(id, 0, &rec, entry("alert_triage")),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.triage_alert(id2 + 100, 0, &rec, entry("alert_triage")),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.audit_size().unwrap(), before + 1);
    let got = s.alert(id).unwrap().unwrap();
    assert_eq!(
        (
            got.state.as_str(),
            got.assignee.as_deref(),
            got.revision,
            got.updated_at
        ),
        ("investigating", Some("AUD2"), 1, 70)
    );
    let confirm = crate::TriageRecord {
        at: 80,
        state: "confirmed".into(),
        assignee: None,
        reason: "confirmed_leak".into(),
        note: None,
        ..rec.clone()
    };
    s.triage_alert(id, 1, &confirm, entry("alert_triage"))
        .unwrap();
    let history = s.alert_history(id).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0],
        crate::TriageRecord {
            audit_seq: seq,
            ..rec
        }
    );
    assert_eq!(history[1].state, "confirmed");
    assert_eq!(history[1].audit_seq, seq + 1);
    let open = |state: &str| {
        s.alerts(&crate::AlertFilter {
            state: Some(state.into()),
            limit: 10,
            ..crate::AlertFilter::default()
        })
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(open("new"), [id2]);
    assert_eq!(open("confirmed"), [id]);
}

/// Audit search: every filter, newest first by (time, seq), pages that follow a cursor without gaps or repeats,
/// and the same answers whether entries are already indexed (after upkeep) or not yet.
pub fn audit_search_filters_and_pages_over_index_and_tail(s: &dyn Store) {
    let mk = |i: u64| {
        let mut e = AuditEntry::new(
            1_000 + (i as i64 / 3) * 10,
            ["C1", "C2", "AUD1"][(i % 3) as usize],
            if i.is_multiple_of(5) {
                "ingest"
            } else {
                "view"
            },
        );
        e.waybill = (!i.is_multiple_of(4)).then(|| format!("W{}", i % 7));
        if i.is_multiple_of(6) {
            e.decision = "deny".into();
        }
        e
    };
    let all: Vec<AuditEntry> = (0..120).map(mk).collect();
    let base = s.audit_size().unwrap();
    // Half before upkeep (indexed), half after (the tail).
    s.append_audit_batch(all[..60].to_vec()).unwrap();
    s.maintain().unwrap();
    s.append_audit_batch(all[60..].to_vec()).unwrap();
    let expect = |q: &crate::AuditQuery| {
        let mut v: Vec<(i64, u64)> = all
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                let row = crate::IndexRow::of(AuditEntry {
                    seq: base + *i as u64,
                    ..(*e).clone()
                });
                q.matches(&row)
            })
            .map(|(i, e)| (e.time, base + i as u64))
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().map(|(_, s)| s).collect::<Vec<u64>>()
    };
    let paged = |q: &crate::AuditQuery| {
        let mut q = q.clone();
        let mut got = Vec::new();
        loop {
            let page = s.search_audit(&q).unwrap();
            assert!(page.entries.len() <= q.limit);
            for (seq, bytes) in &page.entries {
                let e = AuditEntry::decode(bytes).unwrap();
                assert_eq!(e.seq, *seq, "the bytes are the entry's own");
                got.push(*seq);
            }
            match page.next {
                Some(c) => q.before = Some(c),
                None => break,
            }
        }
        got
    };
    let queries = [
        crate::AuditQuery::default(),
        crate::AuditQuery {
            account: Some("C1".into()),
            ..Default::default()
        },
        crate::AuditQuery {
            waybill: Some("W3".into()),
            ..Default::default()
        },
        crate::AuditQuery {
            action: Some("ingest".into()),
            decision: Some("deny".into()),
            ..Default::default()
        },
        crate::AuditQuery {
            decision: Some("deny".into()),
            from: Some(1_100),
            to: Some(1_300),
            ..Default::default()
        },
        crate::AuditQuery {
            account: Some("C2".into()),
            waybill: Some("W1".into()),
            from: Some(1_000),
            ..Default::default()
        },
        crate::AuditQuery {
            account: Some("nobody".into()),
            ..Default::default()
        },
    ];
    // Hourly counts by decision: what counting the matching entries gives.
    let hourly = |q: &crate::AuditQuery| {
        let mut counts = std::collections::BTreeMap::new();
        for (i, e) in all.iter().enumerate() {
            let row = crate::IndexRow::of(AuditEntry {
                seq: base + i as u64,
                ..e.clone()
            });
            if q.matches(&row) {
                crate::count_hour(&mut counts, &row);
            }
        }
        crate::hour_counts(counts)
    };
    for (i, q) in queries.iter().enumerate() {
        for limit in [1, 7, 500] {
            let q = crate::AuditQuery { limit, ..q.clone() };
            assert_eq!(paged(&q), expect(&q), "query {i}, pages of {limit}");
        }
        assert_eq!(s.hourly_audit(q).unwrap(), hourly(q), "hourly, query {i}");
    }
    // After upkeep has indexed everything, the answers are the same.
    s.maintain().unwrap();
    for q in &queries {
        let q = crate::AuditQuery {
            limit: 11,
            ..q.clone()
        };
        assert_eq!(paged(&q), expect(&q));
        assert_eq!(s.hourly_audit(&q).unwrap(), hourly(&q));
    }
    // Entries spread over hours, some a little out of time order (stamped before the log ordered them), not yet
    // indexed: a search that may stop reading early still finds exactly the right page.
    let base = s.audit_size().unwrap();
    let spread: Vec<AuditEntry> = (0..90u64)
        .map(|i| {
            let jitter = [0, 150_000, -120_000][(i % 3) as usize];
            let mut e = AuditEntry::new(10_000_000 + i as i64 * 60_000 + jitter, "SPREAD", "view");
            e.waybill = Some(format!("S{}", i % 4));
            e
        })
        .collect();
    s.append_audit_batch(spread.clone()).unwrap();
    for (from, limit, waybill) in [
        (None, 1, None),
        (None, 7, None),
        (Some(10_000_000 + 80 * 60_000), 3, None),
        (Some(10_000_000 + 45 * 60_000), 500, Some("S1")),
        (None, 4, Some("S2")),
    ] {
        let q = crate::AuditQuery {
            account: Some("SPREAD".into()),
            waybill: waybill.map(str::to_owned),
            from,
            limit,
            ..Default::default()
        };
        let mut want: Vec<(i64, u64)> = spread
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                q.matches(&crate::IndexRow::of(AuditEntry {
                    seq: base + *i as u64,
                    ..(*e).clone()
                }))
            })
            .map(|(i, e)| (e.time, base + i as u64))
            .collect();
        want.sort_by(|a, b| b.cmp(a));
        let want: Vec<u64> = want.into_iter().map(|(_, s)| s).collect();
        assert_eq!(
            paged(&q),
            want,
            "from {from:?}, pages of {limit}, {waybill:?}"
        );
    }
}

/// A batch of audit entries is one verifiable run.
pub fn a_batch_of_audit_entries_is_one_verifiable_run(s: &dyn Store) {
    s.append_audit(entry("first")).unwrap();
    let first = s
        .append_audit_batch((0..5).map(|i| entry(&format!("row{i}"))).collect())
        .unwrap();
    assert_eq!(first, 1);
    assert_eq!(s.append_audit(entry("last")).unwrap(), 6);
    let signer = NoteSigner::generate("test/audit").unwrap();
    sign_head(s, &signer);
    let r = verify(s, &signer).unwrap();
    assert_eq!(r.entries, 7);
}

/// A merchant's orders by creation time, bounded.
pub fn a_merchants_orders_by_creation_time(s: &dyn Store) {
    let mut batch: Vec<SealedWaybill> = (0..6)
        .map(|i| {
            let mut w = waybill(&format!("W{i}"));
            w.meta.created_at = 100 - i;
            if i == 5 {
                w.meta.merchant = MerchantId::parse("M2").unwrap();
            }
            w
        })
        .collect();
    batch[0].blind.clear();
    s.insert_waybills(&batch, entry("ingest")).unwrap();
    let m1 = MerchantId::parse("M1").unwrap();
    let got = s.merchant_waybills(&m1, 97, 101, 10).unwrap();
    let got: Vec<&str> = got.iter().map(|n| n.as_str()).collect();
    assert_eq!(got, ["W3", "W2", "W1", "W0"]);
    assert_eq!(s.merchant_waybills(&m1, 0, 1_000, 2).unwrap().len(), 2);
    assert!(s.merchant_waybills(&m1, 101, 1_000, 10).unwrap().is_empty());
}

/// Privacy numbers: bind, wait when exhausted, rebind, rest before reuse, retire.
pub fn privacy_numbers_bind_wait_rebind_and_rest_before_reuse(s: &dyn Store) {
    for no in ["W1", "W2", "W3"] {
        s.insert_waybills(&[waybill(no)], entry("ingest")).unwrap();
    }
    let pool = ["17100000001".to_string(), "17100000002".to_string()];
    let synced = s.sync_number_pool(&pool).unwrap();
    assert_eq!((synced.added, synced.retired, synced.in_service), (2, 0, 2));
    assert_eq!(s.sync_number_pool(&pool).unwrap().added, 0, "idempotent");
    let release = RELEASE;
    let c1 = AccountId::parse("C1").unwrap();
    let no = |n: &str| WaybillNo::parse(n).unwrap();
    let audited = &mut |_: &BindOutcome| Some(entry("number_bind"));
    // Not out for delivery: nothing to bind.
    let (o, seq) = s.bind_number(&no("W1"), &c1, 10, release, audited).unwrap();
    assert_eq!((o, seq), (BindOutcome::NotNeeded, None));
    let size = s.audit_size().unwrap();
    for (i, w) in ["W1", "W2", "W3"].iter().enumerate() {
        move_to(
            s,
            w,
            WaybillStatus::Created,
            WaybillStatus::OutForDelivery,
            "C1",
            100 + i as i64,
        );
    }
    assert_eq!(
        s.waiting_for_numbers(10).unwrap().len(),
        3,
        "queued by their events"
    );
    let (o, seq) = s
        .bind_number(&no("W1"), &c1, 200, release, audited)
        .unwrap();
    let BindOutcome::Bound(b1) = o else {
        panic!("{o:?}")
    };
    assert!(seq.unwrap() >= size);
    let (o, _) = s
        .bind_number(&no("W2"), &c1, 201, release, audited)
        .unwrap();
    let BindOutcome::Bound(b2) = o else {
        panic!("{o:?}")
    };
    assert_ne!(b1.number, b2.number);
    let (o, _) = s
        .bind_number(&no("W3"), &c1, 202, release, audited)
        .unwrap();
    assert_eq!(o, BindOutcome::Exhausted);
    let state = |now| s.number_pool_state(now, release).unwrap();
    assert_eq!(
        state(202),
        PoolState {
            in_service: 2,
            free: 0,
            waiting: 1
        },
        "two bound, one waiting"
    );
    let waiting = s.waiting_for_numbers(10).unwrap();
    assert_eq!(
        waiting,
        vec![(no("W3"), c1.clone())],
        "bound ones stop waiting"
    );
    assert_eq!(
        s.number_binding(&b1.number).unwrap().unwrap().waybill_no,
        no("W1")
    );
    // Binding again keeps the number.
    let (o, _) = s
        .bind_number(&no("W1"), &c1, 203, release, audited)
        .unwrap();
    assert!(
        matches!(o, BindOutcome::Kept(ref b) if b.number == b1.number),
        "{o:?}"
    );
    // W1 is signed at 1,000: its number rests until 1,000 + grace + quarantine.
    move_to(
        s,
        "W1",
        WaybillStatus::OutForDelivery,
        WaybillStatus::Signed,
        "C1",
        1_000,
    );
    let (o, _) = s
        .bind_number(&no("W3"), &c1, 11_999, release, audited)
        .unwrap();
    assert_eq!(o, BindOutcome::Exhausted, "still resting");
    assert_eq!(state(11_999).free, 0, "resting is not free");
    assert_eq!(state(12_000).free, 1, "rested");
    let (o, _) = s
        .bind_number(&no("W3"), &c1, 12_000, release, audited)
        .unwrap();
    assert!(
        matches!(o, BindOutcome::Bound(ref b) if b.number == b1.number),
        "{o:?}"
    );
    assert!(s.waiting_for_numbers(10).unwrap().is_empty());
    // W2 goes to an exception and out again with another courier: it keeps its number, rebound.
    move_to(
        s,
        "W2",
        WaybillStatus::OutForDelivery,
        WaybillStatus::Exception,
        "C1",
        13_000,
    );
    move_to(
        s,
        "W2",
        WaybillStatus::Exception,
        WaybillStatus::OutForDelivery,
        "C2",
        14_000,
    );
    let c2 = AccountId::parse("C2").unwrap();
    assert_eq!(
        s.waiting_for_numbers(10).unwrap(),
        vec![(no("W2"), c2.clone())]
    );
    let (o, _) = s
        .bind_number(&no("W2"), &c2, 14_001, release, audited)
        .unwrap();
    match o {
        BindOutcome::Rebound { binding, from } => {
            assert_eq!((binding.number, binding.courier, from), (b2.number, c2, c1));
        }
        other => panic!("{other:?}"),
    }
    // A number dropped from the configuration is never bound again.
    let synced = s.sync_number_pool(&pool[..1]).unwrap();
    assert_eq!((synced.retired, synced.in_service), (1, 1));
}

/// What binders running side by side were told, checked: each number bound once, to one waybill, and kept by
/// every later binder of that waybill (nothing else told but the pool's exhaustion). Returns each waybill's number
/// and the numbers bound.
fn bound_once(
    told: &[(WaybillNo, BindOutcome)],
) -> (BTreeMap<WaybillNo, String>, BTreeSet<String>) {
    let mut bound: BTreeMap<WaybillNo, String> = BTreeMap::new();
    let mut numbers: BTreeSet<String> = BTreeSet::new();
    for (no, o) in told {
        if let BindOutcome::Bound(b) = o {
            assert_eq!(&b.waybill_no, no);
            assert!(numbers.insert(b.number.clone()), "{} bound twice", b.number);
            assert!(
                bound.insert(no.clone(), b.number.clone()).is_none(),
                "{no} was bound two numbers"
            );
        }
    }
    for (no, o) in told {
        match o {
            BindOutcome::Bound(_) | BindOutcome::Exhausted => {}
            BindOutcome::Kept(b) => {
                assert_eq!(Some(&b.number), bound.get(no), "{no} kept another number")
            }
            other => panic!("{no}: {other:?}"),
        }
    }
    (bound, numbers)
}

/// Binders side by side, as every node binds numbers as its parcels go out: each number goes to one waybill,
/// each waybill gets one number however many binders ask for it at once, and a waybill that finds the pool
/// bound waits for a number.
pub fn privacy_numbers_bound_side_by_side(s: &dyn Store) {
    let nos: Vec<WaybillNo> = (1..=40)
        .map(|i| WaybillNo::parse(&format!("N{i:02}")).unwrap())
        .collect();
    for no in &nos {
        s.insert_waybills(&[waybill(no.as_str())], entry("ingest"))
            .unwrap();
    }
    let pool: Vec<String> = (1..=24).map(|i| format!("171000000{i:02}")).collect();
    s.sync_number_pool(&pool).unwrap();
    for (i, no) in nos.iter().enumerate() {
        let at = 100 + i as i64;
        move_to(
            s,
            no.as_str(),
            WaybillStatus::Created,
            WaybillStatus::OutForDelivery,
            "C1",
            at,
        );
    }
    let release = RELEASE;
    let c1 = AccountId::parse("C1").unwrap();
    let told = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for t in 0..8 {
            let (told, nos, c1) = (&told, &nos, &c1);
            sc.spawn(move || {
                let audited = &mut |_: &BindOutcome| Some(entry("number_bind"));
                // Every binder on the first waybill at once, then each its share of the rest, twice.
                let share = (t..nos.len()).step_by(8);
                for i in std::iter::once(0).chain(share.clone()).chain(share) {
                    let (o, _) = s.bind_number(&nos[i], c1, 200, release, audited).unwrap();
                    told.lock().unwrap().push((nos[i].clone(), o));
                }
            });
        }
    });
    let told = told.into_inner().unwrap();
    let (mut bound, mut numbers) = bound_once(&told);
    let first = told.iter().filter(|(no, _)| *no == nos[0]);
    assert!(
        first
            .clone()
            .all(|(_, o)| !matches!(o, BindOutcome::Exhausted)),
        "the first waybill was asked for before the pool could run out"
    );
    assert_eq!(
        first
            .filter(|(_, o)| matches!(o, BindOutcome::Bound(_)))
            .count(),
        1
    );
    // A binder that found every free number held by others left its waybill waiting; binding the waiting ones
    // one by one, as upkeep does, fills the pool and no more.
    let audited = &mut |_: &BindOutcome| Some(entry("number_bind"));
    for (no, _) in s.waiting_for_numbers(100).unwrap() {
        if let (BindOutcome::Bound(b), _) = s.bind_number(&no, &c1, 300, release, audited).unwrap()
        {
            assert!(numbers.insert(b.number.clone()), "{} bound twice", b.number);
            assert!(bound.insert(no, b.number).is_none());
        }
    }
    assert_eq!(numbers.len(), 24, "every number bound");
    assert_eq!(s.waiting_for_numbers(100).unwrap().len(), 16);
    for no in &nos {
        let stored = s.number_of_waybill(no).unwrap().map(|b| b.number);
        assert_eq!(stored.as_ref(), bound.get(no), "{no}");
    }
    for n in &pool {
        let b = s.number_binding(n).unwrap().unwrap();
        assert_eq!(bound.get(&b.waybill_no), Some(n));
    }
}

/// Many waybills bound in one call, as a batch of scans' parcels going out: each told its outcome in order, one
/// entry for each outcome but "not needed", a waybill listed twice keeping its number, a rebinding beside new
/// bindings, the pool running out part-way (the rest wait, unlooked); and batches of several binders at once, over
/// the same waybills in different orders, binding each number to one waybill.
pub fn privacy_numbers_bound_in_batches(s: &dyn Store) {
    let no = |n: &str| WaybillNo::parse(n).unwrap();
    let (c1, c2) = (
        AccountId::parse("C1").unwrap(),
        AccountId::parse("C2").unwrap(),
    );
    for w in ["B1", "B2", "B3", "B4", "B5", "B6", "B7"] {
        s.insert_waybills(&[waybill(w)], entry("ingest")).unwrap();
    }
    let pool: Vec<String> = (1..=4).map(|i| format!("1710000000{i}")).collect();
    s.sync_number_pool(&pool).unwrap();
    for (i, w) in ["B1", "B2", "B3", "B4", "B5", "B6"].iter().enumerate() {
        let at = 100 + i as i64;
        move_to(
            s,
            w,
            WaybillStatus::Created,
            WaybillStatus::OutForDelivery,
            "C1",
            at,
        );
    }
    let release = RELEASE;
    // B6 first, alone; then it goes to an exception and out again with C2.
    let (o, _) = s
        .bind_number(&no("B6"), &c1, 150, release, &mut |_| {
            Some(entry("number_bind"))
        })
        .unwrap();
    let BindOutcome::Bound(b6) = o else {
        panic!("{o:?}")
    };
    move_to(
        s,
        "B6",
        WaybillStatus::OutForDelivery,
        WaybillStatus::Exception,
        "C1",
        160,
    );
    move_to(
        s,
        "B6",
        WaybillStatus::Exception,
        WaybillStatus::OutForDelivery,
        "C2",
        170,
    );
    let wanted: Vec<(WaybillNo, AccountId)> = [
        ("B1", &c1),
        ("B7", &c1), // not out for delivery
        ("B6", &c2),
        ("B2", &c1),
        ("B1", &c1), // listed twice
        ("B3", &c1),
        ("B4", &c1),
        ("B5", &c1),
    ]
    .into_iter()
    .map(|(w, c)| (no(w), c.clone()))
    .collect();
    let size = s.audit_size().unwrap();
    // Through the async caller's way, which binds as `bind_numbers` does (and records as much, in one commit).
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recording = asked.clone();
    let (outcomes, seq) = s
        .bind_numbers_later(
            wanted.clone(),
            200,
            release,
            Box::new(move |w, c, o| {
                recording
                    .lock()
                    .unwrap()
                    .push((w.clone(), c.clone(), o.clone()));
                Some(entry("number_bind"))
            }),
        )
        .wait()
        .unwrap();
    let asked = std::mem::take(&mut *asked.lock().unwrap());
    assert_eq!(outcomes.len(), wanted.len());
    let bound = |i: usize| match &outcomes[i] {
        BindOutcome::Bound(b) => b.clone(),
        other => panic!("{}: {other:?}", wanted[i].0),
    };
    let (b1, b2, b3) = (bound(0), bound(3), bound(5));
    assert_eq!(outcomes[1], BindOutcome::NotNeeded);
    match &outcomes[2] {
        BindOutcome::Rebound { binding, from } => {
            assert_eq!(
                (&binding.number, &binding.courier, from),
                (&b6.number, &c2, &c1)
            );
        }
        other => panic!("B6: {other:?}"),
    }
    assert!(
        matches!(&outcomes[4], BindOutcome::Kept(b) if b.number == b1.number),
        "{:?}",
        outcomes[4]
    );
    assert_eq!(
        outcomes[6],
        BindOutcome::Exhausted,
        "the fourth number is B6's"
    );
    assert_eq!(outcomes[7], BindOutcome::Exhausted);
    let numbers: BTreeSet<&str> = [&b1, &b2, &b3, &b6]
        .iter()
        .map(|b| b.number.as_str())
        .collect();
    assert_eq!(numbers.len(), 4, "four numbers, each bound once");
    // The audit closure was asked for every outcome but "not needed", in order; each entry was written.
    let told: Vec<(WaybillNo, AccountId, BindOutcome)> = wanted
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| **o != BindOutcome::NotNeeded)
        .map(|((w, c), o)| (w.clone(), c.clone(), o.clone()))
        .collect();
    assert_eq!(asked, told);
    assert_eq!(seq, Some(size));
    assert_eq!(s.audit_size().unwrap(), size + 7);
    assert_eq!(
        s.waiting_for_numbers(10).unwrap(),
        vec![(no("B4"), c1.clone()), (no("B5"), c1.clone())],
        "the bound stop waiting, the exhausted wait"
    );
    for (w, b) in [("B1", &b1), ("B2", &b2), ("B3", &b3)] {
        assert_eq!(
            s.number_of_waybill(&no(w)).unwrap().as_ref(),
            Some(b),
            "{w}"
        );
        assert_eq!(
            s.number_of_waybill_later(&no(w)).wait().unwrap().as_ref(),
            Some(b),
            "{w}, asked for later"
        );
    }
    assert_eq!(s.number_of_waybill_later(&no("B7")).wait().unwrap(), None);
    assert_eq!(s.number_of_waybill(&no("B6")).unwrap().unwrap().courier, c2);
    // Nothing to audit: no entry, no seq.
    let (o, seq) = s
        .bind_numbers(&wanted[1..2], 210, release, &mut |_, _, _| None)
        .unwrap();
    assert_eq!((o, seq), (vec![BindOutcome::NotNeeded], None));
    let later = s.bind_numbers_later(
        wanted[1..2].to_vec(),
        210,
        release,
        Box::new(|_, _, _| None),
    );
    assert_eq!(later.wait().unwrap(), (vec![BindOutcome::NotNeeded], None));

    // Batches side by side: 4 binders, each binding all 30 waybills in its own order, in batches of 10, over a
    // pool of 20 numbers.
    let nos: Vec<WaybillNo> = (1..=30).map(|i| no(&format!("S{i:02}"))).collect();
    for w in &nos {
        s.insert_waybills(&[waybill(w.as_str())], entry("ingest"))
            .unwrap();
        move_to(
            s,
            w.as_str(),
            WaybillStatus::Created,
            WaybillStatus::OutForDelivery,
            "C1",
            300,
        );
    }
    let pool: Vec<String> = (1..=20).map(|i| format!("172000000{i:02}")).collect();
    s.sync_number_pool(&pool).unwrap();
    let told = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for t in 0..4usize {
            let (told, nos, c1) = (&told, &nos, &c1);
            sc.spawn(move || {
                let mut order: Vec<WaybillNo> = nos.clone();
                order.rotate_left(t * 7);
                if t % 2 == 1 {
                    order.reverse();
                }
                for chunk in order.chunks(10) {
                    let wanted: Vec<(WaybillNo, AccountId)> =
                        chunk.iter().map(|w| (w.clone(), c1.clone())).collect();
                    // Half the binders the async caller's way.
                    let (o, _) = if t % 2 == 0 {
                        s.bind_numbers(&wanted, 400, release, &mut |_, _, _| {
                            Some(entry("number_bind"))
                        })
                    } else {
                        s.bind_numbers_later(
                            wanted,
                            400,
                            release,
                            Box::new(|_, _, _| Some(entry("number_bind"))),
                        )
                        .wait()
                    }
                    .unwrap();
                    told.lock().unwrap().extend(chunk.iter().cloned().zip(o));
                }
            });
        }
    });
    let (mut bound, mut taken) = bound_once(&told.into_inner().unwrap());
    assert!(taken.len() <= 20);
    for w in &nos {
        let stored = s.number_of_waybill(w).unwrap().map(|b| b.number);
        assert_eq!(stored.as_ref(), bound.get(w), "{w}");
    }
    // Whatever contention left waiting, binding the waiting ones fills the pool and no more (B4 and B5 of the
    // first part wait too, left out here).
    let waiting_s = || -> Vec<(WaybillNo, AccountId)> {
        let waiting = s.waiting_for_numbers(100).unwrap();
        waiting
            .into_iter()
            .filter(|(w, _)| w.as_str().starts_with('S'))
            .collect()
    };
    let waiting = waiting_s();
    let (o, _) = s
        .bind_numbers(&waiting, 500, release, &mut |_, _, _| None)
        .unwrap();
    for ((w, _), o) in waiting.iter().zip(o) {
        if let BindOutcome::Bound(b) = o {
            assert!(taken.insert(b.number.clone()), "{} bound twice", b.number);
            assert!(bound.insert(w.clone(), b.number).is_none());
        }
    }
    assert_eq!(taken.len(), 20, "every number bound");
    assert_eq!(waiting_s().len(), 10);
}

/// A shredded key is gone, can never be made again, and takes only the named index kinds of its bucket.
pub fn a_shredded_key_is_gone_for_good(s: &dyn Store) {
    let mut w1 = waybill("W1");
    w1.blind = vec![(1, 0, [1u8; 16]), (3, 0, [3u8; 16])];
    let mut other = waybill("W2");
    other.meta.bucket = 5;
    other.blind = vec![(1, 0, [1u8; 16])];
    s.insert_waybills(&[w1, other], entry("ingest")).unwrap();
    s.put_wrapped_key_if_absent("day:0:contact", &[9u8; 60])
        .unwrap();
    assert_eq!(
        s.put_wrapped_key_if_absent("day:0:contact", &[8u8; 60])
            .unwrap(),
        vec![9u8; 60],
        "the first stays"
    );
    let done = s
        .shred_key("day:0:contact", 0, &[1], entry("shred"))
        .unwrap();
    assert_eq!((done.waybills, done.index_entries), (1, 1));
    assert_eq!(s.get_wrapped_key("day:0:contact").unwrap(), None);
    assert!(matches!(
        s.put_wrapped_key_if_absent("day:0:contact", &[9u8; 60]),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.shredded_keys().unwrap(),
        vec!["day:0:contact".to_string()]
    );
    let w2 = WaybillNo::parse("W2").unwrap();
    assert_eq!(
        s.find_by_token(&[1u8; 16]).unwrap(),
        vec![w2],
        "another bucket's entries stay"
    );
    assert_eq!(
        s.find_by_token(&[3u8; 16]).unwrap().len(),
        1,
        "other kinds stay"
    );
    assert!(
        s.waybill(&WaybillNo::parse("W1").unwrap())
            .unwrap()
            .is_some(),
        "routing data stays"
    );
    let ages = s.bucket_ages().unwrap();
    assert_eq!(
        ages.iter()
            .map(|a| (a.bucket, a.waybills))
            .collect::<Vec<_>>(),
        [(0, 1), (5, 1)]
    );
}

/// Retention's carry: the open waybills of a bucket are listed, a moved one takes its new sealed fields to its
/// new bucket (one no longer in the old bucket is left alone), and shredding the old bucket no longer touches it.
pub fn a_moved_waybill_leaves_its_bucket_and_its_shredding(s: &dyn Store) {
    let open = waybill("W1");
    let mut done = waybill("W2");
    done.meta.status = WaybillStatus::Signed;
    done.meta.signed_at = Some(3);
    done.blind = vec![(1, 0, [2u8; 16])];
    let mut elsewhere = waybill("W3");
    elsewhere.meta.bucket = 5;
    elsewhere.blind = vec![(1, 0, [3u8; 16])];
    s.insert_waybills(&[open, done, elsewhere], entry("ingest"))
        .unwrap();
    let no = |n: &str| WaybillNo::parse(n).unwrap();
    assert_eq!(s.distinct_index_tokens(1).unwrap(), 3);
    let mut sampled: Vec<String> = s
        .sample_waybills(10)
        .unwrap()
        .iter()
        .map(|(m, _)| m.waybill_no.to_string())
        .collect();
    sampled.sort();
    assert_eq!(
        sampled,
        ["W1", "W2", "W3"],
        "fewer than the limit: every one"
    );
    assert_eq!(s.sample_waybills(2).unwrap().len(), 2);
    assert_eq!(s.distinct_index_tokens(2).unwrap(), 0);
    assert_eq!(s.open_waybills(0).unwrap(), vec![(no("W1"), 1)]);
    assert_eq!(s.open_waybills(7).unwrap(), vec![]);
    let (seq, moved) = s
        .move_waybills(
            0,
            9,
            &[(no("W1"), vec![4, 5, 6]), (no("W3"), vec![0])],
            entry("retention_carry"),
        )
        .unwrap();
    assert_eq!(moved, 1, "W3 is not in bucket 0");
    assert!(seq > 0);
    let (meta, sealed) = s.waybill(&no("W1")).unwrap().unwrap();
    assert_eq!((meta.bucket, sealed), (9, vec![4, 5, 6]));
    let (meta, sealed) = s.waybill(&no("W3")).unwrap().unwrap();
    assert_eq!((meta.bucket, sealed), (5, vec![1, 2, 3]));
    let shred = s
        .shred_key("day:0:contact", 0, &[1], entry("shred"))
        .unwrap();
    assert_eq!(
        (shred.waybills, shred.index_entries),
        (1, 1),
        "only W2 goes"
    );
    assert_eq!(s.find_by_token(&[7u8; 16]).unwrap(), vec![no("W1")]);
    assert_eq!(s.find_by_token(&[2u8; 16]).unwrap(), vec![]);
    assert_eq!(s.distinct_index_tokens(1).unwrap(), 2, "W2's went with it");
    let mut again = waybill("W4");
    again.blind = vec![(1, 1, [7u8; 16]), (2, 0, [7u8; 16])];
    s.insert_waybills(&[again], entry("ingest")).unwrap();
    s.maintain().unwrap();
    assert_eq!(
        s.distinct_index_tokens(1).unwrap(),
        2,
        "one token on two waybills, as either party, is one"
    );
    assert_eq!(s.distinct_index_tokens(2).unwrap(), 1);
    let ages = s.bucket_ages().unwrap();
    assert_eq!(
        ages.iter()
            .map(|a| (a.bucket, a.waybills))
            .collect::<Vec<_>>(),
        [(0, 2), (5, 1), (9, 1)]
    );
}

/// Re-wrapping replaces every key in one audited transaction, or none of them.
pub fn keys_rewrap_all_or_nothing(s: &dyn Store) {
    for id in ["a", "b", "c"] {
        s.put_wrapped_key_if_absent(id, &wrapped_by(b"master-1", id))
            .unwrap();
    }
    let before = s.audit_size().unwrap();
    let failed = s.rewrap_keys(
        &mut |id, _| {
            if id == "b" {
                Err("no".into())
            } else {
                Ok(vec![0])
            }
        },
        entry("keys_rotate"),
    );
    assert!(failed.is_err());
    assert_eq!(
        s.get_wrapped_key("a").unwrap(),
        Some(wrapped_by(b"master-1", "a")),
        "nothing changed"
    );
    assert_eq!(s.audit_size().unwrap(), before);
    let (seq, n) = s
        .rewrap_keys(&mut |_, w| Ok([w, b"!"].concat()), entry("keys_rotate"))
        .unwrap();
    assert_eq!((seq, n), (before, 3));
    assert_eq!(
        s.get_wrapped_key("c").unwrap(),
        Some([wrapped_by(b"master-1", "c"), b"!".to_vec()].concat())
    );
}

/// A key wrapped as the vault wraps it: the master key's id, then (here) the key's own id for a body.
fn wrapped_by(master: &[u8; crate::WRAPPING_ID_LEN], id: &str) -> Vec<u8> {
    [&master[..], id.as_bytes()].concat()
}

/// A new key wrapped under another master key than the store's others is refused, before and after a rotation;
/// one that exists is returned as stored, whoever asks.
pub fn a_key_wrapped_under_another_master_key_is_refused(s: &dyn Store) {
    s.put_wrapped_key_if_absent("index", &wrapped_by(b"master-1", "index"))
        .unwrap();
    s.put_wrapped_key_if_absent("day:1:contact", &wrapped_by(b"master-1", "day:1:contact"))
        .unwrap();
    let stale =
        s.put_wrapped_key_if_absent("day:2:contact", &wrapped_by(b"master-0", "day:2:contact"));
    assert!(
        matches!(&stale, Err(StoreError::Conflict(why)) if why.contains("another master key")),
        "{stale:?}"
    );
    assert_eq!(s.get_wrapped_key("day:2:contact").unwrap(), None);
    let before = s.audit_size().unwrap();
    // The rotation: every key re-wrapped under master-2.
    s.rewrap_keys(
        &mut |_, w| Ok([&b"master-2"[..], &w[crate::WRAPPING_ID_LEN..]].concat()),
        entry("keys_rotate"),
    )
    .unwrap();
    // A process still holding master-1 makes no new key; it is told the stored one, which it cannot unwrap.
    assert!(matches!(
        s.put_wrapped_key_if_absent("day:2:contact", &wrapped_by(b"master-1", "day:2:contact")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.put_wrapped_key_if_absent("day:1:contact", &wrapped_by(b"master-1", "day:1:contact"))
            .unwrap(),
        wrapped_by(b"master-2", "day:1:contact")
    );
    assert_eq!(
        s.put_wrapped_key_if_absent("day:2:contact", &wrapped_by(b"master-2", "day:2:contact"))
            .unwrap(),
        wrapped_by(b"master-2", "day:2:contact")
    );
    assert_eq!(
        s.audit_size().unwrap(),
        before + 1,
        "refusals are not logged"
    );
}

/// Alerts by account, kind and time, newest first.
pub fn alerts_filter(s: &dyn Store) {
    for (at, account, kind) in [(10, "A", "x"), (20, "B", "x"), (30, "A", "y")] {
        let id = s
            .insert_alert(&wbg_core::Alert::raised(at, account, kind, "warning", "{}"))
            .unwrap();
        assert!(id > 0);
    }
    let f = |account: Option<&str>, kind: Option<&str>, since: Option<i64>| {
        s.alerts(&crate::AlertFilter {
            account: account.map(str::to_owned),
            kind: kind.map(str::to_owned),
            since,
            limit: 10,
            ..crate::AlertFilter::default()
        })
        .unwrap()
        .iter()
        .map(|a| a.at)
        .collect::<Vec<_>>()
    };
    assert_eq!(f(None, None, None), [30, 20, 10]);
    assert_eq!(f(Some("A"), None, None), [30, 10]);
    assert_eq!(f(None, Some("x"), Some(15)), [20]);
}

/// A label print is counted with its job's audit entry: each print of a waybill gets a copy number of its own,
/// counted per waybill, from concurrent jobs (one group commit) as from one after another, and each job's entry
/// is the one stored at the seq it was told.
pub fn label_prints_count_with_their_entries(s: &dyn Store) {
    let no = |n: &str| WaybillNo::parse(n).unwrap();
    let print = |n: &str, at: Millis| {
        let mut e = entry("view");
        e.waybill = Some(n.to_owned());
        e.detail = Some(format!("print=zpl at={at}"));
        (e.clone(), s.append_label_print(e, &no(n), at))
    };
    let (e, t) = print("W1", 1);
    let (seq, copy) = t.wait().unwrap();
    assert_eq!(copy, 1);
    assert_eq!(stored(s, seq), e);
    // Concurrent jobs, most likely in one group: W1's prints go on from 2, W2's start at 1.
    let jobs: Vec<_> = ["W1", "W2", "W1", "W1", "W2"]
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, print(n, 10 + i as Millis)))
        .collect();
    let mut copies: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    let mut seqs = BTreeSet::from([seq]);
    for (n, (e, t)) in jobs {
        let (seq, copy) = t.wait().unwrap();
        assert_eq!(stored(s, seq), e, "the job's own entry at its seq");
        seqs.insert(seq);
        copies.entry(n).or_default().push(copy);
    }
    for cs in copies.values_mut() {
        cs.sort_unstable();
    }
    assert_eq!(copies["W1"], [2, 3, 4]);
    assert_eq!(copies["W2"], [1, 2]);
    assert_eq!(seqs.len(), 6, "every job has an entry of its own");
    assert_eq!(print("W2", 20).1.wait().unwrap().1, 3);
}

/// The entry stored at `seq`, decoded (without the numbering the store gave it).
fn stored(s: &dyn Store, seq: u64) -> AuditEntry {
    let bytes = s.audit_entry(seq).unwrap().expect("an entry at its seq");
    let mut e = AuditEntry::decode(&bytes).unwrap();
    e.seq = 0;
    e.prev = String::new();
    e
}

/// A canary is planted once.
pub fn canaries_are_planted_once(s: &dyn Store) {
    let nos = [
        WaybillNo::parse("C1").unwrap(),
        WaybillNo::parse("C2").unwrap(),
    ];
    s.plant_canaries(&nos, "export:E1", entry("canary_plant"))
        .unwrap();
    assert!(matches!(
        s.plant_canaries(&nos[..1], "export:E2", entry("canary_plant")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.canaries().unwrap().len(), 2);
    assert_eq!(s.audit_size().unwrap(), 1);
}

/// Tickets: registered once, read per waybill, counted, closed once; every change audited.
pub fn tickets_open_count_and_close_once(s: &dyn Store) {
    let no = |n: &str| WaybillNo::parse(n).unwrap();
    let t = crate::ServiceTicket {
        id: "T-1".into(),
        opened_at: 1_000,
        closed_at: None,
        assignee: Some(AccountId::parse("CS01").unwrap()),
        reads: 0,
        waybills: vec![no("YT1"), no("YT2")],
    };
    s.open_ticket(&t, entry("ticket_open")).unwrap();
    assert!(matches!(
        s.open_ticket(&t, entry("ticket_open")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.ticket("T-1").unwrap().as_ref(), Some(&t));
    let for_one = s.ticket_for("T-1", &no("YT2")).wait().unwrap().unwrap();
    assert_eq!(for_one.waybills, vec![no("YT2")]);
    let other = s.ticket_for("T-1", &no("YT3")).wait().unwrap().unwrap();
    assert!(other.waybills.is_empty(), "a waybill not on the ticket");
    assert_eq!(s.ticket_for("T-9", &no("YT1")).wait().unwrap(), None);
    assert_eq!(s.count_ticket_read("T-1").wait().unwrap(), 1);
    assert_eq!(s.count_ticket_read("T-1").wait().unwrap(), 2);
    assert!(s.count_ticket_read("T-9").wait().is_err());
    s.close_ticket("T-1", 2_000, entry("ticket_close")).unwrap();
    assert!(matches!(
        s.close_ticket("T-1", 3_000, entry("ticket_close")),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.close_ticket("T-9", 3_000, entry("ticket_close")),
        Err(StoreError::NotFound(_))
    ));
    let closed = s.ticket("T-1").unwrap().unwrap();
    assert_eq!((closed.closed_at, closed.reads), (Some(2_000), 2));
    assert_eq!(
        s.audit_size().unwrap(),
        2,
        "the refused changes left no entry"
    );
}
