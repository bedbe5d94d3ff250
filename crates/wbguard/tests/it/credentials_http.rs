//! Credentials through a real server: no admin alone obtains a working credential for an account that sees
//! personal data (an enrolment a second admin approves, whose code the owner redeems once); tokens expire, are
//! listed as metadata and revoked by an admin or their owner; the carrier's identity provider's JWTs are
//! accepted when they verify and refused otherwise; and every credential an admin can obtain alone reads no
//! personal data by any path.
use crate::common;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use common::*;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const NO: &str = "YT2026120200001";
const NAME: &str = "欧阳娜娜";
const PHONE: &str = "13912345678";
const STREET: &str = "文三路88号3单元501室";
const ISSUER: &str = "https://idp.carrier.example";
const AUDIENCE: &str = "waybill-guard";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A JWT signed with `key` (EdDSA), kid `k1`.
fn jwt(key: &SigningKey, claims: &Value) -> String {
    jwt_kid(key, "k1", claims)
}

fn claims(account: &str, exp_secs_from_now: i64) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "employee_no": account,
           "exp": now_ms() / 1000 + exp_secs_from_now, "sub": "opaque-idp-subject"})
}

/// A server whose `[credentials]` accepts JWTs from the test's identity provider (its public key in a JWKS file).
fn server_with_idp(idp: &SigningKey) -> (Dirs, Server, String) {
    let dirs = Dirs::new("");
    let jwks = dirs.root.path().join("jwks.json");
    std::fs::write(&jwks, ed25519_jwks("k1", idp)).unwrap();
    let mut config = std::fs::read_to_string(&dirs.config).unwrap();
    config.push_str(&format!(
        "[credentials]\ntoken_days = 30\n[credentials.oidc]\njwks_file = {:?}\nissuer = {ISSUER:?}\n\
         audience = {AUDIENCE:?}\naccount_claim = \"employee_no\"\n",
        jwks.to_str().unwrap()
    ));
    std::fs::write(&dirs.config, config).unwrap();
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "debug");
    (dirs, s, admin)
}

