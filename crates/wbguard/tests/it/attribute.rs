//! `wbguard attribute` and `POST /v1/forensics/attributions` as users run them, on a store the simulator left
//! behind: the attacker comes out first, only auditors may ask over HTTP, the report holds no personal data,
//! and bad input (empty, binary, 2 GB, no usable column) gets a clear error and changes nothing.
use crate::common;

use common::{error_code, path_str, Dirs, Server};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A simulated week (T3 attacks) kept in `dirs`, and its leak files.
fn simulated(dirs: &Dirs) -> (PathBuf, Vec<Value>) {
    let leaks = dirs.root.path().join("leaks");
    let out = dirs.cli(&[
        "simulate",
        "--scenario",
        "T3",
        "--seed",
        "4",
        "--outlets",
        "8",
        "--days",
        "7",
        "--deliveries",
        "3",
        "--json",
        "--leaks",
        path_str(&leaks),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth: Value =
        serde_json::from_slice(&std::fs::read(leaks.join("ground_truth.json")).unwrap()).unwrap();
    let truth = truth.as_array().unwrap().clone();
    (leaks, truth)
}

/// The take of the attacker who was served the most, and its account.
fn biggest_take(leaks: &Path, truth: &[Value]) -> (PathBuf, String) {
    let t = truth
        .iter()
        .max_by_key(|t| t["served_records"].as_u64().unwrap())
        .unwrap();
    assert!(t["served_records"].as_u64().unwrap() >= 5, "{t}");
    (
        leaks.join(t["served_file"].as_str().unwrap()),
        t["accounts"][0].as_str().unwrap().to_owned(),
    )
}

fn audit_size(dirs: &Dirs) -> u64 {
    let out = dirs.cli(&["audit", "verify"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}

#[test]
fn the_cli_names_the_attacker_and_refuses_what_is_not_a_leak() {
    let dirs = Dirs::new("");
    let (leaks, truth) = simulated(&dirs);
    let (file, account) = biggest_take(&leaks, &truth);

    let out = dirs.cli(&["attribute", "--leak", path_str(&file), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["suspects"][0]["principal"],
        account.as_str(),
        "{report:#}"
    );
    assert_eq!(report["suspects"][0]["rank"], 1);
    assert!(report["suspects"][0]["evidence"][0]["proof"].is_array());
    // The table form says the same.
    let out = dirs.cli(&["attribute", "--leak", path_str(&file)]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains(&account), "{table}");

    let before = audit_size(&dirs);
    let bad = dirs.root.path().join("bad");
    type Make = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "empty",
            Box::new(|p| std::fs::write(p, b"").unwrap()),
            "holds no records",
        ),
        (
            "header only",
            Box::new(|p| std::fs::write(p, "name,phone\n").unwrap()),
            "holds no records",
        ),
        (
            "binary junk",
            Box::new(|p| {
                let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
                std::fs::write(p, junk).unwrap()
            }),
            "not UTF-8 text",
        ),
        (
            "no usable column",
            Box::new(|p| std::fs::write(p, "colour,size\nred,10\nblue,12\n").unwrap()),
            "no column",
        ),
        (
            "2 GB",
            Box::new(|p| {
                // Sparse: refused from its size before a byte is read.
                let f = std::fs::File::create(p).unwrap();
                f.set_len(2 << 30).unwrap();
            }),
            "larger than",
        ),
    ];
    for (what, make, says) in cases {
        make(&bad);
        let started = std::time::Instant::now();
        let out = dirs.cli(&["attribute", "--leak", path_str(&bad)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} was accepted");
        assert!(err.contains(says), "{what}: {err}");
        assert!(started.elapsed().as_secs() < 30, "{what} took too long");
    }
    assert_eq!(audit_size(&dirs), before, "a refused leak changed the log");
}

#[test]
fn over_http_only_auditors_attribute_and_the_report_holds_no_personal_data() {
    let dirs = Dirs::new("");
    let (leaks, truth) = simulated(&dirs);
    let (file, account) = biggest_take(&leaks, &truth);
    let auditor = dirs.create_account("AUD1", "auditor", None);
    let admin = dirs.create_account("ROOT1", "admin", None);
    let agent = dirs.create_account("KX1", "customer_service", None);
    let server = Server::start(&dirs, "info");
    let leak = std::fs::read(&file).unwrap();
    let post = |token: Option<&str>, body: Vec<u8>| {
        server.post_raw("/v1/forensics/attributions", token, body)
    };

    let r = post(Some(&auditor), leak.clone());
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["suspects"][0]["principal"], account.as_str());
    let ev = &report["suspects"][0]["evidence"][0];
    assert!(ev["seq"].as_u64().unwrap() < report["checkpoint_size"].as_u64().unwrap());
    assert!(!ev["proof"].as_array().unwrap().is_empty());

    assert_eq!(error_code(post(None, leak.clone())).0, 401);
    assert_eq!(
        error_code(post(Some(&agent), leak.clone())),
        (403, "forbidden".into())
    );
    assert_eq!(
        error_code(post(Some(&admin), leak.clone())),
        (403, "forbidden".into())
    );
    let junk: Vec<u8> = (0..2048u32).map(|i| (i * 31 % 256) as u8).collect();
    assert_eq!(
        error_code(post(Some(&auditor), junk)),
        (400, "invalid_request".into())
    );
    assert_eq!(
        error_code(post(Some(&auditor), Vec::new())),
        (400, "invalid_request".into())
    );
    // Too large: refused from the declared length, before the body is read (sending 17 MiB for real races the
    // server's early refusal against the client's write, which then fails with a broken pipe).
    let answer = server.raw_exchange(&format!(
        "POST /v1/forensics/attributions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auditor}\r\n\
         Content-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        17 << 20
    ));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Not one name, phone or street of the leak comes back, or reaches the log.
    let log = server.log_text();
    let mut rows = csv::Reader::from_reader(leak.as_slice());
    for row in rows.records() {
        let row = row.unwrap();
        for v in [&row[1], &row[2], &row[6]] {
            if v.chars().count() >= 3 && !v.contains('*') {
                assert!(!text.contains(v), "the report holds a leaked value");
                assert!(!log.contains(v), "the log holds a leaked value");
            }
        }
    }
}
