//! `wbguard simulate` as a user runs it: the JSON report carries DESIGN.md's fields, `--leaks` writes the hauls
//! with their ground truth, and a bad attacks file is refused with a message naming the problem.
use std::process::Command;

fn wbguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wbguard"))
}

#[test]
fn a_small_run_reports_and_writes_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let leaks = dir.path().join("leaks");
    let out = wbguard()
        .args([
            "simulate",
            "--scenario",
            "T2",
            "--seed",
            "4",
            "--outlets",
            "8",
            "--days",
            "7",
        ])
        .args(["--deliveries", "3", "--json", "--leaks"])
        .arg(&leaks)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &reports[0];
    for field in [
        "scenario",
        "attackers",
        "detected",
        "records_exposed",
        "seconds_to_containment",
        "benign_accounts",
        "benign_suspended",
        "benign_alerts",
    ] {
        assert!(r.get(field).is_some(), "{field} missing from {r}");
    }
    assert_eq!(r["scenario"], "T2");
    assert_eq!(r["attackers"], 3);
    // T2's attackers are agents and staff: registered work bounds them at 10 full records each, contained or
    // not (they may meet parcels really in exception at their outlet).
    assert!(
        r["max_records_exposed_per_attacker"].as_u64().unwrap() <= 10,
        "{r}"
    );
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(leaks.join("ground_truth.json")).unwrap()).unwrap();
    let truth = truth.as_array().unwrap();
    assert_eq!(truth.len(), 3);
    for t in truth {
        let csv = std::fs::read_to_string(leaks.join(t["file"].as_str().unwrap())).unwrap();
        assert!(csv.starts_with("waybill_no,name,phone,province,city,district,detail"));
        assert_eq!(
            csv.lines().count() as u64 - 1,
            t["records"].as_u64().unwrap()
        );
    }
}

#[test]
fn a_bad_attacks_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("attacks.toml");
    std::fs::write(
        &file,
        "[[attack]]\nname = \"x\"\nthreat = \"T1\"\nrole = \"customer_service\"\npace_seconds = 1.0\nrecords = 10\ntarget = \"own_outlet\"\n",
    )
    .unwrap();
    let with_file = || {
        wbguard()
            .args(["simulate", "--attacks"])
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = with_file();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"x\"") && err.contains("outlet-bound"),
        "{err}"
    );
    std::fs::write(&file, "[[attack]]\nname = \"y\"\nspeed = 3\n").unwrap();
    let out = with_file();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("speed"));
}
