//! Legal holds through the guard (PIPL art. 47): a held parcel outlives its day's shredding (carried forward,
//! re-encrypted), waits out a deletion request, and is read by nobody but the hold's custodian for the hold —
//! except the work a parcel still under way needs; released, it goes back to its readers and to retention.
use std::sync::Arc;
use wbg_core::{
    AccountId, Address, EventType, ManualClock, MerchantId, NewWaybill, OutletId, Party,
    StatusEvent, View, WaybillNo,
};
use wbg_guard::{
    Actor, Guard, GuardConfig, GuardError, HoldRelease, HoldRequest, KeyConfig, ReadRequest,
    RequestMeta, RetentionPolicy,
};
use wbg_vault::MasterKey;

const DAY: i64 = 86_400_000;

fn waybill(no: &str, name: &str, phone: &str) -> NewWaybill {
    let party = |name: &str, phone: &str| Party {
        name: name.into(),
        phone: phone.into(),
        address: Address {
            province: "浙江省".into(),
            city: "杭州市".into(),
            district: "西湖区".into(),
            detail: "文三路88号".into(),
        },
    };
    NewWaybill {
        waybill_no: WaybillNo::parse(no).unwrap(),
        merchant: MerchantId::parse("M001").unwrap(),
        origin_outlet: OutletId::parse("O001").unwrap(),
        destination_outlet: OutletId::parse("O042").unwrap(),
        sender: party("寄件公司", "13700001111"),
        recipient: party(name, phone),
        items: "保健品".into(),
    }
}

fn guard_at(data: &std::path::Path, start: i64) -> (Guard, Arc<ManualClock>) {
    let (guard, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::from_bytes([9u8; 32]),
            signer: None,
        },
        ..GuardConfig::embedded(data)
    })
    .unwrap();
    let clock = Arc::new(ManualClock::new(start));
    (guard.with_clock(clock.clone()), clock)
}

fn hold_on(waybills: &[&str], custodian: &str) -> HoldRequest {
    HoldRequest {
        matter: "CASE-2026/017".into(),
        custodian: custodian.into(),
        waybills: Some(waybills.iter().map(|w| (*w).to_owned()).collect()),
        account: None,
        from: None,
        to: None,
        incident: None,
    }
}

