//! Personal data never reaches the log: the server runs at `trace` level while requests carry known names,
//! phones and addresses — in valid input, invalid input and in places they do not belong (paths, queries) —
//! and the captured log must hold none of them.
use crate::common;

use common::*;
use serde_json::json;

const NAME: &str = "欧阳测试";
const PHONE: &str = "13912345678";
const PHONE_SPACED: &str = "139 1234 5678";
const DETAIL: &str = "秘密街88号";
const SENDER_PHONE: &str = "13911112222";
const BAD_PHONE: &str = "1391234567X";

#[test]
fn trace_log_holds_no_personal_data() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    let mut s = Server::start(&dirs, "trace");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let courier = s.account(&admin, "C2a", "courier", Some("O2"), None);
    let cs = s.account(&admin, "K1", "customer_service", None, None);
    let mut bodies = Vec::new();

    // Valid ingest and full reads.
    let wb = waybill("W1", "M1", "O1", "O2", NAME, PHONE_SPACED, DETAIL);
    assert_eq!(s.post("/v1/waybills", Some(&integ), &wb).status(), 201);
    for (k, o, c) in [
        ("picked_up", "O1", None),
        ("in_transit", "O1", None),
        ("at_outlet", "O2", None),
        ("out_for_delivery", "O2", Some("C2a")),
    ] {
        assert_eq!(
            s.post(
                "/v1/waybills/W1/events",
                Some(&integ),
                &json!({"type": k, "outlet": o, "courier": c})
            )
            .status(),
            200
        );
    }
    let full = s
        .get("/v1/waybills/W1?purpose=delivery", Some(&courier))
        .text()
        .unwrap();
    assert!(
        full.contains(PHONE) && full.contains(NAME),
        "the courier does get the full view: {full}"
    );
    let masked = s
        .get("/v1/waybills/W1?purpose=customer_service", Some(&cs))
        .text()
        .unwrap();
    assert!(masked.contains("\"view\":\"masked\""), "{masked}");
    bodies.push(masked);

    // Invalid input carrying personal data in every shape we can think of.
    let mut bad = waybill("W2", "M1", "O1", "O2", NAME, BAD_PHONE, DETAIL);
    bodies.push(s.post("/v1/waybills", Some(&integ), &bad).text().unwrap());
    bad["recipient"]["phone"] = json!(13912345678u64);
    bodies.push(s.post("/v1/waybills", Some(&integ), &bad).text().unwrap());
    bad["recipient"]["phone"] = json!(PHONE);
    bad["recipient"]["nickname"] = json!(NAME);
    bodies.push(s.post("/v1/waybills", Some(&integ), &bad).text().unwrap());
    bad = waybill("W2", "M1", "O1", "O2", NAME, PHONE, DETAIL);
    bad["items"] = json!([PHONE, NAME]);
    bodies.push(s.post("/v1/waybills", Some(&integ), &bad).text().unwrap());
    bodies.push(
        s.post_raw(
            "/v1/waybills",
            Some(&integ),
            format!("{{\"waybill_no\": \"{PHONE}\", {NAME}").into_bytes(),
        )
        .text()
        .unwrap(),
    );
    bodies.push(
        s.post(
            "/v1/waybills/W1/events",
            Some(&integ),
            &json!({"type": PHONE, "outlet": "O2"}),
        )
        .text()
        .unwrap(),
    );
    bodies.push(
        s.get(
            &format!("/v1/waybills/{PHONE}?purpose=delivery"),
            Some(&courier),
        )
        .text()
        .unwrap(),
    );
    bodies.push(
        s.get(&format!("/v1/waybills/W1?purpose={PHONE}"), Some(&courier))
            .text()
            .unwrap(),
    );
    bodies.push(
        s.get(
            &format!("/v1/waybills/W1?purpose=customer_service&ticket={PHONE}"),
            Some(&cs),
        )
        .text()
        .unwrap(),
    );
    bodies.push(
        s.get(
            &format!("/v1/waybills/W1?purpose=delivery&{PHONE}={NAME}"),
            Some(&courier),
        )
        .text()
        .unwrap(),
    );
    bodies.push(
        s.get("/v1/waybills/W1?purpose=delivery", Some(PHONE))
            .text()
            .unwrap(),
    );
    let metrics = s.get("/metrics", None).text().unwrap();

    // The importer too (a bad line makes it refuse the file; its message must not quote the line).
    let file = dirs.root.path().join("in.jsonl");
    let good = waybill("W3", "M1", "O1", "O2", NAME, PHONE, DETAIL).to_string();
    let broken = waybill("W4", "M1", "O1", "O2", NAME, BAD_PHONE, DETAIL).to_string();
    std::fs::write(&file, format!("{good}\n{broken}\n")).unwrap();
    let out = dirs.cli(&["import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let import_err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(import_err.contains("line 2"), "{import_err}");

    s.kill();
    let log = s.log_text();
    assert!(
        log.contains("wbguard serving") && log.contains("/v1/waybills/{no}"),
        "the capture works: {log:.2000}"
    );
    assert!(
        log.matches("finished processing request").count() >= 20,
        "every request is logged: {log:.3000}"
    );
    assert!(
        log.matches("guarded read").count() >= 6,
        "the guard logs its decisions: {log:.3000}"
    );
    assert!(!log.contains('\u{1b}'), "no colour codes in a log file");
    let mut places = vec![
        ("server log", log),
        ("metrics", metrics),
        ("import stderr", import_err),
    ];
    places.extend(bodies.into_iter().map(|b| ("error or masked response", b)));
    for (what, text) in &places {
        for needle in [
            NAME,
            PHONE,
            PHONE_SPACED,
            "1234 5678",
            DETAIL,
            SENDER_PHONE,
            BAD_PHONE,
            "寄件人甲",
            "发货仓1号",
        ] {
            assert!(
                !text.contains(needle),
                "{what} contains {needle:?}:\n{text:.3000}"
            );
        }
    }
}
