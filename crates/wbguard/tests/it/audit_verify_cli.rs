//! `wbguard audit verify` through the real CLI: exit 0 on an intact log; exit non-zero naming the entry when one
//! is altered or removed by someone with write access to the store file.
use crate::common;

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

/// Entries cut off the end of the log together with the checkpoints that cover them leave a shorter log that is
/// consistent with itself; only a checkpoint kept outside the store — the `[witness]` file every signed checkpoint
/// is appended to — shows what is missing.
#[test]
fn truncation_with_its_checkpoints_is_caught_by_the_witness() {
    let dirs = Dirs::new("");
    let witness = dirs.root.path().join("witness.jsonl");
    let mut config = std::fs::read_to_string(&dirs.config).unwrap();
    config.push_str(&format!("\n[witness]\nfile = \"{}\"\n", witness.display()));
    std::fs::write(&dirs.config, config).unwrap();
    let admin = dirs.create_account("root", "admin", None);
    {
        let s = Server::start(&dirs, "warn");
        let auditor = s.account(&admin, "A1", "auditor", None, None);
        for _ in 0..5 {
            assert_eq!(s.get("/v1/alerts", Some(&auditor)).status(), 200);
        }
    }
    assert_eq!(dirs.cli(&["audit", "checkpoint"]).status.code(), Some(0));
    let published = std::fs::read_to_string(&witness).unwrap();
    let sizes: Vec<u64> = published
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["size"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        sizes.len() >= 2 && sizes.windows(2).all(|w| w[0] < w[1]),
        "{sizes:?}"
    );
    let size = *sizes.last().unwrap();
    let arg = witness.to_str().unwrap();
    let out = dirs.cli(&["audit", "verify", "--checkpoint", arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("published checkpoint of size {size}")),
        "{text}"
    );

    // Cut the last three entries off, and every checkpoint that covered them.
    let keep = size - 3;
    let db = rusqlite::Connection::open(dirs.data.join("wbguard.db")).unwrap();
    db.execute("DELETE FROM audit_entries WHERE seq >= ?1", [keep as i64])
        .unwrap();
    db.execute(
        "DELETE FROM audit_checkpoints WHERE size > ?1",
        [keep as i64],
    )
    .unwrap();
    drop(db);
    let out = dirs.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "the store alone cannot tell: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = dirs.cli(&["audit", "verify", "--checkpoint", arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("removed") && text.contains(&format!("covers {size} entries")),
        "{text}"
    );

    // A note signed by another key is refused as such.
    let other = wbg_audit::note::NoteSigner::generate("another/log").unwrap();
    let forged = dirs.root.path().join("forged.note");
    std::fs::write(&forged, other.sign("another/log\n1\nAAAA\n").unwrap()).unwrap();
    let out = dirs.cli(&["audit", "verify", "--checkpoint", forged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("does not verify"));
}
