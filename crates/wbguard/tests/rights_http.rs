//! A person's right to know who read their data, over real HTTP as customer service works it: under a
//! registered ticket for one of the person's parcels, the phone they proved theirs gives every waybill they are
//! on (as recipient or sender) with the accounts shown its personal fields and when — and nothing about anyone.
mod common;

use common::{waybill, Dirs, Server};
use serde_json::{json, Value};

#[test]
fn a_person_learns_who_read_their_data_and_nothing_else() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("ROOT1", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let agent = s.account(&admin, "K1", "customer_service", None, None);
    let other_agent = s.account(&admin, "K2", "customer_service", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    let courier = s.account(&admin, "C1", "courier", Some("O2"), None);
    // Two parcels to the person (13800135678), one to someone else; every parcel's sender is 13911112222.
    for (no, phone) in [
        ("W1", "13800135678"),
        ("W2", "13800135678"),
        ("W3", "13700001111"),
    ] {
        let r = s.post(
            "/v1/waybills",
            Some(&integ),
            &waybill(no, "M001", "O1", "O2", "王芳", phone, "科技园1号"),
        );
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    }
    for (kind, outlet, c) in [
        ("picked_up", "O1", None),
        ("at_outlet", "O2", None),
        ("out_for_delivery", "O2", Some("C1")),
    ] {
        let r = s.post(
            "/v1/waybills/W1/events",
            Some(&integ),
            &json!({"type": kind, "outlet": outlet, "courier": c}),
        );
        assert_eq!(r.status(), 200);
    }
    // The courier reads W1 in full, twice; W3 (someone else's) is read too.
    for no in ["W1", "W1", "W3"] {
        let r = s.get(
            &format!("/v1/waybills/{no}?purpose=delivery"),
            Some(&courier),
        );
        assert_eq!(r.status(), 200);
    }
    let r = s.post(
        "/v1/tickets",
        Some(&integ),
        &json!({"ticket": "T-9", "waybills": ["W2"], "assignee": "K1"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());

    let ask = |token: &str, body: Value| {
        let r = s.post("/v1/rights/access", Some(token), &body);
        let st = r.status().as_u16();
        (st, r.json::<Value>().unwrap_or(Value::Null))
    };
    let req = json!({"phone": "138 0013 5678", "waybill_no": "W2", "ticket": "T-9"});
    let (st, a) = ask(&agent, req.clone());
    assert_eq!(st, 200, "{a}");
    let waybills: Vec<&str> = a["waybills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["waybill_no"].as_str().unwrap())
        .collect();
    assert_eq!(waybills, vec!["W2", "W1"], "their parcels only");
    let w1 = &a["waybills"][1];
    assert_eq!(w1["party"], "recipient");
    let accesses = w1["accesses"].as_array().unwrap();
    assert_eq!(accesses.len(), 2, "{a}");
    assert!(accesses
        .iter()
        .all(|x| x["account"] == "C1" && x["view"] == "full" && x["action"] == "view"));
    assert!(accesses[0]["at_local"]
        .as_str()
        .unwrap()
        .ends_with("+08:00"));
    let text = a.to_string();
    for personal in [
        "王芳",
        "13800135678",
        "13911112222",
        "科技园",
        "W3",
        "13700001111",
    ] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }

    // Refused: another agent's ticket, no ticket for that parcel, a phone not on it, a non-agent; all audited.
    assert_eq!(ask(&other_agent, req.clone()).0, 403);
    assert_eq!(
        ask(
            &agent,
            json!({"phone": "13800135678", "waybill_no": "W1", "ticket": "T-9"})
        )
        .0,
        403
    );
    assert_eq!(
        ask(
            &agent,
            json!({"phone": "13700001111", "waybill_no": "W2", "ticket": "T-9"})
        )
        .0,
        403,
        "someone else's phone on the person's parcel"
    );
    assert_eq!(
        ask(
            &agent,
            json!({"phone": "not a phone", "waybill_no": "W2", "ticket": "T-9"})
        )
        .0,
        400
    );
    assert_eq!(ask(&auditor, req.clone()).0, 403);
    let log: Value = s
        .get("/v1/audit/entries?action=rights_access", Some(&auditor))
        .json()
        .unwrap();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6, "{log}");
    assert_eq!(
        entries.iter().filter(|e| e["decision"] == "allow").count(),
        1
    );
    assert!(
        !log.to_string().contains("13800135678"),
        "no phone in the log"
    );
}
