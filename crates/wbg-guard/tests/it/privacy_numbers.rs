//! Privacy numbers through the guard [T3]: a courier's view shows a virtual number, and the telephony gateway
//! gets the real one only for the bound courier inside the delivery window; an exhausted pool queues waybills
//! (never falling back to real numbers) and binds them once a number has rested; a re-dispatched parcel keeps
//! its number for its new courier.
use crate::common;

use std::sync::{Arc, Mutex};
use wbg_core::{
    AccountId, Address, Clock, EventType, ManualClock, MerchantId, NewWaybill, OutletId, Party,
    StatusEvent, View, WaybillNo,
};
use wbg_guard::{
    Actor, BindingChange, Guard, GuardConfig, GuardError, KeyConfig, NumberGateway, PrivacyNumbers,
    ReadRequest, RequestMeta,
};
use wbg_vault::MasterKey;

const POOL: [&str; 2] = ["17100000001", "17100000002"];
const HOUR: i64 = 3_600_000;

/// The gateway side, recording what it is told.
#[derive(Default)]
struct Recorder(Mutex<Vec<BindingChange>>);

impl NumberGateway for Recorder {
    fn binding_changed(&self, change: &BindingChange) {
        self.0.lock().unwrap().push(change.clone());
    }
}

struct Setup {
    guard: Guard,
    clock: Arc<ManualClock>,
    told: Arc<Recorder>,
    integration: String,
    gateway: String,
    courier: String,
    colleague: String,
    _dir: tempfile::TempDir,
}

fn phone(i: usize) -> String {
    format!("1391234{i:04}")
}

fn no(i: usize) -> String {
    format!("YT20261201{i:05}")
}

fn setup(waybills: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (guard, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        ..GuardConfig::embedded(dir.path().join("data"))
    })
    .unwrap();
    let clock = Arc::new(ManualClock::new(wbg_core::now_millis()));
    let told = Arc::new(Recorder::default());
    let cfg = PrivacyNumbers {
        enabled: true,
        numbers: vec![format!("{}..{}", POOL[0], POOL[1])],
        grace_minutes: 120,
        quarantine_hours: 24,
        decoys: Vec::new(),
    };
    let (guard, synced) = guard
        .with_clock(clock.clone())
        .with_privacy_numbers(&cfg)
        .unwrap();
    assert_eq!((synced.added, synced.in_service), (2, 2));
    let guard = guard.with_number_gateway(told.clone());
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let make = |id: &str, role: &str, outlet: Option<&str>| {
        guard
            .create_account(local, id, role, outlet, None, &meta)
            .unwrap()
            .1
    };
    let integration = make("I1", "integration", None);
    let gateway = make("TEL1", "telephony_gateway", None);
    let courier = make("C0420001", "courier", Some("O042"));
    let colleague = make("C0420002", "courier", Some("O042"));
    let batch = (0..waybills)
        .map(|i| {
            let party = |name: &str, phone: String| Party {
                name: name.into(),
                phone,
                address: Address {
                    province: "浙江省".into(),
                    city: "杭州市".into(),
                    district: "西湖区".into(),
                    detail: "文三路88号".into(),
                },
            };
            NewWaybill {
                waybill_no: WaybillNo::parse(&no(i)).unwrap(),
                merchant: MerchantId::parse("M001").unwrap(),
                origin_outlet: OutletId::parse("O001").unwrap(),
                destination_outlet: OutletId::parse("O042").unwrap(),
                sender: party("诸葛明亮", "13787654321".into()),
                recipient: party("欧阳娜娜", phone(i)),
                items: "奶粉".into(),
            }
        })
        .collect();
    guard
        .ingest(Actor::Token(&integration), batch, &meta)
        .unwrap();
    Setup {
        guard,
        clock,
        told,
        integration,
        gateway,
        courier,
        colleague,
        _dir: dir,
    }
}

impl Setup {
    fn scan(&self, i: usize, kind: EventType, courier: Option<&str>) {
        let outlet = match kind {
            EventType::PickedUp | EventType::InTransit => "O001",
            _ => "O042",
        };
        let ev = StatusEvent {
            kind,
            outlet: OutletId::parse(outlet).unwrap(),
            courier: courier.map(|c| AccountId::parse(c).unwrap()),
            at: None,
        };
        self.guard
            .record_event(
                Actor::Token(&self.integration),
                &no(i),
                ev,
                &RequestMeta::default(),
            )
            .unwrap();
    }

