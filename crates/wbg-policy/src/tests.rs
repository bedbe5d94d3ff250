//! Rule-by-rule tests of the built-in policy (the HTTP tests cover the same rules end to end).
use super::*;
use wbg_core::{AccountId, AccountStatus, MerchantId, OutletId, Role, WaybillNo};

const NOW: i64 = 1_800_000_000_000;

fn acct(id: &str, role: Role, outlet: Option<&str>, merchant: Option<&str>) -> Account {
    Account {
        id: AccountId::parse(id).unwrap(),
        role,
        outlet: outlet.map(|o| OutletId::parse(o).unwrap()),
        merchant: merchant.map(|m| MerchantId::parse(m).unwrap()),
        status: AccountStatus::Active,
        status_reason: None,
        created_at: 0,
        status_since: 0,
    }
}

fn wb(status: WaybillStatus, courier: Option<&str>, signed_ago_ms: Option<i64>) -> WaybillMeta {
    WaybillMeta {
        waybill_no: WaybillNo::parse("W1").unwrap(),
        merchant: MerchantId::parse("M1").unwrap(),
        origin_outlet: OutletId::parse("O1").unwrap(),
        destination_outlet: OutletId::parse("O2").unwrap(),
        courier: courier.map(|c| AccountId::parse(c).unwrap()),
        status,
        created_at: 0,
        updated_at: 0,
        signed_at: signed_ago_ms.map(|a| NOW - a),
        bucket: 0,
    }
}

/// A delivery read's context at `now_ms`, with no ticket, incident, hold or exception.
fn delivery_at(now_ms: i64) -> ReadContext<'static> {
    ReadContext {
        purpose: Purpose::Delivery,
        now_secs: now_ms / 1000,
        has_ticket: false,
        in_incident: false,
        in_hold: false,
        ticket: TicketFacts::default(),
        exception_outlet: None,
    }
}

fn view(
    e: &PolicyEngine,
    a: &Account,
    w: &WaybillMeta,
    purpose: Purpose,
    ticket: bool,
) -> Option<View> {
    let ctx = ReadContext {
        purpose,
        now_secs: NOW / 1000,
        has_ticket: ticket,
        in_incident: false,
        in_hold: false,
        // A ticket in these tests is one the registry knows, open and for this waybill.
        ticket: TicketFacts {
            open_for_waybill: ticket,
            ..TicketFacts::default()
        },
        exception_outlet: None,
    };
    e.decide_view(a, w, &ctx).unwrap().view
}

#[test]
fn courier_rules() {
    let e = PolicyEngine::builtin().unwrap();
    let c = acct("C1", Role::Courier, Some("O2"), None);
    let out = wb(WaybillStatus::OutForDelivery, Some("C1"), None);
    assert_eq!(
        view(&e, &c, &out, Purpose::Delivery, false),
        Some(View::Full)
    );
    assert_eq!(
        view(&e, &c, &out, Purpose::CustomerService, false),
        Some(View::Masked)
    );
    let other = acct("C2", Role::Courier, Some("O2"), None);
    assert_eq!(
        view(&e, &other, &out, Purpose::Delivery, false),
        Some(View::Masked)
    );
    let signed_1h = wb(WaybillStatus::Signed, Some("C1"), Some(3_600_000));
    assert_eq!(
        view(&e, &c, &signed_1h, Purpose::Delivery, false),
        Some(View::Full)
    );
    let signed_3h = wb(WaybillStatus::Signed, Some("C1"), Some(3 * 3_600_000));
    assert_eq!(
        view(&e, &c, &signed_3h, Purpose::Delivery, false),
        Some(View::Masked)
    );
    let elsewhere = acct("C9", Role::Courier, Some("O9"), None);
    assert_eq!(view(&e, &elsewhere, &out, Purpose::Delivery, false), None);
}

