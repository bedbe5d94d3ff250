//! The storage behaviour suite (`wbg_store::conformance`) against PostgreSQL: each check on a fresh schema of
//! the database at `DATABASE_URL` (set by `.ci/run`; without it the test says so and passes, so that a plain
//! `cargo test` on a machine without PostgreSQL still runs everything else).
use wbg_store::prelude::*;
use wbg_store::Store;
use wbg_store_pg::PgStore;

/// A store in a schema of its own, dropped when the test ends.
pub struct Scratch {
    base: String,
    schemas: std::sync::Mutex<Vec<String>>,
}

impl Scratch {
    pub fn new() -> Option<Scratch> {
        let Ok(base) = std::env::var("DATABASE_URL") else {
            eprintln!("DATABASE_URL is not set: the PostgreSQL store is not tested here (.ci/run sets it)");
            return None;
        };
        Some(Scratch {
            base,
            schemas: Default::default(),
        })
    }

    fn admin(&self) -> (tokio::runtime::Runtime, sqlx::PgPool) {
        connect(&self.base)
    }

    pub fn url(&self) -> String {
        let schema = format!("wbg_t_{:016x}", rand::random::<u64>());
        let (rt, pool) = self.admin();
        rt.block_on(sqlx::raw_sql(&format!("CREATE SCHEMA {schema}")).execute(&pool))
            .unwrap();
        self.schemas.lock().unwrap().push(schema.clone());
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{schema}", self.base)
    }

    pub fn store(&self) -> PgStore {
        PgStore::connect(&self.url(), true).unwrap()
    }
}

/// A store on `url` with one lane of each kind (lookups and reads' commits one at a time), so that a test can make
/// jobs queue into one group or hold its only lane.
fn one_lane(url: &str, migrate: bool) -> PgStore {
    let one = wbg_store_pg::Lanes {
        lookups: 1,
        commits: 1,
    };
    PgStore::connect_with(url, migrate, one).unwrap()
}

/// A pool on `url` of its own, for a test's statements beside the store's, with the runtime that drives it.
fn connect(url: &str) -> (tokio::runtime::Runtime, sqlx::PgPool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(sqlx::PgPool::connect(url)).unwrap();
    (rt, pool)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (rt, pool) = self.admin();
        for s in self.schemas.lock().unwrap().iter() {
            let _ = rt.block_on(sqlx::raw_sql(&format!("DROP SCHEMA {s} CASCADE")).execute(&pool));
        }
    }
}

#[test]
fn the_postgres_store_passes_the_conformance_suite() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    wbg_store::conformance::run_all(&|| Box::new(scratch.store()));
}

#[test]
fn migrations_are_versioned_and_run_once() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let fresh = PgStore::connect(&url, false).unwrap_err();
    assert!(fresh.to_string().contains("wbguard migrate"), "{fresh}");
    let s = PgStore::connect(&url, true).unwrap();
    assert_eq!(s.schema_version().unwrap(), 10);
    let again = s.migrate().unwrap();
    assert!(again.applied.is_empty());
    let id = s.store_id().unwrap();
    drop(s);
    let s = PgStore::connect(&url, false).unwrap();
    assert_eq!(
        s.store_id().unwrap(),
        id,
        "one id for the life of the database"
    );
}

#[test]
fn two_nodes_on_one_database_keep_one_verifiable_log() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let a = std::sync::Arc::new(PgStore::connect(&url, true).unwrap());
    // The second node with one lane of each kind (as nodes sharing out one PostgreSQL's may run): its group
    // commits and lookups one at a time beside the first's several.
    let b = std::sync::Arc::new(one_lane(&url, false));
    let threads: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(t, s)| {
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..50 {
                    let e = wbg_audit::AuditEntry::new(1, "node", format!("t{t}-{i}"));
                    // Half through the group commit (the read path), half directly (admin writes).
                    seqs.push(if i % 2 == 0 {
                        s.append_audit_grouped(vec![e]).wait().unwrap()
                    } else {
                        s.append_audit(e).unwrap()
                    });
                }
                seqs
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..200).collect::<Vec<u64>>(), "every number once");
    assert_eq!(a.audit_head().unwrap(), b.audit_head().unwrap());
    let signer = wbg_audit::note::NoteSigner::generate("test/audit").unwrap();
    let (size, root) = a.audit_head().unwrap();
    let cp = wbg_audit::Checkpoint {
        origin: signer.name().into(),
        size,
        root,
    };
    b.put_checkpoint(size, &signer.sign(&cp.to_text()).unwrap())
        .unwrap();
    let entries = a.audit_entries(0, 10_000).unwrap();
    let r = wbg_audit::verify_log(
        entries.into_iter().map(Ok),
        &a.checkpoints().unwrap(),
        &signer.verifier(),
    )
    .unwrap();
    assert_eq!(r.entries, 200);
}

/// A number handed out to a writer that never commits is filled with a void entry once it is clearly
/// abandoned, so the entries after it join the log; the writer, committing late, finds its number taken and
/// fails, so nothing it did goes unrecorded.
#[test]
fn an_abandoned_audit_number_is_voided_and_its_late_writer_fails() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = PgStore::connect(&url, true).unwrap();
    let (rt, pool) = connect(&url);
    let mut stalled = rt.block_on(pool.begin()).unwrap();
    let taken: i64 = rt
        .block_on(sqlx::query_scalar("SELECT nextval('audit_seq_alloc')").fetch_one(&mut *stalled))
        .unwrap();
    assert_eq!(taken, 0);
    let after = s
        .append_audit(wbg_audit::AuditEntry::new(1, "node", "after"))
        .unwrap();
    assert_eq!(after, 1);
    // Entry 1 waits behind the gap until number 0 counts as abandoned, then both are in the log.
    let entry = s
        .audit_entry(1)
        .unwrap()
        .expect("integrated after the void fill");
    assert_eq!(
        wbg_audit::AuditEntry::decode(&entry).unwrap().action,
        "after"
    );
    let void = wbg_audit::AuditEntry::decode(&s.audit_entry(0).unwrap().unwrap()).unwrap();
    assert_eq!(
        (void.action.as_str(), void.decision.as_str()),
        ("audit_void", "void")
    );
    let late = rt.block_on(
        sqlx::query("INSERT INTO audit_queue (seq, entry) VALUES (0, '\\x00')")
            .execute(&mut *stalled),
    );
    assert!(late.is_err(), "the late writer's number is taken");
    rt.block_on(async {
        let _ = stalled.rollback().await;
        pool.close().await;
    });
    let signer = wbg_audit::note::NoteSigner::generate("test/audit").unwrap();
    wbg_store::conformance::sign_head(&s, &signer);
    let r = wbg_store::conformance::verify(&s, &signer).unwrap();
    assert_eq!(r.entries, 2);
}

