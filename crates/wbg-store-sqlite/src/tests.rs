use crate::*;
use wbg_audit::note::NoteSigner;
use wbg_store::conformance::{entry, sign_head, verify, waybill};
use wbg_store::Alerts;

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

/// The entries a handle holds for its indexes are the file's, whichever way they were committed; entries another
/// handle appended are read back from the file, and so is everything before a gap.
#[test]
fn committed_entries_are_the_files_whether_held_or_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteStore::open(dir.path()).unwrap();
    let b = SqliteStore::open(dir.path()).unwrap();
    let named = |action: &str, waybill: Option<&str>| {
        let mut e = entry(action);
        e.waybill = waybill.map(str::to_owned);
        e.view = Some("full".to_owned());
        e
    };
    a.append_audit_batch(vec![named("view", Some("W0")), named("export", None)])
        .unwrap();
    a.append_audit(named("view", Some("W\"\u{4e00}2"))).unwrap();
    a.append_audit_grouped(vec![named("view", Some("W3")), named("ingest", None)])
        .wait()
        .unwrap();
    let same_as_file = |s: &SqliteStore, got: &[Committed], from: u64| {
        for (i, c) in got.iter().enumerate() {
            let seq = from + i as u64;
            assert_eq!(c.seq(), seq);
            let bytes = s.audit_entry(seq).unwrap().unwrap();
            assert_eq!(
                c.head().unwrap(),
                AuditEntry::head(&bytes).unwrap(),
                "entry {seq}"
            );
        }
    };
    let held = a.committed_entries(0, 100).unwrap();
    assert_eq!(held.len(), 5);
    assert!(held.iter().all(|c| matches!(c, Committed::Held(_))));
    same_as_file(&a, &held, 0);
    assert_eq!(a.committed_entries(1, 2).unwrap().len(), 2);
    // `b` appended none of them: it reads them back.
    let read_back = b.committed_entries(0, 100).unwrap();
    assert!(read_back.iter().all(|c| matches!(c, Committed::Stored(_))));
    same_as_file(&b, &read_back, 0);

    // Entry 5 is `b`'s: `a` never holds it, and its next commit starts a new run.
    b.append_audit(named("view", Some("W5"))).unwrap();
    let past_held = a.committed_entries(5, 100).unwrap();
    assert_eq!(
        past_held.len(),
        1,
        "a handle's run does not hide another's entries"
    );
    same_as_file(&a, &past_held, 5);
    a.append_audit(named("view", Some("W6"))).unwrap();
    let all = a.committed_entries(0, 100).unwrap();
    assert_eq!(all.len(), 7);
    assert!(all.iter().all(|c| matches!(c, Committed::Stored(_))));
    same_as_file(&a, &all, 0);
    assert!(matches!(
        a.committed_entries(6, 100).unwrap().as_slice(),
        [Committed::Held(_)]
    ));

    // The search index built from them holds every entry once, with the file's fields.
    a.maintain().unwrap();
    b.maintain().unwrap();
    let indexed: Vec<(i64, Option<String>, String)> = a
        .maint
        .lock()
        .unwrap()
        .prepare("SELECT seq, waybill, action FROM search.audit_index ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<(i64, Option<String>, String)> = (0..7)
        .map(|seq| {
            let bytes = a.audit_entry(seq).unwrap().unwrap();
            let h = AuditEntry::head(&bytes).unwrap();
            (
                seq as i64,
                h.waybill.map(|w| w.into_owned()),
                h.action.into_owned(),
            )
        })
        .collect();
    assert_eq!(indexed, expected);
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

/// Upkeep that finds nothing to collect never takes the store's write lock: with another handle holding it, it
/// finishes at once rather than waiting for it (in the busy handler, up to 10 s, and then failing).
#[test]
fn upkeep_with_nothing_to_collect_leaves_the_write_lock_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.insert_waybills(&[waybill("W1")], entry("ingest"))
        .unwrap();
    s.maintain().unwrap();
    let writer = Connection::open(dir.path().join(DB_FILE)).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    s.maintain().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "upkeep waited for the write lock"
    );
    writer.execute_batch("ROLLBACK").unwrap();
}

