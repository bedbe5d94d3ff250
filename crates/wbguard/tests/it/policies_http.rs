//! Policy changes as proposals through real servers: a proposal is validated (errors name the line) and changes
//! nothing until a second admin approves it; then it is in force at once on the approving node and, on
//! PostgreSQL, on a second node within 2 s; any earlier version can be rolled back to; all audited.
use crate::common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NO: &str = "YT2026120200777";

/// The built-in policy, and the same without the rule that gives customer service the masked view.
fn texts() -> (String, String) {
    let builtin = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/wbguard.cedar"
    ))
    .unwrap();
    let start = builtin.find("@id(\"cs-masked\")").unwrap();
    let end = start + builtin[start..].find(";\n").unwrap() + 2;
    let mut stricter = builtin.clone();
    stricter.replace_range(start..end, "");
    (builtin, stricter)
}

fn propose(s: &Server, admin: &str, text: &str) -> reqwest::blocking::Response {
    s.post_text("/v1/policies/proposals", admin, text.to_owned())
}

/// The customer-service agent's view of the waybill (no ticket): `masked` under the built-in policy.
fn cs_view(s: &Server, agent: &str) -> String {
    let r = s.get(
        &format!("/v1/waybills/{NO}?purpose=customer_service"),
        Some(agent),
    );
    let status = r.status().as_u16();
    let v: Value = r.json().unwrap();
    match status {
        200 => v["view"].as_str().unwrap().to_owned(),
        _ => format!("{status}:{}", v["error"]["code"].as_str().unwrap_or("")),
    }
}

