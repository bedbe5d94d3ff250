//! Legal holds over real HTTP, as an auditor places them on a suspect's reads: every waybill the suspect was
//! shown, or an incident found exposed, is kept from every read but the custodian's for the hold — and the
//! refusal looks like any unknown waybill, so the suspect is not told an investigation is under way.
use crate::common;

use common::{error_code, waybill, Dirs, Server};
use serde_json::{json, Value};

fn json_of(r: reqwest::blocking::Response) -> (u16, Value) {
    let st = r.status().as_u16();
    (st, r.json::<Value>().unwrap_or(Value::Null))
}

#[test]
fn a_hold_on_a_suspects_reads_keeps_them_from_everyone_but_its_custodian() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("ROOT1", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let custodian = s.account(&admin, "K1", "customer_service", None, None);
    let agent = s.account(&admin, "K2", "customer_service", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    let courier = s.account(&admin, "C1", "courier", Some("O2"), None);
    for (no, name, phone) in [
        ("W1", "欧阳娜娜", "13800135678"),
        ("W2", "司马光明", "13700001111"),
        ("W3", "上官婉儿", "13600002222"),
    ] {
        let r = s.post(
            "/v1/waybills",
            Some(&integ),
            &waybill(no, "M001", "O1", "O2", name, phone, "科技园1号"),
        );
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
        for (kind, outlet, c) in [
            ("picked_up", "O1", None),
            ("at_outlet", "O2", None),
            ("out_for_delivery", "O2", Some("C1")),
        ] {
            let r = s.post(
                &format!("/v1/waybills/{no}/events"),
                Some(&integ),
                &json!({"type": kind, "outlet": outlet, "courier": c}),
            );
            assert_eq!(r.status(), 200);
        }
    }
    // The suspect courier reads W1 and W2 in full; both are then signed for. W3 it never opens.
    for no in ["W1", "W2"] {
        let r = s.get(
            &format!("/v1/waybills/{no}?purpose=delivery"),
            Some(&courier),
        );
        assert_eq!(r.status(), 200);
        let r = s.post(
            &format!("/v1/waybills/{no}/events"),
            Some(&integ),
            &json!({"type": "signed", "outlet": "O2"}),
        );
        assert_eq!(r.status(), 200);
    }

    // Bad requests are refused, and change nothing.
    let place = |token: &str, body: Value| json_of(s.post("/v1/holds", Some(token), &body));
    for (body, status) in [
        (
            json!({"matter": "CASE-1", "custodian": "K1", "account": "C1"}),
            403,
        ),
        (json!({"matter": "CASE-1", "custodian": "K1"}), 400),
        (
            json!({"matter": "CASE-1", "custodian": "K1", "account": "C1", "from": "yesterday"}),
            400,
        ),
        (
            json!({"matter": "CASE-1", "custodian": "K1", "account": "C1", "waybills": ["W3"]}),
            400,
        ),
        (
            json!({"matter": "13800135678", "custodian": "K1", "waybills": ["W3"]}),
            400,
        ),
        (
            json!({"matter": "CASE-1", "custodian": "C1", "waybills": ["W3"]}),
            400,
        ),
        (
            json!({"matter": "CASE-1", "custodian": "K1", "waybills": ["W3"], "from": 0}),
            400,
        ),
        (
            json!({"matter": "CASE-1", "custodian": "K1", "account": "NOPE"}),
            400,
        ),
        (
            json!({"matter": "CASE-1", "custodian": "K1", "waybills": ["W9"]}),
            404,
        ),
    ] {
        let token = if status == 403 { &agent } else { &auditor };
        let (st, v) = place(token, body.clone());
        assert_eq!(st, status, "{body}: {v}");
    }
    let (_, list) = json_of(s.get("/v1/holds", Some(&auditor)));
    assert_eq!(list, json!([]));

    // On the suspect's reads: W1 and W2. The audit index may still be catching up just after start.
    let mut tries = 0;
    let hold = loop {
        let (st, v) = place(
            &auditor,
            json!({"matter": "CASE-2026/017", "custodian": "K1", "account": "C1", "from": "now-1d", "to": "now"}),
        );
        if st == 503 && tries < 50 {
            tries += 1;
            std::thread::sleep(std::time::Duration::from_millis(200));
            continue;
        }
        assert_eq!(st, 201, "{v}");
        break v;
    };
    let id = hold["id"].as_str().unwrap().to_owned();
    assert_eq!(hold["waybills"], json!(["W1", "W2"]));
    assert_eq!(hold["scope"], "account:C1");

    // A held waybill answers everyone else exactly as an unknown number does.
    let unknown = json_of(s.get("/v1/waybills/W9?purpose=customer_service", Some(&agent)));
    assert_eq!(unknown.0, 404);
    for (token, purpose) in [
        (&agent, "customer_service"),
        (&agent, "legal_hold"),
        (&custodian, "customer_service"),
        (&courier, "delivery"),
    ] {
        let r = json_of(s.get(&format!("/v1/waybills/W1?purpose={purpose}"), Some(token)));
        assert_eq!(r, unknown, "{purpose}");
    }
    // The custodian, for the hold: the full record; the audit entry names the hold.
    let (st, v) = json_of(s.get("/v1/waybills/W1?purpose=legal_hold", Some(&custodian)));
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["view"].as_str(), v["recipient"]["name"].as_str()),
        (Some("full"), Some("欧阳娜娜"))
    );
    assert_eq!(v["recipient"]["phone"], "13800135678");
    assert_eq!(
        error_code(s.get("/v1/waybills/W3?purpose=legal_hold", Some(&custodian))).0,
        404,
        "no hold keeps W3"
    );
    assert_eq!(
        s.get("/v1/waybills/W3?purpose=customer_service", Some(&agent))
            .status(),
        200,
        "W3 is untouched"
    );

    // The same exposure, through an incident: the hold covers what the incident found.
    let (st, inc) = json_of(s.post(
        "/v1/forensics/incidents",
        Some(&auditor),
        &json!({"suspects": ["C1"], "from": "now-1h", "to": "now"}),
    ));
    assert_eq!(st, 201, "{inc}");
    let (st, by_incident) = place(
        &auditor,
        json!({"matter": "CASE-2026/018", "custodian": "K2", "incident": inc["incident"]}),
    );
    assert_eq!(st, 201, "{by_incident}");
    assert_eq!(by_incident["waybills"], json!(["W1", "W2"]));
    // Two holds, two custodians: each reads for its own hold.
    assert_eq!(
        s.get("/v1/waybills/W2?purpose=legal_hold", Some(&agent))
            .status(),
        200
    );

    let (st, list) = json_of(s.get("/v1/holds", Some(&auditor)));
    assert_eq!(st, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        s.get("/v1/holds", Some(&agent)).status(),
        403,
        "auditors' list only"
    );
    let (st, one) = json_of(s.get(&format!("/v1/holds/{id}"), Some(&auditor)));
    assert_eq!((st, &one["matter"]), (200, &json!("CASE-2026/017")));
    assert_eq!(error_code(s.get("/v1/holds/LH-zz", Some(&auditor))).0, 400);

    // Released, one after the other: the waybills go back to their readers.
    let release = |hold: &str, reason: &str| {
        json_of(s.post(
            &format!("/v1/holds/{hold}/release"),
            Some(&auditor),
            &json!({"reason": reason}),
        ))
    };
    assert_eq!(release(&id, "").0, 400);
    assert_eq!(release(&id, "investigation closed").0, 200);
    assert_eq!(release(&id, "again").0, 409);
    assert_eq!(
        s.get("/v1/waybills/W1?purpose=customer_service", Some(&agent))
            .status(),
        404,
        "the incident's hold still keeps it"
    );
    assert_eq!(
        release(by_incident["id"].as_str().unwrap(), "case closed").0,
        200
    );
    let (st, v) = json_of(s.get("/v1/waybills/W1?purpose=customer_service", Some(&agent)));
    assert_eq!((st, v["view"].as_str()), (200, Some("masked")));
    assert_eq!(
        error_code(s.get("/v1/waybills/W1?purpose=legal_hold", Some(&custodian))).0,
        404
    );

    // The log records each step by id, matter and count — never a name or phone, not even one typed as a matter.
    let (st, page) = json_of(s.get("/v1/audit/entries?action=hold_place", Some(&auditor)));
    assert_eq!(st, 200, "{page}");
    let text = page.to_string();
    assert!(
        text.contains("matter=CASE-2026/017") && text.contains("waybills=2"),
        "{text}"
    );
    let (_, denied) = json_of(s.get(
        "/v1/audit/entries?account=K2&action=view&decision=deny",
        Some(&auditor),
    ));
    assert!(denied.to_string().contains("legal_hold"), "{denied}");
    let (_, all) = json_of(s.get("/v1/audit/entries?limit=500", Some(&auditor)));
    let all = all.to_string() + &s.log_text();
    for secret in ["欧阳娜娜", "13800135678", "司马光明"] {
        assert!(!all.contains(secret), "{secret} reached the log");
    }
    dirs.assert_audit_intact();
}
