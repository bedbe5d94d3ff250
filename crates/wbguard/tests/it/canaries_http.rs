//! Canaries planted the way a carrier would (issue 21, item 3), over real HTTP: an auditor draws them from the
//! carrier's own waybills under numbers its allocator issued, the integration feeds them through its normal
//! ingestion and scans them like any parcel, and a courier who reads one sees an ordinary delivery — with a decoy
//! virtual number, never a pool number — while the read raises a critical `canary_read` alert.
use crate::common;

use common::*;
use serde_json::{json, Value};

#[test]
fn a_drawn_canary_is_ingested_scanned_and_read_like_any_parcel() {
    let dirs = Dirs::new("");
    let mut config = std::fs::read_to_string(&dirs.config).unwrap();
    config.push_str(
        "[privacy_numbers]\nenabled = true\nnumbers = [\"17100000100..17100000109\"]\n\
         decoys = [\"17199990000..17199990004\"]\n",
    );
    std::fs::write(&dirs.config, config).unwrap();
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    let courier = s.account(&admin, "C0420001", "courier", Some("O042"), None);
    // The carrier's parcels: to O042 from two merchants, and elsewhere.
    for i in 0..40 {
        let (merchant, origin, dest) = match i % 4 {
            0 | 1 => ("M001", "O001", "O042"),
            2 => ("M002", "O003", "O042"),
            _ => ("M003", "O003", "O007"),
        };
        let r = s.post(
            "/v1/waybills",
            Some(&integ),
            &waybill(
                &format!("YT20261201{i:05}"),
                merchant,
                origin,
                dest,
                "王芳",
                &format!("1380013{i:04}"),
                &format!("科技园{}号{}室", i + 1, 100 + i),
            ),
        );
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    }
    let scan = |no: &str| {
        for (kind, outlet, c) in [
            ("picked_up", "O001", None),
            ("in_transit", "O001", None),
            ("at_outlet", "O042", None),
            ("out_for_delivery", "O042", Some("C0420001")),
        ] {
            let r = s.post(
                &format!("/v1/waybills/{no}/events"),
                Some(&integ),
                &json!({"type": kind, "outlet": outlet, "courier": c}),
            );
            assert_eq!(r.status(), 200, "{}", r.text().unwrap());
        }
    };
    scan("YT2026120100000");

    // The allocator's next numbers, two of them for canaries.
    let draw = |token: &str, body: Value| {
        let r = s.post("/v1/forensics/canaries/draw", Some(token), &body);
        let st = r.status().as_u16();
        (st, r.json::<Value>().unwrap_or(Value::Null))
    };
    let numbers = ["YT2026120100040", "YT2026120100041"];
    assert_eq!(
        draw(&courier, json!({"account": "C0420001", "numbers": numbers})).0,
        403
    );
    assert_eq!(
        draw(
            &auditor,
            json!({"account": "C0420001", "numbers": ["YT2026120100003"]})
        )
        .0,
        409,
        "a number already on a parcel"
    );
    let (st, drawn) = draw(&auditor, json!({"account": "C0420001", "numbers": numbers}));
    assert_eq!(st, 201, "{drawn}");
    let canaries = drawn["waybills"].as_array().unwrap().clone();
    assert_eq!(canaries.len(), 2);
    for (c, no) in canaries.iter().zip(numbers) {
        assert_eq!(c["waybill_no"], no);
        assert_eq!(c["destination_outlet"], "O042", "in the courier's scope");
        assert!(["M001", "M002"].contains(&c["merchant"].as_str().unwrap()));
        assert_eq!(c["recipient"]["address"]["district"], "南山区");
        assert!(c["recipient"]["address"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("科技园"));
        assert_eq!(
            c["recipient"]["name"].as_str().unwrap().chars().next(),
            Some('王')
        );
    }
    // The integration feeds them like any order, and scans them like any parcel.
    for c in &canaries {
        let r = s.post("/v1/waybills", Some(&integ), c);
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
        scan(c["waybill_no"].as_str().unwrap());
    }
    let read = |no: &str| -> Value {
        s.get(
            &format!("/v1/waybills/{no}?purpose=delivery"),
            Some(&courier),
        )
        .json()
        .unwrap()
    };
    let real = read("YT2026120100000");
    assert!(real["privacy_number"]
        .as_str()
        .unwrap()
        .starts_with("171000001"));
    let canary = read(numbers[0]);
    assert_eq!(canary["view"], "full");
    let decoy = canary["privacy_number"].as_str().unwrap();
    assert!(decoy.starts_with("1719999000"), "{canary}");
    assert_eq!(canary["recipient"]["phone"], decoy);
    assert_eq!(
        read(numbers[0])["privacy_number"],
        decoy,
        "the same decoy each read"
    );
    // A second real parcel still takes a pool number: the canaries took none.
    scan("YT2026120100001");
    assert!(read("YT2026120100001")["privacy_number"]
        .as_str()
        .unwrap()
        .starts_with("171000001"));

    let alerts: Value = s
        .get("/v1/alerts?kind=canary_read", Some(&auditor))
        .json()
        .unwrap();
    let list = alerts.as_array().unwrap();
    assert!(
        list.iter()
            .any(|a| a["account"] == "C0420001" && a["severity"] == "critical"),
        "{alerts}"
    );
    let log: Value = s
        .get("/v1/audit/entries?action=canary_plant", Some(&auditor))
        .json()
        .unwrap();
    let text = log.to_string();
    assert!(text.contains("account=C0420001 count=2"), "{text}");
    assert!(
        !text.contains(numbers[0]),
        "the log does not say which numbers"
    );
}