#[test]
fn staff_cs_merchant_print_oversight_rules() {
    let e = PolicyEngine::builtin().unwrap();
    let w = wb(WaybillStatus::AtOutlet, None, None);
    let staff = acct("S1", Role::OutletStaff, Some("O1"), None);
    assert_eq!(
        view(&e, &staff, &w, Purpose::Delivery, false),
        Some(View::Masked)
    );
    // Claiming an exception is not one: without an open exception registered here, masked.
    assert_eq!(
        view(&e, &staff, &w, Purpose::ExceptionHandling, false),
        Some(View::Masked)
    );
    let far = acct("S9", Role::OutletStaff, Some("O9"), None);
    assert_eq!(view(&e, &far, &w, Purpose::ExceptionHandling, false), None);

    let cs = acct("K1", Role::CustomerService, None, None);
    assert_eq!(
        view(&e, &cs, &w, Purpose::CustomerService, false),
        Some(View::Masked)
    );
    assert_eq!(
        view(&e, &cs, &w, Purpose::CustomerService, true),
        Some(View::Full)
    );

    let m = acct("M1u", Role::Merchant, None, Some("M1"));
    assert_eq!(
        view(&e, &m, &w, Purpose::CustomerService, false),
        Some(View::Full)
    );
    assert_eq!(view(&e, &m, &w, Purpose::Label, false), Some(View::Masked));
    // Only printers print: staff and customer service, who may read the parcel masked, may not take its label.
    assert_eq!(view(&e, &staff, &w, Purpose::Label, false), None);
    assert_eq!(view(&e, &cs, &w, Purpose::Label, false), None);
    let m2 = acct("M2u", Role::Merchant, None, Some("M2"));
    assert_eq!(view(&e, &m2, &w, Purpose::CustomerService, false), None);

    let p = acct("P1", Role::PrintStation, Some("O1"), None);
    assert_eq!(view(&e, &p, &w, Purpose::Label, false), Some(View::Masked));
    for purpose in [
        Purpose::Delivery,
        Purpose::CustomerService,
        Purpose::BreachNotification,
    ] {
        assert_eq!(view(&e, &p, &w, purpose, true), None, "{purpose:?}");
    }

    let auditor = acct("A1", Role::Auditor, None, None);
    assert_eq!(
        view(&e, &auditor, &w, Purpose::BreachNotification, true),
        Some(View::Routing)
    );
    assert!(e.may_admin(&auditor, AdminAction::ReadAudit).unwrap());
    assert!(e.may_admin(&auditor, AdminAction::Investigate).unwrap());
    assert!(!e.may_admin(&auditor, AdminAction::ManageAccounts).unwrap());
    let admin = acct("root", Role::Admin, None, None);
    assert_eq!(view(&e, &admin, &w, Purpose::CustomerService, true), None);
    assert!(e.may_admin(&admin, AdminAction::ManageAccounts).unwrap());
    assert!(!e.may_admin(&admin, AdminAction::Investigate).unwrap());
}

#[test]
fn suspended_accounts_get_nothing() {
    let e = PolicyEngine::builtin().unwrap();
    let mut c = acct("C1", Role::Courier, Some("O2"), None);
    c.status = AccountStatus::Suspended;
    let out = wb(WaybillStatus::OutForDelivery, Some("C1"), None);
    assert_eq!(view(&e, &c, &out, Purpose::Delivery, false), None);
}

#[test]
fn writes() {
    let e = PolicyEngine::builtin().unwrap();
    let w = wb(WaybillStatus::AtOutlet, None, None);
    let integ = acct("I1", Role::Integration, None, None);
    assert!(e.may_write(&integ, &w, &WriteAction::Ingest).unwrap());
    let m = acct("M1u", Role::Merchant, None, Some("M1"));
    assert!(e.may_write(&m, &w, &WriteAction::Ingest).unwrap());
    let m2 = acct("M2u", Role::Merchant, None, Some("M2"));
    assert!(!e.may_write(&m2, &w, &WriteAction::Ingest).unwrap());
    let o2 = OutletId::parse("O2").unwrap();
    let staff = acct("S2", Role::OutletStaff, Some("O2"), None);
    let ev = WriteAction::RecordEvent {
        event_type: "at_outlet",
        outlet: &o2,
    };
    assert!(e.may_write(&staff, &w, &ev).unwrap());
    let far = acct("S9", Role::OutletStaff, Some("O9"), None);
    assert!(!e.may_write(&far, &w, &ev).unwrap());
}

