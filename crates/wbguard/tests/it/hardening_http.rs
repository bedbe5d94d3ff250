//! The findings of the black-box review (issue 19), each tried over real HTTP as it was found: the answer that
//! told whether a waybill exists, bodies of the wrong JSON shape, framework errors that were not JSON, cacheable
//! personal data, an export window that overflowed, foreign phone numbers stored as Chinese mobiles, ids that
//! differ only in case, labels printed by roles that only read, and client-chosen text (device ids, tickets,
//! reasons, suspects) reaching the audit log or the accounts table in the clear.
use crate::common;

use common::*;
use serde_json::{json, Value};

const PHONE: &str = "13800138000";

struct World {
    s: Server,
    admin: String,
    integ: String,
    courier: String,
    other_courier: String,
    auditor: String,
    _dirs: Dirs,
}

fn world() -> World {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let courier = s.account(&admin, "C1", "courier", Some("O2"), None);
    let other_courier = s.account(&admin, "C9", "courier", Some("O9"), None);
    let auditor = s.account(&admin, "A1", "auditor", None, None);
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &waybill("W1", "M1", "O1", "O2", "王芳", "13800135678", "科技园1号"),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    World {
        s,
        admin,
        integ,
        courier,
        other_courier,
        auditor,
        _dirs: dirs,
    }
}

fn body(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn not_yours_and_no_such_waybill_are_one_answer() {
    let w = world();
    // A courier of another outlet asks for a waybill that exists, and for one that does not.
    let exists = body(w.s.get("/v1/waybills/W1?purpose=delivery", Some(&w.other_courier)));
    let missing = body(w.s.get("/v1/waybills/W404?purpose=delivery", Some(&w.other_courier)));
    assert_eq!(exists.0, 404, "{exists:?}");
    assert_eq!(exists, missing, "the answers must not tell the two apart");
    // The same for recording an event and printing a label.
    let ev = json!({"type": "at_outlet", "outlet": "O9"});
    let exists = body(w.s.post("/v1/waybills/W1/events", Some(&w.other_courier), &ev));
    let missing = body(w.s.post("/v1/waybills/W404/events", Some(&w.other_courier), &ev));
    assert_eq!(exists, missing);
    assert_eq!(exists.0, 404);
    // The audit log keeps the real reason for the investigators.
    let out = w.s.get("/v1/alerts", Some(&w.auditor));
    assert_eq!(out.status(), 200);
}

#[test]
fn every_error_is_json_and_bodies_must_be_objects() {
    let w = world();
    // A JSON array where an object is expected: serde would fill the struct by position.
    let r = w.s.post_raw(
        "/v1/labels/resolve",
        Some(&w.courier),
        b"[\"WBG1.x\", \"delivery\"]".to_vec(),
    );
    assert_eq!(error_code(r), (400, "invalid_json".into()));
    let r = w.s.post_raw("/v1/waybills", Some(&w.integ), b"[]".to_vec());
    assert_eq!(error_code(r), (400, "invalid_json".into()));
    // 405 (a method the route does not take) and 413 are JSON like every other error; Allow is kept.
    let r = w.s.delete("/v1/waybills/W1", Some(&w.courier));
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some());
    assert_eq!(error_code(r), (405, "method_not_allowed".into()));
    // Too large, declared up front: refused before a byte of the body is read.
    let answer = w.s.raw_exchange(&format!(
        "POST /v1/waybills HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n",
        w.integ
    ));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    assert!(answer.contains("payload_too_large"), "{answer}");
    // A path segment that does not parse as the number the route wants.
    let r = w.s.get("/v1/policies/notanumber", Some(&w.admin));
    assert_eq!(error_code(r), (400, "invalid_request".into()));
}

