//! Retention through the guard [T3]: a day of ingest whose waybills were all delivered more than the retention
//! period ago is crypto-shredded — its data key gone from the store's files, its blind-index entries removed —
//! so the store plus the master key no longer yield its personal data; the routing view still works, a day
//! still under way is untouched, and the audit log verifies across the shredding.
use crate::common;

use common::files_hold;
use std::sync::Arc;
use wbg_core::{
    AccountId, Address, EventType, ManualClock, MerchantId, NewWaybill, OutletId, Party,
    StatusEvent, View, WaybillNo,
};
use wbg_guard::{
    Actor, Guard, GuardConfig, GuardError, KeyConfig, ReadRequest, RequestMeta, RetentionPolicy,
};
use wbg_store::Store;
use wbg_store::{Keys as _, Waybills as _};
use wbg_store_sqlite::SqliteStore;
use wbg_vault::{bucket_of, Field, FieldGroup, KeyStoreError, MasterKey, Vault, WrappedKeyStore};

const DAY: i64 = 86_400_000;
const MASTER: [u8; 32] = [7u8; 32];

fn waybill(no: &str, name: &str, phone: &str, street: &str) -> NewWaybill {
    let party = |name: &str, phone: &str, street: &str| Party {
        name: name.into(),
        phone: phone.into(),
        address: Address {
            province: "浙江省".into(),
            city: "杭州市".into(),
            district: "西湖区".into(),
            detail: street.into(),
        },
    };
    NewWaybill {
        waybill_no: WaybillNo::parse(no).unwrap(),
        merchant: MerchantId::parse("M001").unwrap(),
        origin_outlet: OutletId::parse("O001").unwrap(),
        destination_outlet: OutletId::parse("O042").unwrap(),
        sender: party("寄件公司", "13700001111", "仓库路1号"),
        recipient: party(name, phone, street),
        items: "保健品".into(),
    }
}

/// A guard on the embedded store in `data`, under the tests' master key, on a manual clock set to `start`.
fn guard_at(data: &std::path::Path, start: i64) -> (Guard, Arc<ManualClock>) {
    let (guard, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::from_bytes(MASTER),
            signer: None,
        },
        ..GuardConfig::embedded(data)
    })
    .unwrap();
    let clock = Arc::new(ManualClock::new(start));
    (guard.with_clock(clock.clone()), clock)
}

/// The store's wrapped keys, as a vault reads them: what an attacker holding the files and the master key has.
struct Keys(Arc<dyn Store>);

impl WrappedKeyStore for Keys {
    fn get_wrapped_key(&self, id: &str) -> Result<Option<Vec<u8>>, KeyStoreError> {
        Ok(self.0.get_wrapped_key(id)?)
    }
    fn put_wrapped_key_if_absent(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        Err("read only".into())
    }
}