#[test]
fn invalid_policy_names_the_line() {
    let bad = "permit (principal, action, resource);\n\npermit (principal, action == Action::\"view_full\", resource)\nwhen { principal.rolle == \"courier\" };\n";
    let err =
        PolicyEngine::from_sources("p.cedar", bad, "s.cedarschema", BUILTIN_SCHEMA).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("p.cedar:4"), "{msg}");
    let syntax = "permit (principal, action, resource)\nwhen { principal.role == };\n";
    let msg = PolicyEngine::from_sources("p.cedar", syntax, "s.cedarschema", BUILTIN_SCHEMA)
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("p.cedar:2"), "{msg}");
}

#[test]
fn load_dir_reads_the_shipped_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let e = PolicyEngine::load_dir(&dir).unwrap();
    assert!(e.policy_ids().count() >= 15);
    let empty = tempfile::tempdir().unwrap();
    assert!(PolicyEngine::load_dir(empty.path()).is_err());
}

/// Slicing by (role, action) and the decision cache must never change a decision: every role × action ×
/// purpose × ticket × waybill state and binding × account binding is decided both ways and compared — sliced
/// and cached (one engine throughout, so later requests are answered from decisions made for other waybills)
/// against the whole policy set evaluated afresh.
#[test]
fn sliced_and_cached_decisions_equal_whole_set_decisions() {
    let e = PolicyEngine::builtin().unwrap();
    let mut waybills = Vec::new();
    for (n, (origin, dest, merchant)) in
        [("O1", "O2", "M1"), ("O3", "O1", "M2"), ("O3", "O4", "M2")]
            .into_iter()
            .enumerate()
    {
        for (i, mut w) in [
            wb(WaybillStatus::AtOutlet, None, None),
            wb(WaybillStatus::AtOutlet, Some("X"), None),
            wb(WaybillStatus::OutForDelivery, Some("X"), None),
            wb(WaybillStatus::OutForDelivery, Some("Y"), None),
            wb(WaybillStatus::Signed, Some("X"), Some(3_600_000)),
            wb(WaybillStatus::Signed, Some("X"), Some(3 * 3_600_000)),
            wb(WaybillStatus::Signed, Some("Y"), Some(60_000)),
        ]
        .into_iter()
        .enumerate()
        {
            w.waybill_no = WaybillNo::parse(&format!("W{n}x{i}")).unwrap();
            w.origin_outlet = OutletId::parse(origin).unwrap();
            w.destination_outlet = OutletId::parse(dest).unwrap();
            w.merchant = MerchantId::parse(merchant).unwrap();
            waybills.push(w);
        }
    }
    let o2 = OutletId::parse("O2").unwrap();
    let mut compared = 0;
    for role in Role::ALL {
        for (outlet, merchant) in [
            (Some("O1"), None),
            (Some("O2"), Some("M1")),
            (None, Some("M2")),
            (None, None),
        ] {
            for status in [AccountStatus::Active, AccountStatus::Suspended] {
                let mut a = acct("X", role, outlet, merchant);
                a.status = status;
                for w in &waybills {
                    let both = |f: &dyn Fn() -> String| {
                        let sliced = f();
                        UNSLICED.with(|u| u.set(true));
                        let whole = f();
                        UNSLICED.with(|u| u.set(false));
                        assert_eq!(
                            sliced, whole,
                            "{role:?} {outlet:?} {merchant:?} {status:?} {:?}",
                            w.status
                        );
                    };
                    for purpose in Purpose::ALL {
                        for ticket in [false, true] {
                            both(&|| format!("{:?}", view(&e, &a, w, purpose, ticket)));
                            compared += 1;
                        }
                        let ctx = ReadContext {
                            purpose,
                            now_secs: NOW / 1000,
                            has_ticket: false,
                            in_incident: true,
                            in_hold: false,
                            ticket: TicketFacts::default(),
                            exception_outlet: None,
                        };
                        both(&|| format!("{:?}", e.decide_view(&a, w, &ctx).unwrap().view));
                        both(&|| format!("{:?}", e.may_export(&a, w, purpose).unwrap()));
                    }
                    both(&|| format!("{:?}", e.may_write(&a, w, &WriteAction::Ingest).unwrap()));
                    both(&|| {
                        format!(
                            "{:?}",
                            e.may_write(
                                &a,
                                w,
                                &WriteAction::RecordEvent {
                                    event_type: "at_outlet",
                                    outlet: &o2
                                }
                            )
                            .unwrap()
                        )
                    });
                    for act in [
                        AdminAction::ManageAccounts,
                        AdminAction::ReadAudit,
                        AdminAction::ReadAlerts,
                        AdminAction::Investigate,
                        AdminAction::ApproveExport,
                        AdminAction::RouteCalls,
                    ] {
                        both(&|| format!("{:?}", e.may_admin(&a, act).unwrap()));
                    }
                    both(&|| format!("{:?}", e.may_call(&a, w, NOW / 1000).unwrap()));
                }
            }
        }
    }
    assert!(compared > 2000);
    assert!(
        e.cache_hits() > 1000,
        "the cache answered {} decisions",
        e.cache_hits()
    );
}

