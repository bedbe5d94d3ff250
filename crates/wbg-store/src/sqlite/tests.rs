use super::*;
use crate::{BindOutcome, NumberRelease};
use wbg_audit::note::NoteSigner;
use wbg_audit::{verify_log, Checkpoint};

fn entry(action: &str) -> AuditEntry {
    AuditEntry::new(1, "admin", action)
}

fn account(id: &str) -> Account {
    Account {
        id: AccountId::parse(id).unwrap(),
        role: Role::Courier,
        outlet: Some(OutletId::parse("O1").unwrap()),
        merchant: None,
        status: AccountStatus::Active,
        status_reason: None,
        created_at: 5,
    }
}

fn waybill(no: &str) -> SealedWaybill {
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

/// Signs and stores a checkpoint of the log as it is now.
fn sign_head(store: &SqliteStore, signer: &NoteSigner) {
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

fn verify(
    store: &SqliteStore,
    signer: &NoteSigner,
) -> Result<wbg_audit::VerifyReport, wbg_audit::VerifyFailure> {
    let entries = store.audit_entries(0, usize::MAX >> 1).unwrap();
    verify_log(
        entries.into_iter().map(Ok),
        &store.checkpoints().unwrap(),
        &signer.verifier(),
    )
}

#[test]
fn accounts_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    let a = account("C1");
    s.create_account(&a, &[1u8; 32], entry("account_create"))
        .unwrap();
    assert!(matches!(
        s.create_account(&a, &[2u8; 32], entry("account_create")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.account_by_token(&[1u8; 32]).unwrap(), Some(a.clone()));
    assert_eq!(s.account_by_token(&[2u8; 32]).unwrap(), None);
    s.add_token(&a.id, &[3u8; 32], entry("token_issue"))
        .unwrap();
    assert_eq!(s.account_by_token(&[3u8; 32]).unwrap().unwrap().id, a.id);
    s.set_account_status(
        &a.id,
        AccountStatus::Suspended,
        Some("test"),
        entry("suspend"),
    )
    .unwrap();
    assert_eq!(
        s.account(&a.id).unwrap().unwrap().status,
        AccountStatus::Suspended
    );
    assert!(s
        .set_account_status(
            &AccountId::parse("nobody").unwrap(),
            AccountStatus::Active,
            None,
            entry("x")
        )
        .is_err());
    assert_eq!(s.accounts().unwrap().len(), 1);
    // A failed write appends no audit entry: 3 successful writes, 3 entries.
    assert_eq!(s.audit_size().unwrap(), 3);
}

#[test]
fn batch_insert_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
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
}

#[test]
fn events_check_the_expected_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.insert_waybills(&[waybill("W1")], entry("ingest"))
        .unwrap();
    let (mut meta, _) = s
        .waybill(&WaybillNo::parse("W1").unwrap())
        .unwrap()
        .unwrap();
    meta.status = WaybillStatus::PickedUp;
    let ev = EventRecord {
        at: 9,
        event: StatusEvent {
            kind: EventType::PickedUp,
            outlet: OutletId::parse("O1").unwrap(),
            courier: None,
            at: None,
        },
        actor: "I1".into(),
    };
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

#[test]
fn two_handles_on_one_directory_keep_one_verifiable_tree() {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteStore::open(dir.path()).unwrap();
    let b = SqliteStore::open(dir.path()).unwrap();
    let signer = NoteSigner::generate("test/audit").unwrap();
    for i in 0..40 {
        let s = if i % 3 == 0 { &b } else { &a };
        s.append_audit(entry(&format!("a{i}"))).unwrap();
        if i % 7 == 0 {
            sign_head(s, &signer);
        }
    }
    let r = verify(&a, &signer).unwrap();
    assert_eq!(r.entries, 40);
    assert_eq!(a.audit_head().unwrap(), b.audit_head().unwrap());
}

#[test]
fn reopened_store_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("test/audit").unwrap();
    {
        let s = SqliteStore::open(dir.path()).unwrap();
        for _ in 0..5 {
            s.append_audit(entry("x")).unwrap();
        }
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    s.append_audit(entry("y")).unwrap();
    assert_eq!(verify(&s, &signer).unwrap().entries, 6);
    let e5 = AuditEntry::decode(&s.audit_entry(5).unwrap().unwrap()).unwrap();
    assert_eq!(e5.seq, 5);
    assert_eq!(e5.prev, hex::encode(s.audit_node(0, 4).unwrap().unwrap()));
}

#[test]
fn blind_index_segments_compact_and_still_find_everything() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    let token = |i: u32| {
        let mut t = [0u8; 16];
        t[..4].copy_from_slice(&(i.wrapping_mul(2_654_435_761)).to_be_bytes());
        t
    };
    // 70 batches of 3 waybills: enough to fill level 0 eight times and level 1 once.
    for b in 0..70u32 {
        let batch: Vec<SealedWaybill> = (0..3u32)
            .map(|i| {
                let n = b * 3 + i;
                let mut w = waybill(&format!("W{n}"));
                w.blind = vec![
                    (1, 0, token(n)),
                    (2, 0, token(1_000_000 + n)),
                    (1, 1, [0xAB; 16]),
                ];
                w
            })
            .collect();
        s.insert_waybills(&batch, entry("ingest")).unwrap();
        s.maintain().unwrap();
    }
    let (segments, rows) = blind::shape(&s.lock().unwrap().conn).unwrap();
    assert_eq!(rows, 70 * 3 * 3);
    assert!(
        segments < 2 * blind::FANOUT,
        "compaction keeps segments bounded: {segments}"
    );
    for n in [0u32, 1, 100, 209] {
        assert_eq!(
            s.find_by_token(&token(n)).unwrap(),
            vec![WaybillNo::parse(&format!("W{n}")).unwrap()]
        );
        assert_eq!(s.find_by_token(&token(1_000_000 + n)).unwrap().len(), 1);
    }
    assert_eq!(
        s.find_by_token(&[0xAB; 16]).unwrap().len(),
        210,
        "a token shared by many waybills finds them all"
    );
    assert!(s.find_by_token(&[0xCD; 16]).unwrap().is_empty());
}

#[test]
fn an_abandoned_merge_is_invisible_then_collected() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.insert_waybills(&[waybill("W1")], entry("ingest"))
        .unwrap();
    {
        // What a merge that died after writing part of its output leaves: a building segment and its chunks.
        let inner = s.lock().unwrap();
        inner
            .conn
            .execute_batch(
                "INSERT INTO blind_segments (id, level, rows, created_at) VALUES (99, -1, 0, 0);
                 INSERT INTO blind_runs (seg, first, last, body) VALUES (99, x'07070707070707070707070707070707',
                   x'07070707070707070707070707070707',
                   x'07070707070707070707070707070707' || x'0001' || x'02' || CAST('W9' AS BLOB));",
            )
            .unwrap();
    }
    assert_eq!(
        s.find_by_token(&[7u8; 16]).unwrap(),
        vec![WaybillNo::parse("W1").unwrap()],
        "a segment still being built is not read"
    );
    s.maintain().unwrap();
    let left: i64 = s
        .lock()
        .unwrap()
        .conn
        .query_row("SELECT COUNT(*) FROM blind_runs WHERE seg = 99", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(left, 0, "the stale build's chunks are deleted");
    assert_eq!(s.find_by_token(&[7u8; 16]).unwrap().len(), 1);
}

#[test]
fn a_store_of_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute(
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("schema 1"), "{err}");
}

