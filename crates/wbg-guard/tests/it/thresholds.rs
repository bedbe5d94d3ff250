//! Risk thresholds are changed the way suppressions are: backtested over the log's last 30 days first ("would
//! hide N alerts, M of them confirmed"), applied with a reason, refused when they would hide confirmed alerts
//! unless accepted, kept in the store (a restart keeps them) and in force at once.
use std::sync::Arc;
use wbg_core::{ManualClock, View};
use wbg_guard::{
    Actor, Guard, GuardConfig, GuardError, KeyConfig, ReadRequest, RequestMeta, ThresholdProposal,
    TriageRequest,
};
use wbg_risk::Thresholds;
use wbg_sim::{Carrier, CarrierSpec};
use wbg_store::AlertFilter;
use wbg_vault::MasterKey;

const META: RequestMeta = RequestMeta {
    device: None,
    ip: None,
};

fn open(data: &std::path::Path, master: [u8; 32], clock: Arc<ManualClock>) -> Guard {
    let (guard, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::from_bytes(master),
            signer: None,
        },
        ..GuardConfig::embedded(data)
    })
    .unwrap();
    guard.with_clock(clock)
}

fn proposal(t: Thresholds, reason: Option<&str>, accept: bool) -> ThresholdProposal {
    ThresholdProposal {
        burst: Some(t),
        drift: Some(t),
        reason: reason.map(str::to_owned),
        accept_confirmed: accept,
    }
}