#[test]
fn personal_data_is_never_cacheable() {
    let w = world();
    for (kind, outlet, courier) in [
        ("picked_up", "O1", None),
        ("at_outlet", "O2", None),
        ("out_for_delivery", "O2", Some("C1")),
    ] {
        let r = w.s.post(
            "/v1/waybills/W1/events",
            Some(&w.integ),
            &json!({"type": kind, "outlet": outlet, "courier": courier}),
        );
        assert_eq!(r.status(), 200);
    }
    let r =
        w.s.get("/v1/waybills/W1?purpose=delivery", Some(&w.courier));
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = w.s.get("/v1/me", Some(&w.courier));
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[test]
fn an_export_window_cannot_overflow_past_its_limit() {
    let w = world();
    let merchant = w.s.account(&w.admin, "M1x", "merchant", None, Some("M1"));
    for (from, to) in [
        (i64::MIN, 1_i64),
        (i64::MIN, i64::MAX),
        (-1, 1),
        (0, i64::MAX),
    ] {
        let r = w.s.post(
            "/v1/exports",
            Some(&merchant),
            &json!({"purpose": "customer_service", "from": from, "to": to}),
        );
        assert_eq!(
            error_code(r),
            (400, "invalid_request".into()),
            "{from}..{to}"
        );
    }
}

#[test]
fn foreign_numbers_case_twins_and_phone_shaped_ids_are_refused() {
    let w = world();
    // +1 555 … is not a Chinese mobile that happens to start with 15.
    let mut wb = waybill(
        "W2",
        "M1",
        "O1",
        "O2",
        "王芳",
        "+1 555 123 4567",
        "科技园1号",
    );
    let r = w.s.post("/v1/waybills", Some(&w.integ), &wb);
    assert_eq!(error_code(r), (400, "invalid_request".into()));
    // Waybill numbers are one record whatever their case.
    wb["recipient"]["phone"] = json!("13800135678");
    wb["waybill_no"] = json!("w1");
    assert_eq!(w.s.post("/v1/waybills", Some(&w.integ), &wb).status(), 409);
    // Account ids keep their case, but a twin differing only in case is refused.
    let r = w.s.post(
        "/v1/accounts",
        Some(&w.admin),
        &json!({"id": "i1", "role": "integration"}),
    );
    assert_eq!(error_code(r), (409, "conflict".into()));
    // An account id is in every audit entry: not a phone number.
    let r = w.s.post(
        "/v1/accounts",
        Some(&w.admin),
        &json!({"id": PHONE, "role": "integration"}),
    );
    let (status, v) = body(r);
    assert_eq!(status, 400);
    assert!(!v.to_string().contains(PHONE), "{v}");
}

#[test]
fn only_print_stations_print_labels() {
    let w = world();
    let station =
        w.s.account(&w.admin, "P1", "print_station", Some("O1"), None);
    // A courier with a masked view of the parcel may not print it (it would take the station's first print).
    let r =
        w.s.get("/v1/waybills/W1/label?format=zpl", Some(&w.courier));
    assert_eq!(error_code(r), (404, "not_found".into()));
    let r = w.s.get("/v1/waybills/W1/label?format=zpl", Some(&station));
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-label-copy"],
        "1",
        "the station's first print is copy 1"
    );
}

#[test]
fn client_chosen_text_never_reaches_the_record_in_the_clear() {
    let w = world();
    // A phone-shaped device id is kept only as its keyed pseudonym.
    let r = w.s.auth_get(
        "/v1/waybills/W1?purpose=delivery",
        &w.courier,
        &[("x-device-id", PHONE)],
    );
    assert_eq!(r.status(), 200);
    let entries: Vec<String> = (0..40)
        .map(|i| w.s.get(&format!("/v1/audit/entries/{i}"), Some(&w.auditor)))
        .filter(|r| r.status() == 200)
        .map(|r| r.text().unwrap())
        .collect();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| !e.contains(PHONE)), "{entries:?}");
    assert!(
        entries.iter().any(|e| e.contains("\"device\":\"d-")),
        "{entries:?}"
    );
    // A ticket that holds a phone number is refused, not recorded.
    let r = w.s.get(
        &format!("/v1/waybills/W1?purpose=customer_service&ticket=T{PHONE}"),
        Some(&w.courier),
    );
    let (status, v) = body(r);
    assert_eq!(status, 400);
    assert!(!v.to_string().contains(PHONE));
    // A suspension reason is kept in the clear: no phone number in it.
    let r = w.s.post(
        "/v1/accounts/C9/suspend",
        Some(&w.admin),
        &json!({"reason": format!("sold {PHONE}")}),
    );
    let (status, v) = body(r);
    assert_eq!(status, 400);
    assert!(!v.to_string().contains(PHONE));
    // An incident names accounts and exports that exist, and echoes nothing else.
    let r = w.s.post(
        "/v1/forensics/incidents",
        Some(&w.auditor),
        &json!({"suspects": [PHONE], "from": 0, "to": 1}),
    );
    let (status, v) = body(r);
    assert_eq!(status, 400);
    assert!(!v.to_string().contains(PHONE), "{v}");
    for e in (0..60)
        .map(|i| w.s.get(&format!("/v1/audit/entries/{i}"), Some(&w.auditor)))
        .filter(|r| r.status() == 200)
        .map(|r| r.text().unwrap())
    {
        assert!(!e.contains(PHONE), "{e}");
    }
}

