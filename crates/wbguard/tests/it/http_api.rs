//! The HTTP contract through a real server on an ephemeral port: every policy rule both allowed and denied,
//! bad input refused without changing anything, and the audit endpoints checked with the standard verifiers.
use crate::common;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use common::*;
use serde_json::{json, Value};
use wbg_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use wbg_audit::note::NoteVerifier;
use wbg_audit::Checkpoint;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const H: i64 = 3_600_000;

struct World {
    s: Server,
    _dirs: Dirs,
    admin: String,
    integ: String,
}

fn world() -> World {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    World {
        s,
        _dirs: dirs,
        admin,
        integ,
    }
}

impl World {
    fn ingest(&self, no: &str, merchant: &str, origin: &str, dest: &str) {
        let r = self.s.post(
            "/v1/waybills",
            Some(&self.integ),
            &waybill(
                no,
                merchant,
                origin,
                dest,
                "王芳",
                "13800135678",
                "科技园1号",
            ),
        );
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    }

    fn event(
        &self,
        no: &str,
        kind: &str,
        outlet: &str,
        courier: Option<&str>,
        at: i64,
    ) -> (u16, String) {
        let r = self.s.post(
            &format!("/v1/waybills/{no}/events"),
            Some(&self.integ),
            &json!({"type": kind, "outlet": outlet, "courier": courier, "at": at}),
        );
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    }

    /// Moves a waybill O1 → O2 to out_for_delivery with courier C2a, all events `ago` ms in the past.
    fn out_for_delivery(&self, no: &str, ago: i64) {
        let t = now_ms() - ago;
        for (i, (k, o, c)) in [
            ("picked_up", "O1", None),
            ("in_transit", "O1", None),
            ("at_outlet", "O2", None),
            ("out_for_delivery", "O2", Some("C2a")),
        ]
        .into_iter()
        .enumerate()
        {
            let (st, body) = self.event(no, k, o, c, t + i as i64);
            assert_eq!(st, 200, "{k}: {body}");
        }
    }

    /// Registers a ticket as the ticketing system does (the integration account).
    fn open_ticket(&self, id: &str, waybills: &[&str], assignee: Option<&str>) -> Value {
        let mut body = json!({"ticket": id, "waybills": waybills});
        if let Some(a) = assignee {
            body["assignee"] = json!(a);
        }
        let r = self.s.post("/v1/tickets", Some(&self.integ), &body);
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap();
        assert_eq!(status, 201, "{v}");
        v
    }

    fn view(&self, token: &str, no: &str, query: &str) -> (u16, Value) {
        let r = self
            .s
            .get(&format!("/v1/waybills/{no}?{query}"), Some(token));
        let st = r.status().as_u16();
        (st, r.json().unwrap_or(Value::Null))
    }
}

fn view_name(v: &(u16, Value)) -> String {
    match v.0 {
        200 => v.1["view"].as_str().unwrap().to_owned(),
        _ => format!("{}:{}", v.0, v.1["error"]["code"].as_str().unwrap_or("?")),
    }
}

