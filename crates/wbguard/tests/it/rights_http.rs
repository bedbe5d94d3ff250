//! A person's right to know who read their data, over real HTTP as customer service works it: under a
//! registered ticket for one of the person's parcels, the phone they proved theirs gives every waybill they are
//! on (as recipient or sender) with the accounts shown its personal fields and when — and nothing about anyone.
use crate::common;

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

/// The right to deletion, over real HTTP: under a ticket, the person's finished parcels (as recipient and as
/// sender) lose every personal field at once — to everyone, customer service and auditors included — while their
/// parcel still under way keeps working and is only listed as pending; someone else's parcel of the same day is
/// untouched; the phone no longer finds the erased parcels; and the people count and the log say what happened
/// without the phone.
#[test]
fn a_person_has_their_finished_parcels_erased_and_the_open_one_pending() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("ROOT1", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let agent = s.account(&admin, "K1", "customer_service", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    s.account(&admin, "C1", "courier", Some("O2"), None);
    let person = "13800135678";
    let mut sent = waybill("W4", "M001", "O1", "O2", "李四", "13600001111", "科技园4号");
    sent["sender"]["phone"] = json!(person);
    for w in [
        waybill("W1", "M001", "O1", "O2", "王芳", person, "科技园1号"),
        waybill("W2", "M001", "O1", "O2", "王芳", person, "科技园1号"),
        waybill("W3", "M001", "O1", "O2", "赵六", "13700001111", "科技园3号"),
        sent,
    ] {
        let r = s.post("/v1/waybills", Some(&integ), &w);
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    }
    let flow = [
        ("picked_up", "O1", None),
        ("at_outlet", "O2", None),
        ("out_for_delivery", "O2", Some("C1")),
        ("signed", "O2", None),
    ];
    for no in ["W1", "W3", "W4"] {
        for (kind, outlet, c) in flow {
            let r = s.post(
                &format!("/v1/waybills/{no}/events"),
                Some(&integ),
                &json!({"type": kind, "outlet": outlet, "courier": c}),
            );
            assert_eq!(r.status(), 200);
        }
    }
    let r = s.post(
        "/v1/tickets",
        Some(&integ),
        &json!({"ticket": "T-1", "waybills": ["W1", "W2", "W3"], "assignee": "K1"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let people = || {
        let r: Value = s
            .get("/v1/access-review/scale", Some(&auditor))
            .json()
            .unwrap();
        assert_eq!(r["duties"].as_array().unwrap().len(), 2, "{r}");
        assert_eq!(r["duties"][0]["reached"], false);
        r["individuals"].as_u64().unwrap()
    };
    assert_eq!(
        people(),
        4,
        "the person, two other recipients, the usual sender"
    );
    assert_eq!(s.get("/v1/access-review/scale", Some(&agent)).status(), 403);

    let erase = |body: Value| {
        let r = s.post("/v1/rights/erase", Some(&agent), &body);
        let st = r.status().as_u16();
        (st, r.json::<Value>().unwrap_or(Value::Null))
    };
    // Someone else's phone on the person's parcel: refused, nothing erased.
    let (st, _) = erase(json!({"phone": "13700001111", "waybill_no": "W1", "ticket": "T-1"}));
    assert_eq!(st, 403);
    let (st, a) = erase(json!({"phone": "138-0013-5678", "waybill_no": "W1", "ticket": "T-1"}));
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["erased"], json!(["W1", "W4"]), "{a}");
    assert_eq!(a["pending"], json!(["W2"]));
    assert_eq!(a["already_gone"], json!([]));
    assert!(a["request"].as_str().unwrap().starts_with('E'));
    assert!(!a.to_string().contains(person));

    let read = |no: &str| -> Value {
        let r = s.get(
            &format!("/v1/waybills/{no}?purpose=customer_service&ticket=T-1"),
            Some(&agent),
        );
        assert_eq!(r.status(), 200, "{no}");
        r.json().unwrap()
    };
    let w1 = read("W1");
    assert_eq!(w1["view"], "routing", "{w1}");
    assert!(w1.get("recipient").is_none_or(Value::is_null), "{w1}");
    assert_eq!(w1["history"].as_array().unwrap().len(), 4, "routing stays");
    assert!(!w1.to_string().contains("王芳"));
    assert_eq!(
        read("W2")["view"],
        "full",
        "the parcel under way still works"
    );
    assert_eq!(
        read("W3")["view"],
        "full",
        "someone else's parcel is untouched"
    );
    // The phone finds only the parcel under way now (the erased ones' index entries went with their keys).
    let r = s.post(
        "/v1/rights/access",
        Some(&agent),
        &json!({"phone": person, "waybill_no": "W2", "ticket": "T-1"}),
    );
    let a: Value = r.json().unwrap();
    let nos: Vec<&str> = a["waybills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["waybill_no"].as_str().unwrap())
        .collect();
    assert_eq!(nos, vec!["W2"], "{a}");
    assert_eq!(
        people(),
        3,
        "W4's recipient is held no more; the person still is, by W2"
    );
    // A second request erases nothing more now.
    let (st, a) = erase(json!({"phone": person, "waybill_no": "W2", "ticket": "T-1"}));
    assert_eq!(st, 200, "{a}");
    assert_eq!(
        (a["erased"].clone(), a["pending"].clone()),
        (json!([]), json!(["W2"]))
    );

    let log: Value = s
        .get("/v1/audit/entries?action=rights_erase", Some(&auditor))
        .json()
        .unwrap();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{log}");
    assert!(entries.iter().any(|e| e["decision"] == "allow"
        && e["detail"].as_str().unwrap().contains("erased=2 pending=1")));
    let shreds: Value = s
        .get("/v1/audit/entries?action=shred", Some(&auditor))
        .json()
        .unwrap();
    assert_eq!(
        shreds["entries"].as_array().unwrap().len(),
        4,
        "one per field group"
    );
    let all: Value = s
        .get("/v1/audit/entries?limit=500", Some(&auditor))
        .json()
        .unwrap();
    assert!(!all.to_string().contains(person), "no phone in the log");
}