    /// [`Setup::scan`] the API's way ([`Guard::record_event_async`]).
    fn scan_async(&self, i: usize, kind: EventType) {
        let ev = StatusEvent {
            kind,
            outlet: OutletId::parse("O042").unwrap(),
            courier: None,
            at: None,
        };
        futures_executor::block_on(self.guard.record_event_async(
            &self.integration,
            &no(i),
            ev,
            &RequestMeta::default(),
        ))
        .unwrap();
    }

    /// Parcel `i` picked up, sent on and at its destination outlet.
    fn to_outlet(&self, i: usize) {
        self.scan(i, EventType::PickedUp, None);
        self.scan(i, EventType::InTransit, None);
        self.scan(i, EventType::AtOutlet, None);
    }

    fn out_for_delivery(&self, i: usize, courier: &str) {
        self.to_outlet(i);
        self.scan(i, EventType::OutForDelivery, Some(courier));
    }

    fn read(&self, token: &str, i: usize) -> wbg_guard::WaybillView {
        let n = no(i);
        let req = ReadRequest {
            waybill_no: &n,
            purpose: "delivery",
            ticket: None,
        };
        self.guard
            .read(token, &req, &RequestMeta::default())
            .unwrap()
    }

    fn route(&self, number: &str, caller: &str) -> Result<wbg_guard::CallRoute, GuardError> {
        self.guard.route_call(
            Actor::Token(&self.gateway),
            number,
            caller,
            &RequestMeta::default(),
        )
    }

    fn last_entry(&self) -> wbg_audit::AuditEntry {
        let size = self.guard.store().audit_size().unwrap();
        let bytes = self.guard.store().audit_entry(size - 1).unwrap().unwrap();
        wbg_audit::AuditEntry::decode(&bytes).unwrap()
    }

    fn advance(&self, ms: i64) {
        self.clock.set(self.clock.now() + ms);
    }
}

#[test]
fn a_courier_sees_a_virtual_number_and_the_gateway_routes_it_only_inside_the_window() {
    let s = setup(1);
    s.out_for_delivery(0, "C0420001");
    let v = s.read(&s.courier, 0);
    assert_eq!(v.view, View::Full);
    let number = v.privacy_number.clone().expect("a number is bound");
    assert!(POOL.contains(&number.as_str()));
    let recipient = v.recipient.as_ref().unwrap();
    assert_eq!(
        recipient.phone, number,
        "the courier dials the virtual number"
    );
    assert_eq!(
        recipient.address.detail.as_deref(),
        Some("文三路88号"),
        "the rest is the full view"
    );
    assert!(
        !serde_json::to_string(&v).unwrap().contains(&phone(0)),
        "the real number is not in the view"
    );
    let read = s.last_entry();
    assert!(
        read.fields.contains(&"recipient.phone:virtual".to_string()),
        "{:?}",
        read.fields
    );
    assert!(!read.fields.contains(&"recipient.phone".to_string()));
    // The binding is on record, and the gateway was told (identifiers only).
    let told = s.told.0.lock().unwrap().clone();
    assert_eq!(told.len(), 1);
    assert_eq!(
        (told[0].event, told[0].number.as_str()),
        ("bound", number.as_str())
    );
    assert_eq!(told[0].courier, "C0420001");

    // Inside the window: the bound courier's call reaches the real number, audited before it is decrypted.
    let route = s.route(&number, "C0420001").unwrap();
    assert_eq!(route.route_to, phone(0));
    assert_eq!(route.valid_until, None, "open-ended while out for delivery");
    let e = s.last_entry();
    assert_eq!(
        (e.action.as_str(), e.decision.as_str()),
        ("number_route", "allow")
    );
    assert_eq!(e.account, "TEL1");
    assert_eq!(e.waybill.as_deref(), Some(no(0).as_str()));
    assert_eq!(e.fields, vec!["recipient.phone".to_string()]);
    assert_eq!(route.audit_seq, s.guard.store().audit_size().unwrap() - 1);

    // The wrong courier, a non-courier caller, an unknown number, a caller that is not an account id.
    let err = s.route(&number, "C0420002").unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    assert_eq!(s.last_entry().decision, "deny");
    assert!(matches!(
        s.route(&number, "TEL1").unwrap_err(),
        GuardError::Forbidden(_)
    ));
    let err = s.route("13800138000", "C0420001").unwrap_err();
    assert!(matches!(err, GuardError::NotFound(_)), "{err:?}");
    let e = s.last_entry();
    assert!(
        !format!("{e:?}").contains("13800138000"),
        "a stray real number is not recorded: {e:?}"
    );
    assert!(matches!(
        s.route(&number, "no such id!").unwrap_err(),
        GuardError::Invalid(_)
    ));
    assert!(matches!(
        s.route("not a number", "C0420001").unwrap_err(),
        GuardError::Invalid(_)
    ));
    // Only the gateway role routes calls.
    let err = s
        .guard
        .route_call(
            Actor::Token(&s.courier),
            &number,
            "C0420001",
            &RequestMeta::default(),
        )
        .unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");

    // Signed: the window runs two hours more, then the number stops routing.
    s.advance(10 * 60_000);
    s.scan(0, EventType::Signed, None);
    let ends = s.told.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(ends.event, "ends");
    let signed_at = s.clock.now();
    assert_eq!(ends.valid_until, Some(signed_at + 2 * HOUR));
    s.advance(HOUR);
    let route = s.route(&number, "C0420001").unwrap();
    assert_eq!(route.valid_until, Some(signed_at + 2 * HOUR));
    s.advance(HOUR + 1_000);
    let err = s.route(&number, "C0420001").unwrap_err();
    assert!(matches!(err, GuardError::Expired(_)), "{err:?}");
    assert_eq!(s.last_entry().decision, "deny");
    // And the courier's view is masked again, by the policy's own window.
    assert_eq!(s.read(&s.courier, 0).view, View::Masked);
}

