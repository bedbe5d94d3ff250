//! The console's sign-in at the carrier's identity provider over real HTTP: `/console/oidc/start` sends the
//! browser to the provider with PKCE, a nonce and a state bound to the browser by a cookie; the callback
//! exchanges the code (with the verifier) at the token endpoint — here the test's own provider on loopback — and
//! the ID token opens a console session as a pasted token would. A wrong state, a missing cookie, a replayed
//! answer, a token with another nonce or for an unknown account, and a refused code all open nothing.
use crate::common;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use common::{ed25519_jwks, jwt_kid, Dirs, Server};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

const ISSUER: &str = "https://idp.carrier.example";
const AUDIENCE: &str = "waybill-guard";

/// What the test's provider answers for each code it issued: the PKCE challenge the code was issued under and
/// the claims of the ID token it hands out.
type Codes = Arc<Mutex<HashMap<String, (String, Value)>>>;

/// The provider's token endpoint on loopback: a code it issued, with the right verifier, gets its ID token once.
fn token_endpoint(key: SigningKey, codes: Codes) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let form: HashMap<String, String> =
                reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(&body)))
                    .unwrap()
                    .query_pairs()
                    .into_owned()
                    .collect();
            let issued = codes
                .lock()
                .unwrap()
                .remove(form.get("code").map_or("", |c| c));
            let answer = match issued {
                Some((challenge, claims))
                    if form.get("grant_type").map(String::as_str) == Some("authorization_code")
                        && form.get("client_id").map(String::as_str) == Some(AUDIENCE)
                        && B64.encode(Sha256::digest(
                            form.get("code_verifier").map_or("", |v| v).as_bytes(),
                        )) == challenge =>
                {
                    (
                        200,
                        json!({"id_token": jwt_kid(&key, "k1", &claims), "token_type": "Bearer"}),
                    )
                }
                _ => (400, json!({"error": "invalid_grant"})),
            };
            let text = answer.1.to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                answer.0,
                text.len()
            );
        }
    });
    url
}

fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A sign-in started: the provider's URL's parameters and the state cookie the node set.
fn start(s: &Server) -> (HashMap<String, String>, String) {
    let r = no_redirects()
        .get(format!("{}/console/oidc/start", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to.starts_with("https://idp.carrier.example/authorize?"),
        "{to}"
    );
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let state_cookie = cookie.split(';').next().unwrap().to_owned();
    let params = reqwest::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    (params, state_cookie)
}

fn claims(account: &str, nonce: &str) -> Value {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    json!({"iss": ISSUER, "aud": AUDIENCE, "employee_no": account, "exp": exp, "nonce": nonce, "sub": "idp-subject"})
}

#[test]
fn the_console_signs_in_at_the_identity_provider_with_pkce_and_a_bound_state() {
    let idp = SigningKey::from_bytes(&[11u8; 32]);
    let codes: Codes = Arc::default();
    let token_url = token_endpoint(idp.clone(), codes.clone());
    let dirs = Dirs::new("");
    let jwks = dirs.root.path().join("jwks.json");
    std::fs::write(&jwks, ed25519_jwks("k1", &idp)).unwrap();
    let mut config = std::fs::read_to_string(&dirs.config).unwrap();
    config.push_str(&format!(
        "[credentials.oidc]\njwks_file = {:?}\nissuer = {ISSUER:?}\naudience = {AUDIENCE:?}\n\
         account_claim = \"employee_no\"\nauthorization_endpoint = \"https://idp.carrier.example/authorize\"\n\
         token_endpoint = {token_url:?}\nredirect_uri = \"http://127.0.0.1/console/oidc/callback\"\n",
        jwks.to_str().unwrap()
    ));
    std::fs::write(&dirs.config, config).unwrap();
    let admin = dirs.create_account("ROOT1", "admin", None);
    let s = Server::start(&dirs, "info");
    s.account(&admin, "AUD1", "auditor", None, None);
    let options: Value = s.get("/console/sign-in-options", None).json().unwrap();
    assert_eq!(options["identity_provider"], true);

    // The request to the provider: code flow, PKCE (S256), a nonce, this service's client and callback.
    let (p, state_cookie) = start(&s);
    assert_eq!(p["response_type"], "code");
    assert_eq!(p["client_id"], AUDIENCE);
    assert_eq!(p["scope"], "openid");
    assert_eq!(p["code_challenge_method"], "S256");
    assert_eq!(p["redirect_uri"], "http://127.0.0.1/console/oidc/callback");
    assert!(p["state"].len() >= 40 && p["nonce"].len() >= 40 && p["code_challenge"].len() == 43);
    assert_eq!(state_cookie, format!("wbg_oidc_state={}", p["state"]));
    let callback = |code: &str, state: &str, cookie: Option<&str>| {
        let mut rb = no_redirects().get(format!(
            "{}/console/oidc/callback?code={code}&state={state}&iss=x",
            s.base
        ));
        if let Some(c) = cookie {
            rb = rb.header("cookie", c);
        }
        rb.send().unwrap()
    };
    // The provider signed the user in and issued a code for this sign-in's challenge.
    codes.lock().unwrap().insert(
        "code-1".into(),
        (p["code_challenge"].clone(), claims("AUD1", &p["nonce"])),
    );
    // Without the browser's state cookie (another browser, a forged link), nothing opens — and the sign-in it
    // named is spent.
    assert_eq!(callback("code-1", &p["state"], None).status(), 400);
    assert_eq!(
        callback("code-1", &p["state"], Some(&state_cookie)).status(),
        400,
        "spent"
    );

    let (p, state_cookie) = start(&s);
    codes.lock().unwrap().insert(
        "code-2".into(),
        (p["code_challenge"].clone(), claims("AUD1", &p["nonce"])),
    );
    assert_eq!(
        callback("code-2", "not-the-state", Some(&state_cookie)).status(),
        400
    );
    let r = callback("code-2", &p["state"], Some(&state_cookie));
    assert_eq!(r.status(), 303, "{}", r.text().unwrap_or_default());
    assert_eq!(r.headers()["location"], "/console");
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("wbg_console="))
        .unwrap_or_else(|| panic!("{cookies:?}"));
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    assert!(cookies
        .iter()
        .any(|c| c.starts_with("wbg_oidc_state=;") && c.contains("Max-Age=0")));
    let session = session.split(';').next().unwrap();
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/console/session", s.base))
        .header("cookie", session)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().unwrap();
    assert_eq!(
        (info["account"].as_str(), info["role"].as_str()),
        (Some("AUD1"), Some("auditor"))
    );
    // The session works the API as the auditor.
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/v1/alerts", s.base))
        .header("cookie", session)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // The same answer again opens nothing.
    assert_eq!(
        callback("code-2", &p["state"], Some(&state_cookie)).status(),
        400
    );

    // A token for another sign-in (its nonce), for an account the store does not have, or a code the provider
    // refuses: nothing opens.
    for (code, who, nonce_of_other) in [
        ("code-3", "AUD1", true),
        ("code-4", "NOBODY", false),
        ("code-5", "AUD1", false),
    ] {
        let (p, state_cookie) = start(&s);
        let nonce = if nonce_of_other {
            "another-sign-ins-nonce".to_owned()
        } else {
            p["nonce"].clone()
        };
        if code != "code-5" {
            codes.lock().unwrap().insert(
                code.into(),
                (p["code_challenge"].clone(), claims(who, &nonce)),
            );
        }
        let r = callback(code, &p["state"], Some(&state_cookie));
        assert_eq!(r.status(), 401, "{code}");
        assert!(r.headers().get("set-cookie").is_none(), "{code}");
    }

    // Audited as a sign-in through the provider.
    let auditor_token = s.account(&admin, "AUD2", "auditor", None, None);
    let page: Value = s
        .get(
            "/v1/audit/entries?action=console_sign_in&account=AUD1",
            Some(&auditor_token),
        )
        .json()
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{page}");
    assert_eq!(entries[0]["detail"], "via=oidc");
    assert!(!s.log_text().contains("code-2"), "no code in the log");
}
