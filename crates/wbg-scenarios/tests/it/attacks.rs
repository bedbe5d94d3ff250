//! Every built-in T1–T4 variant, inside a small carrier's week, through the real guard: each is contained with
//! at most 50 full records taken — customer-service and staff accounts, whose full views need registered work,
//! at most 10 — or is never granted a full record at all; and the honest accounts around them are left alone.
use wbg_scenarios::{builtin, scenarios, simulate, write_leaks, SimSpec, World};

fn world(spec: &SimSpec, dir: &std::path::Path) -> World {
    World::scratch(&dir.join("data"), spec).unwrap()
}

/// An attack is bounded. An agent or member of staff can claim work but not register it, so the policy holds
/// it to the registered work around it: at most 10 full records, whether or not the engine ever had cause to
/// contain it (a member of staff reading the parcels really in exception at its outlet is doing the job as
/// far as anyone can tell). Every other attack is detected and contained with at most 50.
fn assert_bounded(w: &World, o: &wbg_scenarios::AttackOutcome) {
    let id = wbg_core::AccountId::parse(&o.account).unwrap();
    let role = w.guard().store().account(&id).unwrap().unwrap().role;
    if matches!(
        role,
        wbg_core::Role::CustomerService | wbg_core::Role::OutletStaff
    ) {
        assert!(o.records_exposed <= 10, "{o:?}");
    } else {
        assert!(o.records_exposed <= 50, "{o:?}");
        assert!(o.detected && o.seconds_to_containment.is_some(), "{o:?}");
    }
}

#[test]
fn every_builtin_variant_is_contained_within_fifty_records() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SimSpec::small(5);
    let mut w = world(&spec, dir.path());
    let (reports, outcomes) =
        simulate(&mut w, &spec, &builtin(), &scenarios("all").unwrap()).unwrap();
    for o in &outcomes {
        println!(
            "{:24} {:8} reads {:5} masked {:5} refused {:5} exposed {:4} detected {} {:?} after {:?} s by {:?}",
            o.name, o.account, o.reads, o.masked, o.refused, o.records_exposed, o.detected,
            o.containment, o.seconds_to_containment, o.detectors
        );
    }
    println!("{}", serde_json::to_string_pretty(&reports[0]).unwrap());
    for o in &outcomes {
        assert_bounded(&w, o);
    }
    let benign = &reports[0];
    assert_eq!(benign.scenario, "benign");
    assert_eq!(benign.benign_suspended, 0, "{benign:?}");

    // The leak files carry each haul with its ground truth.
    let leaks = dir.path().join("leaks");
    write_leaks(&w, &outcomes, &leaks).unwrap();
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(leaks.join("ground_truth.json")).unwrap()).unwrap();
    assert_eq!(truth.as_array().unwrap().len(), outcomes.len());
}

#[test]
fn the_example_attack_file_is_contained_too() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/attacks.toml"
    ))
    .unwrap();
    let attacks = wbg_scenarios::AttackFile::from_toml(&text).unwrap().attack;
    assert!(attacks.len() >= 6);
    let dir = tempfile::tempdir().unwrap();
    let spec = SimSpec::small(9);
    let mut w = world(&spec, dir.path());
    let (reports, outcomes) =
        simulate(&mut w, &spec, &attacks, &scenarios("all").unwrap()).unwrap();
    for o in &outcomes {
        println!(
            "{:24} {:8} reads {:5} masked {:5} refused {:5} exposed {:4} detected {} {:?} after {:?} s by {:?}",
            o.name, o.account, o.reads, o.masked, o.refused, o.records_exposed, o.detected,
            o.containment, o.seconds_to_containment, o.detectors
        );
    }
    for o in &outcomes {
        assert_bounded(&w, o);
    }
    assert_eq!(reports[0].benign_suspended, 0, "{:?}", reports[0]);
}