/// The gateway hears a binding's window end when its parcel leaves delivery, over the API's way as over the
/// sync one, and nothing from the scans after (the window ended already): each of those once looked the binding
/// up.
#[test]
fn the_gateway_hears_a_window_end_when_its_parcel_leaves_delivery_and_only_then() {
    let s = setup(1);
    s.out_for_delivery(0, "C0420001");
    let told = || s.told.0.lock().unwrap().clone();
    let bound = told();
    assert_eq!(bound.last().map(|c| c.event), Some("bound"));
    s.advance(60_000);
    s.scan_async(0, EventType::Exception);
    let ended = told();
    assert_eq!(ended.len(), bound.len() + 1);
    let end = ended.last().unwrap();
    assert_eq!(
        (end.event, end.valid_until, end.waybill_no.as_str()),
        ("ends", Some(s.clock.now() - 1), no(0).as_str())
    );
    s.advance(60_000);
    s.scan_async(0, EventType::InTransit);
    s.scan(0, EventType::AtOutlet, None);
    assert_eq!(told().len(), ended.len(), "nothing more");
    // Out again, and back to the outlet: the sync way tells it as well.
    s.scan(0, EventType::OutForDelivery, Some("C0420001"));
    let again = told().len();
    s.advance(60_000);
    s.scan(0, EventType::AtOutlet, None);
    let last = told();
    assert_eq!(last.len(), again + 1);
    assert_eq!(
        (last[again].event, last[again].valid_until),
        ("ends", Some(s.clock.now() - 1))
    );
}

#[test]
fn an_exhausted_pool_queues_waybills_and_binds_them_once_a_number_has_rested() {
    let s = setup(3);
    for i in 0..3 {
        s.out_for_delivery(i, "C0420001");
    }
    let numbers: Vec<String> = (0..2)
        .map(|i| s.read(&s.courier, i).privacy_number.unwrap())
        .collect();
    assert_ne!(numbers[0], numbers[1]);
    // The third parcel finds the pool empty: the courier sees a masked phone, never the real one.
    let v = s.read(&s.courier, 2);
    assert_eq!((v.view, v.privacy_number.as_deref()), (View::Full, None));
    assert_eq!(v.recipient.as_ref().unwrap().phone, "139******02");
    assert!(s
        .last_entry()
        .fields
        .contains(&"recipient.phone:masked".to_string()));
    let alerts = s.guard.store().alerts(&wbg_store::AlertFilter {
        kind: Some("privacy_numbers_exhausted".into()),
        limit: 10,
        ..Default::default()
    });
    assert_eq!(alerts.unwrap().len(), 1);
    assert_eq!(
        s.guard.bind_waiting_numbers(100).unwrap(),
        1,
        "still waiting"
    );

    // The first parcel is signed; its number is free only after the grace and the quarantine.
    s.scan(0, EventType::Signed, None);
    s.advance(2 * HOUR + 23 * HOUR);
    assert_eq!(
        s.guard.bind_waiting_numbers(100).unwrap(),
        1,
        "still resting"
    );
    assert!(matches!(
        s.route(&numbers[0], "C0420001").unwrap_err(),
        GuardError::Expired(_)
    ));
    s.advance(HOUR);
    assert_eq!(s.guard.bind_waiting_numbers(100).unwrap(), 0);
    let v = s.read(&s.courier, 2);
    assert_eq!(
        v.privacy_number.as_deref(),
        Some(numbers[0].as_str()),
        "the rested number"
    );
    // That number now reaches the third recipient, not the first.
    assert_eq!(s.route(&numbers[0], "C0420001").unwrap().route_to, phone(2));
}