#[test]
fn a_held_parcel_outlives_its_day_and_only_its_custodian_reads_it() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let start = 1_793_548_800_000i64 + 10 * 3_600_000;
    let (g, clock) = guard_at(&data, start);
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let token = |id: &str, role: &str, outlet: Option<&str>| {
        g.create_account(local, id, role, outlet, None, &meta)
            .unwrap()
            .1
    };
    let integ = token("I1", "integration", None);
    let (custodian, agent) = (
        token("K1", "customer_service", None),
        token("K2", "customer_service", None),
    );
    let auditor = token("A1", "auditor", None);
    let courier = token("C0420001", "courier", Some("O042"));
    // Day 0: H (held, delivered), P (not held, delivered), Q (held, still out for delivery).
    let (h, p, q) = ("YT2026110200001", "YT2026110200002", "YT2026110200003");
    let parcels = [
        (h, "欧阳娜娜", "13912345678"),
        (p, "司马光明", "13698765432"),
        (q, "上官婉儿", "13511112222"),
    ];
    g.ingest(
        Actor::Token(&integ),
        parcels.iter().map(|(n, a, ph)| waybill(n, a, ph)).collect(),
        &meta,
    )
    .unwrap();
    let scan = |no: &str, kind, courier: Option<&str>| {
        let ev = StatusEvent {
            kind,
            outlet: OutletId::parse(if kind == EventType::PickedUp {
                "O001"
            } else {
                "O042"
            })
            .unwrap(),
            courier: courier.map(|c| AccountId::parse(c).unwrap()),
            at: None,
        };
        g.record_event(Actor::Token(&integ), no, ev, &meta).unwrap();
    };
    for no in [h, p, q] {
        scan(no, EventType::PickedUp, None);
        scan(no, EventType::AtOutlet, None);
        scan(no, EventType::OutForDelivery, Some("C0420001"));
    }
    scan(h, EventType::Signed, None);
    scan(p, EventType::Signed, None);
    g.open_ticket(
        Actor::Token(&integ),
        &wbg_guard::TicketRegistration {
            ticket: "T-1".into(),
            waybills: vec![h.into()],
            opened_at: None,
            assignee: None,
        },
        &meta,
    )
    .unwrap();

    // Only an auditor places a hold, on waybills that exist, for an active customer-service custodian.
    assert!(matches!(
        g.place_hold(Actor::Token(&agent), &hold_on(&[h, q], "K1"), &meta),
        Err(GuardError::Forbidden(_))
    ));
    for (bad, custodian_id) in [(vec![h, "YT2099010100001"], "K1"), (vec![h], "C0420001")] {
        assert!(g
            .place_hold(Actor::Token(&auditor), &hold_on(&bad, custodian_id), &meta)
            .is_err());
    }
    let mut phone_matter = hold_on(&[h], "K1");
    phone_matter.matter = "13912345678".into();
    assert!(matches!(
        g.place_hold(Actor::Token(&auditor), &phone_matter, &meta),
        Err(GuardError::Invalid(_))
    ));
    assert!(g.holds(Actor::Token(&auditor), &meta).unwrap().is_empty());
    let hold = g
        .place_hold(Actor::Token(&auditor), &hold_on(&[h, q], "K1"), &meta)
        .unwrap();
    assert_eq!(hold.waybills.len(), 2);
    assert_eq!(hold.state, "active");

    let read = |token: &str, no: &str, purpose: &str, ticket: Option<&str>| {
        g.read(
            token,
            &ReadRequest {
                waybill_no: no,
                purpose,
                ticket,
            },
            &meta,
        )
    };
    // Everyone but the custodian, for the hold, is refused the held parcel that has arrived — a ticket, the
    // agent's masked view, the custodian's own everyday purpose alike.
    for (who, purpose, ticket) in [
        (&agent, "customer_service", None),
        (&agent, "customer_service", Some("T-1")),
        (&custodian, "customer_service", Some("T-1")),
        (&agent, "legal_hold", None),
        (&courier, "delivery", None),
        (&auditor, "customer_service", None),
    ] {
        let r = read(who, h, purpose, ticket);
        assert!(matches!(r, Err(GuardError::Held(_))), "{purpose}: {r:?}");
    }
    let v = read(&custodian, h, "legal_hold", None).unwrap();
    assert_eq!(v.view, View::Full);
    assert_eq!(v.recipient.as_ref().unwrap().name, "欧阳娜娜");
    let entry =
        String::from_utf8_lossy(&g.store().audit_entry(v.audit_seq).unwrap().unwrap()).into_owned();
    assert!(
        entry.contains("legal_hold") && entry.contains(&hold.id),
        "{entry}"
    );
    assert!(!entry.contains("欧阳娜娜") && !entry.contains("13912345678"));
    // The legal_hold purpose opens nothing a hold does not keep.
    assert!(read(&custodian, p, "legal_hold", None).is_err());
    // A held parcel still under way is still delivered.
    assert_eq!(
        read(&courier, q, "delivery", None).unwrap().view,
        View::Full
    );
    assert!(matches!(
        read(&agent, q, "customer_service", None),
        Err(GuardError::Held(_))
    ));
    // Unheld parcels are untouched.
    assert_eq!(
        read(&agent, p, "customer_service", None).unwrap().view,
        View::Masked
    );

    // A deletion request for the held parcel's recipient waits for the hold.
    let erase = g
        .rights_erase(
            Actor::Token(&agent),
            &wbg_guard::RightsRequest {
                phone: "13912345678".into(),
                waybill_no: h.into(),
                ticket: "T-1".into(),
            },
            &meta,
        )
        .unwrap();
    assert!(erase.erased.is_empty());
    assert_eq!(erase.pending, vec![h.to_owned()]);

    // The day falls due: P goes with it; H (held) and Q (held, and open) are carried, whole.
    clock.set(start + 31 * DAY);
    let policy = RetentionPolicy::default();
    let plan = g.retention_plan(local, &policy).unwrap();
    let due: Vec<_> = plan.iter().filter(|p| p.due).collect();
    assert!(!due.is_empty());
    assert!(
        due.iter().all(|p| (p.carried, p.held, p.lost) == (2, 2, 0)),
        "{due:?}"
    );
    let run = g.run_retention(local, &policy, &meta).unwrap();
    assert_eq!(run.erased, 0, "the hold keeps it from the deletion too");
    assert_eq!(run.carried.iter().map(|c| c.waybills).sum::<u64>(), 2);
    assert!(!run.shredded.is_empty());
    let v = read(&custodian, h, "legal_hold", None).unwrap();
    assert_eq!(v.view, View::Full);
    assert_eq!(v.recipient.as_ref().unwrap().phone, "13912345678");
    assert_eq!(
        read(&agent, p, "customer_service", None).unwrap().view,
        View::Routing,
        "the day's other parcel is gone"
    );

    // Released (with a reason; once), the parcel goes back to its readers and to retention, and the waiting
    // deletion is carried out by the next run.
    assert!(matches!(
        g.release_hold(
            Actor::Token(&auditor),
            &hold.id,
            &HoldRelease {
                reason: String::new()
            },
            &meta
        ),
        Err(GuardError::Invalid(_))
    ));
    let released = g
        .release_hold(
            Actor::Token(&auditor),
            &hold.id,
            &HoldRelease {
                reason: "court order lifted".into(),
            },
            &meta,
        )
        .unwrap();
    assert_eq!(released.state, "released");
    assert!(matches!(
        g.release_hold(
            Actor::Token(&auditor),
            &hold.id,
            &HoldRelease {
                reason: "again".into()
            },
            &meta
        ),
        Err(GuardError::Conflict(_))
    ));
    assert_eq!(
        read(&agent, h, "customer_service", None).unwrap().view,
        View::Masked
    );
    assert!(read(&custodian, h, "legal_hold", None).is_err());
    let listed = g.holds(Actor::Token(&auditor), &meta).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].state.as_str(), listed[0].waybills),
        ("released", 2)
    );
    clock.set(start + 31 * DAY + 3_600_000);
    let run = g.run_retention(local, &policy, &meta).unwrap();
    assert_eq!(run.erased, 1);
    assert_eq!(
        read(&agent, h, "customer_service", None).unwrap().view,
        View::Routing
    );
    wbg_guard::verify_store(g.store().as_ref(), &g.verifier_key()).unwrap();
}