#[test]
fn a_credential_for_personal_data_needs_a_second_admin_and_its_owner() {
    let idp = SigningKey::from_bytes(&[7u8; 32]);
    let (_dirs, s, admin) = server_with_idp(&idp);
    let approver = s.approver.clone().unwrap();

    // A role that sees no personal data gets its token at once, expiring as configured.
    let r = s.post(
        "/v1/accounts",
        Some(&admin),
        &json!({"id": "I1", "role": "integration"}),
    );
    assert_eq!(r.status(), 201);
    let body: Value = r.json().unwrap();
    let expires = body["expires_at"].as_i64().unwrap();
    assert!(
        (expires - now_ms() - 30 * 86_400_000).abs() < 600_000,
        "{body}"
    );

    // A courier is created with nothing usable: an enrolment awaits a second admin.
    let r = s.post(
        "/v1/accounts",
        Some(&admin),
        &json!({"id": "C0420001", "role": "courier", "outlet": "O042"}),
    );
    assert_eq!(r.status(), 202);
    let body: Value = r.json().unwrap();
    assert!(body.get("token").is_none(), "{body}");
    let enrolment = body["enrolment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["enrolment"]["state"], "awaiting_approval");
    assert_eq!(body["enrolment"]["requested_by"], "root");
    // So is an admin: one admin cannot mint a second admin and approve himself with it.
    let r = s.post(
        "/v1/accounts",
        Some(&admin),
        &json!({"id": "A2", "role": "admin"}),
    );
    assert_eq!(r.status(), 202);

    // The admin who asked cannot approve; the enrolment's own account cannot either; other roles cannot.
    let approve = format!("/v1/enrolments/{enrolment}/approve");
    assert_eq!(
        error_code(s.post(&approve, Some(&admin), &json!({}))),
        (403, "forbidden".into())
    );
    let integ = body_token(s.post("/v1/accounts/I1/tokens", Some(&admin), &json!({})));
    assert_eq!(
        error_code(s.post(&approve, Some(&integ), &json!({}))).0,
        403
    );
    // Nothing to redeem yet.
    let redeem = |code: &str| {
        s.post(
            "/v1/enrol",
            None,
            &json!({"enrolment": enrolment, "code": code}),
        )
    };
    assert_eq!(error_code(redeem("wbe_guess")).0, 401);

    // The second admin approves and receives the one-time code; a wrong code is refused; the right one works
    // once.
    let r = s.post(&approve, Some(&approver), &json!({}));
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let approved: Value = r.json().unwrap();
    assert_eq!(approved["enrolment"]["approved_by"], "root-2");
    let code = approved["code"].as_str().unwrap().to_owned();
    assert_eq!(
        error_code(s.post(&approve, Some(&approver), &json!({}))).0,
        409
    );
    assert_eq!(error_code(redeem("wbe_wrong")).0, 401);
    let r = redeem(&code);
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let courier = r.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(error_code(redeem(&code)).0, 401, "a code works once");

    // The owner sees how the credential came to exist.
    let me: Value = s.get("/v1/me", Some(&courier)).json().unwrap();
    assert_eq!(me["account"]["id"], "C0420001");
    let issued_by = me["tokens"][0]["issued_by"].as_str().unwrap();
    assert!(
        issued_by.contains("requested by root") && issued_by.contains("approved by root-2"),
        "{issued_by}"
    );
    // The security team was told at each step.
    let alerts: Value = s
        .get("/v1/alerts?account=C0420001", Some(&admin))
        .json()
        .unwrap();
    let kinds: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"credential_requested") && kinds.contains(&"credential_issued"),
        "{kinds:?}"
    );

    // A reissue asked by an admin is an enrolment too, and the owner's token keeps working until it is redeemed.
    let r = s.post("/v1/accounts/C0420001/tokens", Some(&admin), &json!({}));
    assert_eq!(r.status(), 202);
    let again = r.json::<Value>().unwrap()["enrolment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.get("/v1/me", Some(&courier)).status(), 200);
    // Cancelled, it can no longer be approved.
    assert_eq!(
        s.post(
            &format!("/v1/enrolments/{again}/cancel"),
            Some(&admin),
            &json!({})
        )
        .status(),
        200
    );
    assert_eq!(
        error_code(s.post(
            &format!("/v1/enrolments/{again}/approve"),
            Some(&approver),
            &json!({})
        ))
        .0,
        409
    );
    assert_eq!(
        error_code(s.get("/v1/enrolments/E0000000000000000", Some(&admin))).0,
        404
    );
    assert_eq!(
        error_code(s.get(&format!("/v1/enrolments/{again}"), Some(&courier))).0,
        403
    );

    // Tokens: listed as metadata by an admin or the owner, never by someone else; revoked by either.
    let other = s.account(&admin, "C0420002", "courier", Some("O042"), None);
    let listed: Value = s
        .get("/v1/accounts/C0420001/tokens", Some(&admin))
        .json()
        .unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 12);
    assert!(!listed.to_string().contains(&courier), "never the token");
    assert_eq!(
        s.get("/v1/accounts/C0420001/tokens", Some(&courier))
            .status(),
        200
    );
    assert_eq!(
        error_code(s.get("/v1/accounts/C0420001/tokens", Some(&other))).0,
        403
    );
    assert_eq!(
        error_code(s.delete(&format!("/v1/accounts/C0420001/tokens/{id}"), Some(&other))).0,
        403
    );
    assert_eq!(
        error_code(s.delete("/v1/accounts/C0420001/tokens/zz", Some(&admin))).0,
        400
    );
    assert_eq!(
        error_code(s.delete("/v1/accounts/C0420001/tokens/000000000000", Some(&admin))).0,
        404
    );
    assert_eq!(
        s.delete(
            &format!("/v1/accounts/C0420001/tokens/{id}"),
            Some(&courier)
        )
        .status(),
        204
    );
    assert_eq!(
        error_code(s.get("/v1/me", Some(&courier))).0,
        401,
        "revoked by its owner"
    );

    // The identity provider's JWTs: the claim names the account; anything that does not verify is refused.
    let good = jwt(&idp, &claims("C0420002", 300));
    let me: Value = s.get("/v1/me", Some(&good)).json().unwrap();
    assert_eq!(me["account"]["id"], "C0420002");
    let forged = jwt(
        &SigningKey::from_bytes(&[8u8; 32]),
        &claims("C0420002", 300),
    );
    let expired = jwt(&idp, &claims("C0420002", -600));
    let mut wrong_issuer = claims("C0420002", 300);
    wrong_issuer["iss"] = json!("https://evil.example");
    let mut wrong_audience = claims("C0420002", 300);
    wrong_audience["aud"] = json!("someone-else");
    let unknown = jwt(&idp, &claims("NOBODY", 300));
    let unsigned = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(claims("C0420002", 300).to_string())
    );
    for (what, t) in [
        ("forged", forged),
        ("expired", expired),
        ("issuer", jwt(&idp, &wrong_issuer)),
        ("audience", jwt(&idp, &wrong_audience)),
        ("unknown account", unknown),
        ("unsigned", unsigned),
    ] {
        assert_eq!(
            error_code(s.get("/v1/me", Some(&t))),
            (401, "unauthenticated".into()),
            "{what}"
        );
        assert_eq!(
            error_code(s.get(&format!("/v1/waybills/{NO}?purpose=delivery"), Some(&t))).0,
            401,
            "{what}"
        );
    }
    // A JWT's account is judged like any other: suspended means refused.
    assert_eq!(
        s.post("/v1/accounts/C0420002/suspend", Some(&admin), &json!({}))
            .status(),
        200
    );
    assert_eq!(
        error_code(s.get(&format!("/v1/waybills/{NO}?purpose=delivery"), Some(&good))),
        (403, "account_suspended".into())
    );
    // Nothing of a token, code or JWT reaches the log.
    let log = s.log_text();
    for secret in [&courier, &code, &good, &integ] {
        assert!(!log.contains(secret.as_str()));
    }
}