#[test]
fn privacy_number_rules() {
    let e = PolicyEngine::builtin().unwrap();
    let gateway = acct("G1", Role::TelephonyGateway, None, None);
    assert!(e.may_admin(&gateway, AdminAction::RouteCalls).unwrap());
    for role in Role::ALL
        .into_iter()
        .filter(|r| *r != Role::TelephonyGateway)
    {
        let a = acct("X", role, Some("O2"), Some("M1"));
        assert!(
            !e.may_admin(&a, AdminAction::RouteCalls).unwrap(),
            "{role:?}"
        );
    }
    // The gateway connects calls; it never reads a waybill.
    let out = wb(WaybillStatus::OutForDelivery, Some("C1"), None);
    for purpose in Purpose::ALL {
        assert_eq!(view(&e, &gateway, &out, purpose, true), None, "{purpose:?}");
    }
    let c = acct("C1", Role::Courier, Some("O2"), None);
    let other = acct("C2", Role::Courier, Some("O2"), None);
    let now = NOW / 1000;
    assert!(e.may_call(&c, &out, now).unwrap());
    assert!(!e.may_call(&other, &out, now).unwrap(), "not their parcel");
    let signed = |ago| wb(WaybillStatus::Signed, Some("C1"), Some(ago));
    assert!(
        e.may_call(&c, &signed(3_600_000), now).unwrap(),
        "inside the grace"
    );
    assert!(
        !e.may_call(&c, &signed(7_201_000), now).unwrap(),
        "after it"
    );
    for status in [
        WaybillStatus::AtOutlet,
        WaybillStatus::Exception,
        WaybillStatus::Returned,
    ] {
        assert!(
            !e.may_call(&c, &wb(status, Some("C1"), None), now).unwrap(),
            "{status:?}"
        );
    }
    let mut suspended = c.clone();
    suspended.status = AccountStatus::Suspended;
    assert!(!e.may_call(&suspended, &out, now).unwrap());
}

/// The delivery window closes on time even though the decision inside it was cached: `now` is part of the key
/// of every decision whose policies read it.
#[test]
fn a_cached_full_view_does_not_outlive_the_delivery_window() {
    let e = PolicyEngine::builtin().unwrap();
    let courier = acct("X", Role::Courier, Some("O1"), None);
    let w = wb(WaybillStatus::Signed, Some("X"), Some(3_600_000));
    let at = |now_ms: i64| {
        e.decide_view(&courier, &w, &delivery_at(now_ms))
            .unwrap()
            .view
    };
    assert_eq!(at(NOW), Some(View::Full));
    assert_eq!(at(NOW), Some(View::Full));
    assert!(e.cache_hits() >= 1);
    assert_eq!(at(NOW + 2 * 3_600_000), Some(View::Masked));
}