/// Nothing integrates in the background: an entry stays queued, its number fixed, until someone reads the log,
/// and the reader integrates it first. (Every process once looked at the queue every 20 ms, risk workers and
/// CLI commands included; those looks cost PostgreSQL more statements than the integrations did.) A serving
/// node reads the log every second, in its upkeep, to sign a checkpoint.
#[test]
fn entries_wait_in_the_queue_for_the_log_s_next_reader() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = PgStore::connect(&url, true).unwrap();
    let (rt, pool) = connect(&url);
    let queued = || -> (i64, i64) {
        rt.block_on(
            sqlx::query_as(
                "SELECT (SELECT count(*) FROM audit_queue), (SELECT size FROM audit_head WHERE id = 1)",
            )
            .fetch_one(&pool),
        )
        .unwrap()
    };
    let seq = s
        .append_audit(wbg_audit::AuditEntry::new(1, "node", "queued"))
        .unwrap();
    assert_eq!(seq, 0);
    // Ten times the 20 ms the background look once waited.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(queued(), (1, 0), "queued, not yet in the log");
    let entry = s
        .audit_entry(seq)
        .unwrap()
        .expect("integrated by its reader");
    assert_eq!(
        wbg_audit::AuditEntry::decode(&entry).unwrap().action,
        "queued"
    );
    assert_eq!(queued(), (0, 1), "the reader integrated it");
    rt.block_on(pool.close());
}

/// The read path keeps connections of its own (no pool check per statement): when PostgreSQL drops them — a
/// restart, an administrator's `pg_terminate_backend` — the next lookups and group commits find out before use
/// (a connection that has waited over a second is checked) and open new ones, so no read fails for it.
#[test]
fn the_read_path_reconnects_after_postgres_drops_its_connections() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let (url, name) = named_url(&scratch, "wbgidle");
    let s = PgStore::connect(&url, true).unwrap();
    let no = wbg_core::WaybillNo::parse("W1").unwrap();
    let read_and_audit = |what: &str| {
        let snap = s.read_snapshot(&[7u8; 32], &no).wait().unwrap();
        assert!(snap.account.is_none(), "an unknown token");
        s.append_audit_grouped(vec![wbg_audit::AuditEntry::new(1, "node", what)])
            .wait()
            .unwrap()
    };
    assert_eq!(read_and_audit("before"), 0);
    let dropped = end_sessions(&scratch.admin(), &name);
    assert!(
        dropped >= 2,
        "the lookup's and the commit's connections, at least: {dropped}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    assert_eq!(read_and_audit("after"), 1);
    s.append_audit(wbg_audit::AuditEntry::new(1, "node", "pooled"))
        .unwrap();
    let signer = wbg_audit::note::NoteSigner::generate("test/audit").unwrap();
    wbg_store::conformance::sign_head(&s, &signer);
    assert_eq!(
        wbg_store::conformance::verify(&s, &signer).unwrap().entries,
        3
    );
}

/// A URL of a new schema whose connections carry a name of their own (`application_name`), and that name: a test
/// ends exactly those sessions with [`end_sessions`].
fn named_url(scratch: &Scratch, prefix: &str) -> (String, String) {
    let name = format!("{prefix}{:016x}", rand::random::<u64>());
    (format!("{}&application_name={name}", scratch.url()), name)
}

/// Ends every session named `name`, as a PostgreSQL restart or an operator's `pg_terminate_backend` would, and
/// waits until each is gone; how many there were.
fn end_sessions(admin: &(tokio::runtime::Runtime, sqlx::PgPool), name: &str) -> usize {
    let ended: Vec<bool> = admin
        .0
        .block_on(
            sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1",
            )
            .bind(name)
            .fetch_all(&admin.1),
        )
        .unwrap();
    assert!(
        ended.iter().all(|e| *e),
        "a session outlived its end: {ended:?}"
    );
    ended.len()
}

/// Files waybill `no` as picked up (at 9) from the status `expected`, through the group commit.
fn pick_up(s: &PgStore, no: &str, expected: wbg_core::WaybillStatus) -> wbg_store::Ticket<u64> {
    s.record_events(
        vec![picking_up(s, no, expected)],
        wbg_store::conformance::entry("event"),
    )
}

/// The scan that files waybill `no` as picked up (at 9) from the status `expected`.
fn picking_up(s: &PgStore, no: &str, expected: wbg_core::WaybillStatus) -> wbg_store::EventWrite {
    let (mut next, _) = s
        .waybill(&wbg_core::WaybillNo::parse(no).unwrap())
        .unwrap()
        .unwrap();
    next.status = wbg_core::WaybillStatus::PickedUp;
    next.updated_at = 9;
    wbg_store::EventWrite {
        next,
        expected,
        record: wbg_store::conformance::picked_up(9),
    }
}

/// Has the scans `queue` files go as one group of `s`'s scan commits, and returns their tickets once that group
/// has begun: a scan of `blocker` (stored, created), whose row is held on `db` meanwhile, takes the scans' one
/// commit lane while `queue`'s jobs arrive behind it; the row is then let go.
fn one_group<T>(
    s: &PgStore,
    (rt, pool): (&tokio::runtime::Runtime, &sqlx::PgPool),
    blocker: &str,
    queue: impl FnOnce() -> Vec<wbg_store::Ticket<T>>,
) -> Vec<wbg_store::Ticket<T>> {
    let mut lock = rt.block_on(pool.begin()).unwrap();
    rt.block_on(
        sqlx::query("SELECT 1 FROM waybills WHERE no = $1 FOR UPDATE")
            .bind(blocker)
            .execute(&mut *lock),
    )
    .unwrap();
    let first = pick_up(s, blocker, wbg_core::WaybillStatus::Created);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let tickets = queue();
    std::thread::sleep(std::time::Duration::from_millis(300));
    rt.block_on(lock.commit()).unwrap();
    assert!(first.wait().is_ok());
    tickets
}