/// A sorting centre's batch sends three parcels out for delivery at once, over a pool of two: they are bound
/// together, in the batch's order, each binding audited and told to the gateway, and the third waits (audited as
/// a refusal, the pool's alert raised) until a number rests.
#[test]
fn a_batch_of_parcels_out_for_delivery_is_bound_together_and_the_rest_wait() {
    let s = setup(4);
    for i in 0..4 {
        s.to_outlet(i);
    }
    let row = |i: usize, kind: EventType, courier: Option<&str>| wbg_guard::ScanEvent {
        waybill_no: no(i),
        kind,
        outlet: OutletId::parse("O042").unwrap(),
        courier: courier.map(|c| AccountId::parse(c).unwrap()),
        at: None,
    };
    let size = s.guard.store().audit_size().unwrap();
    let report = s
        .guard
        .record_events(
            Actor::Token(&s.integration),
            vec![
                row(2, EventType::OutForDelivery, Some("C0420001")),
                row(3, EventType::InTransit, None),
                row(0, EventType::OutForDelivery, Some("C0420002")),
                row(1, EventType::OutForDelivery, Some("C0420001")),
            ],
            &RequestMeta::default(),
        )
        .unwrap();
    assert_eq!(report.recorded, 4);
    // The batch's own entry, then one binding entry for each parcel out, in the batch's order.
    let entries: Vec<wbg_audit::AuditEntry> = (size..size + 4)
        .map(|seq| {
            let bytes = s.guard.store().audit_entry(seq).unwrap().unwrap();
            wbg_audit::AuditEntry::decode(&bytes).unwrap()
        })
        .collect();
    assert_eq!(entries[0].action, "events");
    let binds: Vec<(&str, Option<&str>, &str)> = entries[1..]
        .iter()
        .map(|e| (e.action.as_str(), e.waybill.as_deref(), e.decision.as_str()))
        .collect();
    let (n2, n0, n1) = (no(2), no(0), no(1));
    assert_eq!(
        binds,
        vec![
            ("number_bind", Some(n2.as_str()), "allow"),
            ("number_bind", Some(n0.as_str()), "allow"),
            ("number_bind", Some(n1.as_str()), "deny"),
        ]
    );
    assert!(entries[3]
        .detail
        .as_deref()
        .is_some_and(|d| d.starts_with("pool_exhausted")));
    assert_eq!(s.guard.store().audit_size().unwrap(), size + 4);
    // Each courier sees the number of its own parcel; the gateway was told both bindings.
    let on2 = s.read(&s.courier, 2).privacy_number.unwrap();
    let on0 = s.read(&s.colleague, 0).privacy_number.unwrap();
    assert_ne!(on2, on0);
    let told: Vec<(String, String, String)> = s
        .told
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|c| (c.event.to_string(), c.number.clone(), c.waybill_no.clone()))
        .collect();
    assert_eq!(
        told,
        vec![
            ("bound".to_string(), on2.clone(), n2.clone()),
            ("bound".to_string(), on0, n0.clone()),
        ]
    );
    assert_eq!(s.read(&s.courier, 1).privacy_number, None, "waiting");
    let alerts = s.guard.store().alerts(&wbg_store::AlertFilter {
        kind: Some("privacy_numbers_exhausted".into()),
        limit: 10,
        ..Default::default()
    });
    assert_eq!(alerts.unwrap().len(), 1);
    // Once parcel 2 is signed and its number has rested, upkeep binds it to the waiting parcel.
    s.scan(2, EventType::Signed, None);
    s.advance(2 * HOUR + 24 * HOUR);
    assert_eq!(s.guard.bind_waiting_numbers(100).unwrap(), 0);
    assert_eq!(s.read(&s.courier, 1).privacy_number, Some(on2));
}

