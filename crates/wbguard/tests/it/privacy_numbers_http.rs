//! Privacy numbers through a real server: configured in `[privacy_numbers]`, bound when the parcel goes out, shown
//! to the courier instead of the real number, pushed to the telephony provider's webhook without the real number,
//! and routed by `POST /v1/telephony/route` for the gateway only; nothing personal in the server's log.
use crate::common;

use common::*;
use serde_json::{json, Value};
use std::net::TcpListener;

const NO: &str = "YT2026120100042";
const NAME: &str = "欧阳娜娜";
const PHONE: &str = "13912345678";
const STREET: &str = "文三路88号3单元501室";

#[test]
fn privacy_numbers_over_http() {
    let dirs = Dirs::new("");
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = std::fs::read_to_string(&dirs.config).unwrap();
    config.push_str(&format!(
        "[privacy_numbers]\nenabled = true\nnumbers = [\"171 0000 0100..17100000109\"]\n\
         [telephony_webhook]\nurl = \"http://{}/bindings\"\nbackoff_ms = 10\n",
        hook.local_addr().unwrap()
    ));
    std::fs::write(&dirs.config, config).unwrap();
    let pushed = std::thread::spawn(move || accept_post(&hook));
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "debug");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let gateway = s.account(&admin, "TEL1", "telephony_gateway", None, None);
    let courier = s.account(&admin, "C0420001", "courier", Some("O042"), None);
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &waybill(NO, "M001", "O001", "O042", NAME, PHONE, STREET),
    );
    assert_eq!(r.status(), 201);
    for (kind, outlet, c) in [
        ("picked_up", "O001", None),
        ("in_transit", "O001", None),
        ("at_outlet", "O042", None),
        ("out_for_delivery", "O042", Some("C0420001")),
    ] {
        let r = s.post(
            &format!("/v1/waybills/{NO}/events"),
            Some(&integ),
            &json!({"type": kind, "outlet": outlet, "courier": c}),
        );
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    }
    let view: Value = s
        .get(
            &format!("/v1/waybills/{NO}?purpose=delivery"),
            Some(&courier),
        )
        .json()
        .unwrap();
    assert_eq!(view["view"], "full");
    let number = view["privacy_number"].as_str().unwrap().to_owned();
    assert!(number.starts_with("171000001"), "{number}");
    assert_eq!(view["recipient"]["phone"], number.as_str());
    assert!(!view.to_string().contains(PHONE));

    // The provider is told of the binding, without the real number.
    let body = pushed.join().unwrap();
    let change: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(change["event"], "bound");
    assert_eq!(change["number"], number.as_str());
    assert_eq!(change["courier"], "C0420001");
    assert!(!body.contains(PHONE));

    // The gateway's routing request.
    let route = |token: &str, body: &Value| s.post("/v1/telephony/route", Some(token), body);
    let r = route(&gateway, &json!({"number": number, "caller": "C0420001"}));
    assert_eq!(r.status(), 200);
    let routed: Value = r.json().unwrap();
    assert_eq!(routed["route_to"], PHONE);
    assert!(routed["audit_seq"].as_u64().is_some());
    let (status, code) = error_code(route(
        &gateway,
        &json!({"number": number, "caller": "C0420002"}),
    ));
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    let (status, _) = error_code(route(
        &courier,
        &json!({"number": number, "caller": "C0420001"}),
    ));
    assert_eq!(status, 403, "only the gateway role routes calls");
    let (status, _) = error_code(route(
        &gateway,
        &json!({"number": "13800138000", "caller": "C0420001"}),
    ));
    assert_eq!(status, 404);
    let (status, _) = error_code(route(&gateway, &json!({"number": number})));
    assert_eq!(status, 400, "the caller is required");
    let (status, _) = error_code(route(
        &gateway,
        &json!({"number": "x", "caller": "C0420001", "extra": 1}),
    ));
    assert_eq!(status, 400);
    // The gateway never reads a waybill (nor learns that it exists).
    let (status, _) = error_code(s.get(
        &format!("/v1/waybills/{NO}?purpose=delivery"),
        Some(&gateway),
    ));
    assert_eq!(status, 404);
    let spec: Value = s.get("/openapi.json", None).json().unwrap();
    assert!(spec["paths"]["/v1/telephony/route"]["post"].is_object());

    // The operator sees the pool on /metrics (the upkeep refreshes it every second): ten numbers, one bound.
    let gauge = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = s.get("/metrics", None).text().unwrap();
        // (A tick before the binding showed all ten free: wait for one after it.)
        if gauge(&text, "wbguard_privacy_numbers_free") == Some(9.0)
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        gauge(&text, "wbguard_privacy_numbers_in_service"),
        Some(10.0)
    );
    assert_eq!(gauge(&text, "wbguard_privacy_numbers_free"), Some(9.0));
    assert_eq!(gauge(&text, "wbguard_privacy_numbers_waiting"), Some(0.0));

    let log = s.log_text();
    for secret in [NAME, PHONE, STREET] {
        assert!(!log.contains(secret), "the server log holds {secret}");
    }
}