/// A group of single scans goes as one statement, whose snapshot is taken before it waits for a row another
/// writer holds: what that writer commits meanwhile decides, as the group's lock finds it. Another node files
/// two parcels as picked up and holds their rows while the group starts; the group's scan that expects them
/// picked up applies (an update that matched the status of the row in its snapshot would skip it), the one that
/// expects them created is refused, named (a status check that did not lock would let it go), and only the
/// first leaves an event and an entry.
#[test]
fn a_scan_group_waiting_for_a_row_decides_on_what_its_lock_finds() {
    use wbg_core::{WaybillNo, WaybillStatus};
    use wbg_store::conformance::{entry, waybill};
    use wbg_store::StoreError;
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = PgStore::connect(&url, true).unwrap();
    let stored = ["WSNAP0", "WSNAP1", "WSNAP2"].map(waybill);
    s.insert_waybills(&stored, entry("ingest")).unwrap();
    let (rt, pool) = connect(&url);
    let mut other = rt.block_on(pool.begin()).unwrap();
    rt.block_on(
        sqlx::query("UPDATE waybills SET status = $1 WHERE no IN ('WSNAP1', 'WSNAP2')")
            .bind(WaybillStatus::PickedUp.as_str())
            .execute(&mut *other),
    )
    .unwrap();
    let tickets = one_group(&s, (&rt, &pool), "WSNAP0", || {
        vec![
            pick_up(&s, "WSNAP1", WaybillStatus::PickedUp),
            pick_up(&s, "WSNAP2", WaybillStatus::Created),
        ]
    });
    // The group has begun and waits for the rows.
    std::thread::sleep(std::time::Duration::from_millis(300));
    rt.block_on(other.commit()).unwrap();
    let told: Vec<_> = tickets.into_iter().map(|t| t.wait()).collect();
    assert!(told[0].is_ok(), "{told:?}");
    assert!(
        matches!(&told[1], Err(StoreError::Conflict(why)) if why == "waybill WSNAP2 changed status meanwhile"),
        "{told:?}"
    );
    for (no, events) in [("WSNAP1", 1), ("WSNAP2", 0)] {
        let no = WaybillNo::parse(no).unwrap();
        assert_eq!(s.events(&no).unwrap().len(), events, "{no}");
        let (meta, _) = s.waybill(&no).unwrap().unwrap();
        assert_eq!(meta.status, WaybillStatus::PickedUp, "{no}");
    }
    // The ingest, the blocker's scan and WSNAP1's.
    assert_eq!(s.audit_size().unwrap(), 3);
}

/// `waiting`, a write behind a row of `no` locked outside, while `reads` guarded reads' entries commit: they
/// commit before it is told anything (they do not wait for its group), and it is then refused as busy within the
/// lock wait, naming no waybill.
fn refused_while_reads_commit<T: Send + std::fmt::Debug + 'static>(
    s: &PgStore,
    waiting: wbg_store::Ticket<T>,
    no: &str,
    reads: usize,
) {
    use wbg_store::conformance::entry;
    use wbg_store::StoreError;
    let (told, refusal) = std::sync::mpsc::channel();
    std::thread::spawn(move || told.send(waiting.wait()));
    std::thread::sleep(std::time::Duration::from_millis(200));
    for _ in 0..reads {
        assert!(s.append_audit_grouped(vec![entry("read")]).wait().is_ok());
    }
    assert!(
        refusal.try_recv().is_err(),
        "the reads' entries waited for the group behind the lock"
    );
    let refused = refusal
        .recv_timeout(wbg_store_pg::LOCK_WAIT + std::time::Duration::from_secs(30))
        .expect("the write waits for the lock's holder");
    let Err(StoreError::Busy(why)) = &refused else {
        panic!("refused as busy while the lock is held: {refused:?}");
    };
    assert!(!why.contains(no), "{why}");
}

/// A scan behind a row lock someone left open (an operator's session, a stuck job) is refused as busy (a 503)
/// after [`wbg_store_pg::LOCK_WAIT`] while the lock is still held — it does not wait for the lock's holder; the
/// refusal names no waybill. A guarded read's entry commits meanwhile (reads and scans commit side by side), the
/// scans behind the refused one go on, and once the lock is gone the same scan applies.
#[test]
fn a_scan_behind_a_row_lock_left_open_is_refused_within_the_lock_wait() {
    use wbg_core::{WaybillNo, WaybillStatus};
    use wbg_store::conformance::{entry, waybill};
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = PgStore::connect(&url, true).unwrap();
    s.insert_waybills(&[waybill("WLOCKED1"), waybill("WFREE1")], entry("ingest"))
        .unwrap();
    let scan = |no: &str| pick_up(&s, no, WaybillStatus::Created);
    let (rt, pool) = connect(&url);
    let mut lock = rt.block_on(pool.begin()).unwrap();
    rt.block_on(
        sqlx::query("SELECT 1 FROM waybills WHERE no = 'WLOCKED1' FOR UPDATE").execute(&mut *lock),
    )
    .unwrap();
    // A read's entry commits beside the scan that waits for the lock, not after it.
    refused_while_reads_commit(&s, scan("WLOCKED1"), "WLOCKED1", 1);
    // Still held: the scans behind the refused one go on (on the connection the refused one used, kept: its
    // transaction is rolled back before the next statement).
    assert!(scan("WFREE1").wait().is_ok());
    rt.block_on(lock.rollback()).unwrap();
    assert!(
        scan("WLOCKED1").wait().is_ok(),
        "applies once the lock is gone"
    );
    let no = WaybillNo::parse("WLOCKED1").unwrap();
    assert_eq!(s.events(&no).unwrap().len(), 1);
    assert_eq!(
        s.waybill(&no).unwrap().unwrap().0.status,
        WaybillStatus::PickedUp
    );
}

