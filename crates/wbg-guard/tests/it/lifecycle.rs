//! Dormancy: the upkeep suspends accounts idle longer than `dormant_days` — no request, creation or status
//! change since — audited; activity is what the guard saw, recorded in the store; a dormant account comes back
//! only with a reason, and then starts a fresh period.
use std::sync::Arc;
use wbg_core::{AccountStatus, ManualClock};
use wbg_guard::{Actor, Guard, GuardConfig, GuardError, KeyConfig, RequestMeta};
use wbg_vault::MasterKey;

const DAY: i64 = 86_400_000;

/// A guard on a fresh embedded store whose clock a test moves; the clock's start; the store's directory.
fn guard_on_a_manual_clock() -> (Guard, Arc<ManualClock>, i64, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (guard, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        ..GuardConfig::embedded(dir.path().join("data"))
    })
    .unwrap();
    let start = wbg_core::now_millis();
    let clock = Arc::new(ManualClock::new(start));
    (guard.with_clock(clock.clone()), clock, start, dir)
}

#[test]
fn idle_accounts_are_suspended_as_dormant_and_come_back_with_a_reason() {
    let (guard, clock, start, _dir) = guard_on_a_manual_clock();
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let mut tokens = Vec::new();
    for (id, role, outlet) in [
        ("C1", "courier", Some("O001")),
        ("C2", "courier", Some("O001")),
        ("K1", "customer_service", None),
        ("I1", "integration", None),
    ] {
        let (_, t) = guard
            .create_account(local, id, role, outlet, None, &meta)
            .unwrap();
        tokens.push(t);
    }
    // C1 works on day 20; K1 on day 29; the others never.
    clock.set(start + 20 * DAY);
    guard.authenticate(&tokens[0]).unwrap();
    clock.set(start + 29 * DAY);
    guard.authenticate(&tokens[2]).unwrap();
    assert!(
        guard.suspend_dormant(30, &meta).unwrap().is_empty(),
        "nobody idle 30 days yet"
    );

    clock.set(start + 31 * DAY);
    let mut dormant = guard.suspend_dormant(30, &meta).unwrap();
    dormant.sort();
    assert_eq!(
        dormant.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        ["C2", "I1"]
    );
    let c2 = guard.store().account(&dormant[0]).unwrap().unwrap();
    assert_eq!(c2.status, AccountStatus::Suspended);
    assert!(c2.status_reason.unwrap().starts_with("dormant"));
    // The activity reached the store (another node's upkeep would judge by it).
    let stored: Vec<_> = guard.store().last_activity().unwrap();
    assert!(stored
        .iter()
        .any(|(id, at)| id.as_str() == "C1" && *at == start + 20 * DAY));

    // Back only with a reason; then a fresh period starts.
    let err = guard
        .set_status(local, "C2", false, None, &meta)
        .unwrap_err();
    assert!(matches!(err, GuardError::Invalid(_)), "{err:?}");
    guard
        .set_status(local, "C2", false, Some("back from leave"), &meta)
        .unwrap();
    clock.set(start + 52 * DAY);
    let again = guard.suspend_dormant(30, &meta).unwrap();
    assert_eq!(
        again.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        ["C1"],
        "C1 idle since day 20; C2 reinstated on day 31; K1 seen on day 29"
    );
    // Each suspension is on the audit log, under the upkeep's name.
    let (size, _) = guard.store().audit_head().unwrap();
    let entries = guard.store().audit_entries(0, size as usize).unwrap();
    let suspensions = entries
        .iter()
        .filter_map(|e| wbg_audit::AuditEntry::decode(&e.bytes).ok())
        .filter(|e| e.action == "account_suspend" && e.account == "upkeep")
        .count();
    assert_eq!(suspensions, 3);
    // Zero days: never.
    clock.set(start + 400 * DAY);
    assert!(guard.suspend_dormant(0, &meta).unwrap().is_empty());
}

#[test]
fn accounts_not_recertified_by_the_grace_day_of_a_quarter_are_suspended() {
    let (guard, clock, start, _dir) = guard_on_a_manual_clock();
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let (_, admin) = guard
        .create_account(local, "ADM1", "admin", None, None, &meta)
        .unwrap();
    for (id, role, outlet) in [
        ("C1", "courier", Some("O001")),
        ("C2", "courier", Some("O001")),
        ("C3", "courier", Some("O001")),
        ("K1", "customer_service", None),
    ] {
        guard
            .create_account(local, id, role, outlet, None, &meta)
            .unwrap();
    }
    // This quarter began before the store recorded anything: not enforced (an upgrade finds nobody unattested).
    assert!(guard.suspend_unattested(&meta).unwrap().is_empty());
    // Into the next quarter; within its grace period nothing happens.
    let (_, began) = wbg_guard::quarter_of(start);
    let next = wbg_guard::quarter_of(began + 100 * DAY).1;
    clock.set(next + 10 * DAY);
    assert!(guard.suspend_unattested(&meta).unwrap().is_empty());
    // An admin keeps C1, revokes C2 (suspended at once), cannot decide twice or for themselves.
    let kept = guard
        .attest(Actor::Token(&admin), &["C1".into()], true, &meta)
        .unwrap();
    assert_eq!(kept[0].by, "ADM1");
    guard
        .attest(Actor::Token(&admin), &["C2".into()], false, &meta)
        .unwrap();
    let c2 = guard
        .store()
        .account(&"C2".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(c2.status, AccountStatus::Suspended);
    let err = guard
        .attest(Actor::Token(&admin), &["C1".into()], true, &meta)
        .unwrap_err();
    assert!(matches!(err, GuardError::Conflict(_)), "{err:?}");
    let err = guard
        .attest(Actor::Token(&admin), &["ADM1".into()], true, &meta)
        .unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    // After the grace period the rest are suspended, unattested.
    clock.set(next + 31 * DAY);
    let mut out = guard.suspend_unattested(&meta).unwrap();
    out.sort();
    assert_eq!(
        out.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        ["ADM1", "C3", "K1"]
    );
    // Reinstating one (with a reason) recertifies it for the quarter: the upkeep leaves it be.
    guard
        .set_status(local, "K1", false, Some("still on the service desk"), &meta)
        .unwrap();
    assert!(guard.suspend_unattested(&meta).unwrap().is_empty());
    assert_eq!(
        guard
            .attestation("K1", &wbg_guard::quarter_of(next).0)
            .unwrap()
            .unwrap()
            .decision,
        "keep"
    );
}
