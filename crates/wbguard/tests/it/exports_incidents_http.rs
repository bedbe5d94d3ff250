//! Exports, breach incidents and canaries over HTTP, as a carrier's staff would use them: the export needs a
//! second account and is handed over once; the incident report names no person and the notification list is
//! customer service's alone; nothing personal reaches the server's log.
use crate::common;

use common::{error_code, waybill, Dirs, Server};
use serde_json::{json, Value};

const NAMES: [&str; 10] = [
    "王芳", "李娜", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周婷", "吴昊",
];

#[test]
fn an_export_an_incident_and_its_notification_list_over_http() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("ROOT1", "admin", None);
    let server = Server::start(&dirs, "debug");
    let integration = server.account(&admin, "I1", "integration", None, None);
    let merchant = server.account(&admin, "U1", "merchant", None, Some("M001"));
    let auditor = server.account(&admin, "A1", "auditor", None, None);
    let agent = server.account(&admin, "K1", "customer_service", None, None);

    let people: Vec<(String, String, String)> = (0..30)
        .map(|i| {
            (
                format!("{}{}", NAMES[i % 10], ["", "一", "二"][i / 10]),
                format!("139{:08}", 40_000_000 + i * 7_919),
                format!("幸福路{}号{}室", i + 1, 100 + i),
            )
        })
        .collect();
    let batch: Vec<Value> = people
        .iter()
        .enumerate()
        .map(|(i, (name, phone, detail))| {
            waybill(
                &format!("YT88{i:04}"),
                "M001",
                "O1",
                "O2",
                name,
                phone,
                detail,
            )
        })
        .collect();
    let r = server.post(
        "/v1/waybills",
        Some(&integration),
        &json!({ "waybills": batch }),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let now = wbg_core_now();

    // ── Export: ask, approve as a second account, download once. ──
    let ask =
        json!({"purpose": "customer_service", "from": now - 86_400_000, "to": now + 3_600_000});
    let r = server.post("/v1/exports", Some(&merchant), &ask);
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let export: Value = r.json().unwrap();
    let id = export["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (export["rows"].as_u64(), export["status"].as_str()),
        (Some(30), Some("requested"))
    );
    assert_eq!(
        error_code(server.post("/v1/exports", Some(&agent), &ask)),
        (403, "forbidden".into())
    );
    assert_eq!(
        error_code(server.post(
            "/v1/exports",
            Some(&merchant),
            &json!({"purpose": "customer_service"})
        )),
        (400, "invalid_json".into())
    );
    let file_path = format!("/v1/exports/{id}/file");
    let approve_path = format!("/v1/exports/{id}/approve");
    assert_eq!(
        error_code(server.get(&file_path, Some(&merchant))),
        (409, "conflict".into())
    );
    assert_eq!(
        error_code(server.post(&approve_path, Some(&merchant), &json!({}))),
        (403, "forbidden".into())
    );
    let r = server.post(&approve_path, Some(&auditor), &json!({}));
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    assert_eq!(
        error_code(server.get(&file_path, Some(&agent))),
        (403, "forbidden".into())
    );
    let r = server.get(&file_path, Some(&merchant));
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let file = r.text().unwrap();
    assert_eq!(
        file.lines().count(),
        1 + 30 + 1,
        "header, rows, a canary row"
    );
    assert!(people
        .iter()
        .all(|(_, phone, _)| file.contains(phone.as_str())));
    assert_eq!(
        error_code(server.get(&file_path, Some(&merchant))),
        (409, "conflict".into())
    );
    let status: Value = server
        .get(&format!("/v1/exports/{id}"), Some(&auditor))
        .json()
        .unwrap();
    assert_eq!(status["status"], "delivered");
    assert!(
        status.get("canaries").is_none(),
        "which rows are canaries is never told"
    );

    // ── Incident: the merchant as suspect; its export counts as its exposure, canaries do not. ──
    let ask = json!({"suspects": ["U1"], "from": now - 60_000, "to": now + 3_600_000});
    assert_eq!(
        error_code(server.post("/v1/forensics/incidents", Some(&agent), &ask)),
        (403, "forbidden".into())
    );
    let r = server.post("/v1/forensics/incidents", Some(&auditor), &ask);
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let text = r.text().unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["waybills"], 30, "{report:#}");
    assert_eq!(report["customers"], 30);
    assert_eq!(report["fields"]["recipient.phone"], 30);
    let incident = report["incident"].as_str().unwrap().to_owned();
    let md = server
        .get(
            &format!("/v1/forensics/incidents/{incident}?format=markdown"),
            Some(&auditor),
        )
        .text()
        .unwrap();
    assert!(
        md.starts_with(&format!("# Breach-impact report {incident}")),
        "{md}"
    );
    let csv = server
        .get(
            &format!("/v1/forensics/incidents/{incident}?format=csv"),
            Some(&auditor),
        )
        .text()
        .unwrap();
    assert_eq!(csv.lines().count(), 31);
    assert_eq!(
        error_code(server.get(
            &format!("/v1/forensics/incidents/{incident}?format=pdf"),
            Some(&auditor)
        )),
        (400, "invalid_request".into())
    );
    for (name, phone, detail) in &people {
        for t in [&text, &md, &csv] {
            assert!(
                !t.contains(phone.as_str())
                    && !t.contains(name.as_str())
                    && !t.contains(detail.as_str())
            );
        }
    }

    // ── The people to notify: customer service only. ──
    let notify = format!("/v1/forensics/incidents/{incident}/notifications");
    assert_eq!(
        error_code(server.get(&notify, Some(&auditor))),
        (403, "forbidden".into())
    );
    assert_eq!(
        error_code(server.get(&notify, Some(&merchant))),
        (403, "forbidden".into())
    );
    let list: Value = server.get(&notify, Some(&agent)).json().unwrap();
    let notices = list["notices"].as_array().unwrap();
    let recipients: Vec<&Value> = notices
        .iter()
        .filter(|n| {
            n["parties"]
                .as_array()
                .unwrap()
                .contains(&json!("recipient"))
        })
        .collect();
    assert_eq!(recipients.len(), 30);
    assert!(recipients.iter().all(|n| people
        .iter()
        .any(|(name, phone, _)| n["phone"] == phone.as_str() && n["name"] == name.as_str())));
    // An export holds the recipients only: its sender is not among the people to tell.
    assert_eq!(recipients.len(), notices.len(), "{list}");
    assert_eq!(
        error_code(server.get("/v1/forensics/incidents/INC-zz/notifications", Some(&agent))),
        (400, "invalid_request".into())
    );

    // The list is personal data in clear, so the risk engine meters it like reads: an agent pulling it over and
    // over (once seen 150 times in 0.3 s, 1,650 names and phones, no alert) is stopped long before that, and
    // the engine says so.
    let puller = server.account(&admin, "K2", "customer_service", None, None);
    let mut lists = 0;
    let stopped = loop {
        let r = server.get(&notify, Some(&puller));
        if r.status() != 200 {
            break error_code(r);
        }
        lists += 1;
        assert!(lists < 150, "150 lists and still served");
    };
    assert!(
        matches!(stopped.1.as_str(), "rate_limited" | "account_suspended"),
        "{stopped:?} after {lists} lists"
    );
    // The hard rate limit's burst: the same 30 people each time, never more than the incident holds.
    assert!(
        lists < 50,
        "{lists} lists of 30 notices before the engine stopped it"
    );
    let (status, alerts) = {
        let r = server.get("/v1/alerts?account=K2", Some(&auditor));
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    assert_eq!(status, 200);
    assert!(!alerts.as_array().unwrap().is_empty(), "{alerts}");

    // ── Canaries over HTTP: auditors plant them. ──
    let r = server.post(
        "/v1/forensics/canaries",
        Some(&auditor),
        &json!({"account": "U1", "count": 2}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    assert_eq!(
        r.json::<Value>().unwrap()["waybills"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // With numbers the allocator issued in reserve, a quick plant takes them (first from the reserve).
    let reserved = ["YT2026110400001", "YT2026110400002", "YT2026110400003"];
    let reserve = |token: &str, numbers: &[&str]| {
        server.post(
            "/v1/forensics/canaries/reserve",
            Some(token),
            &json!({ "numbers": numbers }),
        )
    };
    assert_eq!(reserve(&agent, &reserved).status(), 403);
    let r = reserve(&auditor, &reserved);
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    assert_eq!(r.json::<Value>().unwrap()["reserved"], 3);
    assert_eq!(error_code(reserve(&auditor, &reserved[..1])).0, 409);
    assert_eq!(error_code(reserve(&auditor, &["not a number"])).0, 400);
    let r = server.post(
        "/v1/forensics/canaries",
        Some(&auditor),
        &json!({"account": "U1", "count": 2}),
    );
    assert_eq!(r.status(), 201);
    let planted = r.json::<Value>().unwrap()["waybills"].clone();
    assert!(
        planted
            .as_array()
            .unwrap()
            .iter()
            .all(|n| reserved.contains(&n.as_str().unwrap())),
        "{planted}"
    );
    let (_, left) = {
        let r = server.get("/v1/forensics/canaries/reserve", Some(&auditor));
        (r.status(), r.json::<Value>().unwrap())
    };
    assert_eq!(left["reserved"], 1);
    assert_eq!(
        error_code(server.post(
            "/v1/forensics/canaries",
            Some(&auditor),
            &json!({"account": "U1", "count": 0})
        )),
        (400, "invalid_request".into())
    );
    assert_eq!(
        error_code(server.post(
            "/v1/forensics/canaries",
            Some(&agent),
            &json!({"account": "U1"})
        )),
        (403, "forbidden".into())
    );

    // ── The same from the command line: the report as Markdown, the list for the agent whose token is given. ──
    let out = dirs.cli(&[
        "breach",
        "report",
        "--suspect",
        "U1",
        "--from",
        "now-1h",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli_report["customers"], 30);
    let cli_incident = cli_report["incident"].as_str().unwrap();
    let token_file = dirs.root.path().join("agent.token");
    std::fs::write(&token_file, format!("{agent}\n")).unwrap();
    let out = dirs.cli(&[
        "breach",
        "notify",
        "--incident",
        cli_incident,
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 31);
    let out = dirs.cli(&["breach", "report", "--suspect", "U1", "--from", "yesterday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a time"));

    // Nothing personal reached the log, at debug level.
    let log = server.log_text();
    for (name, phone, detail) in &people {
        assert!(
            !log.contains(phone.as_str())
                && !log.contains(name.as_str())
                && !log.contains(detail.as_str())
        );
    }
}

fn wbg_core_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
