//! A week of an ordinary carrier, edge cases included, through the real guard: nobody is suspended.
use wbg_scenarios::{run_benign, SimSpec, World};

#[test]
fn a_week_of_ordinary_work_suspends_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SimSpec::small(11);
    let mut world = World::scratch(&dir.path().join("data"), &spec).unwrap();
    let r = run_benign(&mut world, &spec).unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert_eq!(r.days, 7);
    assert!(r.operations > 20_000, "{}", r.operations);
    assert_eq!(r.benign_suspended, 0, "{r:?}");
    // Alerts are allowed (people do odd things) but must stay rare: under one per 100 account-days here.
    assert!(r.benign_alerts_per_10k_account_days <= 100.0, "{r:?}");

    // The edge cases by name: the staff member transferred on day 3 works at the new outlet, unflagged; the
    // night-shift outlet's couriers, the covering courier, the agent with a burst of tickets and the merchants
    // with label runs raised nothing.
    let store = world.guard().store();
    let moved = store
        .account(&wbg_core::AccountId::parse("S00301").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(moved.outlet.unwrap().as_str(), "O004");
    for id in ["S00301", "C00101", "C00201", "K001", "U002", "U004", "P001"] {
        let alerts = store
            .alerts(&wbg_store::AlertFilter {
                account: Some(id.into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert!(alerts.is_empty(), "{id}: {alerts:?}");
    }
}

#[test]
fn days_at_a_real_couriers_volume_suspend_nobody() {
    // 300 parcels a courier a day, as in life: busy outlets whose staff handle 30 exceptions a day each, couriers
    // re-checking the odd delivery, print stations printing thousands of labels at a printer's pace.
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SimSpec::small(12);
    spec.carrier.outlets = 2;
    spec.carrier.couriers_per_outlet = 10;
    spec.deliveries_per_courier = 300;
    spec.days = 3;
    spec.peak_days = vec![];
    let mut world = World::scratch(&dir.path().join("data"), &spec).unwrap();
    let r = run_benign(&mut world, &spec).unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert!(r.operations > 100_000, "{}", r.operations);
    assert_eq!(r.benign_suspended, 0, "{r:?}");
    assert!(r.benign_alerts_per_10k_account_days <= 500.0, "{r:?}");
}