#[test]
fn policy_rules_over_http() {
    let w = world();
    let (s, admin) = (&w.s, w.admin.as_str());
    let courier = s.account(admin, "C2a", "courier", Some("O2"), None);
    let courier_b = s.account(admin, "C2b", "courier", Some("O2"), None);
    let courier_far = s.account(admin, "C9", "courier", Some("O9"), None);
    let staff = s.account(admin, "S2", "outlet_staff", Some("O2"), None);
    let staff_far = s.account(admin, "S9", "outlet_staff", Some("O9"), None);
    let cs = s.account(admin, "K1", "customer_service", None, None);
    let merchant = s.account(admin, "U1", "merchant", None, Some("M1"));
    let merchant_b = s.account(admin, "U2", "merchant", None, Some("M2"));
    let printer = s.account(admin, "P1", "print_station", Some("O1"), None);
    let printer_far = s.account(admin, "P9", "print_station", Some("O9"), None);
    let auditor = s.account(admin, "A1", "auditor", None, None);

    w.ingest("W-OUT", "M1", "O1", "O2");
    w.out_for_delivery("W-OUT", 60_000);
    w.ingest("W-SIGNED-1H", "M1", "O1", "O2");
    w.out_for_delivery("W-SIGNED-1H", 2 * H);
    assert_eq!(
        w.event("W-SIGNED-1H", "signed", "O2", None, now_ms() - H).0,
        200
    );
    w.ingest("W-SIGNED-3H", "M1", "O1", "O2");
    w.out_for_delivery("W-SIGNED-3H", 4 * H);
    assert_eq!(
        w.event("W-SIGNED-3H", "signed", "O2", None, now_ms() - 3 * H)
            .0,
        200
    );

    // Courier [T3]: full only for the own delivery, while it needs it; masked on the own outlet; denied elsewhere.
    let full = w.view(&courier, "W-OUT", "purpose=delivery");
    assert_eq!(view_name(&full), "full");
    assert_eq!(full.1["recipient"]["phone"], "13800135678");
    assert_eq!(full.1["recipient"]["address"]["detail"], "科技园1号");
    assert_eq!(
        view_name(&w.view(&courier, "W-SIGNED-1H", "purpose=delivery")),
        "full"
    );
    assert_eq!(
        view_name(&w.view(&courier, "W-SIGNED-3H", "purpose=delivery")),
        "masked"
    );
    assert_eq!(
        view_name(&w.view(&courier_b, "W-OUT", "purpose=delivery")),
        "masked"
    );
    assert_eq!(
        view_name(&w.view(&courier, "W-OUT", "purpose=customer_service")),
        "masked"
    );
    assert_eq!(
        view_name(&w.view(&courier_far, "W-OUT", "purpose=delivery")),
        "404:not_found"
    );
    let masked = w.view(&courier_b, "W-OUT", "purpose=delivery").1;
    assert_eq!(masked["recipient"]["phone"], "138******78");
    assert_eq!(masked["recipient"]["name"], "王*");
    assert!(masked["recipient"]["address"].get("detail").is_none());
    assert!(masked.get("items").is_none());

    // Outlet staff [T1]: masked on the own outlet, full only for an exception registered there (see
    // `claimed_work_counts_only_where_the_registries_say_so`); nothing elsewhere.
    assert_eq!(
        view_name(&w.view(&staff, "W-OUT", "purpose=delivery")),
        "masked"
    );
    assert_eq!(
        view_name(&w.view(&staff, "W-OUT", "purpose=exception_handling")),
        "masked"
    );
    assert_eq!(
        view_name(&w.view(&staff_far, "W-OUT", "purpose=exception_handling")),
        "404:not_found"
    );
    assert_eq!(
        view_name(&w.view(&staff_far, "W-OUT", "purpose=delivery")),
        "404:not_found"
    );

    // Customer service: masked by default, full only on a registered ticket.
    assert_eq!(
        view_name(&w.view(&cs, "W-OUT", "purpose=customer_service")),
        "masked"
    );
    assert_eq!(
        view_name(&w.view(&cs, "W-OUT", "purpose=customer_service&ticket=T-1001")),
        "masked",
        "a ticket nobody registered"
    );
    w.open_ticket("T-1001", &["W-OUT"], None);
    assert_eq!(
        view_name(&w.view(&cs, "W-OUT", "purpose=customer_service&ticket=T-1001")),
        "full"
    );
    assert_eq!(
        view_name(&w.view(&cs, "W-OUT", "purpose=delivery&ticket=T-1001")),
        "masked"
    );
    assert_eq!(
        view_name(&w.view(&cs, "W-OUT", "purpose=customer_service&ticket=13800135678")),
        "400:invalid_request"
    );

    // Merchant: own waybills only.
    assert_eq!(
        view_name(&w.view(&merchant, "W-OUT", "purpose=label")),
        "masked"
    );
    assert_eq!(
        view_name(&w.view(&merchant, "W-OUT", "purpose=customer_service")),
        "full"
    );
    assert_eq!(
        view_name(&w.view(&merchant_b, "W-OUT", "purpose=customer_service")),
        "404:not_found"
    );

    // Print station [T4]: the masked label of parcels it ships, never more.
    assert_eq!(
        view_name(&w.view(&printer, "W-OUT", "purpose=label")),
        "masked"
    );
    assert_eq!(
        view_name(&w.view(&printer, "W-OUT", "purpose=delivery")),
        "404:not_found"
    );
    assert_eq!(
        view_name(&w.view(&printer, "W-OUT", "purpose=customer_service&ticket=T-1")),
        "404:not_found"
    );
    assert_eq!(
        view_name(&w.view(&printer_far, "W-OUT", "purpose=label")),
        "404:not_found"
    );

    // Auditor: routing view and the audit log; admin: accounts, no personal data; integration: writes only.
    let routing = w.view(&auditor, "W-OUT", "purpose=breach_notification");
    assert_eq!(view_name(&routing), "routing");
    assert!(routing.1.get("recipient").is_none() && routing.1.get("sender").is_none());
    assert_eq!(routing.1["history"].as_array().unwrap().len(), 4);
    assert_eq!(
        view_name(&w.view(admin, "W-OUT", "purpose=customer_service&ticket=T-1")),
        "404:not_found"
    );
    assert_eq!(
        view_name(&w.view(&w.integ, "W-OUT", "purpose=delivery")),
        "404:not_found"
    );
    assert_eq!(
        error_code(s.post(
            "/v1/accounts",
            Some(&auditor),
            &json!({"id": "X1", "role": "admin"})
        )),
        (403, "forbidden".into())
    );
    assert_eq!(s.get("/v1/audit/entries/0", Some(&auditor)).status(), 200);
    assert_eq!(s.get("/v1/audit/entries/0", Some(&courier)).status(), 403);
    assert_eq!(s.get("/v1/alerts", Some(&auditor)).status(), 200);
    assert_eq!(s.get("/v1/alerts", Some(&staff)).status(), 403);

    // Scan events: staff scan at their own outlet only.
    let r = s.post(
        "/v1/waybills/W-OUT/events",
        Some(&staff_far),
        &json!({"type": "at_outlet", "outlet": "O9"}),
    );
    assert_eq!(error_code(r), (404, "not_found".into()));

    // Suspension refuses at once; reinstatement restores.
    assert_eq!(
        s.post(
            "/v1/accounts/C2a/suspend",
            Some(admin),
            &json!({"reason": "device lost"})
        )
        .status(),
        200
    );
    assert_eq!(
        view_name(&w.view(&courier, "W-OUT", "purpose=delivery")),
        "403:account_suspended"
    );
    assert_eq!(
        s.post("/v1/accounts/C2a/reinstate", Some(admin), &json!({}))
            .status(),
        200
    );
    assert_eq!(
        view_name(&w.view(&courier, "W-OUT", "purpose=delivery")),
        "full"
    );

    // Authentication.
    assert_eq!(
        error_code(s.get("/v1/waybills/W-OUT?purpose=delivery", None)),
        (401, "unauthenticated".into())
    );
    assert_eq!(
        error_code(s.get("/v1/waybills/W-OUT?purpose=delivery", Some("wbg_nope"))),
        (401, "unauthenticated".into())
    );
    // A courier sees personal data: the admin's request gives an enrolment, nothing usable, until a second
    // admin approves and the owner redeems the code.
    let second = s.post("/v1/accounts/C2b/tokens", Some(admin), &json!({}));
    assert_eq!(second.status(), 202);
    let second: Value = second.json().unwrap();
    assert!(second.get("token").is_none(), "{second}");
    let t2 = s.enrol(second["enrolment"]["id"].as_str().unwrap());
    assert_eq!(
        view_name(&w.view(&t2, "W-OUT", "purpose=delivery")),
        "masked"
    );
    // The new token replaced the account's older one: a reissue leaves no forgotten credential working, and the
    // owner whose token stops learns that someone was issued one.
    assert_eq!(
        view_name(&w.view(&courier_b, "W-OUT", "purpose=delivery")),
        "401:unauthenticated"
    );
    // Asked to keep them, both work (a second device).
    let third = s.post(
        "/v1/accounts/C2b/tokens",
        Some(admin),
        &json!({"keep_existing": true}),
    );
    assert_eq!(third.status(), 202);
    let t3 = s.enrol(
        third.json::<Value>().unwrap()["enrolment"]["id"]
            .as_str()
            .unwrap(),
    );
    for t in [&t2, &t3] {
        assert_eq!(view_name(&w.view(t, "W-OUT", "purpose=delivery")), "masked");
    }
    assert_eq!(
        error_code(s.post("/v1/accounts/C2b/tokens", Some(admin), &json!({"keep": 1}))),
        (400, "invalid_json".into())
    );
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let w = world();
    let s = &w.s;
    let t = Some(w.integ.as_str());
    let size = |s: &Server| {
        s.get("/v1/audit/checkpoint", None)
            .text()
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    w.ingest("W1", "M1", "O1", "O2");

    assert_eq!(
        error_code(s.post_raw("/v1/waybills", t, b"{\"waybill_no\": ".to_vec())),
        (400, "invalid_json".into())
    );
    assert_eq!(
        error_code(s.post_raw("/v1/waybills", t, b"not json".to_vec())),
        (400, "invalid_json".into())
    );
    let mut extra = waybill("W2", "M1", "O1", "O2", "李四", "13700001111", "x");
    extra["vip"] = json!(true);
    assert_eq!(
        error_code(s.post("/v1/waybills", t, &extra)),
        (400, "invalid_json".into())
    );
    let bad_phone = waybill("W3", "M1", "O1", "O2", "李四", "12345", "x");
    let r = s.post("/v1/waybills", t, &bad_phone);
    let (st, body) = (r.status().as_u16(), r.text().unwrap());
    assert_eq!(st, 400);
    assert!(
        body.contains("recipient.phone") && !body.contains("12345"),
        "{body}"
    );
    // The server answers 413 as soon as it sees the declared length, without reading the body.
    let answer = s.raw_exchange(&format!(
        "POST /v1/waybills HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        w.integ,
        17 * 1024 * 1024
    ));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    // A batch with one new and one existing waybill stores neither.
    let batch = json!({"waybills": [waybill("W4", "M1", "O1", "O2", "赵六", "13600001111", "y"), waybill("W1", "M1", "O1", "O2", "王芳", "13800135678", "z")]});
    assert_eq!(
        error_code(s.post("/v1/waybills", t, &batch)),
        (409, "conflict".into())
    );
    let auditor = s.account(&w.admin, "A1", "auditor", None, None);
    let before = size(s);
    assert_eq!(
        view_name(&w.view(&auditor, "W4", "purpose=breach_notification")),
        "404:not_found"
    );
    assert_eq!(
        view_name(&w.view(&auditor, "W3", "purpose=breach_notification")),
        "404:not_found"
    );
    assert_eq!(
        view_name(&w.view(&auditor, "W1", "purpose=curiosity")),
        "400:invalid_request"
    );
    assert_eq!(
        view_name(&w.view(&auditor, "W1", "purpose=delivery&extra=1")),
        "400:invalid_request"
    );
    assert_eq!(
        size(s),
        before + 2,
        "the two not-found lookups are audited, the malformed ones change nothing"
    );
    // Impossible transitions are 409 and leave the status alone.
    assert_eq!(w.event("W1", "signed", "O2", None, now_ms()).0, 409);
    assert_eq!(
        w.event("W1", "out_for_delivery", "O2", Some("C404"), now_ms())
            .0,
        409
    );
    assert_eq!(
        w.event("W1", "picked_up", "O1", None, now_ms() + 3_600_000)
            .0,
        400
    );
    assert_eq!(
        w.view(&auditor, "W1", "purpose=breach_notification").1["status"],
        "created"
    );
    assert_eq!(
        error_code(s.get("/v1/nowhere", None)),
        (404, "not_found".into())
    );
}

/// A single scan sending a parcel out checks its courier (looked up beside the scanner's own snapshot): an id
/// nobody has, a courier of another outlet and a suspended one are each refused with a 400 that changes nothing;
/// the outlet's active courier takes the parcel.
#[test]
fn a_parcel_goes_out_only_with_an_active_courier_of_its_outlet() {
    let w = world();
    let s = &w.s;
    s.account(&w.admin, "C2a", "courier", Some("O2"), None);
    s.account(&w.admin, "C1a", "courier", Some("O1"), None);
    s.account(&w.admin, "C2s", "courier", Some("O2"), None);
    let r = s.post(
        "/v1/accounts/C2s/suspend",
        Some(&w.admin),
        &json!({"reason": "test"}),
    );
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
    w.ingest("W1", "M1", "O1", "O2");
    let t = now_ms() - 60_000;
    for (i, (k, o)) in [
        ("picked_up", "O1"),
        ("in_transit", "O1"),
        ("at_outlet", "O2"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(w.event("W1", k, o, None, t + i as i64).0, 200, "{k}");
    }
    for courier in ["C404", "C1a", "C2s"] {
        let (status, body) = w.event("W1", "out_for_delivery", "O2", Some(courier), t + 5);
        assert_eq!(status, 400, "{courier}: {body}");
        assert!(body.contains("invalid_request"), "{courier}: {body}");
    }
    let auditor = s.account(&w.admin, "A1", "auditor", None, None);
    assert_eq!(
        w.view(&auditor, "W1", "purpose=breach_notification").1["status"],
        "at_outlet",
        "a refused scan changes nothing"
    );
    assert_eq!(
        w.event("W1", "out_for_delivery", "O2", Some("C2a"), t + 6)
            .0,
        200
    );
}

#[test]
fn audit_endpoints_verify_with_standard_algorithms() {
    let w = world();
    let s = &w.s;
    let courier = s.account(&w.admin, "C2a", "courier", Some("O2"), None);
    w.ingest("W1", "M1", "O1", "O2");
    w.out_for_delivery("W1", 60_000);
    let read = w.view(&courier, "W1", "purpose=delivery").1;
    let seq = read["audit_seq"].as_u64().unwrap();

    let vkey = s.get("/v1/audit/key", None).text().unwrap();
    let verifier = NoteVerifier::from_text(&vkey).unwrap();
    let note1 = s.get("/v1/audit/checkpoint", None).text().unwrap();
    let cp1 = Checkpoint::parse(verifier.open(&note1).unwrap()).unwrap();
    assert!(cp1.size > seq);

    // The entry's exact bytes, its inclusion proof, and the signed root agree.
    let entry = s
        .get(&format!("/v1/audit/entries/{seq}"), Some(&w.admin))
        .bytes()
        .unwrap();
    let e: Value = serde_json::from_slice(&entry).unwrap();
    assert_eq!(
        (
            e["account"].as_str(),
            e["view"].as_str(),
            e["waybill"].as_str()
        ),
        (Some("C2a"), Some("full"), Some("W1"))
    );
    assert!(e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "recipient.phone"));
    assert!(!String::from_utf8_lossy(&entry).contains("13800135678"));
    let proof: Value = s
        .get(&format!("/v1/audit/proof/{seq}?size={}", cp1.size), None)
        .json()
        .unwrap();
    let hashes: Vec<[u8; 32]> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    assert!(verify_inclusion(
        &leaf_hash(&entry),
        seq,
        cp1.size,
        &hashes,
        &cp1.root
    ));

    // More activity, a new checkpoint, and a consistency proof between the two.
    for _ in 0..5 {
        w.view(&courier, "W1", "purpose=delivery");
    }
    let note2 = s.get("/v1/audit/checkpoint", None).text().unwrap();
    let cp2 = Checkpoint::parse(verifier.open(&note2).unwrap()).unwrap();
    let cons: Value = s
        .get(
            &format!("/v1/audit/consistency?from={}&to={}", cp1.size, cp2.size),
            None,
        )
        .json()
        .unwrap();
    let hashes: Vec<[u8; 32]> = cons["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    assert!(verify_consistency(
        cp1.size, cp2.size, &cp1.root, &cp2.root, &hashes
    ));
    assert_eq!(
        error_code(s.get(&format!("/v1/audit/proof/0?size={}", cp2.size + 100), None)).0,
        400
    );

    // Operations endpoints.
    assert_eq!(s.get("/healthz", None).text().unwrap(), "ok\n");
    let metrics = s.get("/metrics", None).text().unwrap();
    assert!(metrics.contains("wbguard_reads_total"), "{metrics}");
    let api: Value = s.get("/openapi.json", None).json().unwrap();
    for p in [
        "/v1/waybills/{no}",
        "/v1/waybills",
        "/v1/audit/checkpoint",
        "/v1/accounts/{id}/suspend",
    ] {
        assert!(
            api["paths"].get(p).is_some(),
            "{p} missing from the OpenAPI document"
        );
    }
}