#[test]
fn a_guarded_read_commits_its_lookups_and_audit_entry_together() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    let a = account("C1");
    s.create_account(&a, &[1u8; 32], entry("account_create"))
        .unwrap();
    s.insert_waybills(&[waybill("W1")], entry("ingest"))
        .unwrap();
    let w1 = WaybillNo::parse("W1").unwrap();
    let mut seen = None;
    let (snap, seq) = s
        .read_audited(&[1u8; 32], &w1, &mut |snap| {
            seen = Some((snap.account.clone(), snap.waybill.is_some()));
            Some(entry("view"))
        })
        .unwrap();
    assert_eq!(seen, Some((Some(a.clone()), true)));
    assert_eq!(snap.account, Some(a));
    assert_eq!(snap.waybill, s.waybill(&w1).unwrap());
    assert_eq!(snap.events, s.events(&w1).unwrap());
    assert_eq!(seq, Some(2));
    assert_eq!(s.audit_size().unwrap(), 3);

    // An unknown token sees nothing else; a waybill that does not exist has no events; no entry, no append.
    let (snap, seq) = s
        .read_audited(&[9u8; 32], &w1, &mut |snap| {
            assert!(snap.account.is_none() && snap.waybill.is_none());
            None
        })
        .unwrap();
    assert!(snap.account.is_none() && seq.is_none());
    let (snap, _) = s
        .read_audited(&[1u8; 32], &WaybillNo::parse("W9").unwrap(), &mut |_| None)
        .unwrap();
    assert!(snap.account.is_some() && snap.waybill.is_none() && snap.events.is_empty());
    assert_eq!(s.audit_size().unwrap(), 3);
    // The store stays usable after a read that recorded nothing (its transaction was rolled back).
    s.append_audit(entry("after")).unwrap();
    assert_eq!(s.audit_size().unwrap(), 4);
}

