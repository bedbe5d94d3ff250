//! `wbguard keys rotate` and `wbguard retention run` as an operator runs them: the key file replaced, the store
//! still readable under it, the rotation on record, and a key from the environment refused rather than
//! half-rotated; a retention run with nothing due changes nothing.
mod common;

use common::*;

#[test]
fn keys_rotate_replaces_the_master_key_file() {
    let dirs = Dirs::new("");
    dirs.create_account("root", "admin", None);
    let key_file = dirs.keys.join("master.key");
    let before = std::fs::read_to_string(&key_file).unwrap();
    let out = dirs.cli(&["keys", "rotate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("re-wrapped"), "{stderr}");
    let after = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(before, after);
    assert!(!dirs.keys.join("master.key.next").exists());
    // The store opens under the new key (accounts list reads it), and the log verifies with the rotation in it.
    let out = dirs.cli(&["accounts", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("root"));
    let out = dirs.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A master key handed in by the environment cannot be rotated by rewriting a file.
    let out = std::process::Command::new(BIN)
        .args([
            "keys",
            "rotate",
            "--data",
            path_str(&dirs.data),
            "--keys",
            path_str(&dirs.keys),
        ])
        .env("WBGUARD_MASTER_KEY", after.trim())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WBGUARD_MASTER_KEY"));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), after);
}

#[test]
fn retention_run_reports_and_changes_nothing_when_nothing_is_due() {
    let dirs = Dirs::new("");
    dirs.create_account("root", "admin", None);
    let out = dirs.cli(&["retention", "run", "--days-after-delivery", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("0 field groups shredded over 0 days"),
        "{stderr}"
    );
    let out = dirs.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