/// Counting the privacy-number pool (upkeep's gauges, every second) never takes the store's write lock, which
/// every read and scan of the request path holds in turn: a pool of a million took a quarter of a second to
/// count, and under the lock that was every read's p99.
#[test]
fn the_pool_is_counted_without_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let pool: Vec<String> = (0..3).map(|i| format!("1710000000{i}")).collect();
    s.sync_number_pool(&pool).unwrap();
    let held = s.lock().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let counter = s.clone();
    std::thread::spawn(move || {
        let release = wbg_store::NumberRelease {
            grace_ms: 0,
            quarantine_ms: 0,
        };
        let _ = tx.send(counter.number_pool_state(0, release).map(|p| p.free));
    });
    let counted = rx.recv_timeout(std::time::Duration::from_secs(10));
    drop(held);
    assert_eq!(
        counted
            .expect("the count waited for the write lock")
            .unwrap(),
        3
    );
}

/// An async caller's account lookup is answered on the store thread: asking never waits for the write lock (a
/// scan's courier lookup on a runtime worker once parked it behind every group commit).
#[test]
fn an_account_asked_for_later_is_not_looked_up_under_the_callers_wait_for_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let a = wbg_store::conformance::account("C1");
    s.create_account(&a, None, entry("account_create")).unwrap();
    let held = s.lock().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let asker = s.clone();
    let id = a.id.clone();
    std::thread::spawn(move || {
        let _ = tx.send(asker.account_later(&id));
    });
    let ticket = rx.recv_timeout(std::time::Duration::from_secs(10));
    drop(held);
    let ticket = ticket.expect("asking waited for the write lock");
    assert_eq!(ticket.wait().unwrap(), Some(a));
}

/// An async caller's binding is a job of the next group commit, made on the store thread: asking never waits for
/// the write lock (a single scan's binder once held it on a runtime worker, between the store thread's group
/// commits), and the binding and its entry are committed as `bind_numbers` commits them. Its lookup of a binding
/// runs with the store thread's next lookups, likewise.
#[test]
fn a_binding_asked_for_later_is_made_on_the_store_thread_not_under_the_callers_wait_for_the_write_lock(
) {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let (no, courier) = (
        WaybillNo::parse("W1").unwrap(),
        AccountId::parse("C1").unwrap(),
    );
    let mut w = waybill(no.as_str());
    w.meta.status = WaybillStatus::OutForDelivery;
    w.meta.courier = Some(courier.clone());
    s.insert_waybills(&[w], entry("ingest")).unwrap();
    s.sync_number_pool(&["17100000001".to_string()]).unwrap();
    let size = s.audit_size().unwrap();
    let release = wbg_store::NumberRelease {
        grace_ms: 1_000,
        quarantine_ms: 1_000,
    };
    let held = s.lock().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (asker, wanted) = (s.clone(), vec![(no.clone(), courier.clone())]);
    std::thread::spawn(move || {
        let _ = tx.send(asker.bind_numbers_later(
            wanted,
            100,
            release,
            Box::new(|_, _, _| Some(entry("number_bind"))),
        ));
    });
    let ticket = rx.recv_timeout(std::time::Duration::from_secs(10));
    drop(held);
    let (outcomes, seq) = ticket
        .expect("asking waited for the write lock")
        .wait()
        .unwrap();
    match &outcomes[..] {
        [wbg_store::BindOutcome::Bound(b)] => {
            assert_eq!((b.number.as_str(), &b.courier), ("17100000001", &courier))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seq, Some(size), "its entry is the next in the log");
    assert_eq!(s.audit_size().unwrap(), size + 1);
    assert_eq!(
        s.number_of_waybill(&no).unwrap().map(|b| b.number),
        Some("17100000001".to_string())
    );
    // A binding looked up later waits for the write lock no more than one made.
    let held = s.lock().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (asker, asked) = (s.clone(), no.clone());
    std::thread::spawn(move || {
        let _ = tx.send(asker.number_of_waybill_later(&asked));
    });
    let ticket = rx.recv_timeout(std::time::Duration::from_secs(10));
    drop(held);
    let found = ticket.expect("asking waited for the write lock").wait();
    assert_eq!(
        found.unwrap().map(|b| b.number),
        Some("17100000001".to_string())
    );
}

/// The syncs before a RESTART take the store's files as they are (both, the database file alone when the log is
/// gone, nothing for a connection with no file), and keep one handle a database file open for good: closing a
/// handle would drop SQLite's locks on the file for the whole process.
#[cfg(unix)]
#[test]
fn presync_syncs_what_files_there_are_through_one_kept_handle() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.append_audit(entry("a")).unwrap();
    presync(&s.lock().unwrap().conn).unwrap();
    drop(s);
    assert!(!dir.path().join(format!("{DB_FILE}-wal")).exists());
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    presync(&conn).unwrap();
    presync(&Connection::open_in_memory().unwrap()).unwrap();
    let file = dir.path().join(DB_FILE);
    let kept = database_file(&file).unwrap();
    assert!(Arc::ptr_eq(&kept, &database_file(&file).unwrap()));
    let other = tempfile::tempdir().unwrap();
    SqliteStore::open(other.path()).unwrap();
    assert!(!Arc::ptr_eq(
        &kept,
        &database_file(&other.path().join(DB_FILE)).unwrap()
    ));
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
fn a_schema_3_store_is_upgraded_in_place_to_6() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open(dir.path()).unwrap();
        let mut a = wbg_store::conformance::account("C1");
        a.created_at = 7;
        a.status_since = 7;
        s.create_account(
            &a,
            Some(&wbg_store::conformance::token(1, None)),
            entry("account_create"),
        )
        .unwrap();
    }
    // What schema 3 looked like: no status time, no token expiry or issuer, alerts without evidence or triage.
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch(
        "ALTER TABLE accounts DROP COLUMN status_since;
         ALTER TABLE tokens DROP COLUMN expires_at;
         ALTER TABLE tokens DROP COLUMN issued_by;
         DROP INDEX tokens_account;
         DROP INDEX alerts_state;
         ALTER TABLE alerts DROP COLUMN audit_seqs;
         ALTER TABLE alerts DROP COLUMN state;
         ALTER TABLE alerts DROP COLUMN assignee;
         ALTER TABLE alerts DROP COLUMN updated_at;
         ALTER TABLE alerts DROP COLUMN revision;
         INSERT INTO alerts (at, account, kind, severity, detail) VALUES (42, 'C1', 'risk_mask', 'warning', '{}');
         UPDATE meta SET value = '3' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let s = SqliteStore::open(dir.path()).unwrap();
    let a = s.account_by_token(&[1u8; 32]).unwrap().unwrap();
    assert_eq!(
        a.status_since, 7,
        "an old account's status dates from its creation"
    );
    let old = &s.alerts_after(0, 10).unwrap()[0];
    assert_eq!(
        (
            old.state.as_str(),
            old.updated_at,
            old.revision,
            old.audit_seqs.len()
        ),
        ("new", 42, 0, 0),
        "an old alert is untriaged, without evidence"
    );
    drop(s);
    // Opened again, it is schema 6 already.
    assert!(SqliteStore::open(dir.path()).is_ok());
}

