//! `wbguard audit verify` through the real CLI: exit 0 on an intact log; exit non-zero naming the entry when one
//! is altered or removed by someone with write access to the store file.
mod common;

use common::*;

fn verify(dirs: &Dirs) -> (i32, String) {
    let out = dirs.cli(&["audit", "verify"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn tamper(dirs: &Dirs, sql: &str) {
    let db = rusqlite::Connection::open(dirs.data.join("wbguard.db")).unwrap();
    assert_eq!(db.execute(sql, []).unwrap(), 1, "{sql}");
}

#[test]
fn audit_verify_names_the_altered_or_removed_entry() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    {
        let s = Server::start(&dirs, "warn");
        let integ = s.account(&admin, "I1", "integration", None, None);
        let auditor = s.account(&admin, "A1", "auditor", None, None);
        assert_eq!(
            s.post(
                "/v1/waybills",
                Some(&integ),
                &waybill("W1", "M1", "O1", "O2", "王芳", "13800135678", "一路1号")
            )
            .status(),
            201
        );
        for _ in 0..10 {
            assert_eq!(
                s.get(
                    "/v1/waybills/W1?purpose=breach_notification",
                    Some(&auditor)
                )
                .status(),
                200
            );
        }
    } // killed, not stopped: the CLI signs the checkpoint that covers everything
    assert_eq!(dirs.cli(&["audit", "checkpoint"]).status.code(), Some(0));
    let (code, out) = verify(&dirs);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit log intact"), "{out}");

    // Altered: a routing-only read rewritten as a full one (the JSON stays valid).
    tamper(&dirs, "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), '\"view\":\"routing\"', '\"view\":\"full\"') AS BLOB) WHERE seq = 6");
    let (code, out) = verify(&dirs);
    assert_ne!(code, 0);
    assert!(out.contains("entry 6") && out.contains("altered"), "{out}");

    // Removed: a later entry deleted outright.
    tamper(&dirs, "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), '\"view\":\"full\"', '\"view\":\"routing\"') AS BLOB) WHERE seq = 6");
    assert_eq!(verify(&dirs).0, 0, "restoring the bytes restores the log");
    tamper(&dirs, "DELETE FROM audit_entries WHERE seq = 9");
    let (code, out) = verify(&dirs);
    assert_ne!(code, 0);
    assert!(out.contains("entry 9") && out.contains("removed"), "{out}");
}