fn body_token(r: reqwest::blocking::Response) -> String {
    assert_eq!(r.status(), 201);
    r.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn no_credential_an_admin_obtains_alone_reads_personal_data() {
    let idp = SigningKey::from_bytes(&[9u8; 32]);
    let (_dirs, s, admin) = server_with_idp(&idp);
    // What the world holds, set up the sanctioned way (enrolments approved by the second admin).
    let integ = s.account(&admin, "I1", "integration", None, None);
    let printer = s.account(&admin, "P0010", "print_station", Some("O001"), None);
    let merchant = s.account(&admin, "U1", "merchant", None, Some("M001"));
    let auditor = s.account(&admin, "AUD1", "auditor", None, None);
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &json!({"waybills": [waybill(NO, "M001", "O001", "O042", NAME, PHONE, STREET)]}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let label = s
        .get(
            &format!("/v1/waybills/{NO}/label?format=zpl"),
            Some(&printer),
        )
        .text()
        .unwrap();
    let start = label.find("^FDMA,").unwrap() + "^FDMA,".len();
    let label_token = label[start..start + label[start..].find("^FS").unwrap()].to_owned();
    let now = now_ms();
    let r = s.post(
        "/v1/exports",
        Some(&merchant),
        &json!({"purpose": "customer_service", "from": now - 86_400_000, "to": now + 3_600_000}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let export = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        s.post(
            &format!("/v1/exports/{export}/approve"),
            Some(&auditor),
            &json!({})
        )
        .status(),
        200
    );
    let r = s.post(
        "/v1/forensics/incidents",
        Some(&auditor),
        &json!({"suspects": ["P0010"], "from": now - 60_000, "to": now + 3_600_000}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let incident = r.json::<Value>().unwrap()["incident"]
        .as_str()
        .unwrap()
        .to_owned();

    // Every credential one admin can obtain alone: its own token, tokens it issues directly (roles that see no
    // personal data, new or reissued), and whatever an enrolment it asks for gives it (nothing).
    let mut credentials = vec![("admin".to_owned(), admin.clone())];
    for (id, role) in [("I9", "integration"), ("AUD9", "auditor")] {
        let r = s.post(
            "/v1/accounts",
            Some(&admin),
            &json!({"id": id, "role": role}),
        );
        credentials.push((format!("new {role}"), body_token(r)));
    }
    // An outlet manager (no personal data; recertifies its outlet's people) at the parcel's own outlet.
    let r = s.post(
        "/v1/accounts",
        Some(&admin),
        &json!({"id": "MGR9", "role": "outlet_manager", "outlet": "O042"}),
    );
    credentials.push(("new outlet_manager".to_owned(), body_token(r)));
    for id in ["I1", "AUD1"] {
        let r = s.post(
            &format!("/v1/accounts/{id}/tokens"),
            Some(&admin),
            &json!({"keep_existing": true}),
        );
        credentials.push((format!("reissued {id}"), body_token(r)));
    }
    for (id, role, outlet) in [
        ("C9", "courier", Some("O042")),
        ("K9", "customer_service", None),
        ("A9", "admin", None),
    ] {
        let r = s.post(
            "/v1/accounts",
            Some(&admin),
            &json!({"id": id, "role": role, "outlet": outlet}),
        );
        assert_eq!(r.status(), 202, "{id}");
        let body: Value = r.json().unwrap();
        assert!(body.get("token").is_none());
        let e = body["enrolment"]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            s.post(
                &format!("/v1/enrolments/{e}/approve"),
                Some(&admin),
                &json!({})
            )
            .status(),
            403
        );
        let r = s.post("/v1/enrol", None, &json!({"enrolment": e, "code": ""}));
        assert_eq!(r.status(), 401);
    }
    for id in ["P0010", "U1"] {
        let r = s.post(
            &format!("/v1/accounts/{id}/tokens"),
            Some(&admin),
            &json!({}),
        );
        assert_eq!(r.status(), 202, "{id}");
    }

    // Every path that carries personal data, with every one of them.
    let mut tried = 0;
    for (who, t) in &credentials {
        let mut answers = Vec::new();
        for purpose in [
            "delivery",
            "customer_service&ticket=T1",
            "exception_handling",
            "label",
            "breach_notification",
        ] {
            // An auditor's answer is the routing view (outlets, status): no person in it.
            let text = s
                .get(&format!("/v1/waybills/{NO}?purpose={purpose}"), Some(t))
                .text()
                .unwrap();
            let view = serde_json::from_str::<Value>(&text).unwrap()["view"].clone();
            assert!(
                view != "full" && view != "masked",
                "{who} read {purpose}: {view}"
            );
            answers.push(text);
        }
        for format in ["zpl", "pdf", "png", "svg"] {
            let r = s.get(&format!("/v1/waybills/{NO}/label?format={format}"), Some(t));
            assert!(!r.status().is_success(), "{who} printed a label");
            answers.push(r.text().unwrap());
        }
        let text = s
            .post(
                "/v1/labels/resolve",
                Some(t),
                &json!({"token": label_token}),
            )
            .text()
            .unwrap();
        let view = serde_json::from_str::<Value>(&text).unwrap()["view"].clone();
        assert!(
            view != "full" && view != "masked",
            "{who} resolved a label: {view}"
        );
        answers.push(text);
        for (path, body) in [
            (
                "/v1/telephony/route",
                json!({"number": "17000000001", "caller": "C0420001"}),
            ),
            (
                "/v1/exports",
                json!({"purpose": "customer_service", "from": now - 86_400_000, "to": now + 3_600_000}),
            ),
        ] {
            let r = s.post(path, Some(t), &body);
            assert!(!r.status().is_success(), "{who} {path}");
            answers.push(r.text().unwrap());
        }
        for path in [
            format!("/v1/exports/{export}/file"),
            format!("/v1/forensics/incidents/{incident}/notifications"),
            format!("/v1/forensics/incidents/{incident}"),
            format!("/v1/exports/{export}"),
            "/v1/alerts".to_owned(),
            "/v1/accounts".to_owned(),
            "/v1/me".to_owned(),
        ] {
            answers.push(s.get(&path, Some(t)).text().unwrap());
        }
        for seq in 0..200 {
            let r = s.get(&format!("/v1/audit/entries/{seq}"), Some(t));
            if r.status() == 404 {
                break;
            }
            answers.push(r.text().unwrap());
        }
        for a in &answers {
            for secret in [
                NAME,
                PHONE,
                STREET,
                "欧*",
                "139******78",
                "寄件人甲",
                "13911112222",
            ] {
                assert!(!a.contains(secret), "{who} obtained {secret}: {a}");
            }
        }
        tried += answers.len();
    }
    assert!(tried > 7 * 20, "{tried}");
}

/// A JWKS endpoint on loopback: answers every GET with the set `keys` holds now, and counts the fetches.
fn jwks_endpoint(
    keys: std::sync::Arc<std::sync::Mutex<String>>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/.well-known/jwks.json", l.local_addr().unwrap());
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = fetches.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = keys.lock().unwrap().clone();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, fetches)
}

#[test]
fn the_identity_providers_keys_come_from_its_jwks_url_and_follow_its_rotation() {
    let old = SigningKey::from_bytes(&[21u8; 32]);
    let new = SigningKey::from_bytes(&[22u8; 32]);
    let served = std::sync::Arc::new(std::sync::Mutex::new(ed25519_jwks("2026-11", &old)));
    let (url, fetches) = jwks_endpoint(served.clone());
    let dirs = Dirs::new("");
    let base = std::fs::read_to_string(&dirs.config).unwrap();
    let with_oidc = |url: &str| {
        format!(
            "{base}[credentials.oidc]\njwks_url = {url:?}\nissuer = {ISSUER:?}\naudience = {AUDIENCE:?}\n\
             account_claim = \"employee_no\"\n"
        )
    };
    // A key set fetched in the clear from another machine could be anyone's: refused before anything starts;
    // and a node that cannot fetch its key set does not start.
    for (bad, why) in [
        ("http://idp.carrier.example/jwks", "https"),
        ("ftp://127.0.0.1/jwks", "https"),
        ("http://127.0.0.1:9/jwks", "cannot fetch"),
    ] {
        std::fs::write(&dirs.config, with_oidc(bad)).unwrap();
        let out = dirs.cli(&["serve", "--listen", "127.0.0.1:0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{bad}: {err}");
    }
    std::fs::write(&dirs.config, with_oidc(&url)).unwrap();
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "debug");
    assert!(fetches.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    s.account(&admin, "C0420003", "courier", Some("O042"), None);
    let me = |t: &str| s.get("/v1/me", Some(t)).status().as_u16();
    assert_eq!(me(&jwt_kid(&old, "2026-11", &claims("C0420003", 300))), 200);

    // The IdP rotates: its set now holds only the new key. A token under the new key id makes the node look
    // again (within seconds, not at the next scheduled refresh ten minutes away); the old key stops working.
    *served.lock().unwrap() = ed25519_jwks("2026-12", &new);
    let fresh = jwt_kid(&new, "2026-12", &claims("C0420003", 300));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while me(&fresh) != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the new key never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(me(&jwt_kid(&old, "2026-11", &claims("C0420003", 300))), 401);
    // A stream of unknown key ids does not turn into a stream of fetches.
    let before = fetches.load(std::sync::atomic::Ordering::SeqCst);
    for i in 0..50 {
        assert_eq!(
            me(&jwt_kid(
                &new,
                &format!("forged-{i}"),
                &claims("C0420003", 300)
            )),
            401
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(fetches.load(std::sync::atomic::Ordering::SeqCst) <= before + 1);

    // A broken set at the endpoint leaves the one in force.
    *served.lock().unwrap() = "{\"keys\": []}".into();
    let _ = me(&jwt_kid(&new, "next", &claims("C0420003", 300)));
    std::thread::sleep(std::time::Duration::from_secs(6));
    let _ = me(&jwt_kid(&new, "next", &claims("C0420003", 300)));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(me(&fresh), 200, "the set in force stays");

    // Each change of the key set is in the audit log, with its key ids.
    let mut changes = Vec::new();
    for seq in 0.. {
        let r = s.get(&format!("/v1/audit/entries/{seq}"), Some(&admin));
        if r.status() != 200 {
            break;
        }
        let text = r.text().unwrap();
        if text.contains("oidc_keys") {
            changes.push(text);
        }
    }
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].contains("kids=2026-11") && changes[1].contains("kids=2026-12"));
    let metrics = s.get("/metrics", None).text().unwrap();
    assert!(
        metrics.contains("wbguard_oidc_jwks_fetch_failures_total 1"),
        "{metrics}"
    );
}