/// Scan events of jobs committed together: the statuses the group's lock finds decide which jobs go, and those
/// go in one statement with their entries; when a waybill is scanned twice in the group (two scanners file the
/// same parcel from the same status) the group applies job by job. Either way each job is told its own outcome
/// (one filed from a status its parcel no longer has is refused, named) and only the jobs that applied leave
/// events and audit entries. The store runs one commit at a time, and a row lock held outside makes the waiting
/// jobs one group.
#[test]
fn scan_events_committed_together_keep_each_jobs_outcome() {
    use wbg_core::{WaybillNo, WaybillStatus};
    use wbg_store::conformance::{entry, waybill};
    use wbg_store::StoreError;
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = one_lane(&url, true);
    let batch: Vec<_> = (0..16).map(|i| waybill(&format!("W{i}"))).collect();
    s.insert_waybills(&batch, entry("ingest")).unwrap();
    let (rt, pool) = connect(&url);
    let round = |blocker: &str, jobs: &[(&str, WaybillStatus)]| {
        let queue = || {
            jobs.iter()
                .map(|(no, from)| pick_up(&s, no, *from))
                .collect()
        };
        let tickets = one_group(&s, (&rt, &pool), blocker, queue);
        tickets.into_iter().map(|t| t.wait()).collect::<Vec<_>>()
    };
    let created = WaybillStatus::Created;
    let all_apply = round(
        "W0",
        &[
            ("W1", created),
            ("W2", created),
            ("W3", created),
            ("W4", created),
        ],
    );
    assert!(all_apply.iter().all(Result::is_ok), "{all_apply:?}");
    let mixed = round(
        "W5",
        &[
            ("W6", created),
            ("W7", created),
            ("W7", created),
            ("W8", WaybillStatus::InTransit),
            ("W9", created),
        ],
    );
    let conflict = |r: &Result<u64, StoreError>| matches!(r, Err(StoreError::Conflict(_)));
    assert!(
        mixed[0].is_ok() && mixed[1].is_ok() && mixed[4].is_ok(),
        "{mixed:?}"
    );
    assert!(conflict(&mixed[2]), "the second scan of W7: {:?}", mixed[2]);
    assert!(conflict(&mixed[3]), "W8 is not in transit: {:?}", mixed[3]);
    // No waybill twice: the statuses the group's lock finds decide, and only W1's job (picked up above) is
    // refused, named.
    let decided = round(
        "W12",
        &[("W13", created), ("W1", created), ("W14", created)],
    );
    assert!(decided[0].is_ok() && decided[2].is_ok(), "{decided:?}");
    assert!(
        matches!(&decided[1], Err(StoreError::Conflict(why)) if why == "waybill W1 changed status meanwhile"),
        "{:?}",
        decided[1]
    );
    for (no, events) in [
        ("W1", 1),
        ("W6", 1),
        ("W7", 1),
        ("W8", 0),
        ("W9", 1),
        ("W10", 0),
        ("W12", 1),
        ("W13", 1),
        ("W14", 1),
        ("W15", 0),
    ] {
        let no = WaybillNo::parse(no).unwrap();
        assert_eq!(s.events(&no).unwrap().len(), events, "{no}");
        let (meta, _) = s.waybill(&no).unwrap().unwrap();
        let status = if events == 1 {
            WaybillStatus::PickedUp
        } else {
            created
        };
        assert_eq!(meta.status, status, "{no}");
    }
    // The ingest, three blockers and the nine jobs that applied; every seq told once, the log unbroken.
    let seqs: std::collections::BTreeSet<u64> = all_apply
        .iter()
        .chain(&mixed)
        .chain(&decided)
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(seqs.len(), 9);
    assert_eq!(s.audit_size().unwrap(), 13);
    let signer = wbg_audit::note::NoteSigner::generate("test/audit").unwrap();
    wbg_store::conformance::sign_head(&s, &signer);
    assert_eq!(
        wbg_store::conformance::verify(&s, &signer).unwrap().entries,
        13
    );
}

/// Label prints are counted in the group commit, with their jobs' audit entries, one statement for every job
/// waiting: each print is still told a copy number of its own, and two nodes counting the same waybills at once
/// never hand out a number twice. A row lock held outside makes one node's prints wait (on their lanes) and queue
/// up behind it, so that groups hold several prints of one waybill.
#[test]
fn label_prints_counted_in_groups_and_on_two_nodes_each_get_a_copy_number_of_their_own() {
    use std::collections::BTreeMap;
    use wbg_core::WaybillNo;
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let (a, b) = (
        PgStore::connect(&url, true).unwrap(),
        PgStore::connect(&url, true).unwrap(),
    );
    let no = |s: &str| WaybillNo::parse(s).unwrap();
    let print = |s: &PgStore, n: &str, at| {
        let mut e = wbg_store::conformance::entry("view");
        e.waybill = Some(n.to_owned());
        s.append_label_print(e, &no(n), at)
    };
    assert_eq!(print(&a, "P0", 1).wait().unwrap().1, 1);
    // While P0's row is locked, node a's next count waits on it with its lane, and what follows queues up
    // behind it; node b counts the same waybills meanwhile.
    let (rt, pool) = connect(&url);
    let mut lock = rt.block_on(pool.begin()).unwrap();
    rt.block_on(
        sqlx::query("SELECT 1 FROM label_prints WHERE no = 'P0' FOR UPDATE").execute(&mut *lock),
    )
    .unwrap();
    let held = print(&a, "P0", 2);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let order = ["P0", "P1", "P0", "P2", "P1", "P0", "P3"];
    let on_a: Vec<_> = (0..21)
        .map(|i| order[i % order.len()])
        .map(|n| (n, print(&a, n, 3)))
        .collect();
    let on_b: Vec<_> = (0..20)
        .map(|i| order[i % order.len()])
        .map(|n| (n, print(&b, n, 4)))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    rt.block_on(lock.commit()).unwrap();
    assert_eq!(held.wait().unwrap().1, 2);
    let mut copies: BTreeMap<&str, Vec<u32>> = BTreeMap::from([("P0", vec![1, 2])]);
    let mut seqs = std::collections::BTreeSet::new();
    for (n, t) in on_a.into_iter().chain(on_b) {
        let (seq, copy) = t.wait().unwrap();
        assert!(seqs.insert(seq), "every print has an entry of its own");
        copies.entry(n).or_default().push(copy);
    }
    for (n, cs) in copies.iter_mut() {
        cs.sort_unstable();
        let want: Vec<u32> = (1..=cs.len() as u32).collect();
        assert_eq!(*cs, want, "{n}: every print has a copy number of its own");
    }
    let counted: i32 = rt
        .block_on(sqlx::query_scalar("SELECT SUM(prints)::int FROM label_prints").fetch_one(&pool))
        .unwrap();
    assert_eq!(counted, 2 + 21 + 20);
    let signer = wbg_audit::note::NoteSigner::generate("test/audit").unwrap();
    wbg_store::conformance::sign_head(&a, &signer);
    assert_eq!(
        wbg_store::conformance::verify(&a, &signer).unwrap().entries,
        2 + 21 + 20
    );
}

