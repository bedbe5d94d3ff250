//! Watermarked exports (ask → second account approves → one download, canary rows and a keyed order that
//! attribution recognises) and breach incidents (impact report, then the notification list through the policy).
use crate::common;

use std::sync::Arc;
use wbg_forensics::Limits;
use wbg_guard::{
    Actor, ExportRequest, ExportStatus, Guard, GuardConfig, GuardError, IncidentRequest, KeyConfig,
    NoRisk, NotifyScope, ReadRequest, RequestMeta,
};
use wbg_sim::{Carrier, CarrierSpec};
use wbg_vault::MasterKey;

struct World {
    g: Guard,
    carrier: Carrier,
    merchant: String,
    other_merchant: String,
    auditor: String,
    cs: String,
    courier: String,
}

const META: RequestMeta = RequestMeta {
    device: None,
    ip: None,
};

fn world(dir: &std::path::Path) -> World {
    let (g, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        ..GuardConfig::embedded(dir.join("data"))
    })
    .unwrap();
    // Risk is the engine's business and tested there; these tests read in bursts on purpose.
    let g = g.with_risk(Arc::new(NoRisk));
    let make = |id: &str, role: &str, outlet: Option<&str>, merchant: Option<&str>| {
        g.create_account(Actor::Local("test"), id, role, outlet, merchant, &META)
            .unwrap()
            .1
    };
    let integration = make("I1", "integration", None, None);
    let merchant = make("U1", "merchant", None, Some("M001"));
    let other_merchant = make("U2", "merchant", None, Some("M002"));
    let auditor = make("A1", "auditor", None, None);
    let cs = make("K1", "customer_service", None, None);
    let courier = make("C1", "courier", Some("O001"), None);
    let carrier = Carrier::generate(CarrierSpec {
        merchants: 2,
        customers: 5_000,
        ..CarrierSpec::default()
    });
    g.ingest(Actor::Token(&integration), carrier.waybills(1, 600), &META)
        .unwrap();
    World {
        g,
        carrier,
        merchant,
        other_merchant,
        auditor,
        cs,
        courier,
    }
}

fn window() -> ExportRequest {
    ExportRequest {
        purpose: "customer_service".into(),
        from: wbg_core::now_millis() - 30 * 86_400_000,
        to: wbg_core::now_millis() + 3_600_000,
    }
}

