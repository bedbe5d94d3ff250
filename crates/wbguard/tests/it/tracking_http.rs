//! The public lookup over real HTTP, as customers and scrapers use it: status and scans with no personal data at
//! all; an honest customer checking a parcel again and again is slowed by the per-minute limit but never
//! blocked; a scraper guessing numbers is blocked well before 100 lookups, audited, and raised as an alert in the
//! analysts' queue; the page is served under the strict Content-Security-Policy.
use crate::common;

use common::{waybill, Dirs, Server};
use serde_json::{json, Value};

/// A lookup of `no` as the client at `ip` (through the trusted proxy the test plays).
fn lookup(s: &Server, no: &str, ip: &str) -> (u16, Value, Option<String>) {
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/track/{no}", s.base))
        .header("x-forwarded-for", ip)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().unwrap_or(Value::Null), retry)
}

/// Whether `needle` (a piece of personal data) shows anywhere in `v`: in its strings and keys, but for digests
/// (hex of 32 characters or more), and in its numbers only for a needle of over four characters — a phone's last
/// four digits are in many a millisecond time (1796456782451 holds "5678") and now and then in a hash.
fn shows(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => {
            s.contains(needle) && !(s.len() >= 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        Value::Number(n) => needle.len() > 4 && n.to_string().contains(needle),
        Value::Array(a) => a.iter().any(|x| shows(x, needle)),
        Value::Object(o) => o
            .iter()
            .any(|(k, x)| k.contains(needle) || shows(x, needle)),
        _ => false,
    }
}

#[test]
fn the_public_lookup_shows_no_one_and_blocks_scrapers_not_customers() {
    let dirs = Dirs::new(
        "\n[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[tracking]\nper_address_per_minute = 20",
    );
    let admin = dirs.create_account("ROOT1", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    s.account(&admin, "C1", "courier", Some("O2"), None);
    for no in ["YT1000001", "YT1000002"] {
        let r = s.post(
            "/v1/waybills",
            Some(&integ),
            &waybill(no, "M001", "O1", "O2", "王芳", "13800135678", "科技园1号"),
        );
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    }
    for (kind, outlet, c) in [
        ("picked_up", "O1", None),
        ("at_outlet", "O2", None),
        ("out_for_delivery", "O2", Some("C1")),
    ] {
        let r = s.post(
            "/v1/waybills/YT1000001/events",
            Some(&integ),
            &json!({"type": kind, "outlet": outlet, "courier": c}),
        );
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    }

    // ── A customer: where the parcel is, and nothing about anyone. ──
    let (st, t, _) = lookup(&s, "YT1000001", "203.0.113.5");
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["status"], "out_for_delivery");
    let scans = t["scans"].as_array().unwrap();
    assert_eq!(scans.len(), 3);
    assert_eq!(
        (scans[2]["event"].as_str(), scans[2]["place"].as_str()),
        (Some("out_for_delivery"), Some("O2"))
    );
    assert!(scans[0]["at_local"].as_str().unwrap().ends_with("+08:00"));
    for personal in ["王芳", "13800135678", "科技园", "C1", "5678"] {
        assert!(!shows(&t, personal), "{personal} in {t}");
    }
    // Checking again and again is slowed (429 with Retry-After), never blocked.
    let mut slowed = false;
    for _ in 0..40 {
        let (st, _, retry) = lookup(&s, "YT1000001", "203.0.113.5");
        if st == 429 {
            assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
            slowed = true;
        } else {
            assert_eq!(st, 200, "a customer is never blocked");
        }
    }
    assert!(slowed, "the per-minute limit holds");
    assert_eq!(lookup(&s, "YT1000002", "203.0.113.6").0, 200);

    // ── The last four digits of the recipient's phone: the masked name and district, checked through the blind
    // index; wrong digits lock the number's check after 5 tries an hour, from anywhere. ──
    let with = |no: &str, digits: &str, ip: &str| {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/track/{no}?last4={digits}", s.base))
            .header("x-forwarded-for", ip)
            .send()
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (st, t) = with("YT1000002", "5678", "192.0.2.10");
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["check"], "shown");
    assert_eq!(t["recipient"]["name"], "王*", "{t}");
    assert!(
        !t["recipient"]["district"].as_str().unwrap().is_empty(),
        "{t}"
    );
    for personal in ["王芳", "13800135678", "科技园", "5678"] {
        assert!(!shows(&t, personal), "{personal} in {t}");
    }
    let reveals: Value = s
        .get("/v1/audit/entries?action=track_reveal", Some(&auditor))
        .json()
        .unwrap();
    let reveal = &reveals["entries"][0];
    assert_eq!(
        (
            reveal["account"].as_str(),
            reveal["waybill"].as_str(),
            reveal["view"].as_str()
        ),
        (Some("public"), Some("YT1000002"), Some("masked"))
    );
    assert_eq!(with("YT1000002", "12a4", "192.0.2.10").0, 400);
    let mut locked_after = 0;
    for i in 0..20 {
        // Each try from another address: the per-number lock, not the per-address one, must stop it.
        let (st, t) = with(
            "YT1000002",
            &format!("{:04}", 1000 + i),
            &format!("192.0.2.{}", 100 + i),
        );
        assert_eq!(st, 200, "{t}");
        if t["check"] == "locked" {
            locked_after = i;
            break;
        }
        assert_eq!(t["check"], "wrong", "{t}");
        assert!(t.get("recipient").is_none());
    }
    assert_eq!(locked_after, 5, "locked after 5 wrong tries");
    let (_, t) = with("YT1000002", "5678", "192.0.2.200");
    assert_eq!(
        t["check"], "locked",
        "even the right digits wait out the hour"
    );

    // ── A scraper guessing numbers: blocked well before 100 lookups, then refused even real numbers. ──
    let mut tries = 0;
    let blocked_at = loop {
        tries += 1;
        let (st, body, _) = lookup(&s, &format!("YT{}", 2_000_000 + tries * 7), "198.51.100.7");
        if st == 403 {
            assert_eq!(body["error"]["code"], "blocked");
            break tries;
        }
        assert!(st == 404 || st == 429, "{st} {body}");
        assert!(tries < 100, "the scraper was never blocked");
    };
    assert!(blocked_at <= 20, "blocked after {blocked_at} lookups");
    assert_eq!(lookup(&s, "YT1000001", "198.51.100.7").0, 403);
    // Other addresses are unaffected.
    assert_eq!(lookup(&s, "YT1000001", "198.51.100.99").0, 200);
    // The block is in the audit log and in the analysts' queue.
    let alerts: Vec<Value> = s
        .get("/v1/alerts?kind=public_enumeration", Some(&auditor))
        .json()
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0]["detail"]
        .as_str()
        .unwrap()
        .contains("198.51.100.7"));
    let page: Value = s
        .get("/v1/audit/entries?action=track_block", Some(&auditor))
        .json()
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["decision"], "deny");
    // Bad numbers are refused as such; the page is served under the console's policy.
    assert_eq!(lookup(&s, "YT%2F..", "203.0.113.9").0, 400);
    let r = s.get("/track", None);
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let metrics = s.get("/metrics", None).text().unwrap();
    assert!(
        metrics.lines().any(|l| l == "wbguard_track_blocks_total 1"),
        "the block is counted: {metrics}"
    );
    assert!(metrics.contains("wbguard_track_checks_total{result=\"locked\"}"));
    // Retention's gauges are set by the upkeep's first run (nothing was ingested yet then: nothing held).
    assert!(
        metrics.contains("wbguard_retention_groups{state=\"held\"}"),
        "{metrics}"
    );
}