#[test]
fn case_files_change_only_by_compare_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
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
}

#[test]
fn a_batch_of_audit_entries_is_one_verifiable_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.append_audit(entry("first")).unwrap();
    let first = s
        .append_audit_batch((0..5).map(|i| entry(&format!("row{i}"))).collect())
        .unwrap();
    assert_eq!(first, 1);
    assert_eq!(s.append_audit(entry("last")).unwrap(), 6);
    let signer = NoteSigner::generate("test/audit").unwrap();
    sign_head(&s, &signer);
    let r = verify(&s, &signer).unwrap();
    assert_eq!(r.entries, 7);
}

#[test]
fn a_merchants_orders_by_creation_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
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

/// Moves waybill `no` to `status` (with `courier`, and signed at `at` when signing) through `record_event`.
fn move_to(
    s: &SqliteStore,
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

#[test]
fn privacy_numbers_bind_wait_rebind_and_rest_before_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    for no in ["W1", "W2", "W3"] {
        s.insert_waybills(&[waybill(no)], entry("ingest")).unwrap();
    }
    let pool = ["17100000001".to_string(), "17100000002".to_string()];
    let synced = s.sync_number_pool(&pool).unwrap();
    assert_eq!((synced.added, synced.retired, synced.in_service), (2, 0, 2));
    assert_eq!(s.sync_number_pool(&pool).unwrap().added, 0, "idempotent");
    let release = NumberRelease {
        grace_ms: 1_000,
        quarantine_ms: 10_000,
    };
    let c1 = AccountId::parse("C1").unwrap();
    let no = |n: &str| WaybillNo::parse(n).unwrap();
    let audited = &mut |_: &BindOutcome| Some(entry("number_bind"));
    // Not out for delivery: nothing to bind.
    let (o, seq) = s.bind_number(&no("W1"), &c1, 10, release, audited).unwrap();
    assert_eq!((o, seq), (BindOutcome::NotNeeded, None));
    let size = s.audit_size().unwrap();
    for (i, w) in ["W1", "W2", "W3"].iter().enumerate() {
        move_to(
            &s,
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
        &s,
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
        &s,
        "W2",
        WaybillStatus::OutForDelivery,
        WaybillStatus::Exception,
        "C1",
        13_000,
    );
    move_to(
        &s,
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