#[test]
fn a_threshold_change_is_backtested_before_it_is_applied_and_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let master = [5u8; 32];
    let clock = Arc::new(ManualClock::new(wbg_core::now_millis() - 3 * 86_400_000));
    let g = open(&data, master, clock.clone());
    let local = Actor::Local("test");
    let make = |id: &str, role: &str, outlet: Option<&str>| {
        g.create_account(local, id, role, outlet, None, &META)
            .unwrap()
            .1
    };
    let integration = make("I1", "integration", None);
    let auditor = make("A1", "auditor", None);
    let admin = make("ADM1", "admin", None);
    let carrier = Carrier::generate(CarrierSpec::default());
    let batch = carrier.waybills(1, 1_000);
    let outlet = batch[0].destination_outlet.clone();
    let others: Vec<String> = batch
        .iter()
        .filter(|w| w.destination_outlet != outlet && w.origin_outlet != outlet)
        .map(|w| w.waybill_no.to_string())
        .collect();
    g.ingest(Actor::Token(&integration), batch, &META).unwrap();
    let staff = make("S1", "outlet_staff", Some(outlet.as_str()));
    // Three days ago a member of staff probed other outlets' parcels until the engine suspended it.
    for no in others.iter().take(40) {
        clock.set(wbg_core::Clock::now(&*clock) + 2_000);
        let r = g.read(
            &staff,
            &ReadRequest {
                waybill_no: no,
                purpose: "exception_handling",
                ticket: None,
            },
            &META,
        );
        if matches!(r, Err(GuardError::AccountSuspended)) {
            break;
        }
    }
    let raised = g
        .store()
        .alerts(&AlertFilter {
            account: Some("S1".into()),
            limit: 100,
            ..AlertFilter::default()
        })
        .unwrap();
    let first = raised
        .iter()
        .find(|a| a.kind == "risk_alert")
        .expect("the probing raised an alert");
    g.triage_alert(
        Actor::Token(&auditor),
        first.id,
        &TriageRequest {
            state: Some("confirmed".into()),
            reason: "confirmed_leak".into(),
            assignee: None,
            note: None,
            revision: None,
        },
        &META,
    )
    .unwrap();
    clock.set(wbg_core::now_millis());

    // The staff member's scores after each of its reads, replayed from the log: rising to the suspension, with
    // the detectors that drove them; the live engine has it suspended too.
    let now = wbg_core::now_millis();
    let path = g
        .score_path(Actor::Token(&admin), "S1", now - 7 * 86_400_000, now, &META)
        .unwrap();
    assert!(path.points.len() >= 10, "{}", path.points.len());
    assert!(path.points.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(path.points.last().unwrap().level, "suspended");
    assert!(path.points.last().unwrap().burst >= path.thresholds.burst.suspend);
    assert!(!path.detectors.is_empty() && path.detectors.iter().all(|d| d.signals > 0));
    assert!(path.live.is_some());
    assert!(matches!(
        g.score_path(Actor::Token(&staff), "S1", now - 86_400_000, now, &META),
        Err(GuardError::AccountSuspended | GuardError::Forbidden(_))
    ));
    assert!(matches!(
        g.score_path(
            Actor::Token(&admin),
            "S1",
            now - 40 * 86_400_000,
            now,
            &META
        ),
        Err(GuardError::Invalid(_))
    ));

    // Thresholds so high nothing would have been seen: the backtest says what that hides.
    let blind = Thresholds {
        alert: 500.0,
        mask: 600.0,
        suspend: 700.0,
    };
    assert!(matches!(
        g.backtest_thresholds(Actor::Token(&admin), &proposal(blind, None, false), &META),
        Err(GuardError::Forbidden(_))
    ));
    let bt = g
        .backtest_thresholds(Actor::Token(&auditor), &proposal(blind, None, false), &META)
        .unwrap();
    assert!(bt.reads >= 10, "{bt:?}");
    assert!(
        bt.under_current.alerts >= 1 && bt.under_current.suspensions == 1,
        "{bt:?}"
    );
    assert_eq!(
        (bt.under_proposal.alerts, bt.under_proposal.suspensions),
        (0, 0),
        "{bt:?}"
    );
    assert_eq!(bt.hidden, bt.under_current.alerts);
    assert!(
        bt.hidden_confirmed >= 1,
        "the confirmed alert is among them: {bt:?}"
    );
    assert_eq!(bt.added, 0);
    // Out of order, or no reason: refused, nothing changes.
    let backwards = Thresholds {
        alert: 9.0,
        mask: 5.0,
        suspend: 20.0,
    };
    assert!(matches!(
        g.backtest_thresholds(
            Actor::Token(&auditor),
            &proposal(backwards, None, false),
            &META
        ),
        Err(GuardError::Invalid(_))
    ));
    assert!(matches!(
        g.apply_thresholds(Actor::Token(&auditor), &proposal(blind, None, true), &META),
        Err(GuardError::Invalid(_))
    ));
    // Hiding a confirmed alert is refused unless accepted, with a reason.
    let reason = Some("too_many_false_positives");
    assert!(matches!(
        g.apply_thresholds(
            Actor::Token(&auditor),
            &proposal(blind, reason, false),
            &META
        ),
        Err(GuardError::Conflict(_))
    ));
    assert_eq!(
        g.thresholds(Actor::Token(&auditor), &META).unwrap().source,
        "config"
    );
    let applied = g
        .apply_thresholds(
            Actor::Token(&auditor),
            &proposal(blind, reason, true),
            &META,
        )
        .unwrap();
    assert_eq!(
        (applied.source.as_str(), applied.by.as_deref()),
        ("change", Some("A1"))
    );
    // In force at once: another member of staff probing the same way is no longer stopped.
    let staff2 = make("S2", "outlet_staff", Some(outlet.as_str()));
    for no in others.iter().skip(40).take(40) {
        clock.set(wbg_core::Clock::now(&*clock) + 2_000);
        let r = g.read(
            &staff2,
            &ReadRequest {
                waybill_no: no,
                purpose: "exception_handling",
                ticket: None,
            },
            &META,
        );
        assert!(
            !matches!(r, Err(GuardError::AccountSuspended)),
            "suspended under thresholds no longer in force"
        );
        assert!(!matches!(r, Ok(ref v) if v.view == View::Full));
    }
    // A stricter proposal, backtested against the blind one in force, would add alerts.
    let strict = Thresholds {
        alert: 5.0,
        mask: 25.0,
        suspend: 50.0,
    };
    let bt = g
        .backtest_thresholds(
            Actor::Token(&auditor),
            &proposal(strict, None, false),
            &META,
        )
        .unwrap();
    assert!(bt.added >= 2 && bt.hidden == 0, "{bt:?}");
    // The log holds each step with its figures.
    let log: Vec<wbg_audit::AuditEntry> = g
        .store()
        .audit_entries(0, 1_000_000)
        .unwrap()
        .iter()
        .map(|s| wbg_audit::AuditEntry::decode(&s.bytes).unwrap())
        .filter(|e| e.action.starts_with("risk_thresholds"))
        .collect();
    let applied_entry = log
        .iter()
        .find(|e| e.action == "risk_thresholds" && e.decision == "allow")
        .unwrap();
    let detail = applied_entry.detail.as_deref().unwrap();
    assert!(
        detail.contains("reason=too_many_false_positives")
            && detail.contains("burst=500/600/700")
            && detail.contains("accept_confirmed"),
        "{detail}"
    );
    drop(g);

    // A restart keeps the change.
    let g = open(&data, master, clock);
    let t = g.thresholds(Actor::Local("test"), &META).unwrap();
    assert_eq!((t.source.as_str(), t.score.burst.alert), ("change", 500.0));
}
