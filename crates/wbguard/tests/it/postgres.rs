//! The whole product on the PostgreSQL store: `wbguard migrate`, accounts from the CLI, a server that ingests,
//! records events and serves guarded reads, and `wbguard audit verify` over the log in PostgreSQL. Runs when
//! `DATABASE_URL` is set (`.ci/run` sets it), in a schema of its own that is dropped afterwards.
use crate::common;

use common::*;
use serde_json::{json, Value};

const NO: &str = "YT2026120100077";
const IDP: &str = "https://idp.carrier.example";

#[test]
fn the_guard_runs_on_postgres() {
    let Some(schema) = Schema::create("wbg_e2e") else {
        eprintln!(
            "DATABASE_URL is not set: the PostgreSQL store is not tested here (.ci/run sets it)"
        );
        return;
    };
    let url = schema.url();
    let dirs = Dirs::new("");
    let mut config = std::fs::read_to_string(&dirs.config).unwrap();
    config.push_str(&format!("[store]\nkind = \"postgres\"\nurl = \"{url}\"\n"));
    // The carrier's identity provider, so that a read by one of its users (known by account id, not by token)
    // takes PostgreSQL's way for those too.
    let idp = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let jwks = dirs.root.path().join("jwks.json");
    std::fs::write(&jwks, ed25519_jwks("k1", &idp)).unwrap();
    config.push_str(&format!(
        "[credentials.oidc]\njwks_file = {:?}\nissuer = \"{IDP}\"\naudience = \"waybill-guard\"\n",
        path_str(&jwks)
    ));
    std::fs::write(&dirs.config, config).unwrap();

    // (Before `wbguard init`, which would migrate it.)
    let out = dirs.cli_in(&["accounts", "list"], &dirs.data);
    assert!(
        !out.status.success(),
        "a database behind the schema is refused before migrating"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("wbguard migrate"));
    let out = dirs.migrate();
    assert!(String::from_utf8_lossy(&out.stdout).contains("schema version 10"));

    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let courier = s.account(&admin, "C0420001", "courier", Some("O042"), None);
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &waybill(
            NO,
            "M001",
            "O001",
            "O042",
            "欧阳娜娜",
            "13912345678",
            "文三路88号",
        ),
    );
    assert_eq!(r.status(), 201);
    for (kind, outlet, c) in [
        ("picked_up", "O001", None),
        ("at_outlet", "O042", None),
        ("out_for_delivery", "O042", Some("C0420001")),
    ] {
        let r = s.post(
            &format!("/v1/waybills/{NO}/events"),
            Some(&integ),
            &json!({"type": kind, "outlet": outlet, "courier": c}),
        );
        assert_eq!(r.status(), 200);
    }
    let view: Value = s
        .get(
            &format!("/v1/waybills/{NO}?purpose=delivery"),
            Some(&courier),
        )
        .json()
        .unwrap();
    assert_eq!(view["view"], "full");
    assert_eq!(view["recipient"]["phone"], "13912345678");
    // The same read by the courier signed in at the identity provider; an account it names that does not exist
    // reads nothing.
    let signed_in = |account: &str| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 300;
        let claims = json!({"iss": IDP, "aud": "waybill-guard", "sub": account, "exp": exp});
        jwt_kid(&idp, "k1", &claims)
    };
    let by_idp: Value = s
        .get(
            &format!("/v1/waybills/{NO}?purpose=delivery"),
            Some(&signed_in("C0420001")),
        )
        .json()
        .unwrap();
    for field in [
        "view",
        "status",
        "courier",
        "history",
        "recipient",
        "sender",
    ] {
        assert_eq!(by_idp[field], view[field], "{field}");
    }
    assert_eq!(by_idp["history"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        error_code(s.get(
            &format!("/v1/waybills/{NO}?purpose=delivery"),
            Some(&signed_in("C0420999")),
        ))
        .0,
        401
    );
    let (status, _) = error_code(s.post(
        "/v1/waybills",
        Some(&integ),
        &waybill(
            NO,
            "M001",
            "O001",
            "O042",
            "欧阳娜娜",
            "13912345678",
            "文三路88号",
        ),
    ));
    assert_eq!(
        status, 409,
        "a number that exists is refused by the database too"
    );
    drop(s);

    // The log lives in PostgreSQL and verifies against the checkpoints the server signed there.
    dirs.assert_audit_intact();
    assert!(
        !dirs.data.join("wbguard.db").exists(),
        "nothing went to an embedded store"
    );

    // A leak of that record is attributed from the access index PostgreSQL keeps for every node: the courier
    // who read it in full comes first, and no node copied the log into an index file of its own.
    let leak = dirs.root.path().join("leak.csv");
    std::fs::write(
        &leak,
        "name,phone,address\n欧阳娜娜,13912345678,文三路88号\n",
    )
    .unwrap();
    let out = dirs.cli(&["attribute", "--leak", path_str(&leak), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["matched"], 1, "{report:#}");
    assert_eq!(report["suspects"][0]["principal"], "C0420001", "{report:#}");
    assert!(
        !dirs.data.join("forensics.db").exists(),
        "the access index is the store's, not this node's"
    );
}
