//! A PostgreSQL-backed node stops cleanly on SIGTERM after serving: its final checkpoint is signed and it exits
//! 0. It used to panic twice over: signing that checkpoint nested the store's runtime inside the server's, and
//! dropping the store dropped its runtime inside the server's. With a NATS bus it panicked a third way (until
//! 2026-12-06): dropping the bus's publisher dropped its runtime inside the server's.
use crate::common;

use common::*;
use serde_json::json;

#[test]
fn a_postgres_node_stops_cleanly_on_sigterm() {
    let Some(schema) = Schema::create("wbg_stop") else {
        eprintln!("DATABASE_URL is not set: the PostgreSQL stop test did not run");
        return;
    };
    let dirs = Dirs::new("");
    std::fs::write(
        &dirs.config,
        format!(
            "listen = \"127.0.0.1:0\"\n[store]\nkind = \"postgres\"\nurl = \"{}\"\nmigrate = true\n",
            schema.url()
        ),
    )
    .unwrap();
    serve_then_stop(&dirs);
}

#[test]
fn a_postgres_node_with_a_bus_stops_cleanly_on_sigterm() {
    let dirs = Dirs::new("");
    let Some((_schema, bus)) = pg_and_nats(&dirs, "stopbus", 1, 3_600) else {
        return;
    };
    dirs.migrate();
    serve_then_stop(&dirs);
    wbg_bus::delete_stream(&bus).unwrap();
}

/// Starts a node on `dirs`, has it ingest, scan (a batch and single events) and serve a guarded read, stops it
/// with SIGTERM, and checks that it exited 0 with its final checkpoint signed and no panic.
fn serve_then_stop(dirs: &Dirs) {
    let admin = dirs.create_account("root", "admin", None);
    let mut s = Server::start(dirs, "info");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let courier = s.account(&admin, "C2a", "courier", Some("O2"), None);
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &waybill("W1", "M1", "O1", "O2", "王芳", "13800135678", "科技园1号"),
    );
    assert_eq!(r.status(), 201);
    // A batch of scans, then a guarded read: both through the node's group commit.
    let r = s.post(
        "/v1/events",
        Some(&integ),
        &json!({"events": [{"waybill_no": "W1", "type": "picked_up", "outlet": "O1"}]}),
    );
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    for (kind, outlet, c) in [
        ("at_outlet", "O2", None),
        ("out_for_delivery", "O2", Some("C2a")),
    ] {
        let r = s.post(
            "/v1/waybills/W1/events",
            Some(&integ),
            &json!({"type": kind, "outlet": outlet, "courier": c}),
        );
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    }
    let r = s.get("/v1/waybills/W1?purpose=delivery", Some(&courier));
    assert_eq!(r.status(), 200);

    let pid = s.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = s.child.wait().unwrap();
    let log = s.log_text();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("final checkpoint signed"), "{log}");
    dirs.assert_audit_intact();
}