/// A label print behind a `label_prints` row someone left locked is refused as busy (a 503) after
/// [`wbg_store_pg::LOCK_WAIT`], and only that print's group is: guarded reads' entries commit meanwhile, even with
/// one commit lane (prints commit in a group commit of their own), and once the lock is gone the label prints
/// again, its count going on from where it was.
#[test]
fn a_print_behind_a_label_row_left_locked_holds_up_no_read() {
    use wbg_core::WaybillNo;
    use wbg_store::conformance::entry;
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = one_lane(&url, true);
    let no = WaybillNo::parse("WPRINTED1").unwrap();
    let print = || s.append_label_print(entry("view"), &no, 1);
    assert_eq!(print().wait().unwrap().1, 1);
    let (rt, pool) = connect(&url);
    let mut lock = rt.block_on(pool.begin()).unwrap();
    rt.block_on(
        sqlx::query("SELECT 1 FROM label_prints WHERE no = 'WPRINTED1' FOR UPDATE")
            .execute(&mut *lock),
    )
    .unwrap();
    refused_while_reads_commit(&s, print(), "WPRINTED1", 3);
    rt.block_on(lock.rollback()).unwrap();
    assert_eq!(
        print().wait().unwrap().1,
        2,
        "the refused print was not counted"
    );
}

/// PostgreSQL dropping the store's kept connections (a restart, a failover, a proxy's idle cut, an operator
/// terminating backends) costs no guarded read or tracking lookup: a grouped lookup that meets a dropped
/// connection is asked once more on a new one, and has the store's other loops check their idle connections before
/// use, so a read's commit that follows its lookup goes out on one that works. A group commit that meets a dropped
/// connection first is refused as unavailable — a 503 the client may retry, never an internal error, and never
/// retried by the store, which cannot tell a lost commit from a lost answer — and the next goes through.
#[test]
fn reads_go_on_when_postgresql_drops_the_kept_connections() {
    use wbg_store::conformance::{entry, waybill};
    use wbg_store::StoreError;
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let (url, name) = named_url(&scratch, "wbgdrop");
    let s = one_lane(&url, true);
    s.insert_waybills(&[waybill("WDROP1")], entry("ingest"))
        .unwrap();
    let no = wbg_core::WaybillNo::parse("WDROP1").unwrap();
    let unknown_token = [7u8; 32];
    let admin = scratch.admin();
    // Each loop's kept connection is left idle, then every connection of the store is dropped; returns when
    // that was done.
    let use_then_drop = || {
        assert!(s.read_snapshot(&unknown_token, &no).wait().is_ok());
        assert!(s.tracking_snapshot(&no).wait().unwrap().is_some());
        assert!(s.append_audit_grouped(vec![entry("before")]).wait().is_ok());
        let used = std::time::Instant::now();
        assert!(end_sessions(&admin, &name) >= 3);
        used
    };
    let inconclusive = "the kept connections were checked for having idled (a slow machine): this run shows nothing";
    // A read: its lookup meets the loss first.
    let used = use_then_drop();
    let snapshot = s.read_snapshot(&unknown_token, &no).wait();
    let commit = s.append_audit_grouped(vec![entry("after")]).wait();
    let tracked = s.tracking_snapshot(&no).wait();
    assert!(
        used.elapsed() < std::time::Duration::from_secs(1),
        "{inconclusive}"
    );
    let snapshot = snapshot.expect("the lookup is asked again on a new connection");
    assert!(snapshot.account.is_none());
    assert!(
        commit.is_ok(),
        "the read's commit after its lookup: {commit:?}"
    );
    assert!(tracked.expect("the tracking lookup too").is_some());
    // A commit meets the loss first.
    let used = use_then_drop();
    let commit = s.append_audit_grouped(vec![entry("after")]).wait();
    let snapshot = s.read_snapshot(&unknown_token, &no).wait();
    assert!(
        used.elapsed() < std::time::Duration::from_secs(1),
        "{inconclusive}"
    );
    let Err(StoreError::Unavailable(why)) = &commit else {
        panic!("a commit on a dropped connection is refused as unavailable: {commit:?}");
    };
    assert!(why.contains("try again"), "{why}");
    assert!(snapshot.is_ok());
    assert!(s.append_audit_grouped(vec![entry("again")]).wait().is_ok());
    // The pool's connections were dropped too: the pool makes new ones.
    assert!(s.audit_size().unwrap() >= 5);
}

/// A serving node's lock outlives the session PostgreSQL ended (a restart, a failover, an operator's
/// `pg_terminate_backend`): the watch takes it back within a check or two, so an operation that needs the store
/// alone is still refused. Should such an operation take the lock first — still holding it when the watch looks,
/// or already gone — the node is told, once.
#[test]
fn a_watched_node_lock_is_taken_back_after_its_session_ends() {
    use wbg_store::StoreError;
    use wbg_store_pg::{NodeLock, NODE_LOCK_CHECK};
    let Some(scratch) = Scratch::new() else {
        return;
    };
    // The node's lock connection alone carries this name; the operation's carries another.
    let (url, name) = named_url(&scratch, "wbglock");
    // The store's tables, for its epoch.
    drop(PgStore::connect(&url, true).unwrap());
    let operation = url.replace(&name, &format!("{name}op"));
    let watch = || {
        let (told, lost) = std::sync::mpsc::channel();
        let watched = NodeLock::acquire(&url, false)
            .unwrap()
            .watch(move |e| {
                let _ = told.send(e);
            })
            .unwrap();
        (watched, lost)
    };
    let admin = scratch.admin();
    let end_session = || assert_eq!(end_sessions(&admin, &name), 1);
    // The operation is faster than the watch (which looks once a check; if it was quicker, again).
    let operation_first = || {
        (0..5)
            .find_map(|_| {
                end_session();
                match NodeLock::acquire(&operation, true) {
                    Ok(alone) => Some(alone),
                    Err(StoreError::Conflict(_)) => {
                        std::thread::sleep(NODE_LOCK_CHECK * 2);
                        None
                    }
                    Err(e) => panic!("{e}"),
                }
            })
            .expect("the watch took the lock back first every time: this run shows nothing")
    };
    let told_once = |lost: &std::sync::mpsc::Receiver<StoreError>| {
        let e = lost
            .recv_timeout(NODE_LOCK_CHECK * 2 + std::time::Duration::from_secs(10))
            .expect("the node is told its lock is lost");
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        assert!(lost.recv_timeout(NODE_LOCK_CHECK * 2).is_err(), "told once");
    };
    let (watched, lost) = watch();
    assert!(matches!(
        NodeLock::acquire(&operation, true),
        Err(StoreError::Conflict(_))
    ));
    end_session();
    std::thread::sleep(NODE_LOCK_CHECK * 2 + std::time::Duration::from_millis(500));
    assert!(
        matches!(
            NodeLock::acquire(&operation, true),
            Err(StoreError::Conflict(_))
        ),
        "the lock was not taken back"
    );
    assert!(lost.try_recv().is_err());
    // The operation still holds the lock when the watch looks.
    let alone = operation_first();
    told_once(&lost);
    drop((alone, watched));
    // The operation came and went before the watch looked.
    let (_watched, lost) = watch();
    drop(operation_first());
    told_once(&lost);
}

