//! `wbguard keys rotate` and `wbguard retention run` as an operator runs them: the key file replaced, the store
//! still readable under it, the rotation on record, and a key from the environment refused rather than
//! half-rotated; a retention run with nothing due changes nothing.
use crate::common;

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

#[test]
fn a_retention_dry_run_says_what_would_go_and_what_holds_the_rest_and_changes_nothing() {
    let dirs = Dirs::new("");
    dirs.create_account("root", "admin", None);
    let file = dirs.root.path().join("in.jsonl");
    let w = common::waybill("W1", "M1", "O1", "O2", "王芳", "13800135678", "科技园1号");
    std::fs::write(&file, format!("{w}\n")).unwrap();
    let out = dirs.cli(&["import", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = || {
        let out = dirs.cli(&["audit", "verify"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = size();
    let out = dirs.cli(&[
        "retention",
        "run",
        "--dry-run",
        "--days-after-delivery",
        "0",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    // Today's day of ingest: each of its four field groups kept, until a time shown in China Standard Time, held
    // because the day is still filling (its open waybill would be carried at the day's end, 0 days later).
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for group in ["contact", "address", "region", "items"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(group) && l.contains("keep until")),
            "{stdout}"
        );
    }
    assert!(
        lines
            .iter()
            .all(|l| l.contains("+08:00") && l.contains("the day is still filling")),
        "{stdout}"
    );
    assert!(
        stderr.contains("dry run: 0 field groups would be shredded, 4 kept"),
        "{stderr}"
    );
    assert_eq!(size(), before, "a dry run writes nothing to the log");
    // A real run says why it shredded nothing.
    let out = dirs.cli(&["retention", "run", "--days-after-delivery", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4 field groups kept; the next falls due")
            && stderr.contains("held by day and open"),
        "{stderr}"
    );
}

/// The display zone is configuration: `time_zone = "Europe/Berlin"` shows the same plan's times with Berlin's
/// offset (winter time in December), and a zone that is not an IANA one is refused before anything opens.
#[test]
fn times_are_shown_in_the_configured_zone() {
    let dirs = Dirs::new("");
    dirs.create_account("root", "admin", None);
    let file = dirs.root.path().join("in.jsonl");
    let w = common::waybill("W1", "M1", "O1", "O2", "王芳", "13800135678", "科技园1号");
    std::fs::write(&file, format!("{w}\n")).unwrap();
    assert!(dirs
        .cli(&["import", file.to_str().unwrap()])
        .status
        .success());
    let config = std::fs::read_to_string(&dirs.config).unwrap();
    let plan = |zone: &str| {
        std::fs::write(&dirs.config, format!("time_zone = \"{zone}\"\n{config}")).unwrap();
        dirs.cli(&["retention", "run", "--dry-run"])
    };
    let out = plan("Europe/Berlin");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert!(!lines.is_empty());
    // Berlin is +01:00 in winter and +02:00 in summer, whenever the plan's times fall.
    let offset = ["+01:00", "+02:00"];
    assert!(
        lines
            .iter()
            .all(|l| offset.iter().any(|o| l.contains(o)) && !l.contains("+08:00")),
        "{stdout}"
    );
    let out = plan("Mars/Olympus");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("IANA zone"));
}