#[test]
fn a_delivered_day_is_shredded_and_only_its_routing_data_remains() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let start = 1_793_548_800_000i64 + 10 * 3_600_000;
    let (g, clock) = guard_at(&data, start);
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let token = |id: &str, role: &str| {
        g.create_account(local, id, role, None, None, &meta)
            .unwrap()
            .1
    };
    let (integ, cs, auditor) = (
        token("I1", "integration"),
        token("K1", "customer_service"),
        token("A1", "auditor"),
    );

    g.create_account(local, "C0420001", "courier", Some("O042"), None, &meta)
        .unwrap();
    // Day 0: two parcels, both delivered that day. Day 1: one that is still on its way.
    let old = [
        ("YT2026110200001", "欧阳娜娜", "13912345678", "文三路88号"),
        ("YT2026110200002", "司马光明", "13698765432", "南山路5号"),
    ];
    let batch: Vec<_> = old.iter().map(|(n, a, p, s)| waybill(n, a, p, s)).collect();
    g.ingest(Actor::Token(&integ), batch, &meta).unwrap();
    // The ticketing system registers the ticket the agent will work.
    g.open_ticket(
        Actor::Token(&integ),
        &wbg_guard::TicketRegistration {
            ticket: "T-0".into(),
            waybills: vec![old[0].0.into()],
            opened_at: None,
            assignee: None,
        },
        &meta,
    )
    .unwrap();
    for (no, ..) in old {
        for (kind, outlet, courier) in [
            (EventType::PickedUp, "O001", None),
            (EventType::AtOutlet, "O042", None),
            (EventType::OutForDelivery, "O042", Some("C0420001")),
            (EventType::Signed, "O042", None),
        ] {
            let ev = StatusEvent {
                kind,
                outlet: OutletId::parse(outlet).unwrap(),
                courier: courier.map(|c| AccountId::parse(c).unwrap()),
                at: None,
            };
            g.record_event(Actor::Token(&integ), no, ev, &meta).unwrap();
        }
    }
    clock.set(start + DAY);
    let live = "YT2026110300001";
    g.ingest(
        Actor::Token(&integ),
        vec![waybill(live, "上官婉儿", "13511112222", "北山街9号")],
        &meta,
    )
    .unwrap();
    g.open_ticket(
        Actor::Token(&integ),
        &wbg_guard::TicketRegistration {
            ticket: "T-2".into(),
            waybills: vec![live.into()],
            opened_at: None,
            assignee: None,
        },
        &meta,
    )
    .unwrap();
    let read = |no: &str, token: &str, purpose: &str, ticket| {
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
    // Before retention: an agent reads one old parcel in full (an incident will blame it later).
    clock.set(start + DAY + 60_000);
    assert_eq!(
        read(old[0].0, &cs, "customer_service", Some("T-0"))
            .unwrap()
            .view,
        View::Full
    );
    let bucket = bucket_of(start);
    let wrapped: Vec<Vec<u8>> = FieldGroup::ALL
        .iter()
        .map(|group| {
            g.store()
                .get_wrapped_key(&group.key_id(bucket))
                .unwrap()
                .unwrap()
        })
        .collect();
    let phone_token = g.blind_index().phone(old[0].2).unwrap();
    assert_eq!(g.store().find_by_token(&phone_token).unwrap().len(), 1);

    // 29 days after delivery nothing is due; 30 days after, day 0 is, day 1 (not delivered) is not.
    clock.set(start + 29 * DAY);
    let policy = RetentionPolicy::default();
    assert!(g
        .run_retention(local, &policy, &meta)
        .unwrap()
        .shredded
        .is_empty());
    clock.set(start + 30 * DAY + 3_600_000);
    assert!(matches!(
        g.run_retention(Actor::Token(&auditor), &policy, &meta),
        Err(GuardError::Forbidden(_))
    ));
    let shredded = g.run_retention(local, &policy, &meta).unwrap().shredded;
    assert_eq!(shredded.len(), 4, "each field group of day 0: {shredded:?}");
    assert!(shredded
        .iter()
        .all(|s| (s.bucket, s.waybills) == (bucket, 2)));
    let removed: u64 = shredded.iter().map(|s| s.index_entries).sum();
    assert_eq!(
        removed, 22,
        "every blind-index entry of both parties of both parcels, and each one's public-lookup token"
    );
    assert!(
        g.run_retention(local, &policy, &meta)
            .unwrap()
            .shredded
            .is_empty(),
        "done once"
    );

    // Reads: the shredded waybills are routing only, and say so in the audit; the live one is untouched.
    let v = read(old[0].0, &cs, "customer_service", Some("T-1")).unwrap();
    assert_eq!(v.view, View::Routing);
    assert!(v.recipient.is_none() && v.sender.is_none() && v.items.is_none());
    assert_eq!(v.history.len(), 4, "routing data stays");
    let e = g.store().audit_entry(v.audit_seq).unwrap().unwrap();
    assert!(String::from_utf8_lossy(&e).contains("retention=shredded"));
    assert_eq!(
        read(old[1].0, &auditor, "customer_service", None)
            .unwrap()
            .view,
        View::Routing
    );
    let v = read(live, &cs, "customer_service", Some("T-2")).unwrap();
    assert_eq!(v.view, View::Full);
    assert!(g.store().find_by_token(&phone_token).unwrap().is_empty());
    // An incident over that read still opens: the shredded waybill counts as exposed, but nobody is left behind
    // it to count as a customer (nor to notify, nor to export).
    let report = g
        .breach_impact(
            Actor::Token(&auditor),
            &wbg_guard::IncidentRequest {
                suspects: vec!["K1".into()],
                from: start,
                to: start + 40 * DAY,
            },
            &meta,
        )
        .unwrap();
    // K1 read two parcels in full: the shredded one and, later, the live one; only the live one's recipient is
    // still someone to count.
    assert_eq!((report.waybills, report.customers), (2, 1), "{report:?}");
    assert!(report.affected.iter().any(|a| a.waybill_no == old[0].0));
    wbg_guard::verify_store(g.store().as_ref(), &g.verifier_key()).unwrap();
    drop(g);

    // The raw files plus the master key: the wrapped key is in none of them, the ciphertext stays but no vault
    // opens it, the blind index no longer confirms the phone, and the key can never be made again.
    for w in &wrapped {
        assert!(
            !files_hold(&data, w),
            "a wrapped data key is still in the store's files"
        );
    }
    for (_, name, phone, street) in old {
        for v in [name, phone, street] {
            assert!(!files_hold(&data, v.as_bytes()));
        }
    }
    let store = Arc::new(SqliteStore::open(&data).unwrap());
    let vault = Vault::open(MasterKey::from_bytes(MASTER), Arc::new(Keys(store.clone()))).unwrap();
    let no = WaybillNo::parse(old[0].0).unwrap();
    let (meta_row, sealed) = store.waybill(&no).unwrap().unwrap();
    assert_eq!(meta_row.bucket, bucket);
    assert!(!sealed.is_empty(), "the ciphertext is still there");
    for f in Field::ALL {
        let opened = vault.open_fields(&no, bucket, &sealed, &[f]);
        assert!(
            matches!(opened, Err(wbg_vault::VaultError::Shredded(b)) if b == bucket),
            "{f:?}"
        );
    }
    assert!(store
        .find_by_token(&vault.blind().phone(old[0].2).unwrap())
        .unwrap()
        .is_empty());
    for (group, w) in FieldGroup::ALL.iter().zip(&wrapped) {
        assert!(store
            .put_wrapped_key_if_absent(&group.key_id(bucket), w)
            .is_err());
    }
}