#[test]
fn breach_notification_and_export_rules() {
    let e = PolicyEngine::builtin().unwrap();
    let w = wb(WaybillStatus::Signed, None, Some(86_400_000));
    let notify = |a: &Account, in_incident: bool| {
        let ctx = ReadContext {
            purpose: Purpose::BreachNotification,
            now_secs: NOW / 1000,
            has_ticket: false,
            in_incident,
            in_hold: false,
            ticket: TicketFacts::default(),
            exception_outlet: None,
        };
        e.decide_view(a, &w, &ctx).unwrap().view
    };
    // Customer service sees a customer in full to notify them, and only when the waybill is on an incident's list.
    let cs = acct("K1", Role::CustomerService, None, None);
    assert_eq!(notify(&cs, true), Some(View::Full));
    assert_eq!(notify(&cs, false), Some(View::Masked));
    // Nobody else gains anything from an incident.
    for (id, role, outlet, merchant) in [
        ("A1", Role::Auditor, None, None),
        ("R1", Role::Admin, None, None),
        ("S1", Role::OutletStaff, Some("O1"), None),
        ("U1", Role::Merchant, None, Some("M1")),
        ("P1", Role::PrintStation, Some("O1"), None),
    ] {
        let a = acct(id, role, outlet, merchant);
        assert_eq!(notify(&a, true), notify(&a, false), "{role:?}");
        assert_ne!(notify(&a, true), Some(View::Full), "{role:?}");
    }

    // Exports: a merchant's own orders, for after-sale work; nobody else's, nobody else, no other purpose.
    let merchant = acct("U1", Role::Merchant, None, Some("M1"));
    assert!(e
        .may_export(&merchant, &w, Purpose::CustomerService)
        .unwrap());
    assert!(!e.may_export(&merchant, &w, Purpose::Delivery).unwrap());
    let other = acct("U2", Role::Merchant, None, Some("M2"));
    assert!(!e.may_export(&other, &w, Purpose::CustomerService).unwrap());
    let mut suspended = merchant.clone();
    suspended.status = AccountStatus::Suspended;
    assert!(!e
        .may_export(&suspended, &w, Purpose::CustomerService)
        .unwrap());
    for role in Role::ALL.into_iter().filter(|r| *r != Role::Merchant) {
        let a = acct("X", role, Some("O1"), Some("M1"));
        assert!(
            !e.may_export(&a, &w, Purpose::CustomerService).unwrap(),
            "{role:?}"
        );
        // Only auditors approve exports.
        assert_eq!(
            e.may_admin(&a, AdminAction::ApproveExport).unwrap(),
            role == Role::Auditor,
            "{role:?}"
        );
    }
    assert!(!e.may_admin(&merchant, AdminAction::ApproveExport).unwrap());
}

/// Full views for claimed work only where the registries say the work exists: a registered, open ticket for
/// this waybill, not another agent's, with full reads left; an exception open at the member of staff's outlet.
#[test]
fn claimed_work_needs_the_registries() {
    let e = PolicyEngine::builtin().unwrap();
    let ask =
        |a: &Account, w: &WaybillMeta, purpose, ticket: TicketFacts, exc: Option<&OutletId>| {
            let ctx = ReadContext {
                purpose,
                now_secs: NOW / 1000,
                has_ticket: true,
                in_incident: false,
                in_hold: false,
                ticket,
                exception_outlet: exc,
            };
            e.decide_view(a, w, &ctx).unwrap().view
        };
    let cs = acct("K1", Role::CustomerService, None, None);
    let w = wb(WaybillStatus::InTransit, None, None);
    let open = TicketFacts {
        open_for_waybill: true,
        ..TicketFacts::default()
    };
    let cs_view = |t| ask(&cs, &w, Purpose::CustomerService, t, None);
    assert_eq!(cs_view(open), Some(View::Full));
    assert_eq!(
        cs_view(TicketFacts::default()),
        Some(View::Masked),
        "invented or closed"
    );
    let elsewhere = TicketFacts {
        assigned_elsewhere: true,
        ..open
    };
    assert_eq!(
        cs_view(elsewhere),
        Some(View::Masked),
        "another agent's ticket"
    );
    let used = |n| TicketFacts { reads: n, ..open };
    assert_eq!(cs_view(used(9)), Some(View::Full));
    assert_eq!(
        cs_view(used(10)),
        Some(View::Masked),
        "the ticket's full views are spent"
    );
    // The registered ticket does not lend its weight to another purpose or role.
    assert_eq!(
        ask(&cs, &w, Purpose::Delivery, open, None),
        Some(View::Masked)
    );
    let staff = acct("S1", Role::OutletStaff, Some("O1"), None);
    assert_eq!(
        ask(&staff, &w, Purpose::CustomerService, open, None),
        Some(View::Masked)
    );

    let here = OutletId::parse("O1").unwrap();
    let there = OutletId::parse("O2").unwrap();
    let stuck = wb(WaybillStatus::Exception, None, None);
    let staff_view = |w: &WaybillMeta, exc| {
        ask(
            &staff,
            w,
            Purpose::ExceptionHandling,
            TicketFacts::default(),
            exc,
        )
    };
    assert_eq!(staff_view(&stuck, Some(&here)), Some(View::Full));
    assert_eq!(
        staff_view(&stuck, Some(&there)),
        Some(View::Masked),
        "registered at another outlet"
    );
    assert_eq!(staff_view(&stuck, None), Some(View::Masked));
    assert_eq!(
        staff_view(&w, Some(&here)),
        Some(View::Masked),
        "no longer in exception"
    );
    let far = acct("S9", Role::OutletStaff, Some("O9"), None);
    let far_here = OutletId::parse("O9").unwrap();
    assert_eq!(
        ask(
            &far,
            &stuck,
            Purpose::ExceptionHandling,
            TicketFacts::default(),
            Some(&far_here)
        ),
        Some(View::Full),
        "the outlet that registered the exception handles it, wherever the parcel was bound"
    );
}