/// A key rotation does not rely on its exclusive node lock's session alone (PostgreSQL may end it mid-rotation,
/// and a node may then take the lock shared and open the store under the old master key): inside its own
/// transaction it asks whether any node serves, and refuses, changing nothing. While it runs, the wrapped keys
/// cannot even be read, so a node opening the store meanwhile finds the new wrapping once it may.
#[test]
fn a_rotation_is_refused_inside_its_transaction_while_a_node_serves() {
    use wbg_store::StoreError;
    use wbg_store_pg::NodeLock;
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = PgStore::connect(&url, true).unwrap();
    let old = vec![7u8; 60];
    let new: Vec<u8> = old.iter().map(|b| b ^ 0xff).collect();
    s.put_wrapped_key_if_absent("index", &old).unwrap();
    let size = s.audit_size().unwrap();
    // A node serves; no one holds the lock exclusively (the rotation's session is gone).
    let node = NodeLock::acquire(&url, false).unwrap();
    let refused = s.rewrap_keys(
        &mut |_, w| Ok(w.iter().map(|b| b ^ 0xff).collect()),
        wbg_store::conformance::entry("keys_rotate"),
    );
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(s.get_wrapped_key("index").unwrap(), Some(old.clone()));
    assert_eq!(s.audit_size().unwrap(), size, "nothing audited either");
    drop(node);
    // No node: the rotation runs; a node's read of the keys meanwhile waits for it, and a process left behind
    // with the old master key (its node lock's session ended) that makes a key meanwhile waits too, then finds
    // the keys wrapped otherwise and stores nothing.
    let behind = PgStore::connect(&url, false).unwrap();
    let (inside, entered) = std::sync::mpsc::channel();
    let (go, proceed) = std::sync::mpsc::channel::<()>();
    let (rt, pool) = connect(&url);
    std::thread::scope(|sc| {
        let s = &s;
        let rotation = sc.spawn(move || {
            s.rewrap_keys(
                &mut |_, w| {
                    let _ = inside.send(());
                    let _ = proceed.recv();
                    Ok(w.iter().map(|b| b ^ 0xff).collect())
                },
                wbg_store::conformance::entry("keys_rotate"),
            )
        });
        entered.recv().unwrap();
        let read: Result<Option<Vec<u8>>, sqlx::Error> = rt.block_on(async {
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL lock_timeout = '300ms'")
                .execute(&mut *tx)
                .await?;
            sqlx::query_scalar("SELECT wrapped FROM wrapped_keys WHERE id = 'index'")
                .fetch_optional(&mut *tx)
                .await
        });
        let stale = sc.spawn(|| behind.put_wrapped_key_if_absent("day:9:contact", &old));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let waited = !stale.is_finished();
        // The rotation goes on before anything is asserted, so that a failure here cannot leave it waiting.
        go.send(()).unwrap();
        let stale = stale.join().unwrap();
        assert!(waited, "a key was made during the rotation: {stale:?}");
        assert!(
            matches!(&stale, Err(StoreError::Conflict(why)) if why.contains("another master key")),
            "{stale:?}"
        );
        let code = read
            .as_ref()
            .err()
            .and_then(|e| e.as_database_error())
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(
            code.as_deref(),
            Some("55P03"),
            "the keys were readable: {read:?}"
        );
        assert_eq!(rotation.join().unwrap().unwrap().1, 1);
    });
    assert_eq!(s.get_wrapped_key("index").unwrap(), Some(new));
    assert_eq!(s.get_wrapped_key("day:9:contact").unwrap(), None);
}

/// Every access to every waybill, by principal name: `(waybill, principal, full, first_seq, first_at, last_at,
/// full_seq)`, sorted, and each principal's `(full, seen)` totals.
type AccessView = (
    Vec<(String, String, bool, u64, i64, i64, Option<u64>)>,
    std::collections::BTreeMap<String, (u64, u64)>,
);

fn view_of(p: &dyn wbg_forensics::Postings, waybills: &[String]) -> AccessView {
    let mut rows = Vec::new();
    let mut totals = std::collections::BTreeMap::new();
    for w in waybills {
        for x in p.postings(w).unwrap() {
            let pr = p.principal(x.principal).unwrap();
            totals.insert(pr.name.clone(), (pr.full, pr.seen));
            rows.push((
                w.clone(),
                pr.name.clone(),
                x.shown == wbg_forensics::Shown::Full,
                x.first_seq,
                x.first_at,
                x.last_at,
                x.full_seq,
            ));
        }
    }
    rows.sort();
    (rows, totals)
}

