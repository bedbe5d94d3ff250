//! The storage behaviour suite (`wbg_store::conformance`) against PostgreSQL: each check on a fresh schema of
//! the database at `DATABASE_URL` (set by `.ci/run`; without it the test says so and passes, so that a plain
//! `cargo test` on a machine without PostgreSQL still runs everything else).
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pool = rt.block_on(sqlx::PgPool::connect(&self.base)).unwrap();
        (rt, pool)
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
    assert_eq!(s.schema_version().unwrap(), 2);
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
    let b = std::sync::Arc::new(PgStore::connect(&url, false).unwrap());
    let threads: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(t, s)| {
            std::thread::spawn(move || {
                for i in 0..50 {
                    s.append_audit(wbg_audit::AuditEntry::new(1, "node", format!("t{t}-{i}")))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
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