fn set_up(s: &Server, admin: &str) -> String {
    let integ = s.account(admin, "I1", "integration", None, None);
    let agent = s.account(admin, "K1", "customer_service", None, None);
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &json!({"waybills": [waybill(NO, "M001", "O001", "O042", "欧阳娜娜", "13912345678", "文三路88号")]}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    agent
}

#[test]
fn a_policy_change_is_proposed_approved_by_a_second_admin_and_rolled_back() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "info");
    let approver = s.approver.clone().unwrap();
    let agent = set_up(&s, &admin);
    let (builtin, stricter) = texts();
    assert_eq!(cs_view(&s, &agent), "masked");

    // A proposal that does not validate is refused with its line; nothing is stored.
    let broken = format!(
        "{stricter}\npermit (principal, action, resource) when {{ context.no_such_fact }};\n"
    );
    let line = broken.lines().count();
    let r = propose(&s, &admin, &broken);
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains(&format!("proposal.cedar:{line}")), "{msg}");
    // A valid one is stored as proposed and changes nothing yet.
    // The agent's reads so far: the one above, and two more, one naming a ticket nobody registered.
    assert_eq!(cs_view(&s, &agent), "masked");
    let r = s.get(
        &format!("/v1/waybills/{NO}?purpose=customer_service&ticket=T-made-up"),
        Some(&agent),
    );
    assert_eq!(r.json::<Value>().unwrap()["view"], "masked");
    let r = propose(&s, &admin, &stricter);
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let proposal: Value = r.json().unwrap();
    let v1 = &proposal["version"];
    assert_eq!(
        (v1["version"].as_u64(), v1["state"].as_str()),
        (Some(1), Some("proposed"))
    );
    assert!(!v1["rules"]
        .as_array()
        .unwrap()
        .contains(&json!("cs-masked")));
    // Its replay names every read whose decision would change: the agent's three masked reads, now refused.
    let replay = &proposal["replay"];
    assert_eq!(replay["changed"], 3, "{replay:#}");
    let change = &replay["changes"][0];
    assert_eq!(
        (
            change["role"].as_str(),
            change["purpose"].as_str(),
            change["from"].as_str(),
            change["to"].as_str()
        ),
        (
            Some("customer_service"),
            Some("customer_service"),
            Some("masked"),
            None
        ),
        "{change:#}"
    );
    assert_eq!(change["rules_before"], json!(["cs-masked"]));
    assert_eq!(change["count"], 3);
    let sample = change["samples"][0].as_u64().unwrap();
    let entry: Value = s
        .get(&format!("/v1/audit/entries/{sample}"), Some(&admin))
        .json()
        .unwrap();
    assert_eq!(entry["account"], "K1", "{entry}");
    assert!(replay["replayed"].as_u64().unwrap() >= 3);
    let again: Value = s
        .post("/v1/policies/1/replay?days=1", Some(&approver), &json!({}))
        .json()
        .unwrap();
    assert_eq!(again["changed"], 3);
    assert_eq!(cs_view(&s, &agent), "masked");
    // Its proposer cannot approve it, nor can anyone but an admin.
    assert_eq!(
        error_code(s.post("/v1/policies/1/approve", Some(&admin), &json!({}))).0,
        403
    );
    assert_eq!(
        error_code(s.post("/v1/policies/1/approve", Some(&agent), &json!({}))).0,
        403
    );
    // The second admin approves: in force at once.
    let r = s.post("/v1/policies/1/approve", Some(&approver), &json!({}));
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    assert_eq!(cs_view(&s, &agent), "404:not_found");
    assert_eq!(
        error_code(s.post("/v1/policies/1/approve", Some(&approver), &json!({}))).0,
        409
    );
    let listed: Value = s.get("/v1/policies", Some(&admin)).json().unwrap();
    assert_eq!(listed["in_force"], 1);
    assert_eq!(listed["versions"][0]["approved_by"], "root-2");
    assert_eq!(
        s.get("/v1/policies/1", Some(&admin)).text().unwrap(),
        stricter
    );

    // Version 2 restores the built-in text; then a rollback to version 1 (which was in force) needs no proposal.
    let r = propose(&s, &approver, &builtin);
    assert_eq!(r.status(), 201);
    // Back to the built-in policy: reads refused under version 1 would be masked again.
    let replay = r.json::<Value>().unwrap()["replay"].clone();
    assert!(
        replay["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["to"] == "masked"),
        "{replay:#}"
    );
    assert_eq!(
        s.post("/v1/policies/2/approve", Some(&admin), &json!({}))
            .status(),
        200
    );
    assert_eq!(cs_view(&s, &agent), "masked");
    let listed: Value = s.get("/v1/policies", Some(&admin)).json().unwrap();
    assert_eq!(listed["versions"][0]["state"], "superseded");
    assert_eq!(
        error_code(s.post("/v1/policies/9/rollback", Some(&admin), &json!({}))).0,
        404
    );
    assert_eq!(
        s.post("/v1/policies/1/rollback", Some(&admin), &json!({}))
            .status(),
        200
    );
    assert_eq!(cs_view(&s, &agent), "404:not_found");
    // A restarted node starts with the version in force.
    drop(s);
    let s = Server::start(&dirs, "info");
    assert_eq!(cs_view(&s, &agent), "404:not_found");
    drop(s);
    dirs.assert_audit_intact();
}

#[test]
fn an_approved_policy_is_in_force_on_every_postgres_node_within_two_seconds() {
    let Some(schema) = Schema::create("wbg_policy") else {
        eprintln!("DATABASE_URL is not set: skipped (.ci/run sets it)");
        return;
    };
    let dirs = Dirs::new("");
    let mut config = std::fs::read_to_string(&dirs.config).unwrap();
    config.push_str(&format!(
        "[store]\nkind = \"postgres\"\nurl = \"{}\"\nmigrate = true\n",
        schema.url()
    ));
    std::fs::write(&dirs.config, config).unwrap();
    dirs.migrate();
    let admin = dirs.create_account("root", "admin", None);
    let nodes = [
        Server::start_node(&dirs, 0, "info"),
        Server::start_node(&dirs, 1, "info"),
    ];
    let approver = nodes[0].approver.clone().unwrap();
    let agent = set_up(&nodes[0], &admin);
    let (_, stricter) = texts();
    assert_eq!(cs_view(&nodes[1], &agent), "masked");
    assert_eq!(propose(&nodes[0], &admin, &stricter).status(), 201);
    let r = nodes[0].post("/v1/policies/1/approve", Some(&approver), &json!({}));
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let approved = Instant::now();
    loop {
        if cs_view(&nodes[1], &agent) == "404:not_found" {
            break;
        }
        assert!(
            approved.elapsed() < Duration::from_secs(2),
            "the second node still runs the old policy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = approved.elapsed();
    eprintln!("in force on the second node after {took:?}");
}