/// The access review's reach comes from the policy: each role's richest view per purpose, and the situation.
#[test]
fn reach_is_derived_from_the_policy() {
    let e = PolicyEngine::builtin().unwrap();
    let reach = |a: &Account| -> HashMap<&'static str, (Option<View>, String)> {
        e.reach(a, NOW / 1000)
            .unwrap()
            .into_iter()
            .map(|r| (r.purpose.as_str(), (r.view, r.when)))
            .collect()
    };
    let courier = reach(&acct("C1", Role::Courier, Some("O2"), None));
    assert_eq!(courier["delivery"].0, Some(View::Full));
    assert!(
        courier["delivery"].1.contains("assigned to it"),
        "{}",
        courier["delivery"].1
    );
    assert_ne!(courier["customer_service"].0, Some(View::Full));
    let agent = reach(&acct("K1", Role::CustomerService, None, None));
    assert_eq!(agent["customer_service"].0, Some(View::Full));
    assert!(
        agent["customer_service"]
            .1
            .contains("open ticket registered for it"),
        "only registered work opens a record: {}",
        agent["customer_service"].1
    );
    let staff = reach(&acct("S1", Role::OutletStaff, Some("O2"), None));
    assert_eq!(staff["exception_handling"].0, Some(View::Full));
    assert!(staff["exception_handling"]
        .1
        .contains("exception registered at its outlet"));
    for role in [Role::Admin, Role::Auditor, Role::Integration] {
        let r = reach(&acct("X1", role, None, None));
        for (purpose, (v, _)) in &r {
            assert!(
                *v < Some(View::Masked),
                "{role:?} may see {v:?} for {purpose}"
            );
        }
    }
}