/// The rows of an export file, header skipped.
fn rows(csv: &[u8]) -> Vec<Vec<String>> {
    csv::Reader::from_reader(csv)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn leak(rows: &[Vec<String>]) -> String {
    let mut out = String::from("收件人,手机号,省,市,区,详细地址\n");
    for r in rows {
        out.push_str(&r[1..].join(","));
        out.push('\n');
    }
    out
}

#[test]
fn an_export_needs_a_second_account_is_delivered_once_and_its_watermark_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path());
    let g = &w.g;
    let m001 = w
        .carrier
        .waybills(1, 600)
        .iter()
        .filter(|x| x.merchant.as_str() == "M001")
        .count();

    // Who may ask, for what.
    let e1 = g.request_export(&w.merchant, &window(), &META).unwrap();
    assert_eq!((e1.rows, e1.status), (m001, ExportStatus::Requested));
    let err = g.request_export(&w.courier, &window(), &META).unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    let delivery = ExportRequest {
        purpose: "delivery".into(),
        ..window()
    };
    let err = g.request_export(&w.merchant, &delivery, &META).unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    let too_long = ExportRequest {
        from: 0,
        to: 93 * 86_400_000,
        ..window()
    };
    let err = g.request_export(&w.merchant, &too_long, &META).unwrap_err();
    assert!(matches!(err, GuardError::Invalid(_)), "{err:?}");
    let empty = ExportRequest {
        from: 0,
        to: 1_000,
        ..window()
    };
    let err = g.request_export(&w.merchant, &empty, &META).unwrap_err();
    assert!(matches!(err, GuardError::Invalid(_)), "{err:?}");

    // Nothing leaves before a second account approves; the requester cannot be that account.
    let err = g.deliver_export(&w.merchant, &e1.id, &META).unwrap_err();
    assert!(matches!(err, GuardError::Conflict(_)), "{err:?}");
    let err = g
        .approve_export(Actor::Token(&w.merchant), &e1.id, &META)
        .unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    let err = g
        .approve_export(Actor::Token(&w.cs), &e1.id, &META)
        .unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    let err = g
        .approve_export(Actor::Local("cli"), &e1.id, &META)
        .unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    let err = g.export(&w.other_merchant, &e1.id, &META).unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    let approved = g
        .approve_export(Actor::Token(&w.auditor), &e1.id, &META)
        .unwrap();
    assert_eq!(approved.approved_by.as_deref(), Some("A1"));
    let err = g
        .approve_export(Actor::Token(&w.auditor), &e1.id, &META)
        .unwrap_err();
    assert!(matches!(err, GuardError::Conflict(_)), "{err:?}");

    // Only its requester downloads it, and only once.
    let err = g
        .deliver_export(&w.other_merchant, &e1.id, &META)
        .unwrap_err();
    assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    let audit_before = g.store().audit_size().unwrap();
    let f1 = g.deliver_export(&w.merchant, &e1.id, &META).unwrap();
    assert_eq!(f1.export.status, ExportStatus::Delivered);
    let r1 = rows(&f1.csv);
    let canaries1: Vec<&Vec<String>> = r1
        .iter()
        .filter(|r| g.canary_for(&r[0]).is_some())
        .collect();
    assert_eq!(
        canaries1.len(),
        wbg_guard::export_canaries(m001),
        "canary rows in the file"
    );
    assert_eq!(r1.len(), m001 + canaries1.len());
    assert!(canaries1
        .iter()
        .all(|r| g.canary_for(&r[0]).as_deref() == Some(&*format!("export:{}", e1.id))));
    // Every row is on the audit log, as an export row of this file.
    let exported = g
        .store()
        .audit_entries(audit_before, 100_000)
        .unwrap()
        .into_iter()
        .map(|s| wbg_audit::AuditEntry::decode(&s.bytes).unwrap())
        .filter(|e| {
            e.action == "export" && e.detail.as_deref() == Some(&*format!("export={}", e1.id))
        })
        .count();
    assert_eq!(exported, r1.len());
    let err = g.deliver_export(&w.merchant, &e1.id, &META).unwrap_err();
    assert!(matches!(err, GuardError::Conflict(_)), "{err:?}");

    // A second export of the same orders: its own canaries (none of the first file's), its own order.
    let e2 = g.request_export(&w.merchant, &window(), &META).unwrap();
    g.approve_export(Actor::Token(&w.auditor), &e2.id, &META)
        .unwrap();
    let r2 = rows(&g.deliver_export(&w.merchant, &e2.id, &META).unwrap().csv);
    assert!(canaries1.iter().all(|c| !r2.iter().any(|r| r[0] == c[0])));
    let real_order = |r: &[Vec<String>]| -> Vec<String> {
        r.iter()
            .filter(|x| g.canary_for(&x[0]).is_none())
            .map(|x| x[0].clone())
            .collect()
    };
    assert_ne!(real_order(&r1), real_order(&r2));
    let mut sorted1 = real_order(&r1);
    let mut sorted2 = real_order(&r2);
    sorted1.sort();
    sorted2.sort();
    assert_eq!(sorted1, sorted2, "the same orders in both files");

    // A leak cut from the first file, in its order, with 30 % unrelated rows mixed in and no canary: the
    // coverage of both files is the same, the order names the first.
    let mut cut: Vec<Vec<String>> = r1
        .iter()
        .filter(|r| g.canary_for(&r[0]).is_none())
        .take(40)
        .cloned()
        .collect();
    let strangers = Carrier::generate(CarrierSpec {
        seed: 99,
        ..CarrierSpec::default()
    })
    .waybills(1, 17);
    for (k, s) in strangers.iter().enumerate() {
        let a = &s.recipient.address;
        cut.insert(
            (k * 3).min(cut.len()),
            vec![
                String::new(),
                s.recipient.name.clone(),
                s.recipient.phone.clone(),
                a.province.clone(),
                a.city.clone(),
                a.district.clone(),
                a.detail.clone(),
            ],
        );
    }
    let report = g
        .attribute(
            Actor::Token(&w.auditor),
            leak(&cut).as_bytes(),
            &Limits::default(),
            &META,
        )
        .unwrap();
    let top = &report.suspects[0];
    assert_eq!(top.principal, format!("export:{}", e1.id), "{report:#?}");
    assert!(top.certain);
    let mark = top.watermark.expect("an export's order is checked");
    // A customer with several parcels may match another row of the file: the run stays long regardless.
    assert!(mark.conclusive && mark.in_order >= 35, "{mark:?}");
    let origin = top.export.as_ref().unwrap();
    assert_eq!(
        (origin.requested_by.as_str(), origin.approved_by.as_deref()),
        ("U1", Some("A1"))
    );
    assert_eq!(top.role.as_deref(), Some("export"));
    let second = report
        .suspects
        .iter()
        .find(|s| s.principal == format!("export:{}", e2.id))
        .expect("the second file covers the same rows");
    assert!(!second.certain && !second.watermark.unwrap().conclusive);

    // Shuffled, the order says nothing, but one canary row of the second file names it outright.
    let mut shuffled: Vec<Vec<String>> = r1
        .iter()
        .filter(|r| g.canary_for(&r[0]).is_none())
        .rev()
        .step_by(2)
        .take(30)
        .cloned()
        .collect();
    shuffled.sort_by(|a, b| a[2].cmp(&b[2]));
    let canary2 = r2
        .iter()
        .find(|r| g.canary_for(&r[0]).is_some())
        .unwrap()
        .clone();
    shuffled.insert(11, canary2);
    let report = g
        .attribute(
            Actor::Token(&w.auditor),
            leak(&shuffled).as_bytes(),
            &Limits::default(),
            &META,
        )
        .unwrap();
    assert_eq!(report.suspects[0].principal, format!("export:{}", e2.id));
    assert!(report.suspects[0].certain);
    assert!(report.suspects.iter().filter(|s| s.certain).count() == 1);
}