/// Field groups kept for different times: street addresses and items go after 7 days, while names, phones and
/// regions stay for 30. In between, the full view still names the recipient but shows no street and no items.
#[test]
fn each_field_group_is_shredded_on_its_own_schedule() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let start = 1_793_548_800_000i64 + 10 * 3_600_000;
    let (g, clock) = guard_at(&data, start);
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let token = |id: &str, role: &str| {
        g.create_account(local, id, role, None, None, &meta)
            .unwrap()
            .1
    };
    let (integ, cs) = (token("I1", "integration"), token("K1", "customer_service"));
    g.create_account(local, "C0420001", "courier", Some("O042"), None, &meta)
        .unwrap();
    let (no, name, phone, street) = ("YT2026110200009", "欧阳娜娜", "13912345678", "文三路88号");
    g.ingest(
        Actor::Token(&integ),
        vec![waybill(no, name, phone, street)],
        &meta,
    )
    .unwrap();
    g.open_ticket(
        Actor::Token(&integ),
        &wbg_guard::TicketRegistration {
            ticket: "T-9".into(),
            waybills: vec![no.into()],
            opened_at: None,
            assignee: None,
        },
        &meta,
    )
    .unwrap();
    for (kind, outlet, courier) in [
        (EventType::PickedUp, "O001", None),
        (EventType::AtOutlet, "O042", None),
        (EventType::OutForDelivery, "O042", Some("C0420001")),
        (EventType::Signed, "O042", None),
    ] {
        let ev = StatusEvent {
            kind,
            outlet: OutletId::parse(outlet).unwrap(),
            courier: courier.map(|c| AccountId::parse(c).unwrap()),
            at: None,
        };
        g.record_event(Actor::Token(&integ), no, ev, &meta).unwrap();
    }
    let policy: RetentionPolicy = toml::from_str("[groups]\naddress = 7\nitems = 7\n").unwrap();
    assert_eq!(policy.days_for(FieldGroup::Contact), 30);
    let address_token = g
        .blind_index()
        .address(&["浙江省", "杭州市", "西湖区", street]);
    let phone_token = g.blind_index().phone(phone).unwrap();
    assert_eq!(g.store().find_by_token(&address_token).unwrap().len(), 1);
    let read = || {
        g.read(
            &cs,
            &ReadRequest {
                waybill_no: no,
                purpose: "customer_service",
                ticket: Some("T-9"),
            },
            &meta,
        )
        .unwrap()
    };

    clock.set(start + 7 * DAY + 3_600_000);
    let shredded = g.run_retention(local, &policy, &meta).unwrap().shredded;
    let groups: Vec<&str> = shredded.iter().map(|s| s.group.as_str()).collect();
    assert_eq!(groups, ["address", "items"]);
    let v = read();
    assert_eq!(v.view, View::Full);
    let r = v.recipient.as_ref().unwrap();
    assert_eq!((r.name.as_str(), r.phone.as_str()), (name, phone));
    assert_eq!(r.address.district, "西湖区", "the region stays");
    assert_eq!(
        (r.address.detail.as_deref(), v.items.as_deref()),
        (None, None)
    );
    let e = wbg_audit::AuditEntry::decode(&g.store().audit_entry(v.audit_seq).unwrap().unwrap())
        .unwrap();
    assert!(
        e.detail
            .as_deref()
            .unwrap_or("")
            .contains("retention=shredded:address,items"),
        "{e:?}"
    );
    assert!(
        !e.fields
            .iter()
            .any(|f| f == "recipient.detail" || f == "items"),
        "{:?}",
        e.fields
    );
    assert!(
        g.store().find_by_token(&address_token).unwrap().is_empty(),
        "the address token went with it"
    );
    assert_eq!(
        g.store().find_by_token(&phone_token).unwrap().len(),
        1,
        "the phone token stays"
    );
    assert!(!files_hold(&data, street.as_bytes()));

    clock.set(start + 30 * DAY + 3_600_000);
    let shredded = g.run_retention(local, &policy, &meta).unwrap().shredded;
    let groups: Vec<&str> = shredded.iter().map(|s| s.group.as_str()).collect();
    assert_eq!(groups, ["contact", "region"]);
    assert_eq!(read().view, View::Routing);
    assert!(g.store().find_by_token(&phone_token).unwrap().is_empty());
    wbg_guard::verify_store(g.store().as_ref(), &g.verifier_key()).unwrap();
}