/// The replay's pair decision — one request for both policies, a memo by what the rules read, and decisions
/// found by partial evaluation not to depend on the time kept for every time — gives exactly what deciding each
/// read afresh under each policy gives: view and rules, across roles, bindings, statuses, signing times, the
/// delivery window's edges, purposes and tickets, with a proposal that reads the time differently.
#[test]
fn the_replays_pair_decisions_equal_fresh_decisions() {
    let old = PolicyEngine::builtin().unwrap();
    let text = old.policy_text();
    // A proposal: the courier's window shortened to 30 minutes, and no full view for anyone after a cut-off.
    let proposal = text.replace("resource.signed_at + 7200", "resource.signed_at + 1800")
        + &format!(
            "\n@id(\"no-full-after-cutoff\")\nforbid (principal, action == Action::\"view_full\", resource)\n\
             when {{ context.now > {} }};\n",
            NOW / 1000 + 5_000
        );
    let new = old.with_policy_text("proposal", &proposal).unwrap();
    let mut memo = ReplayMemo::default();
    let mut compared = 0;
    let mut settled_without_time = 0;
    for round in 0..2 {
        for role in Role::ALL {
            for (outlet, merchant) in [(Some("O2"), Some("M1")), (Some("O1"), None), (None, None)] {
                let a = acct("X", role, outlet, merchant);
                for (status, courier, signed_ago) in [
                    (WaybillStatus::AtOutlet, None, None),
                    (WaybillStatus::OutForDelivery, Some("X"), None),
                    (WaybillStatus::OutForDelivery, Some("Y"), None),
                    (WaybillStatus::Signed, Some("X"), Some(0)),
                    (WaybillStatus::Exception, Some("X"), None),
                ] {
                    let w = wb(status, courier, signed_ago.map(|_| 0));
                    // Reads at times around the signing: inside both windows, between them, after both, and
                    // either side of the proposal's cut-off.
                    for after_secs in [0i64, 1_000, 1_800, 1_801, 5_000, 7_200, 7_201, 90_000] {
                        let now_secs = (NOW / 1000) + after_secs;
                        for purpose in Purpose::ALL {
                            for ticket in [false, true] {
                                let ctx = ReadContext {
                                    purpose,
                                    now_secs,
                                    has_ticket: ticket,
                                    in_incident: false,
                                    in_hold: false,
                                    ticket: TicketFacts {
                                        open_for_waybill: ticket,
                                        ..TicketFacts::default()
                                    },
                                    exception_outlet: w.courier.as_ref().and(a.outlet.as_ref()),
                                };
                                let fresh = |e: &PolicyEngine| {
                                    let mut v = e.decide_view_uncached(&a, &w, &ctx).unwrap();
                                    v.policies.sort();
                                    v
                                };
                                let hits = memo.before.timeless.len();
                                let pair =
                                    old.decide_view_pair(&new, &a, &w, &ctx, &mut memo).unwrap();
                                assert_eq!(
                                    pair,
                                    (fresh(&old), fresh(&new)),
                                    "round {round} {role:?} {outlet:?} {status:?} {courier:?} +{after_secs}s {purpose:?} {ticket}"
                                );
                                settled_without_time +=
                                    usize::from(memo.before.timeless.len() > hits);
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(compared > 10_000, "{compared}");
    // Some decisions were found not to depend on the time, and some were (the couriers' windows).
    let settled = memo
        .before
        .timeless
        .values()
        .filter(|v| v.is_some())
        .count();
    let timed = memo
        .before
        .timeless
        .values()
        .filter(|v| v.is_none())
        .count();
    assert!(
        settled > 0 && timed > 0,
        "{settled} settled, {timed} depend on the time"
    );
    assert!(settled_without_time > 0);
}

/// A decision the time cannot change is made once, not once a second: a courier's reads of a parcel out with
/// them over an hour are one evaluation (the rest hits), while a signed parcel's window still closes on time
/// (the test above) and a parcel at the outlet stays masked whenever it is read.
#[test]
fn a_decision_that_holds_at_any_time_is_cached_across_seconds() {
    let e = PolicyEngine::builtin().unwrap();
    let courier = acct("X", Role::Courier, Some("O1"), None);
    let at = |w: &WaybillMeta, now_ms: i64| {
        let ctx = delivery_at(now_ms);
        (
            e.decide_view(&courier, w, &ctx).unwrap(),
            e.decide_view_uncached(&courier, w, &ctx).unwrap(),
        )
    };
    let out = wb(WaybillStatus::OutForDelivery, Some("X"), None);
    for s in 0..3_600 {
        let (cached, fresh) = at(&out, NOW + s * 1000);
        assert_eq!(cached.view, Some(View::Full));
        assert_eq!(cached.policies, fresh.policies);
    }
    assert_eq!(e.cache_hits(), 3_599);
    let held = wb(WaybillStatus::AtOutlet, Some("X"), None);
    for s in 0..100 {
        let (cached, fresh) = at(&held, NOW + s * 1000);
        assert_eq!(cached.view, fresh.view);
        assert_eq!(cached.view, Some(View::Masked));
    }
    assert_eq!(e.cache_hits(), 3_599 + 99);
}