/// The store's own access index — brought up to the log run after run, and filled by migration 9 from a
/// log that existed before it — says exactly what the guard's index file says of the same log, which is what
/// attribution ranks on: every node of the database then reads one index instead of each copying the log.
#[test]
fn the_store_keeps_the_access_index_as_the_guard_would_and_its_migration_fills_it_alike() {
    use rand::{Rng, SeedableRng};
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = PgStore::connect(&url, true).unwrap();
    assert!(s.keeps_access_index());
    let seed = rand::random::<u64>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let waybills: Vec<String> = (0..25).map(|i| format!("SF{i:010}")).collect();
    // Several runs of the integrator, each over entries of every kind: views full and masked, refusals,
    // export rows (whose principal is the file), other actions on a waybill, entries with none; times out of
    // order (two nodes' commits interleave), so that "first" means first in the log, not earliest.
    for batch_no in 0..6 {
        let batch: Vec<wbg_audit::AuditEntry> = (0..120)
            .map(|_| {
                let kind = rng.gen_range(0..10);
                let action = match kind {
                    0..=5 => "view",
                    6 | 7 => "export",
                    8 => "label_print",
                    _ => "ingest",
                };
                let mut e = wbg_audit::AuditEntry::new(
                    1_700_000_000_000 + rng.gen_range(0..1_000_000),
                    format!("C{}", rng.gen_range(0..6)),
                    action,
                );
                e.waybill = (kind != 9).then(|| waybills[rng.gen_range(0..waybills.len())].clone());
                if rng.gen_range(0..8) == 0 {
                    e.decision = "deny".into();
                }
                match action {
                    "view" => {
                        e.view = match rng.gen_range(0..5) {
                            0 => None,
                            1 | 2 => Some("masked".into()),
                            _ => Some("full".into()),
                        }
                    }
                    "export" => {
                        e.detail = Some(match rng.gen_range(0..4) {
                            0 => "rows=3".into(),
                            n => format!("export=E{n}"),
                        })
                    }
                    _ => e.view = Some("full".into()),
                }
                e
            })
            .collect();
        s.append_audit_batch(batch).unwrap();
        // Indexed before the next batch by a reader of the index (which brings it up to the log), by upkeep,
        // or not: the last batch is left for the reads below to index.
        match batch_no % 3 {
            0 => drop(s.shared_access(&[]).unwrap()),
            1 => {
                s.audit_size().unwrap();
                s.maintain().unwrap();
            }
            _ => {}
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut own = wbg_forensics::AccessIndex::open_in(dir.path()).unwrap();
    own.catch_up(&s, None, &mut |_, _| {}).unwrap();
    let expected = view_of(&own, &waybills);
    assert!(
        expected.0.len() > 40,
        "seed {seed}: a log with accesses to compare"
    );
    assert!(
        expected.1.keys().any(|p| p.starts_with("export:")),
        "seed {seed}"
    );
    let shared =
        || wbg_forensics::SharedPostings::new(s.shared_access(&waybills).unwrap().unwrap());
    assert_eq!(
        view_of(&shared(), &waybills),
        expected,
        "seed {seed}: as integrated"
    );
    // The migration's fill, from the log as it stands.
    let (rt, pool) = connect(&url);
    rt.block_on(async {
        sqlx::raw_sql("DROP TABLE access, access_principals, access_head")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(include_str!("../migrations/0009_shared_access_index.sql"))
            .execute(&pool)
            .await
            .unwrap();
    });
    assert_eq!(
        view_of(&shared(), &waybills),
        expected,
        "seed {seed}: as migrated"
    );
    // A waybill no one was shown has no postings; only the rows asked for come back.
    let one = s.shared_access(&waybills[..1]).unwrap().unwrap();
    assert!(one.rows.iter().all(|r| r.waybill == waybills[0]));
    assert!(one
        .principals
        .iter()
        .all(|p| one.rows.iter().any(|r| r.principal == p.name)));
}

/// Two ingests that share waybill numbers (a batch sent to two nodes at once) take the numbers in one order: a
/// batch naming them in the other order waits for the first number without holding the second, so the other
/// writer can go on to the second, and once it commits the batch is turned away as a conflict (409) — where the
/// batch, inserting in its own order, held the second number and waited for the first, and PostgreSQL ended the
/// deadlock by failing one of them after a second (a 503 for the batch, or for the other node's).
#[test]
fn two_ingests_that_share_waybills_take_them_in_one_order_so_neither_deadlocks() {
    use wbg_store::conformance::{entry, waybill};
    use wbg_store::StoreError;
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = PgStore::connect(&url, true).unwrap();
    let logged = s.audit_size().unwrap();
    let (rt, pool) = connect(&url);
    let other_insert = |tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, no: &str| {
        rt.block_on(
            sqlx::query(
                "INSERT INTO waybills (no, merchant, origin_outlet, destination_outlet, status, created_at,
                 updated_at, bucket, sealed) VALUES ($1, 'M1', 'O1', 'O2', 'created', 0, 0, 0, '\\x00')",
            )
            .bind(no)
            .execute(&mut **tx),
        )
    };
    let mut other = rt.block_on(pool.begin()).unwrap();
    other_insert(&mut other, "WDUP1").unwrap();
    std::thread::scope(|scope| {
        // This node's batch names WDUP2, then WDUP1.
        let batch = scope
            .spawn(|| s.insert_waybills(&[waybill("WDUP2"), waybill("WDUP1")], entry("ingest")));
        // The batch is queued behind WDUP1 (its lock wait is two seconds).
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(!batch.is_finished(), "the batch waits for WDUP1");
        rt.block_on(sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *other))
            .unwrap();
        let second = other_insert(&mut other, "WDUP2");
        assert!(
            second.is_ok(),
            "the batch held WDUP2 while it waited: {second:?}"
        );
        rt.block_on(other.commit()).unwrap();
        // Both numbers are taken by then; the batch's first is the one told.
        match batch.join().unwrap() {
            Err(StoreError::Conflict(why)) => assert_eq!(why, "waybill WDUP2 exists already"),
            done => panic!("the batch finds its numbers taken: {done:?}"),
        }
    });
    // Nothing of the batch stayed: each number is the other writer's row, and the log holds no ingest.
    assert_eq!(s.audit_size().unwrap(), logged);
    let rows: Vec<(String, Vec<u8>)> = rt
        .block_on(sqlx::query_as("SELECT no, sealed FROM waybills ORDER BY no").fetch_all(&pool))
        .unwrap();
    assert_eq!(
        rows,
        vec![("WDUP1".into(), vec![0]), ("WDUP2".into(), vec![0])]
    );
}