#[test]
fn batched_scan_events_are_all_or_nothing_with_faults_per_row() {
    let w = world();
    let (s, admin) = (&w.s, &w.admin);
    let staff_far = s.account(admin, "S9", "outlet_staff", Some("O9"), None);
    for no in ["B1", "B2", "B3"] {
        w.ingest(no, "M1", "O1", "O2");
    }
    let events = |rows: Value| json!({ "events": rows });

    // One faulty row (an impossible transition), one unknown waybill, one repeated waybill: refused whole,
    // every fault named by its row, nothing applied.
    let r = s.post(
        "/v1/events",
        Some(&w.integ),
        &events(json!([
            {"waybill_no": "B1", "type": "picked_up", "outlet": "O1"},
            {"waybill_no": "B2", "type": "signed", "outlet": "O2"},
            {"waybill_no": "NOPE1", "type": "picked_up", "outlet": "O1"},
            {"waybill_no": "B1", "type": "in_transit", "outlet": "O1"},
        ])),
    );
    assert_eq!(r.status(), 400);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "rows_refused");
    let rows: Vec<(u64, String)> = body["error"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, "conflict".to_owned()),
            (2, "not_found".to_owned()),
            (3, "invalid_request".to_owned())
        ]
    );
    // Nothing was applied: B1 can still be picked up on its own.
    assert_eq!(w.event("B1", "picked_up", "O1", None, now_ms()).0, 200);

    // A clean batch is applied whole, with one audit entry.
    let r = s.post(
        "/v1/events",
        Some(&w.integ),
        &events(json!([
            {"waybill_no": "B1", "type": "in_transit", "outlet": "O1"},
            {"waybill_no": "B2", "type": "picked_up", "outlet": "O1"},
            {"waybill_no": "B3", "type": "picked_up", "outlet": "O1"},
        ])),
    );
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let report: Value = r.json().unwrap();
    assert_eq!(report["recorded"], 3);
    let seq = report["audit_seq"].as_u64().unwrap();
    let entry: Value = s
        .get(&format!("/v1/audit/entries/{seq}"), Some(admin))
        .json()
        .unwrap();
    assert_eq!(entry["action"], "events", "{entry}");
    // Every event took: the next step of each is accepted.
    assert_eq!(w.event("B1", "at_outlet", "O2", None, now_ms()).0, 200);
    assert_eq!(w.event("B2", "in_transit", "O1", None, now_ms()).0, 200);

    // Staff of another outlet may not scan these parcels: refused (as if the waybill did not exist, so the
    // answer tells nothing), and the refusal is on record.
    let r = s.post(
        "/v1/events",
        Some(&staff_far),
        &events(json!([{"waybill_no": "B3", "type": "in_transit", "outlet": "O9"}])),
    );
    assert_eq!(r.status(), 404);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["rows"][0]["code"], "not_found");

    // Empty and oversized batches, and unknown fields, are malformed requests.
    assert_eq!(
        s.post("/v1/events", Some(&w.integ), &events(json!([])))
            .status(),
        400
    );
    let big: Vec<Value> = (0..10_001)
        .map(|i| json!({"waybill_no": format!("X{i}"), "type": "picked_up", "outlet": "O1"}))
        .collect();
    assert_eq!(
        s.post("/v1/events", Some(&w.integ), &events(json!(big)))
            .status(),
        400
    );
    let r = s.post(
        "/v1/events",
        Some(&w.integ),
        &events(json!([{"waybill_no": "B3", "type": "in_transit", "outlet": "O1", "vip": 1}])),
    );
    assert_eq!(r.status(), 400);
    assert_eq!(s.post("/v1/events", None, &events(json!([]))).status(), 401);
}