/// Seven simulated weeks of a carrier whose parcels are signed for within two days, but 1 % of which get stuck
/// in a depot and never move. Each day's contacts (names, phones: kept 7 days) and streets (10 days) go exactly
/// when its delivered parcels' time is up, the stuck ones being carried to a later day each time rather than
/// holding theirs; every stuck parcel stays fully readable; and each run does what the dry run before it said:
/// the groups due, the parcels carried, and the time each kept group was said to fall due.
#[test]
fn with_one_percent_stuck_every_days_contacts_go_on_schedule() {
    const PER_DAY: usize = 100;
    const DAYS: i64 = 28;
    const STEP: i64 = 12 * 3_600_000;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let first_day = 20_758i64;
    let at = |day: i64, hour: i64| (first_day + day) * DAY + hour * 3_600_000;
    let (g, clock) = guard_at(&data, at(0, 9));
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let integ = g
        .create_account(local, "I1", "integration", None, None, &meta)
        .unwrap()
        .1;
    g.create_account(local, "C0420001", "courier", Some("O042"), None, &meta)
        .unwrap();
    let policy: RetentionPolicy = toml::from_str("[groups]\ncontact = 7\naddress = 10\n").unwrap();
    let no = |day: i64, i: usize| format!("YT2026{day:04}{i:05}");
    let name = |day: i64, i: usize| format!("收件人{day}-{i}");
    // Parcel i of a day: stuck when i % 100 == 0; otherwise signed for i % 3 days after its day.
    let stuck = |i: usize| i.is_multiple_of(100);
    let scan = |nos: &[String], kind: EventType| {
        if nos.is_empty() {
            return;
        }
        let batch = nos
            .iter()
            .map(|n| wbg_guard::ScanEvent {
                waybill_no: n.clone(),
                kind,
                outlet: OutletId::parse("O042").unwrap(),
                courier: (kind == EventType::OutForDelivery)
                    .then(|| AccountId::parse("C0420001").unwrap()),
                at: None,
            })
            .collect();
        let r = g.record_events(Actor::Token(&integ), batch, &meta).unwrap();
        assert_eq!(r.recorded, nos.len());
    };
    let deliver = |nos: &[String]| {
        scan(nos, EventType::OutForDelivery);
        scan(nos, EventType::Signed);
    };
    // When each kept (bucket, group) was last said to fall due, and when each was shredded.
    let mut said: std::collections::HashMap<(i64, String), i64> = Default::default();
    let mut shredded_at: std::collections::HashMap<(i64, String), i64> = Default::default();
    let mut carried_total = 0u64;
    for step in 0..(DAYS + 14) * 2 {
        let (day, hour) = (step / 2, if step % 2 == 0 { 9 } else { 21 });
        clock.set(at(day, hour));
        if hour == 9 && day < DAYS {
            let batch = (0..PER_DAY)
                .map(|i| {
                    waybill(
                        &no(day, i),
                        &name(day, i),
                        &format!("139{:08}", day * 1000 + i as i64),
                        "文三路88号",
                    )
                })
                .collect();
            g.ingest(Actor::Token(&integ), batch, &meta).unwrap();
            let all: Vec<String> = (0..PER_DAY).map(|i| no(day, i)).collect();
            scan(&all, EventType::PickedUp);
            scan(&all, EventType::AtOutlet);
        }
        // Deliveries due now: the same evening (k = 0), or the morning k days later.
        let due_now: Vec<String> = (0..3)
            .filter_map(|k| {
                let from = day - k;
                ((k == 0) == (hour == 21) && (0..DAYS).contains(&from)).then_some(from)
            })
            .flat_map(|from| {
                (0..PER_DAY)
                    .filter(move |i| !stuck(*i) && (i % 3) as i64 == day - from)
                    .map(move |i| no(from, i))
            })
            .collect();
        deliver(&due_now);

        let plan = g.retention_plan(local, &policy).unwrap();
        let run = g.run_retention(local, &policy, &meta).unwrap();
        let planned: std::collections::BTreeSet<(i64, String)> = plan
            .iter()
            .filter(|p| p.due)
            .map(|p| (p.bucket, p.group.clone()))
            .collect();
        let done: std::collections::BTreeSet<(i64, String)> = run
            .shredded
            .iter()
            .map(|s| (s.bucket, s.group.clone()))
            .collect();
        assert_eq!(planned, done, "the dry run's due groups are the run's");
        for c in &run.carried {
            let said_carried = plan
                .iter()
                .find(|p| p.bucket == c.from && p.due)
                .map(|p| p.carried);
            assert_eq!(said_carried, Some(c.waybills), "carried from {}", c.from);
            assert_eq!((c.to, c.failed), (first_day + day, 0));
            carried_total += c.waybills;
        }
        for p in &plan {
            if p.due {
                continue;
            }
            assert_eq!(p.held_by.len(), 1, "{p:?}");
            assert!(
                ["delivery", "open", "day"].contains(&p.held_by[0].as_str()),
                "{p:?}"
            );
            said.insert((p.bucket, p.group.clone()), p.due_at.unwrap());
        }
        for key in done {
            // Shredded at the first run at or after the time the dry runs gave.
            if let Some(t) = said.get(&key) {
                assert!(*t <= at(day, hour) && at(day, hour) - t < STEP, "{key:?}");
            }
            shredded_at.insert(key, at(day, hour));
        }
    }
    // Every simulated day's contacts went 7 days after its last delivery (two days after the day, at 09:00), its
    // streets 10 days after; the stuck parcels held none of them.
    for d in 0..DAYS {
        let b = first_day + d;
        assert_eq!(
            shredded_at.get(&(b, "contact".to_owned())),
            Some(&at(d + 9, 9)),
            "day {d}'s contacts"
        );
        assert_eq!(
            shredded_at.get(&(b, "address".to_owned())),
            Some(&at(d + 12, 9)),
            "day {d}'s streets"
        );
    }
    assert!(
        carried_total >= DAYS as u64,
        "each stuck parcel carried at least once"
    );

    // The stuck parcels: still open, in a day not yet shredded, and whole to anyone holding the keys — while a
    // delivered parcel of the same day is gone.
    let store = g.store().clone();
    let vault = Vault::open(MasterKey::from_bytes(MASTER), Arc::new(Keys(store.clone()))).unwrap();
    for d in 0..DAYS {
        let n = WaybillNo::parse(&no(d, 0)).unwrap();
        let (m, sealed) = store.waybill(&n).unwrap().unwrap();
        assert!(m.bucket > first_day + d, "day {d}'s stuck parcel moved on");
        let fields = vault
            .open_fields(&n, m.bucket, &sealed, &Field::ALL)
            .unwrap();
        assert!(fields
            .iter()
            .any(|(f, v)| *f == Field::RecipientName && *v == name(d, 0)));
        assert_eq!(
            store
                .find_by_token(
                    &g.blind_index()
                        .phone(&format!("139{:08}", d * 1000))
                        .unwrap()
                )
                .unwrap(),
            vec![n],
            "its blind index stays with it"
        );
        let delivered = WaybillNo::parse(&no(d, 1)).unwrap();
        let (m, sealed) = store.waybill(&delivered).unwrap().unwrap();
        assert_eq!(m.bucket, first_day + d);
        assert!(matches!(
            vault.open_fields(&delivered, m.bucket, &sealed, &[Field::RecipientName]),
            Err(wbg_vault::VaultError::Shredded(_))
        ));
    }
    wbg_guard::verify_store(g.store().as_ref(), &g.verifier_key()).unwrap();
}