#[test]
fn metrics_are_described_from_the_start_and_openapi_documents_every_answer() {
    let w = world();
    let text = w.s.get("/metrics", None).text().unwrap();
    for name in [
        "wbguard_http_requests_total",
        "wbguard_reads_total",
        "wbguard_accounts_suspended",
        "wbguard_audit_entries",
        "wbguard_audit_checkpoint_age_seconds",
        "wbguard_webhook_failed_total",
        "wbguard_build_info",
    ] {
        assert!(
            text.contains(&format!("# HELP {name}")),
            "{name} has no HELP:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {name}")),
            "{name} has no TYPE"
        );
    }
    assert!(
        text.contains("# TYPE wbguard_http_request_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("wbguard_http_request_seconds_bucket{"),
        "{text}"
    );
    let api: Value = w.s.get("/openapi.json", None).json().unwrap();
    let mut secured = 0;
    for (path, item) in api["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(op["tags"].is_array(), "{method} {path} has no tag");
            if op["security"].is_array() {
                secured += 1;
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} documents no 401"
                );
            }
        }
    }
    assert!(secured > 30);
}

#[test]
fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    for (trusted, expect_forwarded) in [(false, false), (true, true)] {
        let dirs = Dirs::new("");
        if trusted {
            let mut c = std::fs::read_to_string(&dirs.config).unwrap();
            c.push_str("[server]\ntrusted_proxies = [\"127.0.0.1\"]\n");
            std::fs::write(&dirs.config, c).unwrap();
        }
        let admin = dirs.create_account("root", "admin", None);
        let s = Server::start(&dirs, "info");
        let auditor = s.account(&admin, "A1", "auditor", None, None);
        // A lookup of a number that does not exist is audited, with where it came from.
        let r = s.auth_get(
            "/v1/waybills/W404?purpose=breach_notification",
            &auditor,
            &[("x-forwarded-for", "198.51.100.23")],
        );
        assert_eq!(r.status(), 404);
        let found = (0..30)
            .map(|i| s.get(&format!("/v1/audit/entries/{i}"), Some(&auditor)))
            .filter(|r| r.status() == 200)
            .map(|r| r.text().unwrap())
            .any(|e| e.contains("198.51.100.23"));
        assert_eq!(found, expect_forwarded, "trusted proxy: {trusted}");
    }
}

#[test]
fn tls_serves_https_with_the_configured_certificate() {
    let dirs = Dirs::new("");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (
        dirs.root.path().join("cert.pem"),
        dirs.root.path().join("key.pem"),
    );
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let mut c = std::fs::read_to_string(&dirs.config).unwrap();
    c.push_str(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    ));
    std::fs::write(&dirs.config, c).unwrap();
    dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "info");
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let base = s.base.replace("127.0.0.1", "localhost");
    let trusting = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = trusting.get(format!("{base}/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    // A client that does not trust the certificate gets no answer; plain HTTP gets none either.
    assert!(reqwest::blocking::get(format!("{base}/healthz")).is_err());
    let plain = base.replace("https://", "http://");
    assert!(reqwest::blocking::get(format!("{plain}/healthz"))
        .map_or(true, |r| !r.status().is_success()));
}

#[test]
fn an_operators_reason_is_sealed_in_the_accounts_table() {
    let w = world();
    let reason = "suspected of renting the account to 张伟";
    let r = w.s.post(
        "/v1/accounts/C9/suspend",
        Some(&w.admin),
        &json!({ "reason": reason }),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["status_reason"], reason);
    // The table holds it sealed, bound to the account; the admins' list shows it opened.
    let db = rusqlite::Connection::open(w._dirs.data.join("wbguard.db")).unwrap();
    let stored: String = db
        .query_row(
            "SELECT status_reason FROM accounts WHERE id = 'C9'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        stored.starts_with("sealed:") && !stored.contains("张伟"),
        "{stored}"
    );
    let list: Value = w.s.get("/v1/accounts", Some(&w.admin)).json().unwrap();
    let c9 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "C9")
        .unwrap();
    assert_eq!(c9["status_reason"], reason);
    // Moved onto another account's row, it does not open.
    db.execute(
        "UPDATE accounts SET status = 'suspended', status_reason = ?1 WHERE id = 'C1'",
        [&stored],
    )
    .unwrap();
    let list: Value = w.s.get("/v1/accounts", Some(&w.admin)).json().unwrap();
    let c1 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "C1")
        .unwrap();
    assert!(
        !c1["status_reason"].as_str().unwrap().contains("张伟"),
        "{c1}"
    );
}

