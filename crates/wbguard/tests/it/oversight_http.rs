//! The auditors' and analysts' API over real HTTP, as the risk-control team works it: an alert raised by a read
//! reaches an open live queue within a second, carries the audit entries behind it, is triaged with reason codes
//! (every change audited, compare-and-set), the audit log is searched a page at a time, accounts, exports and
//! incidents are listed, and the terminal's `wbguard alerts` shows the same queue.
use crate::common;

use common::{error_code, waybill, Dirs, Server};
use serde_json::{json, Value};
use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An open `/v1/alerts/stream`: each event as `(event, data)`, read on a thread of its own.
fn open_stream(base: &str, token: &str) -> mpsc::Receiver<(String, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap();
    let r = client
        .get(format!("{base}/v1/alerts/stream"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut event, mut data) = (String::new(), String::new());
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            } else if line.is_empty()
                && !event.is_empty()
                && tx
                    .send((std::mem::take(&mut event), std::mem::take(&mut data)))
                    .is_err()
            {
                return;
            }
        }
    });
    rx
}

fn json_of(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn analysts_work_alerts_search_the_log_and_list_what_they_oversee() {
    // Three full reads, then the hard ceiling refuses and alerts (and does not refill during the test).
    let dirs = Dirs::new("[risk.rate_limit]\nreads_per_minute = 1\nburst = 3");
    let admin = dirs.create_account("ROOT1", "admin", None);
    let s = Server::start(&dirs, "debug");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    let second = s.account(&admin, "AUD2", "auditor", None, None);
    let watcher = s.account(&admin, "AUD3", "auditor", None, None);
    let courier = s.account(&admin, "C2a", "courier", Some("O2"), None);
    let merchant = s.account(&admin, "U1", "merchant", None, Some("M001"));

    for no in ["W1", "W2"] {
        let r = s.post(
            "/v1/waybills",
            Some(&integ),
            &waybill(no, "M001", "O1", "O2", "王芳", "13800135678", "科技园1号"),
        );
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    }
    let t = now_ms();
    for (i, (kind, outlet, c)) in [
        ("picked_up", "O1", None),
        ("in_transit", "O1", None),
        ("at_outlet", "O2", None),
        ("out_for_delivery", "O2", Some("C2a")),
    ]
    .into_iter()
    .enumerate()
    {
        let r = s.post(
            "/v1/waybills/W1/events",
            Some(&integ),
            &json!({"type": kind, "outlet": outlet, "courier": c, "at": t + i as i64}),
        );
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    }

    // ── A live queue is open before the alert is raised. ──
    let live = open_stream(&s.base, &auditor);
    let watching = open_stream(&s.base, &watcher);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        error_code(s.get("/v1/alerts/stream", Some(&courier))),
        (403, "forbidden".into())
    );

    // The courier reads its parcel until the ceiling refuses; the refusal raises the alert.
    let mut reads = 0;
    let raised_at = loop {
        let started = Instant::now();
        let r = s.get("/v1/waybills/W1?purpose=delivery", Some(&courier));
        reads += 1;
        if r.status() == 429 {
            break started;
        }
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
        assert!(reads < 10, "the ceiling never refused");
    };
    let (event, data) = live
        .recv_timeout(Duration::from_secs(5))
        .expect("the alert reaches the open queue");
    let latency = raised_at.elapsed();
    assert_eq!(event, "alert");
    assert!(
        latency < Duration::from_secs(1),
        "the alert took {latency:?} to reach the queue"
    );
    let streamed: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(streamed["account"], "C2a");
    assert_eq!(streamed["kind"], "rate_limit");
    assert_eq!(streamed["state"], "new");
    let id = streamed["id"].as_i64().unwrap();
    assert_eq!(
        watching.recv_timeout(Duration::from_secs(5)).unwrap().0,
        "alert"
    );

    // ── The alert carries the audit entries behind it: the refused read first, then the courier's reads. ──
    let seqs: Vec<u64> = streamed["audit_seqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    // Here the window (a ceiling's alert looks 10 minutes back) holds the courier's whole history: its
    // enrolment, its refused look at the queue, and every read.
    let mut views = 0;
    for (i, seq) in seqs.iter().enumerate() {
        let e: Value = s
            .get(&format!("/v1/audit/entries/{seq}"), Some(&auditor))
            .json()
            .unwrap();
        assert_eq!(e["account"], "C2a", "{e}");
        if e["action"] == "view" {
            views += 1;
            assert_eq!(e["waybill"], "W1");
            assert_eq!(e["decision"], if i == 0 { "deny" } else { "allow" }, "{e}");
        } else {
            assert!(i > 0, "the refused read comes first");
        }
    }
    assert_eq!(views, reads, "{streamed}");

    // ── The explanation: the entitlement beside every read, with the facts that decide scope. ──
    let (st, why) = json_of(s.get(&format!("/v1/alerts/{id}/explanation"), Some(&auditor)));
    assert_eq!(st, 200, "{why}");
    assert_eq!(why["alert"]["id"].as_i64(), Some(id));
    assert_eq!(why["entitlement"]["account"]["outlet"], "O2");
    let delivery = why["entitlement"]["sees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == "delivery")
        .unwrap();
    assert_eq!(delivery["view"], "full", "{delivery}");
    let rows = why["reads"].as_array().unwrap();
    assert_eq!(rows.len(), reads, "{why}");
    for r in rows {
        assert_eq!(
            (
                r["waybill"].as_str(),
                r["origin_outlet"].as_str(),
                r["destination_outlet"].as_str()
            ),
            (Some("W1"), Some("O1"), Some("O2"))
        );
        assert_eq!(
            (r["at_own_outlet"].as_bool(), r["assigned_to_it"].as_bool()),
            (Some(true), Some(true))
        );
        assert_eq!(r["status"], "out_for_delivery");
    }
    assert_eq!(rows[0]["decision"], "deny");
    assert_eq!(
        (
            why["summary"]["reads"].as_u64(),
            why["summary"]["refused"].as_u64(),
            why["summary"]["outside_outlet"].as_u64()
        ),
        (Some(reads as u64), Some(1), Some(0))
    );
    let text = why.to_string();
    for personal in ["王芳", "13800135678", "科技园"] {
        assert!(!text.contains(personal), "{personal} in an explanation");
    }
    assert_eq!(
        s.get("/v1/alerts/99999/explanation", Some(&auditor))
            .status(),
        404
    );

    // ── Audit search: newest first, a page at a time, every filter. ──
    let search =
        |q: &str, token: &str| json_of(s.get(&format!("/v1/audit/entries?{q}"), Some(token)));
    let mut cursor: Option<String> = None;
    let mut paged = Vec::new();
    loop {
        let q = match &cursor {
            Some(c) => format!("account=C2a&limit=2&cursor={c}"),
            None => "account=C2a&limit=2".into(),
        };
        let (st, page) = search(&q, &auditor);
        assert_eq!(st, 200, "{page}");
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 2);
        paged.extend(entries.iter().map(|e| e["seq"].as_u64().unwrap()));
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        paged, seqs,
        "the account's whole history, newest first, no gaps or repeats"
    );
    let (_, denied) = search("waybill=W1&decision=deny", &auditor);
    assert_eq!(denied["entries"].as_array().unwrap().len(), 1);
    assert_eq!(denied["entries"][0]["seq"].as_u64(), Some(seqs[0]));
    let (_, ingests) = search("action=ingest&account=I1", &auditor);
    assert_eq!(ingests["entries"].as_array().unwrap().len(), 2);
    let (_, none) = search(&format!("account=C2a&from={}", now_ms() + 60_000), &auditor);
    assert!(none["entries"].as_array().unwrap().is_empty());
    assert!(none.get("next").is_none());
    // Times as people write them: ISO 8601 with an offset, a relative time, the same answer as ms.
    let (_, by_ms) = search(&format!("account=C2a&from={}", t - 60_000), &auditor);
    for given in ["now-1h", "2020-01-01T00:00:00%2B08:00", "2020-01-01"] {
        let (st, page) = search(&format!("account=C2a&from={given}"), &auditor);
        assert_eq!(st, 200, "{given}: {page}");
        assert_eq!(page["entries"], by_ms["entries"], "{given}");
    }
    let (st, _) = json_of(s.get("/v1/alerts?since=now-1d", Some(&auditor)));
    assert_eq!(st, 200);
    assert_eq!(
        s.get("/v1/alerts?since=yesterday", Some(&auditor)).status(),
        400
    );
    for bad in [
        "cursor=nope",
        "limit=0",
        "limit=501",
        "decision=maybe",
        "action=DROP%20TABLE",
        "from=9&to=1",
        "from=yesterday",
        "to=2026-13-01",
        "colour=red",
    ] {
        let (st, body) = search(bad, &auditor);
        assert_eq!(st, 400, "{bad}: {body}");
    }
    assert_eq!(search("account=C2a", &courier).0, 403);

    // ── An evidence pack: the alert's entries with proofs to a checkpoint signed now, checked offline. ──
    let r = s.get(&format!("/v1/alerts/{id}/evidence-pack"), Some(&auditor));
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(&format!("alert-{id}-evidence.json")));
    let pack: Value = r.json().unwrap();
    assert_eq!(pack["format"], "wbguard-evidence-pack/1");
    assert_eq!(pack["created_by"], "AUD1");
    let packed: Vec<u64> = pack["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(packed, seqs);
    let pack_file = dirs.root.path().join("pack.json");
    let vkey_file = dirs.root.path().join("log.vkey");
    std::fs::write(&pack_file, pack.to_string()).unwrap();
    std::fs::write(&vkey_file, s.get("/v1/audit/key", None).text().unwrap()).unwrap();
    let verify = |pack: &std::path::Path, vkey: &std::path::Path| {
        let out = std::process::Command::new(common::BIN)
            .args([
                "audit",
                "verify-pack",
                common::path_str(pack),
                "--vkey",
                common::path_str(vkey),
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, said) = verify(&pack_file, &vkey_file);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!("{} entries verified", seqs.len())),
        "{said}"
    );
    // One entry's bytes changed (the refusal turned into a grant): that entry is named, the run fails.
    let mut forged = pack.clone();
    let original = forged["entries"][0]["entry"].as_str().unwrap().to_owned();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = String::from_utf8(b64.decode(&original).unwrap()).unwrap();
    assert!(text.contains("\"deny\""), "{text}");
    forged["entries"][0]["entry"] = json!(b64.encode(text.replace("\"deny\"", "\"allow\"")));
    std::fs::write(&pack_file, forged.to_string()).unwrap();
    let (code, said) = verify(&pack_file, &vkey_file);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!("entry {}: FAILED", seqs[0])),
        "{said}"
    );
    // A pack checked against another log's key proves nothing.
    std::fs::write(&pack_file, pack.to_string()).unwrap();
    let other = wbg_audit::note::NoteSigner::generate("other/log").unwrap();
    std::fs::write(&vkey_file, other.verifier().to_text()).unwrap();
    assert_eq!(verify(&pack_file, &vkey_file).0, Some(1));
    // Only those who read the log get one; the request is audited.
    assert_eq!(
        s.get(&format!("/v1/alerts/{id}/evidence-pack"), Some(&courier))
            .status(),
        403
    );
    assert_eq!(
        search("account=AUD1&action=evidence_pack", &auditor).1["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        search("account=C2a", &admin).0,
        200,
        "admins read the audit log too"
    );
    let everything = s
        .get("/v1/audit/entries?limit=500", Some(&auditor))
        .text()
        .unwrap();
    for personal in ["王芳", "13800135678", "科技园"] {
        assert!(
            !everything.contains(personal),
            "{personal} in an audit search"
        );
    }

    // ── Triage: reason codes by state, assignees who may investigate, compare-and-set, sealed notes. ──
    let triage = |token: &str, body: Value| {
        json_of(s.post(&format!("/v1/alerts/{id}/triage"), Some(token), &body))
    };
    let note = "<script>alert(1)</script> outlet O2 says the courier was re-sorting";
    let (st, detail) = triage(
        &auditor,
        json!({"state": "investigating", "reason": "needs_investigation", "assignee": "AUD2", "note": note, "revision": 0}),
    );
    assert_eq!(st, 200, "{detail}");
    assert_eq!(
        (
            detail["state"].as_str(),
            detail["assignee"].as_str(),
            detail["revision"].as_u64()
        ),
        (Some("investigating"), Some("AUD2"), Some(1))
    );
    assert_eq!(
        detail["history"][0]["note"], note,
        "the note opens for its readers"
    );
    assert_eq!(detail["history"][0]["by"], "AUD1");
    let triage_seq = detail["history"][0]["audit_seq"].as_u64().unwrap();
    let entry: Value = s
        .get(&format!("/v1/audit/entries/{triage_seq}"), Some(&auditor))
        .json()
        .unwrap();
    assert_eq!(entry["action"], "alert_triage");
    let recorded = entry["detail"].as_str().unwrap();
    assert!(
        recorded.contains(&format!("alert={id}"))
            && recorded.contains("reason=needs_investigation")
    );
    assert!(
        !recorded.contains("script") && !recorded.contains("re-sorting"),
        "{recorded}"
    );
    let raw = std::fs::read(dirs.data.join("wbguard.db")).unwrap();
    assert!(
        !raw.windows(b"re-sorting".len()).any(|w| w == b"re-sorting"),
        "a note is sealed in the store"
    );
    for (body, status) in [
        // A change made against a revision someone else moved on from.
        (
            json!({"state": "confirmed", "reason": "confirmed_leak", "revision": 0}),
            409,
        ),
        // A reason the target state does not take.
        (
            json!({"state": "false_positive", "reason": "confirmed_leak"}),
            400,
        ),
        (json!({"state": "closed", "reason": "reopened"}), 400),
        // An assignee that may not investigate, or does not exist.
        (json!({"reason": "reassigned", "assignee": "C2a"}), 400),
        (json!({"reason": "reassigned", "assignee": "NOBODY"}), 400),
        (
            json!({"reason": "note", "note": "call her on 13800135678"}),
            400,
        ),
        (json!({"reason": "note", "colour": "red"}), 400),
    ] {
        let (st, v) = triage(&auditor, body.clone());
        assert_eq!(st, status, "{body}: {v}");
    }
    assert_eq!(
        triage(
            &admin,
            json!({"state": "confirmed", "reason": "confirmed_leak"})
        )
        .0,
        403,
        "an admin, who creates accounts, does not decide what an alert about one was"
    );
    assert_eq!(
        error_code(s.post(
            "/v1/alerts/99999/triage",
            Some(&auditor),
            &json!({"reason": "note"})
        )),
        (404, "not_found".into())
    );
    assert_eq!(s.get("/v1/alerts/abc", Some(&auditor)).status(), 400);

    // ── Accounts for auditors: standing and last activity, never a token. ──
    let (st, list) = json_of(s.get("/v1/accounts", Some(&auditor)));
    assert_eq!(st, 200);
    let c2a = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "C2a")
        .unwrap();
    assert!(c2a["last_active"].as_i64().unwrap() >= t, "{c2a}");
    let (st, one) = json_of(s.get("/v1/accounts/C2a", Some(&auditor)));
    assert_eq!(st, 200, "{one}");
    assert_eq!(
        (
            one["role"].as_str(),
            one["outlet"].as_str(),
            one["status"].as_str()
        ),
        (Some("courier"), Some("O2"), Some("active"))
    );
    assert_eq!(one["tokens"], 1);
    assert_eq!(one["open_alerts"][0]["id"].as_i64(), Some(id));
    let text = one.to_string();
    assert!(!text.contains(&courier), "a token in the account detail");
    assert_eq!(s.get("/v1/accounts/NOBODY", Some(&auditor)).status(), 404);
    assert_eq!(s.get("/v1/accounts/C2a", Some(&courier)).status(), 403);
    assert_eq!(s.get("/v1/accounts", Some(&merchant)).status(), 403);

    // Confirmed, it is no longer open.
    let (st, detail) = triage(
        &second,
        json!({"state": "confirmed", "reason": "confirmed_leak", "revision": 1}),
    );
    assert_eq!(st, 200, "{detail}");
    assert_eq!(detail["history"].as_array().unwrap().len(), 2);
    let (_, one) = json_of(s.get("/v1/accounts/C2a", Some(&auditor)));
    assert!(
        one["open_alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"].as_i64() != Some(id)),
        "{one}"
    );
    let (_, confirmed) = json_of(s.get("/v1/alerts?state=confirmed", Some(&auditor)));
    assert_eq!(confirmed[0]["id"].as_i64(), Some(id));
    assert_eq!(
        s.get("/v1/alerts?state=closed", Some(&auditor)).status(),
        400
    );
    let (_, triaged) = search("action=alert_triage&decision=allow", &auditor);
    assert_eq!(triaged["entries"].as_array().unwrap().len(), 2);
    // The refused changes are in the log too.
    let (_, refused) = search("action=alert_triage&decision=deny", &auditor);
    assert!(
        refused["entries"].as_array().unwrap().len() >= 6,
        "{refused}"
    );

    // ── Exports and incidents, listed. ──
    let r = s.post(
        "/v1/exports",
        Some(&merchant),
        &json!({"purpose": "customer_service", "from": t - 86_400_000, "to": t + 3_600_000}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let export: Value = r.json().unwrap();
    let (st, queue) = json_of(s.get("/v1/exports?status=requested", Some(&auditor)));
    assert_eq!(st, 200);
    assert_eq!(queue[0]["id"], export["id"]);
    let (_, approved) = json_of(s.get("/v1/exports?status=approved", Some(&auditor)));
    assert!(approved.as_array().unwrap().is_empty());
    assert_eq!(
        s.get("/v1/exports?status=bogus", Some(&auditor)).status(),
        400
    );
    assert_eq!(s.get("/v1/exports", Some(&courier)).status(), 403);
    let (st, incidents) = json_of(s.get("/v1/forensics/incidents", Some(&auditor)));
    assert_eq!((st, incidents.as_array().unwrap().len()), (200, 0));
    let r = s.post(
        "/v1/forensics/incidents",
        Some(&auditor),
        &json!({"suspects": ["C2a"], "from": "now-1h", "to": "now"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let (_, incidents) = json_of(s.get("/v1/forensics/incidents", Some(&auditor)));
    assert_eq!(incidents[0]["suspects"][0], "C2a");
    assert_eq!(incidents[0]["waybills"], 1);
    assert!(
        incidents[0].get("affected").is_none(),
        "a list holds summaries"
    );
    assert_eq!(s.get("/v1/forensics/incidents", Some(&admin)).status(), 403);
    // The people to tell: the recipient the courier read, and the sender whose name and phone its full views
    // showed — one notice each. Its reads were its own delivery (its work), so the default list is empty and
    // `scope=all` names everyone the incident counts.
    let agent = s.account(&admin, "K1", "customer_service", None, None);
    let inc0 = incidents[0]["incident"].as_str().unwrap();
    let (st, none) = json_of(s.get(
        &format!("/v1/forensics/incidents/{inc0}/notifications"),
        Some(&agent),
    ));
    assert_eq!(st, 200, "{none}");
    assert_eq!(none["notices"], json!([]), "{none}");
    let (st, list) = json_of(s.get(
        &format!("/v1/forensics/incidents/{inc0}/notifications?scope=all"),
        Some(&agent),
    ));
    assert_eq!(st, 200, "{list}");
    let notices = list["notices"].as_array().unwrap();
    let by_phone = |p: &str| notices.iter().find(|n| n["phone"] == p).cloned();
    let recipient = by_phone("13800135678").expect("the recipient is told");
    assert_eq!(recipient["parties"], json!(["recipient"]));
    let sender = by_phone("13911112222").expect("the sender is told");
    assert_eq!(sender["parties"], json!(["sender"]));
    assert_eq!(sender["waybills"], json!(["W1"]));
    assert!(sender["fields"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f.as_str().unwrap().starts_with("sender.")));
    assert_eq!(notices.len(), 2, "{list}");

    // An incident is closed and reopened with reason codes, each change audited, the note sealed.
    let inc = incidents[0]["incident"].as_str().unwrap().to_owned();
    assert_eq!(incidents[0]["state"], "open");
    let change = |token: &str, verb: &str, body: Value| {
        json_of(s.post(
            &format!("/v1/forensics/incidents/{inc}/{verb}"),
            Some(token),
            &body,
        ))
    };
    for body in [
        json!({"reason": "new_evidence"}),
        json!({"reason": "notified", "note": "ring 13800135678 back"}),
        json!({"reason": "notified", "colour": "red"}),
    ] {
        assert_eq!(change(&auditor, "close", body.clone()).0, 400, "{body}");
    }
    assert_eq!(
        change(&admin, "close", json!({"reason": "notified"})).0,
        403
    );
    let (st, closed) = change(
        &auditor,
        "close",
        json!({"reason": "notified", "note": "the outlet manager told all six customers"}),
    );
    assert_eq!(st, 200, "{closed}");
    assert_eq!(closed["state"], "closed");
    assert_eq!(
        closed["changes"][0]["note"],
        "the outlet manager told all six customers"
    );
    assert_eq!(closed["changes"][0]["by"], "AUD1");
    assert_eq!(
        change(&auditor, "close", json!({"reason": "duplicate"})).0,
        409
    );
    let (_, listed) = json_of(s.get("/v1/forensics/incidents", Some(&auditor)));
    assert_eq!(listed[0]["state"], "closed");
    let (st, reopened) = change(&second, "reopen", json!({"reason": "new_evidence"}));
    assert_eq!((st, reopened["state"].as_str()), (200, Some("open")));
    assert_eq!(reopened["changes"].as_array().unwrap().len(), 2);
    let (_, closes) = search("action=incident_close&decision=allow", &auditor);
    let recorded = closes["entries"][0]["detail"].as_str().unwrap();
    assert!(recorded.contains(&format!("incident={inc}")) && recorded.contains("reason=notified"));
    assert!(!recorded.contains("six customers"), "{recorded}");
    assert_eq!(
        json_of(s.post(
            "/v1/forensics/incidents/INC-000000000000/close",
            Some(&auditor),
            &json!({"reason": "notified"})
        ))
        .0,
        404
    );
    // The same from the terminal, as the local operator.
    let out = dirs.cli(&[
        "breach",
        "close",
        "--incident",
        &inc,
        "--reason",
        "referred_to_police",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = dirs.cli(&["breach", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&inc) && text.contains("\tclosed\t") && text.contains("C2a"),
        "{text}"
    );
    // A window wider than [incidents] max_window_days (92 by default) is refused.
    let r = s.post(
        "/v1/forensics/incidents",
        Some(&auditor),
        &json!({"suspects": ["C2a"], "from": t - 100 * 86_400_000, "to": t}),
    );
    assert_eq!(error_code(r), (400, "invalid_request".into()));

    // ── The terminal: the node's queue with an auditor's token, and the local store's. ──
    let out = std::process::Command::new(common::BIN)
        .args(["alerts", "--url", &s.base, "--json"])
        .env("WBGUARD_TOKEN", &auditor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<i64> = listed.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    let ours = listed
        .iter()
        .find(|a| a["id"].as_i64() == Some(id))
        .unwrap();
    assert_eq!(ours["state"], "confirmed");
    let out = dirs.cli(&["alerts", "--state", "confirmed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("#{id}")) && text.contains("rate_limit") && text.contains("C2a"),
        "{text}"
    );

    // `--follow` prints each new alert as it is raised (here: a credential asked for a new courier).
    let mut follow = std::process::Command::new(common::BIN)
        .args([
            "alerts", "--url", &s.base, "--json", "--follow", "--last", "1",
        ])
        .env("WBGUARD_TOKEN", &auditor)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, followed) = mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let shown: Value =
        serde_json::from_str(&followed.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    let (_, newest) = json_of(s.get("/v1/alerts?limit=1", Some(&auditor)));
    assert_eq!(shown["id"], newest[0]["id"], "the newest first");
    std::thread::sleep(Duration::from_millis(500));
    s.account(&admin, "C2b", "courier", Some("O2"), None);
    let new: Value =
        serde_json::from_str(&followed.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
    assert_eq!(new["account"], "C2b", "{new}");
    let _ = follow.kill();
    let _ = follow.wait();

    // ── A stream ends when its account is suspended. ──
    let r = s.post("/v1/accounts/AUD3/suspend", Some(&admin), &json!({}));
    assert_eq!(r.status(), 200);
    let mut ended = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match watching.recv_timeout(Duration::from_millis(200)) {
            Ok((event, _)) if event == "end" => {
                ended = true;
                break;
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    assert!(ended, "the suspended auditor's stream ends");

    // Every new route is in the API's description.
    let api: Value = s.get("/openapi.json", None).json().unwrap();
    for path in [
        "/v1/audit/entries",
        "/v1/alerts/{id}",
        "/v1/alerts/{id}/triage",
        "/v1/alerts/{id}/explanation",
        "/v1/alerts/stream",
        "/v1/accounts/{id}",
        "/v1/forensics/incidents/{id}/close",
        "/v1/forensics/incidents/{id}/reopen",
    ] {
        assert!(
            api["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(api["paths"]["/v1/exports"].get("get").is_some());
    assert!(api["paths"]["/v1/forensics/incidents"].get("get").is_some());
    drop(live);
    dirs.assert_audit_intact();
}

/// `count` couriers of `outlet` (ids `{prefix}1…`), each with a parcel of its own out for delivery.
fn couriers(
    s: &Server,
    admin: &str,
    integ: &str,
    outlet: &str,
    prefix: &str,
    count: usize,
) -> Vec<(String, String)> {
    (1..=count)
        .map(|i| {
            let id = format!("{prefix}{i}");
            let token = s.account(admin, &id, "courier", Some(outlet), None);
            let no = format!("W{id}");
            let r = s.post(
                "/v1/waybills",
                Some(integ),
                &waybill(
                    &no,
                    "M001",
                    "O1",
                    outlet,
                    "王芳",
                    "13800135678",
                    "科技园1号",
                ),
            );
            assert_eq!(r.status(), 201, "{}", r.text().unwrap());
            for (kind, at, c) in [
                ("picked_up", "O1", None),
                ("at_outlet", outlet, None),
                ("out_for_delivery", outlet, Some(id.as_str())),
            ] {
                let r = s.post(
                    &format!("/v1/waybills/{no}/events"),
                    Some(integ),
                    &json!({"type": kind, "outlet": at, "courier": c}),
                );
                assert_eq!(r.status(), 200, "{}", r.text().unwrap());
            }
            (token, no)
        })
        .collect()
}

/// Reads `no` until the ceiling refuses; returns the rate alert it raised.
fn raise(s: &Server, auditor: &str, (token, no): &(String, String), account: &str) -> i64 {
    for _ in 0..10 {
        let r = s.get(&format!("/v1/waybills/{no}?purpose=delivery"), Some(token));
        if r.status() == 429 {
            let all: Vec<Value> = s
                .get(
                    &format!("/v1/alerts?account={account}&kind=rate_limit&suppressed=include"),
                    Some(auditor),
                )
                .json()
                .unwrap();
            return all[0]["id"].as_i64().unwrap();
        }
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    }
    panic!("the ceiling never refused");
}

#[test]
fn suppressions_are_backtested_before_they_hide_anything_and_never_hide_from_the_engine() {
    let dirs = Dirs::new("[risk.rate_limit]\nreads_per_minute = 1\nburst = 2");
    let admin = dirs.create_account("ROOT1", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    let o2 = couriers(&s, &admin, &integ, "O2", "C2", 3);
    let o3 = couriers(&s, &admin, &integ, "O3", "C3", 2);
    let triage = |id: i64, state: &str, reason: &str| {
        let r = s.post(
            &format!("/v1/alerts/{id}/triage"),
            Some(&auditor),
            &json!({"state": state, "reason": reason}),
        );
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    };
    // Last month's history at O2: one alert confirmed a leak, one was legitimate work.
    let leak = raise(&s, &auditor, &o2[0], "C21");
    triage(leak, "confirmed", "confirmed_leak");
    let noise = raise(&s, &auditor, &o2[1], "C22");
    triage(noise, "false_positive", "legitimate_work");
    let elsewhere = raise(&s, &auditor, &o3[0], "C31");

    let ask = |path: &str, body: Value| {
        let r = s.post(path, Some(&auditor), &body);
        let st = r.status().as_u16();
        (st, r.json::<Value>().unwrap_or(Value::Null))
    };
    let outlet = json!({"detector": "rate_limit", "scope": "outlet", "value": "O2"});
    let (st, bt) = ask("/v1/suppressions/backtest", outlet.clone());
    assert_eq!(st, 200, "{bt}");
    assert_eq!(
        (
            bt["alerts"].as_u64(),
            bt["confirmed"].as_u64(),
            bt["false_positive"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{bt}"
    );
    assert_eq!(bt["sample"], json!([noise, leak]));
    // Applying it blind to the confirmed leak it would have hidden is refused, and the refusal audited.
    let mut apply = outlet.clone();
    apply["reason"] = json!("known_noise");
    let (st, body) = ask("/v1/suppressions", apply.clone());
    assert_eq!(st, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2 alerts, 1 of them later confirmed"));
    for bad in [
        json!({"detector": "rate_limit", "scope": "outlet", "value": "O2", "reason": "because"}),
        json!({"detector": "rate_limit", "scope": "outlet", "value": "O2"}),
        json!({"detector": "rate_limit", "scope": "role", "value": "pilot", "reason": "known_noise"}),
        json!({"detector": "rate limit", "scope": "outlet", "value": "O2", "reason": "known_noise"}),
        json!({"detector": "rate_limit", "scope": "outlet", "value": "O2", "reason": "known_noise", "days": 91}),
        json!({"detector": "rate_limit", "scope": "desk", "value": "O2", "reason": "known_noise"}),
    ] {
        assert_eq!(ask("/v1/suppressions", bad.clone()).0, 400, "{bad}");
    }
    apply["accept_confirmed"] = json!(true);
    let (st, sup) = ask("/v1/suppressions", apply);
    assert_eq!(st, 201, "{sup}");
    let id = sup["id"].as_str().unwrap().to_owned();
    assert_eq!(sup["backtest"]["alerts"], 2);

    // It hides only what is raised from now on, and only in its scope; the engine still refuses.
    let hidden = raise(&s, &auditor, &o2[2], "C23");
    let shown = raise(&s, &auditor, &o3[1], "C32");
    let ids = |q: &str| -> Vec<i64> {
        let list: Vec<Value> = s
            .get(&format!("/v1/alerts?kind=rate_limit{q}"), Some(&auditor))
            .json()
            .unwrap();
        list.iter().map(|a| a["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(ids(""), vec![shown, elsewhere, noise, leak]);
    assert_eq!(ids("&suppressed=only"), vec![hidden]);
    assert_eq!(ids("&suppressed=include").len(), 5);
    assert_eq!(
        s.get("/v1/alerts?suppressed=maybe", Some(&auditor))
            .status(),
        400
    );
    // Lifting ends it (a second lift is a conflict); what it hid stays findable with suppressed=only.
    let (st, lifted) = ask(&format!("/v1/suppressions/{id}/lift"), json!({}));
    assert_eq!(st, 200, "{lifted}");
    assert_eq!(lifted["lifted_by"], "AUD1");
    assert_eq!(
        ask(&format!("/v1/suppressions/{id}/lift"), json!({})).0,
        409
    );
    assert_eq!(ask("/v1/suppressions/nope/lift", json!({})).0, 400);
    assert_eq!(ids("&suppressed=only"), vec![hidden]);
    // Only auditors tune; every step is in the audit log with the backtest's figures.
    assert_eq!(
        s.post("/v1/suppressions", Some(&admin), &outlet).status(),
        403
    );
    let page: Value = s
        .get(
            "/v1/audit/entries?account=AUD1&action=alert_suppress",
            Some(&auditor),
        )
        .json()
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["decision"] == "allow"
        && e["detail"]
            .as_str()
            .unwrap()
            .contains("would_have_hidden=2 confirmed=1")));
    assert!(entries.iter().any(|e| e["decision"] == "deny"));
}

#[test]
fn cases_change_all_or_nothing_by_compare_and_set_and_only_by_auditors() {
    let dirs = Dirs::new("[risk.rate_limit]\nreads_per_minute = 1\nburst = 2");
    let admin = dirs.create_account("ROOT1", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    let o2 = couriers(&s, &admin, &integ, "O2", "C2", 1);
    let alert = raise(&s, &auditor, &o2[0], "C21");
    let post = |path: &str, token: &str, body: Value| {
        let r = s.post(path, Some(token), &body);
        let st = r.status().as_u16();
        (st, r.json::<Value>().unwrap_or(Value::Null))
    };
    for bad in [
        json!({"title": ""}),
        json!({"title": "call 13800135678"}),
        json!({"title": "x", "alerts": [999]}),
        json!({"title": "x", "accounts": ["NOBODY"]}),
        json!({"title": "x", "incidents": ["INC-000000000000"]}),
        json!({"title": "x", "colour": "red"}),
    ] {
        assert_eq!(post("/v1/cases", &auditor, bad.clone()).0, 400, "{bad}");
    }
    assert_eq!(post("/v1/cases", &admin, json!({"title": "x"})).0, 403);
    let (st, case) = post(
        "/v1/cases",
        &auditor,
        json!({"title": "C21 at the ceiling", "alerts": [alert, alert], "accounts": ["C21"]}),
    );
    assert_eq!(st, 201, "{case}");
    let id = case["id"].as_str().unwrap().to_owned();
    assert_eq!(case["alerts"], json!([alert]));
    assert_eq!(case["checklist"].as_array().unwrap().len(), 6);
    let changes = format!("/v1/cases/{id}/changes");
    // A change with one bad part changes nothing.
    let (st, _) = post(
        &changes,
        &auditor,
        json!({"revision": 0, "check": [0], "add_evidence": [{"seq": 999999, "label": "x"}]}),
    );
    assert_eq!(st, 400);
    let (st, _) = post(&changes, &auditor, json!({"revision": 0, "check": [6]}));
    assert_eq!(st, 400);
    let (st, _) = post(&changes, &auditor, json!({"revision": 0}));
    assert_eq!(st, 400, "a change that changes nothing");
    let (st, c) = post(&changes, &auditor, json!({"revision": 0, "check": [0, 1]}));
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["revision"], 1);
    // A change made on what the case was before is a conflict.
    assert_eq!(
        post(&changes, &auditor, json!({"revision": 0, "uncheck": [0]})).0,
        409
    );
    let (st, c) = post(
        &changes,
        &auditor,
        json!({"revision": 1, "close": "no_wrongdoing"}),
    );
    assert_eq!((st, c["state"].as_str()), (200, Some("closed")));
    assert_eq!(
        post(&changes, &auditor, json!({"revision": 2, "check": [2]})).0,
        409
    );
    let (st, c) = post(&changes, &auditor, json!({"revision": 2, "reopen": true}));
    assert_eq!((st, c["state"].as_str()), (200, Some("open")));
    assert_eq!(
        post(
            &changes,
            &auditor,
            json!({"revision": 3, "close": "guilty"})
        )
        .0,
        400
    );
    assert_eq!(
        post(&changes, &admin, json!({"revision": 3, "check": [2]})).0,
        403
    );
    // Admins read cases; each change is audited by what it did, never by its texts.
    let list: Vec<Value> = s.get("/v1/cases", Some(&admin)).json().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["title"], "C21 at the ceiling");
    let page: Value = s
        .get(
            "/v1/audit/entries?account=AUD1&action=case_change",
            Some(&auditor),
        )
        .json()
        .unwrap();
    let details: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["decision"] == "allow")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        vec![
            format!("case={id} reopened"),
            format!("case={id} closed=no_wrongdoing"),
            format!("case={id} check0 check1")
        ]
    );
}

#[test]
fn an_incident_splits_a_couriers_round_from_what_it_read_beyond_it_and_notifies_only_the_latter() {
    // Grades set so that this small incident is one the regulator hears of, within two hours.
    let dirs = Dirs::new(
        "\n[incidents]\nlarger_people = 1\nmajor_people = 1\nespecially_major_people = 5\nreport_hours = 2",
    );
    let admin = dirs.create_account("ROOT1", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    let agent = s.account(&admin, "K1", "customer_service", None, None);
    let o2 = couriers(&s, &admin, &integ, "O2", "C2", 2);
    let from = now_ms() - 60_000;
    let (token, own) = &o2[0];
    let theirs = &o2[1].1;
    // Its own round: twice in full, as a delivery needs. Then a look at a colleague's parcel at its outlet: the
    // policy gives the masked view (same outlet), but no work of its called for it.
    for _ in 0..2 {
        let r = s.get(&format!("/v1/waybills/{own}?purpose=delivery"), Some(token));
        assert_eq!(r.json::<Value>().unwrap()["view"], "full");
    }
    let r = s.get(
        &format!("/v1/waybills/{theirs}?purpose=delivery"),
        Some(token),
    );
    assert_eq!(r.json::<Value>().unwrap()["view"], "masked");
    let r = s.post(
        "/v1/forensics/incidents",
        Some(&auditor),
        &json!({"suspects": ["C21"], "from": from, "to": now_ms() + 60_000}),
    );
    assert_eq!(r.status(), 201);
    let report: Value = r.json().unwrap();
    let suspect = &report["per_suspect"][0];
    assert_eq!(
        (
            suspect["exposures"].as_u64(),
            suspect["exposures_work"].as_u64(),
            suspect["exposures_beyond"].as_u64(),
            suspect["waybills_beyond"].as_u64()
        ),
        (Some(3), Some(2), Some(1), Some(1)),
        "{report}"
    );
    assert_eq!(
        (
            report["waybills"].as_u64(),
            report["waybills_beyond_work"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let beyond: Vec<&str> = report["affected"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["beyond_work"] == true)
        .map(|a| a["waybill_no"].as_str().unwrap())
        .collect();
    assert_eq!(beyond, vec![theirs.as_str()]);
    let incident = report["incident"].as_str().unwrap();
    let md = s
        .get(
            &format!("/v1/forensics/incidents/{incident}?format=markdown"),
            Some(&auditor),
        )
        .text()
        .unwrap();
    assert!(md.contains("Beyond their work: 1 waybills"), "{md}");
    assert_eq!(report["grade"], "major");
    assert_eq!(
        report["regulator_report_due"].as_i64(),
        Some(report["created_at"].as_i64().unwrap() + 2 * 3_600_000)
    );
    assert!(
        md.contains("Grade: major") && md.contains("is due by"),
        "{md}"
    );
    let listed: Vec<Value> = s
        .get("/v1/forensics/incidents", Some(&auditor))
        .json()
        .unwrap();
    assert_eq!(
        listed[0]["regulator_report_due"],
        report["regulator_report_due"]
    );
    // Times as people here read them: ISO 8601 in China Standard Time, in the document and the CSV.
    assert!(md.contains("+08:00") && !md.contains(" UTC"), "{md}");
    let csv = s
        .get(
            &format!("/v1/forensics/incidents/{incident}?format=csv"),
            Some(&auditor),
        )
        .text()
        .unwrap();
    let row = csv.lines().nth(1).unwrap();
    assert!(
        row.contains("+08:00") && (row.ends_with(",true") || row.ends_with(",false")),
        "{csv}"
    );
    // The notification list: by default the people on what it read beyond its work; everyone on request.
    let notify = |q: &str| -> Value {
        let r = s.get(
            &format!("/v1/forensics/incidents/{incident}/notifications{q}"),
            Some(&agent),
        );
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    };
    let waybills = |list: &Value| -> Vec<String> {
        let mut v: Vec<String> = list["notices"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n["waybills"].as_array().unwrap().clone())
            .map(|w| w.as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(waybills(&notify("")), vec![theirs.clone()]);
    let mut both = vec![own.clone(), theirs.clone()];
    both.sort();
    assert_eq!(waybills(&notify("?scope=all")), both);
    assert_eq!(
        s.get(
            &format!("/v1/forensics/incidents/{incident}/notifications?scope=some"),
            Some(&agent)
        )
        .status(),
        400
    );

    // The owed reports as PDF, read back with pdftotext (Debian's poppler-utils, with poppler-data's Adobe-GB1
    // maps, installed by scripts/setup-pdftotext when missing): the Chinese text comes out as written.
    let setup = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/setup-pdftotext");
    assert!(
        std::process::Command::new(setup)
            .status()
            .unwrap()
            .success(),
        "pdftotext could not be installed"
    );
    let dir = tempfile::tempdir().unwrap();
    for (kind, lang, wanted) in [
        ("letter", "zh", ["个人信息泄露告知书", "您可以做什么"]),
        ("regulator", "zh", ["个人信息", incident]),
        (
            "letter",
            "en",
            ["Notice of a personal-information breach", "What happened"],
        ),
    ] {
        let r = s.get(
            &format!("/v1/forensics/incidents/{incident}/reports/{kind}?lang={lang}&format=pdf"),
            Some(&auditor),
        );
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/pdf");
        let bytes = r.bytes().unwrap();
        assert!(bytes.starts_with(b"%PDF-"));
        let file = dir.path().join(format!("{kind}-{lang}.pdf"));
        std::fs::write(&file, &bytes).unwrap();
        let out = std::process::Command::new("pdftotext")
            .arg(&file)
            .arg("-")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).replace(['\n', ' '], "");
        for w in wanted {
            assert!(
                text.contains(&w.replace(' ', "")),
                "{kind} {lang}: {w:?} not in {text}"
            );
        }
    }
    assert_eq!(
        s.get(
            &format!("/v1/forensics/incidents/{incident}/reports/letter?format=docx"),
            Some(&auditor)
        )
        .status(),
        400
    );

    // Each person's notices, filled in: a text message on every notice (name masked, the waybill's last four
    // characters, within 70), and their letters, addressed by name with their waybills — a page each as PDF.
    let list = notify("");
    let notices = list["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 2, "the recipient and the sender: {list}");
    for n in notices {
        let sms = n["sms"].as_str().unwrap();
        assert!(sms.chars().count() <= 70, "{sms}");
        assert!(sms.contains(&theirs[theirs.len() - 4..]), "{sms}");
        assert!(!sms.contains(n["phone"].as_str().unwrap()), "{sms}");
        assert!(!sms.contains(n["name"].as_str().unwrap()), "{sms}");
        assert!(n["sms_en"].as_str().unwrap().contains("Help: "));
    }
    assert!(notices
        .iter()
        .any(|n| n["sms"].as_str().unwrap().contains("王*您好")));
    let letters = s
        .get(
            &format!("/v1/forensics/incidents/{incident}/notifications?format=markdown"),
            Some(&agent),
        )
        .text()
        .unwrap();
    for want in [
        "尊敬的王芳：",
        "尊敬的寄件人甲：",
        theirs.as_str(),
        "您可以做什么",
    ] {
        assert!(letters.contains(want), "{want} not in {letters}");
    }
    assert!(
        !letters.contains(own.as_str()),
        "its own round is not theirs to be told of"
    );
    let r = s.get(
        &format!("/v1/forensics/incidents/{incident}/notifications?format=pdf&lang=en"),
        Some(&agent),
    );
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let file = dir.path().join("letters-en.pdf");
    std::fs::write(&file, r.bytes().unwrap()).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches('\u{c}').count(), 2, "a page each: {text}");
    let flat = text.replace(['\n', ' '], "");
    assert!(
        flat.contains("Dear王芳,") && flat.contains("Dear寄件人甲,"),
        "{text}"
    );
    assert_eq!(
        s.get(
            &format!("/v1/forensics/incidents/{incident}/notifications?format=docx"),
            Some(&agent)
        )
        .status(),
        400
    );
    assert_eq!(
        s.get(
            &format!("/v1/forensics/incidents/{incident}/notifications?format=markdown"),
            Some(&auditor)
        )
        .status(),
        403,
        "the letters hold what the list does: customer service only"
    );
}