/// Two writers that share waybills take their rows in one order: a group whose scans name them in the other
/// order waits for the first row without holding the second, so the session holding the first can still take
/// the second — where the group, taking rows in its own order, held the second and waited for the first, and
/// PostgreSQL ended the deadlock by failing one side after a second (a node's group, 503 to its scanners). Both
/// ways a group applies: one job of two scans (the lock, then the update) and two single scans in one group
/// (one statement that locks and updates).
#[test]
fn a_scan_group_takes_its_waybills_in_one_order_so_two_writers_do_not_deadlock() {
    use wbg_core::WaybillStatus;
    use wbg_store::conformance::{entry, waybill};
    let Some(scratch) = Scratch::new() else {
        return;
    };
    for singles in [false, true] {
        let url = scratch.url();
        let s = PgStore::connect(&url, true).unwrap();
        // Stored (so scanned, in a table this small) and named by the scans in the order opposite to the rows'.
        for no in ["WORDER2", "WORDER1", "WORDER0"] {
            s.insert_waybills(&[waybill(no)], entry("ingest")).unwrap();
        }
        let (rt, pool) = connect(&url);
        let mut other = rt.block_on(pool.begin()).unwrap();
        rt.block_on(
            sqlx::query("SELECT 1 FROM waybills WHERE no = 'WORDER1' FOR UPDATE")
                .execute(&mut *other),
        )
        .unwrap();
        let group = if singles {
            one_group(&s, (&rt, &pool), "WORDER0", || {
                ["WORDER2", "WORDER1"]
                    .map(|no| pick_up(&s, no, WaybillStatus::Created))
                    .into()
            })
        } else {
            let events = ["WORDER2", "WORDER1"]
                .iter()
                .map(|no| picking_up(&s, no, WaybillStatus::Created))
                .collect();
            vec![s.record_events(events, entry("event"))]
        };
        let (told, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            told.send(
                group
                    .into_iter()
                    .map(|t| t.wait())
                    .collect::<Result<Vec<_>, _>>(),
            )
        });
        // The group is queued behind WORDER1 (its lock wait is two seconds).
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(outcome.try_recv().is_err(), "the group waits for WORDER1");
        let second = rt.block_on(async {
            sqlx::query("SET LOCAL lock_timeout = '5s'")
                .execute(&mut *other)
                .await
                .unwrap();
            sqlx::query("SELECT 1 FROM waybills WHERE no = 'WORDER2' FOR UPDATE")
                .execute(&mut *other)
                .await
        });
        assert!(
            second.is_ok(),
            "the group held WORDER2 while it waited ({}): {second:?}",
            if singles { "single scans" } else { "one job" }
        );
        rt.block_on(other.commit()).unwrap();
        let done = outcome
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        assert!(
            done.is_ok(),
            "the group applies once the rows are free: {done:?}"
        );
        for no in ["WORDER1", "WORDER2"] {
            let no = wbg_core::WaybillNo::parse(no).unwrap();
            assert_eq!(s.events(&no).unwrap().len(), 1);
        }
    }
}

/// A change of the configured pool (a node starting with numbers added or dropped) takes the numbers it retires
/// in number order, the order a binder on another node takes its waybills' numbers in: it waits for a number a
/// binder holds without holding one that binder still wants. Retiring them in the table's order (which
/// bindings shuffle: a changed row moves) held the later number while waiting for the earlier, PostgreSQL failed
/// one side after a second, and a node whose start-up sync it failed did not start.
#[test]
fn a_pool_change_takes_numbers_in_a_binders_order_so_neither_deadlocks() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = PgStore::connect(&url, true).unwrap();
    let pool: Vec<String> = (1..=3).map(|i| format!("1710000000{i}")).collect();
    assert_eq!(s.sync_number_pool(&pool).unwrap().added, 3);
    let (rt, db) = connect(&url);
    // The first number changed since: its row now comes last in the table.
    rt.block_on(
        sqlx::query("UPDATE privacy_numbers SET bound_at = NULL WHERE number = '17100000001'")
            .execute(&db),
    )
    .unwrap();
    // A binder on another node holds its waybills' first number, and will take its third next.
    let mut binder = rt.block_on(db.begin()).unwrap();
    let take = |tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, number: &str| {
        rt.block_on(
            sqlx::query("SELECT number FROM privacy_numbers WHERE number = $1 FOR UPDATE")
                .bind(number.to_owned())
                .execute(&mut **tx),
        )
    };
    take(&mut binder, "17100000001").unwrap();
    std::thread::scope(|scope| {
        // This node starts with every number dropped from its configuration.
        let sync = scope.spawn(|| s.sync_number_pool(&[]));
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(
            !sync.is_finished(),
            "the sync waits for the binder's number"
        );
        rt.block_on(sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *binder))
            .unwrap();
        let third = take(&mut binder, "17100000003");
        assert!(
            third.is_ok(),
            "the sync held the third number while it waited for the first: {third:?}"
        );
        rt.block_on(binder.commit()).unwrap();
        let synced = sync
            .join()
            .unwrap()
            .expect("the sync goes on once the binder is done");
        assert_eq!((synced.retired, synced.in_service), (3, 0));
    });
}

/// A binder of this version takes the binders' advisory lock shared, with its `BEGIN`: one that holds it alone
/// (a binder of an earlier version, during a rolling upgrade) still keeps every binding of this version waiting
/// until it is done.
#[test]
fn a_binding_waits_for_a_binder_that_holds_the_binders_lock_alone() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let url = scratch.url();
    let s = PgStore::connect(&url, true).unwrap();
    let (rt, db) = connect(&url);
    let mut earlier = rt.block_on(db.begin()).unwrap();
    rt.block_on(sqlx::query("SELECT pg_advisory_xact_lock(7707002)").execute(&mut *earlier))
        .unwrap();
    let no = wbg_core::WaybillNo::parse("WLOCK1").unwrap();
    let courier = wbg_core::AccountId::parse("c1").unwrap();
    let release = wbg_store::NumberRelease {
        grace_ms: 0,
        quarantine_ms: 0,
    };
    std::thread::scope(|scope| {
        let binding = scope.spawn(|| s.bind_number(&no, &courier, 0, release, &mut |_| None));
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(!binding.is_finished(), "the binding waits for the lock");
        rt.block_on(earlier.commit()).unwrap();
        let (outcome, seq) = binding.join().unwrap().unwrap();
        // The waybill is not out for delivery: nothing to bind, nothing written.
        assert_eq!((outcome, seq), (wbg_store::BindOutcome::NotNeeded, None));
    });
}