/// A client that opens connections and then sends its request's headers slowly, or nothing, or declares a body and
/// stops sending it (slowloris), no longer holds them for as long as it likes: a connection that has not sent a
/// whole request head within `[server] client_timeout_seconds` of being able to — on opening, or after the answer
/// to its previous request — is closed, a body that goes as long without a byte is answered 408, and a client
/// that sends its request in time is answered.
#[test]
fn a_connection_that_sends_no_request_in_time_is_closed() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let (_dirs, s, _) = serve_with("client_timeout_seconds = 1\n");
    let connect = || connect_to(&s);
    // Half a request head, then nothing more.
    let mut slow = connect();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (_, after) = until_closed(&mut slow, Instant::now());
    assert!(after < Duration::from_secs(5), "{after:?}");
    // Nothing at all.
    let mut silent = connect();
    let (_, after) = until_closed(&mut silent, Instant::now());
    assert!(after < Duration::from_secs(5), "{after:?}");
    // A whole request in time is answered; the connection, kept alive, is closed once it idles past the timeout.
    let mut prompt = connect();
    prompt
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (answer, after) = until_closed(&mut prompt, Instant::now());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(after < Duration::from_secs(5), "{after:?}");
    // A body that stops arriving (the body is read before the token is checked).
    let mut stalled = connect();
    stalled
        .write_all(
            b"POST /v1/waybills HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer any\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    let (answer, after) = until_closed(&mut stalled, Instant::now());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(after < Duration::from_secs(5), "{after:?}");
    // The server serves on.
    assert_eq!(s.get("/healthz", None).status(), 200);
}

/// A node whose configuration ends with `server` (lines of its `[server]` section), its directories, and an
/// admin's token.
fn serve_with(server: &str) -> (Dirs, Server, String) {
    let dirs = Dirs::new("");
    let mut c = std::fs::read_to_string(&dirs.config).unwrap();
    c.push_str(&format!("[server]\n{server}"));
    std::fs::write(&dirs.config, c).unwrap();
    let root = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "info");
    (dirs, s, root)
}

/// A live alert stream sends nothing while no alert comes: its keep-alive comes often enough that the idle
/// timeout never closes it (every 15 s, or a third of a shorter idle timeout).
#[test]
fn a_live_alert_stream_outlasts_the_idle_timeout() {
    let (_dirs, s, root) = serve_with("client_timeout_seconds = 1\nidle_timeout_seconds = 3\n");
    let r = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap()
        .get(format!("{}/v1/alerts/stream", s.base))
        .bearer_auth(&root)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let lines = stream_lines(r, |_| true);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(7);
    let mut comments = 0;
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(':') => comments += 1,
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the stream was closed after {comments} keep-alives")
            }
        }
    }
    assert!(comments >= 3, "{comments} keep-alives in 7 s");
}

/// How many of `conns` the server holds open a second after they were made (the others it closed without a
/// byte: at once, when it accepted them).
fn held(conns: &[std::net::TcpStream]) -> usize {
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut open = 0;
    for mut c in conns.iter() {
        c.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        match std::io::Read::read(&mut c, &mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("a refused connection was sent {n} bytes"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            Err(e) => panic!("{e}"),
        }
    }
    open
}

/// A connection to `s` from the loopback address `from` (any 127.x.y.z is this machine).
fn connect_from(s: &Server, from: &str) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let to: std::net::SocketAddr = s.base.strip_prefix("http://").unwrap().parse().unwrap();
    let conn = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        socket.connect(to).await.unwrap()
    });
    let conn = conn.into_std().unwrap();
    conn.set_nonblocking(false).unwrap();
    conn
}