#[test]
fn a_breach_incident_reports_impact_and_only_customer_service_gets_the_people_to_notify() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path());
    let g = &w.g;
    let own: Vec<wbg_core::NewWaybill> = w
        .carrier
        .waybills(1, 600)
        .into_iter()
        .filter(|x| x.merchant.as_str() == "M001")
        .collect();
    let read = |token: &str, no: &str, purpose: &str| {
        g.read(
            token,
            &ReadRequest {
                waybill_no: no,
                purpose,
                ticket: None,
            },
            &META,
        )
        .unwrap()
    };
    let from = wbg_core::now_millis() - 1;
    // The suspect: 40 of its own orders read in full (after-sale), 20 more masked, some twice.
    for x in &own[..40] {
        assert_eq!(
            read(&w.merchant, x.waybill_no.as_str(), "customer_service")
                .view
                .as_str(),
            "full"
        );
    }
    for x in &own[30..60] {
        read(&w.merchant, x.waybill_no.as_str(), "label");
    }
    // Someone else's reads are not the incident's.
    for x in &own[100..120] {
        read(&w.cs, x.waybill_no.as_str(), "customer_service");
    }
    let to = wbg_core::now_millis() + 1;
    let req = IncidentRequest {
        suspects: vec!["U1".into()],
        from,
        to,
    };

    // Only an investigator opens an incident, and only a sound one.
    for token in [&w.cs, &w.merchant] {
        let err = g
            .breach_impact(Actor::Token(token), &req, &META)
            .unwrap_err();
        assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    }
    for bad in [
        IncidentRequest {
            suspects: vec![],
            ..req.clone()
        },
        IncidentRequest {
            suspects: vec!["13800138000 ".into()],
            ..req.clone()
        },
        IncidentRequest {
            from: to,
            to: from,
            ..req.clone()
        },
    ] {
        let err = g
            .breach_impact(Actor::Token(&w.auditor), &bad, &META)
            .unwrap_err();
        assert!(matches!(err, GuardError::Invalid(_)), "{err:?}");
    }

    let report = g
        .breach_impact(Actor::Token(&w.auditor), &req, &META)
        .unwrap();
    assert_eq!(report.exposures, 40 + 30);
    assert_eq!((report.waybills, report.waybills_full), (60, 40));
    let phones: std::collections::HashSet<&str> = own[..60]
        .iter()
        .map(|x| x.recipient.phone.as_str())
        .collect();
    let phones_full: std::collections::HashSet<&str> = own[..40]
        .iter()
        .map(|x| x.recipient.phone.as_str())
        .collect();
    assert_eq!(report.customers, phones.len());
    assert_eq!(report.customers_full, phones_full.len());
    assert_eq!(report.fields.get("recipient.phone"), Some(&40));
    assert_eq!(report.fields.get("recipient.phone:masked"), Some(&30));
    assert_eq!(
        report.by_region.iter().map(|r| r.customers).sum::<usize>(),
        report.customers
    );
    let s = &report.per_suspect[0];
    assert_eq!(
        (s.exposures, s.waybills_full, s.waybills_masked),
        (70, 40, 20)
    );
    let events: Vec<&str> = report.timeline.iter().map(|e| e.event.as_str()).collect();
    assert!(events.contains(&"first_exposure") && events.contains(&"last_exposure"));
    assert_eq!(
        report.daily.iter().map(|d| d.full + d.masked).sum::<u64>(),
        70
    );
    assert!(report.audit_seq.is_some());

    // JSON, CSV and Markdown name waybills and accounts, never a person.
    let json = serde_json::to_string(&report).unwrap();
    let csv_text = String::from_utf8(report.to_csv().unwrap()).unwrap();
    let md = report.to_markdown();
    assert_eq!(csv_text.lines().count(), 61);
    assert!(md.contains(&format!("# Breach-impact report {}", report.incident)));
    for x in &own[..60] {
        for text in [&json, &csv_text, &md] {
            assert!(!text.contains(&x.recipient.phone) && !text.contains(&x.recipient.name));
            assert!(!text.contains(&x.recipient.address.detail));
        }
    }
    let again = g
        .incident(Actor::Token(&w.auditor), &report.incident, &META)
        .unwrap();
    assert_eq!(again.waybills, 60);

    // The people to notify: customer service, through the policy, every read audited.
    for token in [&w.auditor, &w.merchant, &w.courier] {
        let err = g
            .notification_list(token, &report.incident, NotifyScope::All, &META)
            .unwrap_err();
        assert!(matches!(err, GuardError::Forbidden(_)), "{err:?}");
    }
    // A merchant reading its own orders for after-sale work is its work: by default nobody is notified of it.
    assert_eq!(report.waybills_beyond_work, 0);
    assert_eq!(
        (
            report.per_suspect[0].exposures_work,
            report.per_suspect[0].exposures_beyond
        ),
        (70, 0)
    );
    let none = g
        .notification_list(&w.cs, &report.incident, NotifyScope::BeyondWork, &META)
        .unwrap();
    assert!(none.notices.is_empty() && none.first_audit_seq.is_none());
    let before = g.store().audit_size().unwrap();
    let list = g
        .notification_list(&w.cs, &report.incident, NotifyScope::All, &META)
        .unwrap();
    let recipients: Vec<&wbg_guard::Notice> = list
        .notices
        .iter()
        .filter(|n| n.parties.iter().any(|p| p == "recipient"))
        .collect();
    assert_eq!(recipients.len(), report.customers);
    assert_eq!(list.withheld, 0);
    let full_first = recipients
        .iter()
        .take_while(|n| n.exposure == "full")
        .count();
    assert_eq!(full_first, report.customers_full);
    assert!(recipients.iter().all(|n| phones.contains(n.phone.as_str())));
    // Senders whose fields the reads showed are told too, one notice per person.
    let mut people: Vec<&str> = list.notices.iter().map(|n| n.phone.as_str()).collect();
    people.sort_unstable();
    people.dedup();
    assert_eq!(people.len(), list.notices.len(), "one notice per person");
    assert_eq!(g.store().audit_size().unwrap(), before + 60);
    // Re-attributing the leak after the notification still names the merchant, not the agent who notified
    // exactly the leaked set.
    let rows: Vec<Vec<String>> = own[..40]
        .iter()
        .map(|x| {
            let a = &x.recipient.address;
            vec![
                String::new(),
                x.recipient.name.clone(),
                x.recipient.phone.clone(),
                a.province.clone(),
                a.city.clone(),
                a.district.clone(),
                a.detail.clone(),
            ]
        })
        .collect();
    let again = g
        .attribute(
            Actor::Token(&w.auditor),
            leak(&rows).as_bytes(),
            &Limits::default(),
            &META,
        )
        .unwrap();
    assert_eq!(again.suspects[0].principal, "U1");
    assert!(again.suspects.iter().all(|s| s.principal != "K1"));
    assert_eq!(list.first_audit_seq, Some(before));
    let err = g
        .notification_list(&w.cs, "INC-000000000000", NotifyScope::All, &META)
        .unwrap_err();
    assert!(matches!(err, GuardError::NotFound(_)), "{err:?}");
    let err = g
        .notification_list(&w.cs, "../etc", NotifyScope::All, &META)
        .unwrap_err();
    assert!(matches!(err, GuardError::Invalid(_)), "{err:?}");
    // The purpose opens nothing outside an incident's list.
    let outside = read(&w.cs, own[200].waybill_no.as_str(), "breach_notification");
    assert_eq!(outside.view.as_str(), "masked");
}