/// A deletion request's parcel still under way is erased by the first retention run after it is signed for —
/// not before, while the courier still needs it — and then its fields are gone for anyone holding the keys.
#[test]
fn a_pending_erasure_goes_with_the_first_run_after_delivery() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let start = 1_793_548_800_000i64;
    let (g, clock) = guard_at(&data, start);
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let token = |id: &str, role: &str| {
        g.create_account(local, id, role, None, None, &meta)
            .unwrap()
            .1
    };
    let (integ, cs) = (token("I1", "integration"), token("K1", "customer_service"));
    let courier = g
        .create_account(local, "C0420001", "courier", Some("O042"), None, &meta)
        .unwrap()
        .1;
    let no = "YT2026110200077";
    g.ingest(
        Actor::Token(&integ),
        vec![waybill(no, "欧阳娜娜", "13912345678", "文三路88号")],
        &meta,
    )
    .unwrap();
    let scan = |kind, courier: Option<&str>| {
        let ev = StatusEvent {
            kind,
            outlet: OutletId::parse("O042").unwrap(),
            courier: courier.map(|c| AccountId::parse(c).unwrap()),
            at: None,
        };
        g.record_event(Actor::Token(&integ), no, ev, &meta).unwrap();
    };
    scan(EventType::PickedUp, None);
    scan(EventType::AtOutlet, None);
    scan(EventType::OutForDelivery, Some("C0420001"));
    g.open_ticket(
        Actor::Token(&integ),
        &wbg_guard::TicketRegistration {
            ticket: "T-7".into(),
            waybills: vec![no.into()],
            opened_at: None,
            assignee: None,
        },
        &meta,
    )
    .unwrap();
    let a = g
        .rights_erase(
            Actor::Token(&cs),
            &wbg_guard::RightsRequest {
                phone: "13912345678".into(),
                waybill_no: no.into(),
                ticket: "T-7".into(),
            },
            &meta,
        )
        .unwrap();
    assert!(a.erased.is_empty());
    assert_eq!(a.pending, vec![no.to_owned()]);
    let policy = RetentionPolicy::default();
    clock.set(start + 3_600_000);
    assert_eq!(g.run_retention(local, &policy, &meta).unwrap().erased, 0);
    let n = WaybillNo::parse(no).unwrap();
    let v = g
        .read(
            &courier,
            &ReadRequest {
                waybill_no: no,
                purpose: "delivery",
                ticket: None,
            },
            &meta,
        )
        .unwrap();
    assert_eq!(v.view, View::Full, "the courier still delivers it");
    let (m, _) = g.store().waybill(&n).unwrap().unwrap();
    assert!(m.bucket > 0, "still in its day while under way");
    scan(EventType::Signed, None);
    clock.set(start + 2 * 3_600_000);
    assert_eq!(g.run_retention(local, &policy, &meta).unwrap().erased, 1);
    let (m, sealed) = g.store().waybill(&n).unwrap().unwrap();
    assert!(m.bucket < 0, "moved into a bucket of its own");
    let vault = Vault::open(
        MasterKey::from_bytes(MASTER),
        Arc::new(Keys(g.store().clone())),
    )
    .unwrap();
    for f in Field::ALL {
        assert!(matches!(
            vault.open_fields(&n, m.bucket, &sealed, &[f]),
            Err(wbg_vault::VaultError::Shredded(_))
        ));
    }
    assert!(g
        .store()
        .find_by_token(&g.blind_index().phone("13912345678").unwrap())
        .unwrap()
        .is_empty());
    assert_eq!(
        g.run_retention(local, &policy, &meta).unwrap().erased,
        0,
        "done once"
    );
    wbg_guard::verify_store(g.store().as_ref(), &g.verifier_key()).unwrap();
}