/// Claimed work gives a full view only where the carrier's registries say the work exists: a ticket its
/// ticketing system registered (open, for this waybill, this agent's, with reads left), an exception scanned at
/// the member of staff's own outlet. Everything else is masked, and audited as what it was.
#[test]
fn claimed_work_counts_only_where_the_registries_say_so() {
    let w = world();
    let (s, admin) = (&w.s, w.admin.as_str());
    let cs = s.account(admin, "K1", "customer_service", None, None);
    let cs_b = s.account(admin, "K2", "customer_service", None, None);
    let staff = s.account(admin, "S2", "outlet_staff", Some("O2"), None);
    let staff_origin = s.account(admin, "S1", "outlet_staff", Some("O1"), None);
    let auditor = s.account(admin, "A1", "auditor", None, None);
    for no in ["W-A", "W-B", "W-X"] {
        w.ingest(no, "M1", "O1", "O2");
    }
    let cs_view = |token: &str, no: &str, ticket: &str| {
        view_name(&w.view(
            token,
            no,
            &format!("purpose=customer_service&ticket={ticket}"),
        ))
    };

    // Only the carrier's systems register work; agents cannot register their own.
    let body = json!({"ticket": "T-9", "waybills": ["W-A"]});
    assert_eq!(
        error_code(s.post("/v1/tickets", Some(&cs), &body)),
        (403, "forbidden".into())
    );
    assert_eq!(
        error_code(s.post("/v1/tickets", Some(admin), &body)),
        (403, "forbidden".into())
    );
    // Bad registrations change nothing.
    for (bad, code) in [
        (json!({"ticket": "T-9", "waybills": []}), 400),
        (json!({"ticket": "13800135678", "waybills": ["W-A"]}), 400),
        (json!({"ticket": "T-9", "waybills": ["W-NOPE"]}), 404),
        (
            json!({"ticket": "T-9", "waybills": ["W-A"], "assignee": "S2"}),
            400,
        ),
        (
            json!({"ticket": "T-9", "waybills": ["W-A"], "opened_at": now_ms() + 3_600_000}),
            400,
        ),
        (
            json!({"ticket": "T-9", "waybills": ["W-A"], "extra": 1}),
            400,
        ),
    ] {
        assert_eq!(
            call(s.post("/v1/tickets", Some(&w.integ), &bad)).0,
            code,
            "{bad}"
        );
    }
    assert_eq!(call(s.get("/v1/tickets/T-9", Some(&w.integ))).0, 404);

    // A registered, open ticket: full for its own waybills, masked for any other.
    let t = w.open_ticket("T-1", &["W-A", "W-B"], None);
    assert_eq!(
        (t["reads"].as_u64(), t["waybills"].as_array().unwrap().len()),
        (Some(0), 2)
    );
    assert_eq!(
        call(s.post(
            "/v1/tickets",
            Some(&w.integ),
            &json!({"ticket": "T-1", "waybills": ["W-A"]})
        ))
        .0,
        409
    );
    assert_eq!(cs_view(&cs, "W-A", "T-1"), "full");
    assert_eq!(
        cs_view(&cs_b, "W-B", "T-1"),
        "full",
        "an unassigned ticket is the team's"
    );
    assert_eq!(
        cs_view(&cs, "W-X", "T-1"),
        "masked",
        "a waybill the ticket is not about"
    );
    assert_eq!(cs_view(&cs, "W-A", "T-404"), "masked", "an invented ticket");
    // Reads are counted, and the auditor can see the ticket.
    let (status, t) = call(s.get("/v1/tickets/T-1", Some(&auditor)));
    assert_eq!((status, t["reads"].as_u64()), (200, Some(2)));
    assert_eq!(call(s.get("/v1/tickets/T-1", Some(&cs))).0, 403);

    // An assigned ticket is its agent's alone.
    w.open_ticket("T-2", &["W-X"], Some("K1"));
    assert_eq!(cs_view(&cs_b, "W-X", "T-2"), "masked");
    assert_eq!(cs_view(&cs, "W-X", "T-2"), "full");

    // A ticket's reads run out: the eleventh read is masked.
    let mut views = Vec::new();
    for _ in 0..10 {
        views.push(cs_view(&cs, "W-X", "T-2"));
    }
    assert_eq!(
        views.iter().filter(|v| *v == "full").count(),
        9,
        "{views:?}"
    );
    assert_eq!(views.last().map(String::as_str), Some("masked"));

    // A closed ticket widens nothing; closing twice is a conflict.
    let (status, closed) = call(s.post("/v1/tickets/T-1/close", Some(&w.integ), &json!({})));
    assert_eq!(status, 200, "{closed}");
    assert!(closed["closed_at"].as_i64().is_some());
    assert_eq!(cs_view(&cs, "W-A", "T-1"), "masked");
    assert_eq!(
        call(s.post("/v1/tickets/T-1/close", Some(&w.integ), &json!({}))).0,
        409
    );
    assert_eq!(
        call(s.post("/v1/tickets/T-404/close", Some(&w.integ), &json!({}))).0,
        404
    );

    // Staff: claiming an exception is not one. Once the parcel is scanned as an exception at their outlet it
    // is theirs to see in full — and no longer once it moves on; the other outlet never.
    let staff_view = |token: &str| view_name(&w.view(token, "W-A", "purpose=exception_handling"));
    assert_eq!(staff_view(&staff), "masked");
    assert_eq!(
        w.event("W-A", "picked_up", "O1", None, now_ms() - 3 * H).0,
        200
    );
    assert_eq!(
        w.event("W-A", "at_outlet", "O2", None, now_ms() - 2 * H).0,
        200
    );
    assert_eq!(staff_view(&staff), "masked");
    assert_eq!(w.event("W-A", "exception", "O2", None, now_ms() - H).0, 200);
    assert_eq!(staff_view(&staff), "full");
    assert_eq!(staff_view(&staff_origin), "masked", "the exception is O2's");
    assert_eq!(
        w.event("W-A", "at_outlet", "O2", None, now_ms() - 60_000).0,
        200
    );
    assert_eq!(staff_view(&staff), "masked", "resolved");

    // The refusals and masked views are in the audit log with the ticket named.
    assert_eq!(call(s.get("/v1/audit/checkpoint", Some(&auditor))).0, 200);
}

fn call(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}
