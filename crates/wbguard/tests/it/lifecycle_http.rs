//! Joiners, movers and leavers through a real server: the HR roster suspends leavers and transfers movers
//! (dry run first, a truncated roster refused), reports joiners and returning leavers, never echoes or logs the
//! roster's other columns, and a leaver comes back only with a reason.
use crate::common;

use common::*;
use serde_json::{json, Value};

fn status(s: &Server, admin: &str, id: &str) -> (String, Option<String>, Option<String>) {
    let all: Value = s.get("/v1/accounts", Some(admin)).json().unwrap();
    let a = all
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
        .clone();
    (
        a["status"].as_str().unwrap().to_owned(),
        a["outlet"].as_str().map(String::from),
        a["status_reason"].as_str().map(String::from),
    )
}

#[test]
fn the_roster_suspends_leavers_moves_movers_and_reports_the_rest() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "debug");
    for i in 1..=6 {
        s.account(&admin, &format!("C{i}"), "courier", Some("O042"), None);
    }
    s.account(&admin, "S1", "outlet_staff", Some("O001"), None);
    s.account(&admin, "K1", "customer_service", None, None);
    s.account(&admin, "I1", "integration", None, None);
    s.account(&admin, "P1", "print_station", Some("O001"), None);
    let roster = |rows: &str| format!("account,name,outlet\n{rows}");
    let sync = |query: &str, csv: String| {
        s.client_post_csv(&format!("/v1/accounts/roster{query}"), &admin, csv)
    };
    // Couriers 3-6 have left; courier 2 moved; a new hire has no account yet; the printer is a machine.
    let today = roster(
        "root,甲,\nroot-2,乙,\nC1,欧阳娜娜,O042\nC2,诸葛明亮,O050\nS1,丙,O001\nK1,丁,\nNEW1,戊,O001\nP1,,O001\n",
    );

    let r = sync("?dry_run=true", today.clone());
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    assert!(!text.contains("欧阳娜娜"), "other columns are never echoed");
    let dry: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dry["applied"], false);
    assert_eq!(dry["leavers"], json!(["C3", "C4", "C5", "C6"]));
    assert_eq!(
        dry["transfers"],
        json!([{"account": "C2", "from": "O042", "to": "O050"}])
    );
    assert_eq!(dry["joiners"], json!(["NEW1"]));
    assert_eq!(dry["not_people"], json!(["P1"]));
    assert_eq!(
        status(&s, &admin, "C3").0,
        "active",
        "a dry run changes nothing"
    );

    let done: Value = sync("", today.clone()).json().unwrap();
    assert_eq!(done["applied"], true);
    let (st, _, reason) = status(&s, &admin, "C3");
    assert_eq!(st, "suspended");
    assert!(reason.unwrap().starts_with("leaver"));
    assert_eq!(status(&s, &admin, "C2").1.as_deref(), Some("O050"));
    assert_eq!(status(&s, &admin, "C1").0, "active");
    assert_eq!(
        status(&s, &admin, "I1").0,
        "active",
        "machines are not on an HR roster"
    );

    // A leaver on the roster again is reported, not reinstated; an admin reinstates with a reason only.
    let back: Value = sync(
        "?dry_run=true",
        roster("root,,\nroot-2,,\nC1,,\nC2,,O050\nS1,,\nK1,,\nC3,,O042\n"),
    )
    .json()
    .unwrap();
    assert_eq!(back["returning"], json!(["C3"]));
    assert_eq!(
        error_code(s.post("/v1/accounts/C3/reinstate", Some(&admin), &json!({}))),
        (400, "invalid_request".into())
    );
    assert_eq!(
        s.post(
            "/v1/accounts/C3/reinstate",
            Some(&admin),
            &json!({"reason": "rehired 2026-12-02"})
        )
        .status(),
        200
    );

    // A truncated roster would suspend nearly everyone: refused (audited), unless forced.
    let r = sync("", roster("root,,\n"));
    assert_eq!(error_code(r), (409, "conflict".into()));
    assert_eq!(status(&s, &admin, "C1").0, "active");
    // Bad rosters name the line, never the value.
    for (csv, what) in [
        ("name,outlet\nx,O001\n".to_owned(), "`account` column"),
        (
            roster("C1,,O042\nC1,,O042\n"),
            "repeats the account of line 2",
        ),
        (roster("C 1,欧阳娜娜,O042\n"), "roster line 2"),
    ] {
        let r = sync("", csv);
        assert_eq!(r.status(), 400);
        let msg = r.json::<Value>().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(msg.contains(what) && !msg.contains("欧阳娜娜"), "{msg}");
    }
    // Only admins reconcile.
    let k1 = s.account(&admin, "K2", "customer_service", None, None);
    assert_eq!(
        s.client_post_csv("/v1/accounts/roster?dry_run=true", &k1, today)
            .status(),
        403
    );
    assert!(!s.log_text().contains("欧阳娜娜"));
    dirs.assert_audit_intact();
}