/// The backend-independent behaviour, on a fresh embedded store per check.
#[test]
fn the_embedded_store_passes_the_conformance_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    wbg_store::conformance::run_all(&|| {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        dirs.lock().unwrap().push(dir);
        Box::new(s)
    });
}

/// The numbered upgrade files are each listed once, in order, and end at the schema this build writes.
#[test]
fn every_upgrade_file_is_listed_in_order_up_to_the_current_schema() {
    let listed: Vec<(i64, &str)> = UPGRADES
        .iter()
        .map(|(to, sql)| (i64::from(*to), *sql))
        .collect();
    wbg_store::conformance::check_numbered_migrations(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"),
        &listed,
    );
    assert_eq!(
        listed.last().map(|u| u.0.to_string()).as_deref(),
        Some(SCHEMA_VERSION)
    );
}

/// The SQLite built in is the one `.cargo/config.toml` asks for: connections keep page caches of their own,
/// allocations take no statistics mutex and statements no shared-cache locks. Lose the setting (a build outside the workspace, a renamed variable)
/// and the store still works, only slower under load: this says so.
#[test]
fn sqlite_is_built_without_its_process_wide_mutexes() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let options: Vec<String> = conn
        .prepare("PRAGMA compile_options")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "one page cache shared by every connection: {options:?}"
    );
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "allocation statistics on: {options:?}"
    );
    assert!(
        options.iter().any(|o| o == "OMIT_SHARED_CACHE"),
        "shared-cache locking compiled in: {options:?}"
    );
}

/// A binding finds the free number rested longest by walking the numbers in service in that order, not by
/// sorting the whole pool joined to the waybills (which cost PostgreSQL 32 ms a binding at 48,000 numbers).
#[test]
fn a_binding_walks_the_numbers_in_rest_order() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(numbers::SCHEMA).unwrap();
    let plan: Vec<String> = conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            wbg_store::FREE_NUMBER_SQL
        ))
        .unwrap()
        .query_map(rusqlite::params![1_000, 10_000, 20_000], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|step| step.contains("privacy_numbers_rest")),
        "{plan:?}"
    );
    assert!(
        !plan.iter().any(|step| step.contains("TEMP B-TREE")),
        "sorted apart: {plan:?}"
    );
}
