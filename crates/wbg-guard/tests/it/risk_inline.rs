//! The risk engine sits inline in the guard: the read after a threshold is already capped or refused, the
//! suspension is stored, and an administrator's reinstatement starts the account afresh.
use std::sync::Arc;
use wbg_core::{ManualClock, View};
use wbg_guard::{Actor, Guard, GuardConfig, GuardError, KeyConfig, ReadRequest, RequestMeta};
use wbg_sim::{Carrier, CarrierSpec};
use wbg_store::AlertFilter;
use wbg_vault::MasterKey;

struct Setup {
    guard: Guard,
    clock: Arc<ManualClock>,
    staff: String,
    integration: String,
    admin: String,
    mine: Vec<String>,
    others: Vec<String>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (guard, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        ..GuardConfig::embedded(dir.path().join("data"))
    })
    .unwrap();
    // Simulated time, so that a test can let hours pass.
    let clock = Arc::new(ManualClock::new(wbg_core::now_millis()));
    let guard = guard.with_clock(clock.clone());
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let (_, integration) = guard
        .create_account(local, "I-test", "integration", None, None, &meta)
        .unwrap();
    let (_, admin) = guard
        .create_account(local, "ADM1", "admin", None, None, &meta)
        .unwrap();
    let carrier = Carrier::generate(CarrierSpec::default());
    let batch = carrier.waybills(1, 2_000);
    let outlet = batch[0].destination_outlet.clone();
    let mine_list: Vec<String> = batch
        .iter()
        .filter(|w| w.destination_outlet == outlet)
        .map(|w| w.waybill_no.to_string())
        .collect();
    let batch_origins = batch
        .iter()
        .map(|w| (w.waybill_no.to_string(), w.origin_outlet.clone()))
        .collect();
    let others = batch
        .iter()
        .filter(|w| w.destination_outlet != outlet && w.origin_outlet != outlet)
        .map(|w| w.waybill_no.to_string())
        .collect();
    guard
        .ingest(Actor::Token(&integration), batch, &meta)
        .unwrap();
    // Every parcel bound for the outlet is stuck there in exception (the work that lets its staff see a
    // parcel in full); origins are scanned first so each transition is a valid one.
    let origins: std::collections::HashMap<String, wbg_core::OutletId> = batch_origins;
    for (kind, at_outlet) in [
        (wbg_core::EventType::PickedUp, false),
        (wbg_core::EventType::AtOutlet, true),
        (wbg_core::EventType::Exception, true),
    ] {
        let scans = mine_list
            .iter()
            .map(|no: &String| wbg_guard::ScanEvent {
                waybill_no: no.clone(),
                kind,
                outlet: if at_outlet {
                    outlet.clone()
                } else {
                    origins[no].clone()
                },
                courier: None,
                at: None,
            })
            .collect();
        guard
            .record_events(Actor::Token(&integration), scans, &meta)
            .unwrap();
    }
    let (_, staff) = guard
        .create_account(
            local,
            "S-test",
            "outlet_staff",
            Some(outlet.as_str()),
            None,
            &meta,
        )
        .unwrap();
    Setup {
        guard,
        clock,
        staff,
        integration,
        admin,
        mine: mine_list,
        others,
        _dir: dir,
    }
}

fn read(s: &Setup, no: &str, purpose: &str) -> Result<View, GuardError> {
    s.guard
        .read(
            &s.staff,
            &ReadRequest {
                waybill_no: no,
                purpose,
                ticket: None,
            },
            &RequestMeta::default(),
        )
        .map(|v| v.view)
}