/// An export file is names, phones and addresses in bulk: each download is shown to the risk engine as the
/// requester's full read, and a refusal leaves the export approved for a later download.
#[test]
fn each_export_download_is_metered_by_the_risk_engine() {
    let dir = tempfile::tempdir().unwrap();
    let World {
        g,
        merchant,
        auditor,
        ..
    } = world(dir.path());
    let hook = common::Metered::allowing(1);
    let g = g.with_risk(hook.clone());
    let mut ids = Vec::new();
    for _ in 0..2 {
        let e = g.request_export(&merchant, &window(), &META).unwrap();
        g.approve_export(Actor::Token(&auditor), &e.id, &META)
            .unwrap();
        ids.push(e.id);
    }
    assert!(g.deliver_export(&merchant, &ids[0], &META).is_ok());
    let err = g.deliver_export(&merchant, &ids[1], &META).unwrap_err();
    assert!(matches!(err, GuardError::RateLimited(_)), "{err:?}");
    assert_eq!(
        *hook.seen.lock().unwrap(),
        vec![("U1".to_owned(), "customer_service".to_owned()); 2],
        "one assessment per download, as the requester"
    );
    assert_eq!(
        g.export(&merchant, &ids[1], &META).unwrap().status,
        ExportStatus::Approved,
        "a refused download can be made later"
    );
}

