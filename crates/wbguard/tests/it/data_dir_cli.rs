//! The data directory as an operator meets it: only `wbguard init` makes a store or keys (a mistyped `--data`
//! or `--keys` is an error that creates nothing), and one process at a time holds a data directory for the
//! commands that need it alone — `serve`, `keys rotate`, `retention run` — so a rotation cannot re-wrap keys
//! under a server that still holds the old master key, and two servers cannot split an attacker's reads
//! between two risk engines.
use crate::common;

use common::*;
use std::process::Command;

/// `wbguard ARGS --data DATA --keys KEYS`, nothing from the environment.
fn run(args: &[&str], data: &std::path::Path, keys: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .args(["--data", path_str(data), "--keys", path_str(keys)])
        .env_remove("WBGUARD_MASTER_KEY")
        .env_remove("WBGUARD_AUDIT_KEY")
        .env_remove("WBGUARD_KEY_DIR")
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn only_init_creates_a_store_or_keys() {
    let root = tempfile::tempdir().unwrap();
    let (data, keys) = (root.path().join("data"), root.path().join("keys"));
    // Before init: every command that opens a store refuses, and creates neither directory.
    for args in [
        &["accounts", "list"][..],
        &["accounts", "create", "--id", "root", "--role", "admin"],
        &["audit", "verify"],
        &["import", "/dev/null"],
    ] {
        let out = run(args, &data, &keys);
        assert!(!out.status.success(), "{args:?} succeeded on no store");
        assert!(
            stderr(&out).contains("wbguard init"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            !data.exists() && !keys.exists(),
            "{args:?} created something"
        );
    }
    let out = run(&["init"], &data, &keys);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(keys.join("master.key").exists() && keys.join("audit-signing.key").exists());
    let out = run(
        &["accounts", "create", "--id", "root", "--role", "admin"],
        &data,
        &keys,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // A second init changes nothing: the keys stay the ones the store was made with.
    let key = std::fs::read(keys.join("master.key")).unwrap();
    let out = run(&["init"], &data, &keys);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("initialised already"));
    assert_eq!(std::fs::read(keys.join("master.key")).unwrap(), key);

    // A typo in --data or --keys on a store that exists: refused, nothing created.
    let typo = root.path().join("dta");
    let out = run(&["accounts", "list"], &typo, &keys);
    assert!(!out.status.success());
    assert!(!typo.exists());
    let wrong_keys = root.path().join("kyes");
    let out = run(&["accounts", "list"], &data, &wrong_keys);
    assert!(!out.status.success());
    assert!(!wrong_keys.exists(), "a mistyped key directory was created");
    let out = run(&["serve", "--listen", "127.0.0.1:0"], &data, &wrong_keys);
    assert!(!out.status.success());
    assert!(!wrong_keys.exists(), "serve created keys");
    // init on a store that exists never makes keys for it either.
    let out = run(&["init"], &data, &wrong_keys);
    assert!(!out.status.success());
    assert!(!wrong_keys.join("master.key").exists());
}

#[test]
fn a_data_directory_serves_one_process_that_needs_it_alone() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "warn");
    let key = std::fs::read(dirs.keys.join("master.key")).unwrap();
    for args in [
        &["keys", "rotate"][..],
        &["retention", "run"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let out = dirs.cli(args);
        assert!(!out.status.success(), "{args:?} ran beside a server");
        assert!(
            stderr(&out).contains("another wbguard process"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(std::fs::read(dirs.keys.join("master.key")).unwrap(), key);
    // The server is unharmed, and once it is gone the directory is free again.
    assert_eq!(s.get("/v1/me", Some(&admin)).status(), 200);
    drop(s);
    let out = dirs.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A PostgreSQL node without its data directory used to start and log an error every second; it is refused at
/// start now, naming `wbguard init`, which makes the directory beside the shared store.
#[test]
fn a_postgres_node_without_its_data_directory_is_refused_at_start() {
    let Some(schema) = Schema::create("wbg_nodata") else {
        eprintln!("DATABASE_URL is not set: not tested here (.ci/run sets it)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (data, keys, config) = (
        root.path().join("data"),
        root.path().join("keys"),
        root.path().join("wbguard.toml"),
    );
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[store]\nkind = \"postgres\"\nurl = \"{}\"\n",
            schema.url()
        ),
    )
    .unwrap();
    let with = |args: &[&str], data: &std::path::Path| {
        let mut all = args.to_vec();
        all.extend(["--config", path_str(&config)]);
        run(&all, data, &keys)
    };
    let out = with(&["init"], &data);
    assert!(out.status.success(), "{}", stderr(&out));
    let elsewhere = root.path().join("node2");
    let out = with(&["serve"], &elsewhere);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("wbguard init"), "{}", stderr(&out));
    assert!(!elsewhere.exists());
    // `init` there makes the second node's directory and no new keys.
    let key = std::fs::read(keys.join("master.key")).unwrap();
    let out = with(&["init"], &elsewhere);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(elsewhere.is_dir());
    assert_eq!(std::fs::read(keys.join("master.key")).unwrap(), key);
}

/// On PostgreSQL every node has a data directory of its own, so its `flock` cannot stop a key rotation on
/// another machine; the store's node lock does: held shared by every serving node, taken alone by the rotation.
#[test]
fn a_key_rotation_waits_for_every_postgres_node_to_stop() {
    let Some(schema) = Schema::create("wbg_nodelock") else {
        eprintln!("DATABASE_URL is not set: not tested here (.ci/run sets it)");
        return;
    };
    let dirs = Dirs::new("");
    let mut c = std::fs::read_to_string(&dirs.config).unwrap();
    c.push_str(&format!(
        "[store]\nkind = \"postgres\"\nurl = \"{}\"\n",
        schema.url()
    ));
    std::fs::write(&dirs.config, c).unwrap();
    dirs.create_account("root", "admin", None);
    // Node 1 serves from another data directory than the one the operator rotates from.
    let node = Server::start_node(&dirs, 1, "warn");
    let key = std::fs::read(dirs.keys.join("master.key")).unwrap();
    let out = dirs.cli(&["keys", "rotate"]);
    assert!(
        !out.status.success(),
        "a rotation ran beside a serving node"
    );
    assert!(stderr(&out).contains("stop every node"), "{}", stderr(&out));
    assert_eq!(std::fs::read(dirs.keys.join("master.key")).unwrap(), key);
    drop(node);
    let out = dirs.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(std::fs::read(dirs.keys.join("master.key")).unwrap(), key);
}