#[test]
fn the_access_review_derives_what_each_account_sees_from_the_policy() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let courier = s.account(&admin, "C0420001", "courier", Some("O042"), None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    s.account(&admin, "K1", "customer_service", None, None);
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &json!({"waybills": [waybill("YT1", "M001", "O001", "O042", "欧阳娜娜", "13912345678", "文三路88号")]}),
    );
    assert_eq!(r.status(), 201);
    for (kind, outlet, courier) in [
        ("picked_up", "O001", None),
        ("at_outlet", "O042", None),
        ("out_for_delivery", "O042", Some("C0420001")),
    ] {
        let r = s.post(
            "/v1/waybills/YT1/events",
            Some(&integ),
            &json!({"type": kind, "outlet": outlet, "courier": courier}),
        );
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    }
    for _ in 0..3 {
        let v: Value = s
            .get("/v1/waybills/YT1?purpose=delivery", Some(&courier))
            .json()
            .unwrap();
        assert_eq!(v["view"], "full");
    }

    let r = s.get("/v1/access-review", Some(&auditor));
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    assert!(!text.contains("欧阳娜娜") && !text.contains("13912345678"));
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    let row = |id: &str| rows.iter().find(|r| r["account"] == id).unwrap().clone();
    let sees = |r: &Value, purpose: &str| {
        r["sees"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == purpose)
            .unwrap()
            .clone()
    };
    let c = row("C0420001");
    assert_eq!(c["full_reads_30d"], 3);
    assert!(c["last_active"].as_i64().is_some());
    let delivery = sees(&c, "delivery");
    assert_eq!(delivery["view"], "full");
    assert!(
        !delivery["rules"].as_array().unwrap().is_empty(),
        "{delivery}"
    );
    assert!(delivery["when"]
        .as_str()
        .unwrap()
        .contains("assigned to it"));
    let k = row("K1");
    assert!(sees(&k, "customer_service")["when"]
        .as_str()
        .unwrap()
        .contains("open ticket registered for it"));
    assert_eq!(k["flags"], json!([]));
    let i = row("I1");
    for p in i["sees"].as_array().unwrap() {
        assert!(p["view"].is_null() || p["view"] == "routing", "{p}");
    }
    assert!(i["may"]
        .as_array()
        .unwrap()
        .contains(&json!("register_work")));
    assert!(row("root")["may"]
        .as_array()
        .unwrap()
        .contains(&json!("manage_accounts")));
    // A leaver is flagged.
    let r = s.client_post_csv(
        "/v1/accounts/roster",
        &admin,
        "account\nroot\nroot-2\nC0420001\nAUD1\n".into(),
    );
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let rows: Vec<Value> = s.get("/v1/access-review", Some(&admin)).json().unwrap();
    let k = rows.iter().find(|r| r["account"] == "K1").unwrap();
    assert_eq!(k["flags"], json!(["leaver", "suspended"]));
    // As CSV, and for auditors and admins only.
    let r = s.get("/v1/access-review?format=csv", Some(&auditor));
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().unwrap();
    assert!(csv.starts_with("account,role,outlet"), "{csv}");
    assert!(csv.contains("C0420001,courier,O042,,active,"));
    assert_eq!(
        error_code(s.get("/v1/access-review?format=pdf", Some(&auditor))).0,
        400
    );
    assert_eq!(
        error_code(s.get("/v1/access-review", Some(&courier))).0,
        403
    );
    // Quarterly recertification: an admin keeps (or revokes) accounts; the review shows the decision.
    let attest = |t: &str, body: Value| s.post("/v1/access-review/attestations", Some(t), &body);
    let r = attest(
        &admin,
        json!({"accounts": ["C0420001"], "decision": "keep"}),
    );
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    assert_eq!(
        error_code(attest(
            &admin,
            json!({"accounts": ["C0420001"], "decision": "keep"})
        ))
        .0,
        409
    );
    assert_eq!(
        error_code(attest(
            &admin,
            json!({"accounts": ["AUD1"], "decision": "maybe"})
        ))
        .0,
        400
    );
    assert_eq!(
        error_code(attest(
            &courier,
            json!({"accounts": ["AUD1"], "decision": "keep"})
        ))
        .0,
        403
    );
    assert_eq!(
        error_code(attest(
            &admin,
            json!({"accounts": ["root"], "decision": "keep"})
        ))
        .0,
        403
    );
    let rows: Vec<Value> = s.get("/v1/access-review", Some(&auditor)).json().unwrap();
    let c = rows.iter().find(|r| r["account"] == "C0420001").unwrap();
    assert_eq!(
        (
            c["attested"]["by"].as_str(),
            c["attested"]["decision"].as_str()
        ),
        (Some("root"), Some("keep"))
    );
    // The CLI gives the same.
    drop(s);
    let out = dirs.cli(&["access-review", "--csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("C0420001,courier,O042"));
}

#[test]
fn an_outlet_manager_recertifies_its_own_outlets_people_and_nobody_else() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "debug");
    let manager = s.account(&admin, "MGR042", "outlet_manager", Some("O042"), None);
    let other_manager = s.account(&admin, "MGR001", "outlet_manager", Some("O001"), None);
    for (id, role, outlet) in [
        ("C0420001", "courier", Some("O042")),
        ("C0420002", "courier", Some("O042")),
        ("S0420001", "outlet_staff", Some("O042")),
        ("P0420001", "print_station", Some("O042")),
        ("C0010001", "courier", Some("O001")),
        ("K1", "customer_service", None),
    ] {
        s.account(&admin, id, role, outlet, None);
    }
    // A manager must be bound to an outlet.
    let r = s.post(
        "/v1/accounts",
        Some(&admin),
        &json!({"id": "MGRX", "role": "outlet_manager"}),
    );
    assert_eq!(r.status(), 400);

    // Its access review: exactly its own outlet's people, and what it may do is on its own row in the admins'.
    let rows: Vec<Value> = s.get("/v1/access-review", Some(&manager)).json().unwrap();
    let mut ids: Vec<&str> = rows
        .iter()
        .map(|r| r["account"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["C0420001", "C0420002", "P0420001", "S0420001"]);
    let all: Vec<Value> = s.get("/v1/access-review", Some(&admin)).json().unwrap();
    let mine = all.iter().find(|r| r["account"] == "MGR042").unwrap();
    assert!(mine["may"]
        .as_array()
        .unwrap()
        .contains(&json!("recertify courier")));
    for p in mine["sees"].as_array().unwrap() {
        assert!(p["view"].is_null() || p["view"] == "routing", "{p}");
    }
    // A manager reads no waybill beyond routing data.
    let integ = s.account(&admin, "I1", "integration", None, None);
    let no = "YT2026120300001";
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &waybill(
            no,
            "M001",
            "O042",
            "O042",
            "欧阳娜娜",
            "13912345678",
            "文三路88号3单元501室",
        ),
    );
    assert_eq!(r.status(), 201);
    let r = s.get(
        &format!("/v1/waybills/{no}?purpose=exception_handling"),
        Some(&manager),
    );
    let text = r.text().unwrap();
    assert!(
        !text.contains("13912345678") && !text.contains("欧阳娜娜"),
        "{text}"
    );

    // It keeps and revokes its own people; the revoked courier is suspended at once.
    let attest = |t: &str, accounts: &[&str], decision: &str| {
        s.post(
            "/v1/access-review/attestations",
            Some(t),
            &json!({"accounts": accounts, "decision": decision}),
        )
    };
    let r = attest(&manager, &["C0420001", "S0420001"], "keep");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let r = attest(&manager, &["C0420002"], "revoke");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    assert_eq!(status(&s, &admin, "C0420002").0, "suspended");
    // Another outlet's courier, customer service, another manager, itself, an account that does not exist:
    // refused alike, and a list with one of them in it decides nothing.
    for (who, target) in [
        (&manager, "C0010001"),
        (&manager, "K1"),
        (&manager, "MGR001"),
        (&manager, "MGR042"),
        (&manager, "NOBODY"),
        (&other_manager, "P0420001"),
    ] {
        assert_eq!(
            error_code(attest(who, &["P0420001", target], "revoke")).0,
            403,
            "{target}"
        );
    }
    assert_eq!(status(&s, &admin, "P0420001").0, "active");
    assert_eq!(status(&s, &admin, "C0010001").0, "active");
    // The admins' review shows who decided.
    let all: Vec<Value> = s.get("/v1/access-review", Some(&admin)).json().unwrap();
    let c = all.iter().find(|r| r["account"] == "C0420001").unwrap();
    assert_eq!(c["attested"]["by"], "MGR042");
    // A courier has no review and decides nothing.
    let courier = s.account(&admin, "C0420009", "courier", Some("O042"), None);
    assert_eq!(
        error_code(s.get("/v1/access-review", Some(&courier))).0,
        403
    );
    assert_eq!(error_code(attest(&courier, &["C0420001"], "keep")).0, 403);
}