#[test]
fn an_exports_canary_rows_are_numbered_from_the_reserve_and_drawn_from_its_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path());
    let g = &w.g;
    // One canary per hundred rows, none in a file so small that one would be a tenth of it.
    for (rows, canaries) in [(1, 0), (9, 0), (10, 1), (250, 2), (100_000, 10)] {
        assert_eq!(wbg_guard::export_canaries(rows), canaries, "{rows} rows");
    }
    // Numbers of the carrier's own series the allocator issued and voided: same shape as its parcels'.
    let real: Vec<String> = w
        .carrier
        .waybills(1, 600)
        .iter()
        .map(|x| x.waybill_no.to_string())
        .collect();
    let shape = |n: &str| (n.len(), n[..4].to_owned());
    let reserved: Vec<String> = (0..5)
        .map(|i| {
            let base = &real[i * 7];
            format!("{}{:04}", &base[..base.len() - 4], 9_000 + i)
        })
        .filter(|n| !real.contains(n))
        .collect();
    assert_eq!(reserved.len(), 5);
    let reserve = |token: &str, numbers: &[String]| {
        g.reserve_canary_numbers(Actor::Token(token), numbers, &META)
    };
    assert!(matches!(
        reserve(&w.cs, &reserved),
        Err(GuardError::Forbidden(_))
    ));
    assert!(matches!(
        reserve(&w.auditor, &[reserved[0].clone(), reserved[0].clone()]),
        Err(GuardError::Conflict(_))
    ));
    assert!(matches!(
        reserve(&w.auditor, &[real[0].clone()]),
        Err(GuardError::Conflict(_))
    ));
    assert_eq!(reserve(&w.auditor, &reserved).unwrap().reserved, 5);
    assert!(matches!(
        reserve(&w.auditor, &reserved[..1]),
        Err(GuardError::Conflict(_))
    ));

    let e = g.request_export(&w.merchant, &window(), &META).unwrap();
    g.approve_export(Actor::Token(&w.auditor), &e.id, &META)
        .unwrap();
    let file = rows(&g.deliver_export(&w.merchant, &e.id, &META).unwrap().csv);
    let (canaries, genuine): (Vec<&Vec<String>>, Vec<&Vec<String>>) =
        file.iter().partition(|r| g.canary_for(&r[0]).is_some());
    assert_eq!(canaries.len(), wbg_guard::export_canaries(genuine.len()));
    assert!(!canaries.is_empty());
    let col = |rows: &[&Vec<String>], i: usize| -> std::collections::HashSet<String> {
        rows.iter().map(|r| r[i].clone()).collect()
    };
    let surnames: std::collections::HashSet<String> = genuine
        .iter()
        .map(|r| r[1].chars().take(1).collect())
        .collect();
    for c in &canaries {
        assert!(
            reserved.contains(&c[0]),
            "numbered from the reserve: {}",
            c[0]
        );
        assert_eq!(shape(&c[0]), shape(&genuine[0][0]));
        assert!(surnames.contains(&c[1].chars().take(1).collect::<String>()));
        assert!(c[2].len() == 11 && c[2].bytes().all(|b| b.is_ascii_digit()));
        let phone_of = |p: &str| {
            genuine
                .iter()
                .any(|r| r[2][..3] == p[..3] && r[2][9..] == p[9..])
        };
        assert!(phone_of(&c[2]), "the head and tail of a real row's phone");
        assert!(
            !genuine.iter().any(|r| r[2] == c[2]),
            "nobody's whole number"
        );
        for i in 3..=5 {
            assert!(
                col(&genuine, i).contains(&c[i]),
                "column {i} from the file's own rows"
            );
        }
    }
    assert_eq!(
        g.canary_reserve(Actor::Token(&w.auditor), &META)
            .unwrap()
            .reserved,
        5 - canaries.len()
    );
    // The log says how many were taken, never which.
    let log: Vec<String> = g
        .store()
        .audit_entries(0, 100_000)
        .unwrap()
        .into_iter()
        .map(|s| String::from_utf8_lossy(&s.bytes).into_owned())
        .filter(|t| t.contains("canary_reserve"))
        .collect();
    assert!(log.len() >= 2);
    assert!(log
        .iter()
        .all(|t| reserved.iter().all(|n| !t.contains(n.as_str()))));
}