/// A last-four check of `no` as the client at `ip`: the `check` the answer gives.
fn checked(s: &Server, no: &str, digits: &str, ip: &str) -> String {
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/track/{no}?last4={digits}", s.base))
        .header("x-forwarded-for", ip)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().unwrap()["check"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_block_and_a_lasting_lock_outlive_a_restart() {
    let dirs = Dirs::new(
        "\n[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[tracking]\nlast4_tries_per_hour = 3\nlast4_tries_total = 3",
    );
    let admin = dirs.create_account("ROOT1", "admin", None);
    let mut s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &waybill(
            "YT1000001",
            "M001",
            "O1",
            "O2",
            "王芳",
            "13800135678",
            "科技园1号",
        ),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    // A scraper guessing numbers is blocked; three wrong last-four checks lock the number's check for good.
    let mut tries = 0;
    while lookup(&s, &format!("YT{}", 3_000_000 + tries * 11), "198.51.100.7").0 != 403 {
        tries += 1;
        assert!(tries < 100, "the scraper was never blocked");
    }
    for (i, digits) in ["0000", "1111", "2222"].iter().enumerate() {
        assert_eq!(
            checked(&s, "YT1000001", digits, &format!("192.0.2.{}", 10 + i)),
            "wrong"
        );
    }
    assert_eq!(checked(&s, "YT1000001", "5678", "192.0.2.20"), "locked");

    // Restarted (a deploy, a crash): the node forgets its counts, not what they decided.
    s.kill();
    let s = Server::start(&dirs, "info");
    assert_eq!(
        lookup(&s, "YT1000001", "198.51.100.7").0,
        403,
        "still blocked"
    );
    assert_eq!(lookup(&s, "YT1000001", "198.51.100.8").0, 200);
    assert_eq!(
        checked(&s, "YT1000001", "5678", "192.0.2.21"),
        "locked",
        "the right digits stay locked out: the lock was for good"
    );
    let page: Value = s
        .get("/v1/audit/entries?action=track_lock", Some(&auditor))
        .json()
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{page}");
    assert_eq!(entries[0]["waybill"], "YT1000001");
    assert!(!shows(&page, "5678"), "{page}");
}