#[test]
fn probing_other_outlets_suspends_and_the_next_request_is_refused() {
    let s = setup();
    let mut outcomes = Vec::new();
    for no in s.others.iter().take(40) {
        outcomes.push(read(&s, no, "exception_handling"));
        if matches!(outcomes.last(), Some(Err(GuardError::AccountSuspended))) {
            break;
        }
    }
    assert!(
        matches!(outcomes.last(), Some(Err(GuardError::AccountSuspended))),
        "suspended within 40 probes: {outcomes:?}"
    );
    // The suspension is stored: the next request, even for the account's own outlet, is refused.
    let acct = s
        .guard
        .store()
        .account(&wbg_core::AccountId::parse("S-test").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(acct.status, wbg_core::AccountStatus::Suspended);
    assert!(matches!(
        read(&s, &s.mine[0], "exception_handling"),
        Err(GuardError::AccountSuspended)
    ));
    // The alerts explain themselves.
    let alerts = s
        .guard
        .store()
        .alerts(&AlertFilter {
            account: Some("S-test".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let suspend = alerts
        .iter()
        .find(|a| a.kind == "risk_suspend")
        .expect("a suspension alert");
    assert_eq!(suspend.severity, "critical");
    let detail: serde_json::Value = serde_json::from_str(&suspend.detail).unwrap();
    assert!(detail["signals"]
        .as_array()
        .unwrap()
        .iter()
        .any(|sig| sig["detector"] == "out_of_scope"));

    // Reinstated by an administrator: the engine starts the account afresh.
    s.guard
        .set_status(
            Actor::Token(&s.admin),
            "S-test",
            false,
            None,
            &RequestMeta::default(),
        )
        .unwrap();
    assert_eq!(
        read(&s, &s.mine[0], "exception_handling").unwrap(),
        View::Full
    );
}

#[test]
fn bulk_reads_are_stepped_down_to_masked_before_fifty_records() {
    let s = setup();
    let mut full = 0;
    let mut views = Vec::new();
    for no in &s.mine {
        match read(&s, no, "exception_handling") {
            Ok(View::Full) => full += 1,
            Ok(v) => views.push(v),
            Err(_) => break,
        }
    }
    assert!(full <= 50, "{full} full records before containment");
    assert!(
        views.contains(&View::Masked),
        "capped to masked before suspension"
    );
}

#[test]
fn a_masked_account_recovers_full_views_once_its_scores_decay() {
    // Staff reading their outlet's registered exceptions are doing their job, which the engine leaves alone;
    // an agent's full views on tickets are what it scores. Each read here is on a ticket of its own, registered
    // by the ticketing system, so the policy grants the full view and only the engine can cap it.
    let s = setup();
    let meta = RequestMeta::default();
    let (_, agent) = s
        .guard
        .create_account(
            Actor::Local("test"),
            "K-test",
            "customer_service",
            None,
            None,
            &meta,
        )
        .unwrap();
    let mut ticket = 0;
    let mut read = |no: &str| {
        ticket += 1;
        let id = format!("T-{ticket}");
        s.guard
            .open_ticket(
                Actor::Token(&s.integration),
                &wbg_guard::TicketRegistration {
                    ticket: id.clone(),
                    waybills: vec![no.to_owned()],
                    opened_at: None,
                    assignee: None,
                },
                &meta,
            )
            .unwrap();
        s.guard
            .read(
                &agent,
                &ReadRequest {
                    waybill_no: no,
                    purpose: "customer_service",
                    ticket: Some(&id),
                },
                &meta,
            )
            .map(|v| v.view)
            .unwrap()
    };
    let mut reads = s.others.iter();
    let start = wbg_core::Clock::now(s.clock.as_ref());
    // A burst of ticket reads, a second apart, until the engine caps the account.
    let mut i = 0;
    loop {
        let no = reads.next().expect("capped before running out of waybills");
        s.clock.set(start + i * 1_000);
        i += 1;
        if read(no) == View::Masked {
            break;
        }
    }
    let no = reads.next().unwrap();
    assert_eq!(read(no), View::Masked);
    // Six quiet hours later (on the guard's clock) the fast score has decayed, but the slow one still holds the
    // burst above half its mask threshold: still masked.
    s.clock.set(start + i * 1_000 + 6 * 3_600_000);
    let no = reads.next().unwrap();
    assert_eq!(read(no), View::Masked);
    // Three quiet days later both have decayed: full views again.
    s.clock.set(start + i * 1_000 + 72 * 3_600_000);
    let no = reads.next().unwrap();
    assert_eq!(read(no), View::Full);
}