/// One host cannot take every place: a peer may hold `[server] max_connections_per_peer` connections, the next
/// ones are closed at once while another peer is still served; a trusted proxy, which carries many clients, is not
/// held to it.
#[test]
fn one_peer_cannot_take_every_connection() {
    let (_dirs, s, _) = serve_with(
        "client_timeout_seconds = 20\nmax_connections = 8\nmax_connections_per_peer = 2\n\
         trusted_proxies = [\"127.0.0.3\"]\n",
    );
    let one: Vec<_> = (0..4).map(|_| connect_from(&s, "127.0.0.1")).collect();
    let two: Vec<_> = (0..2).map(|_| connect_from(&s, "127.0.0.2")).collect();
    let proxy: Vec<_> = (0..3).map(|_| connect_from(&s, "127.0.0.3")).collect();
    assert_eq!(held(&one), 2, "one peer holds two, its next two are closed");
    assert_eq!(held(&two), 2, "another peer is served meanwhile");
    assert_eq!(
        held(&proxy),
        3,
        "a trusted proxy is not held to the peer's limit"
    );
    drop((one, two, proxy));
    // Counted as the peer's refusals (once the closed connections' places are given back).
    let started = std::time::Instant::now();
    let metrics = loop {
        match reqwest::blocking::get(format!("{}/metrics", s.base)) {
            Ok(r) => break r.text().unwrap(),
            Err(e) => assert!(started.elapsed().as_secs() < 10, "{e}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        metrics.contains("wbguard_connections_refused_total{why=\"peer\"} 2\n"),
        "{metrics}"
    );
}

/// A connection to `s` that gives up reading after 10 s.
fn connect_to(s: &Server) -> std::net::TcpStream {
    let conn = std::net::TcpStream::connect(s.base.strip_prefix("http://").unwrap()).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    conn
}

/// What the server sent on `conn` until it closed it, and how long after `since` it closed it (a panic if it is
/// still open after the connection's read timeout).
fn until_closed(
    conn: &mut std::net::TcpStream,
    since: std::time::Instant,
) -> (String, std::time::Duration) {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), since.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), since.elapsed())
            }
            Err(e) => panic!("still open after {:?}: {e}", since.elapsed()),
        }
    }
}

/// HTTP/2 reads all the time, so hyper never times an idle HTTP/2 connection out: one that sent its preface and
/// then nothing stayed open for ever. Now a connection with no byte moving either way for `[server]
/// idle_timeout_seconds` is closed, whatever it speaks.
#[test]
fn an_idle_http2_connection_is_closed() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let (_dirs, s, _) = serve_with("client_timeout_seconds = 1\nidle_timeout_seconds = 3\n");
    let mut h2 = connect_to(&s);
    // The client preface and an empty SETTINGS frame, then nothing.
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let since = Instant::now();
    let (sent, after) = until_closed(&mut h2, since);
    // The server's own SETTINGS came first (frame type 4): it spoke HTTP/2 until the idle timeout.
    assert!(sent.len() >= 9 && sent.as_bytes()[3] == 4, "{sent:?}");
    assert!(
        after >= Duration::from_millis(2500) && after < Duration::from_secs(8),
        "{after:?}"
    );
    assert_eq!(s.get("/healthz", None).status(), 200);
}

/// Beyond `[server] max_connections` open at once, a new connection is closed as soon as it is accepted, and
/// counted; once one closes, the next is served.
#[test]
fn connections_beyond_the_limit_are_closed_on_accept() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let (_dirs, s, _) = serve_with("client_timeout_seconds = 20\nmax_connections = 2\n");
    // Four connections that send nothing (the server waits for their first byte): two fill the node, two are
    // closed at once — which two is the server's choice (each connection is accepted on a task of its own).
    let four: Vec<std::net::TcpStream> = (0..4).map(|_| connect_to(&s)).collect();
    let open = held(&four);
    assert_eq!(open, 2, "two connections held, two closed at once");
    drop(four);
    let started = Instant::now();
    let answered = loop {
        let mut next = connect_to(&s);
        let _ = next.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (answer, _) = until_closed(&mut next, Instant::now());
        if answer.starts_with("HTTP/1.1 200") || started.elapsed() > Duration::from_secs(10) {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let refused = |why: &str| {
        answered
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "wbguard_connections_refused_total{{why=\"{why}\"}} "
                ))
            })
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    // The node was full, not the peer (at two places, the peer's limit is the node's).
    assert!(refused("node").is_some_and(|n| n >= 2), "{answered}");
    assert!(refused("peer").is_none_or(|n| n == 0), "{answered}");
}

/// A large body is read only for a known credential: an unknown token declaring a megabyte is refused (401) at
/// once, before a byte of its body has been sent — it used to wait for the body, buffer it (up to 16 MB) and parse
/// it before the guard looked at the token. A known token's large batch is taken whole as before.
#[test]
fn an_unknown_token_gets_no_large_body_read() {
    let w = world();
    let answer = w.s.raw_exchange(
        "POST /v1/waybills HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wbg_unknown\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let batch: Vec<Value> = (0..300)
        .map(|i| {
            waybill(
                &format!("WL{i:04}"),
                "M1",
                "O1",
                "O2",
                "王芳",
                PHONE,
                "科技园1号",
            )
        })
        .collect();
    let body = json!({ "waybills": batch });
    assert!(body.to_string().len() > 64 * 1024);
    let r = w.s.post("/v1/waybills", Some(&w.integ), &body);
    assert!(r.status().is_success(), "{}", r.text().unwrap());
}