/// Single scans over the API, six parcels going out at once from six scanners over a pool of two: their
/// bindings are made together (whoever binds takes what the others asked meanwhile), each number goes to one
/// parcel, each binding and each refusal is on record once, and every scan returns only once its parcel is bound
/// or queued.
#[test]
fn single_scans_going_out_at_once_are_bound_together() {
    let s = setup(6);
    for i in 0..6 {
        s.to_outlet(i);
    }
    let size = s.guard.store().audit_size().unwrap();
    std::thread::scope(|sc| {
        for i in 0..6 {
            let s = &s;
            sc.spawn(move || {
                let ev = StatusEvent {
                    kind: EventType::OutForDelivery,
                    outlet: OutletId::parse("O042").unwrap(),
                    courier: Some(AccountId::parse("C0420001").unwrap()),
                    at: None,
                };
                let next = futures_executor::block_on(s.guard.record_event_async(
                    &s.integration,
                    &no(i),
                    ev,
                    &RequestMeta::default(),
                ))
                .unwrap();
                assert_eq!(next.status.as_str(), "out_for_delivery");
            });
        }
    });
    let shown: Vec<Option<String>> = (0..6)
        .map(|i| s.read(&s.courier, i).privacy_number)
        .collect();
    let bound: std::collections::BTreeSet<&str> =
        shown.iter().flatten().map(String::as_str).collect();
    assert_eq!(
        bound.len(),
        2,
        "both numbers bound, each to one parcel: {shown:?}"
    );
    assert_eq!(shown.iter().flatten().count(), 2);
    let binds: Vec<(String, String)> = (size..s.guard.store().audit_size().unwrap())
        .map(|seq| {
            let bytes = s.guard.store().audit_entry(seq).unwrap().unwrap();
            wbg_audit::AuditEntry::decode(&bytes).unwrap()
        })
        .filter(|e| e.action == "number_bind")
        .map(|e| (e.waybill.unwrap_or_default(), e.decision))
        .collect();
    let allowed = binds.iter().filter(|(_, d)| d == "allow").count();
    let denied = binds.iter().filter(|(_, d)| d == "deny").count();
    assert_eq!((allowed, denied), (2, 4), "{binds:?}");
    assert_eq!(
        s.guard.bind_waiting_numbers(100).unwrap(),
        4,
        "the rest wait"
    );
    assert_eq!(s.told.0.lock().unwrap().len(), 2);
}

#[test]
fn a_redispatched_parcel_keeps_its_number_for_its_new_courier_only() {
    let s = setup(1);
    s.out_for_delivery(0, "C0420001");
    let number = s.read(&s.courier, 0).privacy_number.unwrap();
    // An exception ends the binding at once.
    s.scan(0, EventType::Exception, None);
    assert!(matches!(
        s.route(&number, "C0420001").unwrap_err(),
        GuardError::Expired(_)
    ));
    s.scan(0, EventType::OutForDelivery, Some("C0420002"));
    let v = s.read(&s.colleague, 0);
    assert_eq!(
        v.privacy_number.as_deref(),
        Some(number.as_str()),
        "rebound, same number"
    );
    let rebound = s.told.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (rebound.event, rebound.courier.as_str()),
        ("rebound", "C0420002")
    );
    assert_eq!(s.route(&number, "C0420002").unwrap().route_to, phone(0));
    assert!(matches!(
        s.route(&number, "C0420001").unwrap_err(),
        GuardError::Forbidden(_)
    ));
    // The first courier no longer has a number for it, nor the full view.
    assert_eq!(s.read(&s.courier, 0).view, View::Masked);
}

#[test]
fn a_suspended_courier_is_not_connected() {
    let s = setup(1);
    s.out_for_delivery(0, "C0420001");
    let number = s.read(&s.courier, 0).privacy_number.unwrap();
    s.guard
        .set_status(
            Actor::Local("test"),
            "C0420001",
            true,
            Some("test"),
            &RequestMeta::default(),
        )
        .unwrap();
    assert!(matches!(
        s.route(&number, "C0420001").unwrap_err(),
        GuardError::Forbidden(_)
    ));
}

/// A routed call puts the recipient's real number on the line: the engine is shown it as the courier's full read
/// for delivery, and a refusal routes nothing.
#[test]
fn each_routed_call_is_metered_as_the_couriers_read() {
    let s = setup(1);
    let hook = common::Metered::allowing(2);
    let s = Setup {
        guard: s.guard.with_risk(hook.clone()),
        ..s
    };
    s.out_for_delivery(0, "C0420001");
    let number = s.read(&s.courier, 0).privacy_number.unwrap();
    assert_eq!(s.route(&number, "C0420001").unwrap().route_to, phone(0));
    let err = s.route(&number, "C0420001").unwrap_err();
    assert!(matches!(err, GuardError::RateLimited(_)), "{err:?}");
    let e = s.last_entry();
    assert_eq!(
        (e.action.as_str(), e.decision.as_str()),
        ("number_route", "deny")
    );
    assert_eq!(
        *hook.seen.lock().unwrap(),
        vec![("C0420001".to_owned(), "delivery".to_owned()); 3],
        "the read, then each call, as the courier's"
    );
}
