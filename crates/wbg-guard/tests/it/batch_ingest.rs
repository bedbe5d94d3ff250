//! Large batches take the overlapped seal-and-insert path: everything lands, blind indexes included, or nothing.
use wbg_guard::{Actor, Guard, GuardConfig, GuardError, KeyConfig, RequestMeta};
use wbg_sim::{Carrier, CarrierSpec};
use wbg_vault::MasterKey;

fn guard(dir: &std::path::Path) -> (Guard, String) {
    let (guard, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        ..GuardConfig::embedded(dir.join("data"))
    })
    .unwrap();
    let (_, token) = guard
        .create_account(
            Actor::Local("test"),
            "I-test",
            "integration",
            None,
            None,
            &RequestMeta::default(),
        )
        .unwrap();
    (guard, token)
}

#[test]
fn a_large_batch_lands_whole_with_its_blind_index() {
    let dir = tempfile::tempdir().unwrap();
    let (g, token) = guard(dir.path());
    let carrier = Carrier::generate(CarrierSpec::default());
    let batch = carrier.waybills(1, 5_000);
    let probe = batch[4_321].clone();
    let report = g
        .ingest(Actor::Token(&token), batch, &RequestMeta::default())
        .unwrap();
    assert_eq!(report.ingested, 5_000);
    assert_eq!(g.store().waybill_count().unwrap(), 5_000);
    let phone = g
        .blind_index()
        .phone(&probe.recipient.phone)
        .expect("a valid phone");
    assert!(g
        .store()
        .find_by_token(&phone)
        .unwrap()
        .contains(&probe.waybill_no));
}

#[test]
fn a_large_batch_with_one_conflict_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (g, token) = guard(dir.path());
    let carrier = Carrier::generate(CarrierSpec::default());
    let meta = RequestMeta::default();
    g.ingest(Actor::Token(&token), carrier.waybills(3_000, 1), &meta)
        .unwrap();
    let audit_before = g.store().audit_size().unwrap();
    // Waybill 3000 sits in a late chunk of this batch, after many chunks were already written.
    let err = g
        .ingest(Actor::Token(&token), carrier.waybills(1, 4_000), &meta)
        .unwrap_err();
    assert!(matches!(err, GuardError::Conflict(_)), "{err:?}");
    assert_eq!(g.store().waybill_count().unwrap(), 1);
    assert_eq!(g.store().audit_size().unwrap(), audit_before);
    let first = carrier.waybills(1, 1).remove(0);
    let phone = g.blind_index().phone(&first.recipient.phone).unwrap();
    assert!(!g
        .store()
        .find_by_token(&phone)
        .unwrap()
        .contains(&first.waybill_no));
}

#[test]
fn the_fault_reported_is_the_first_in_the_batch_whichever_worker_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (g, token) = guard(dir.path());
    let carrier = Carrier::generate(CarrierSpec::default());
    let meta = RequestMeta::default();
    let audit_before = g.store().audit_size().unwrap();
    for round in 0..4u64 {
        let mut batch = carrier.waybills(1 + round * 10_000, 4_000);
        // Faults in three chunks; the workers may meet them in any order.
        batch[3_700].recipient.phone = "12345".into();
        batch[1_200].sender.phone = "not a phone".into();
        batch[2_600].items = "\u{7}".into();
        let err = g.ingest(Actor::Token(&token), batch, &meta).unwrap_err();
        match err {
            GuardError::Invalid(m) => assert!(m.starts_with("waybills[1200]:"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    // A waybill that repeats is reported unless a fault comes before it.
    let mut batch = carrier.waybills(50_000, 3_000);
    batch[2_000].waybill_no = batch[10].waybill_no.clone();
    let err = g
        .ingest(Actor::Token(&token), batch.clone(), &meta)
        .unwrap_err();
    assert!(
        matches!(&err, GuardError::Invalid(m) if m.starts_with("waybills[2000]:") && m.contains("twice")),
        "{err:?}"
    );
    batch[700].recipient.phone = "12345".into();
    let err = g.ingest(Actor::Token(&token), batch, &meta).unwrap_err();
    assert!(
        matches!(&err, GuardError::Invalid(m) if m.starts_with("waybills[700]:")),
        "{err:?}"
    );
    assert_eq!(g.store().waybill_count().unwrap(), 0);
    assert_eq!(g.store().audit_size().unwrap(), audit_before);
}

#[test]
fn a_merchant_batch_with_another_merchants_waybill_is_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = guard(dir.path());
    let carrier = Carrier::generate(CarrierSpec::default());
    let meta = RequestMeta::default();
    let mut batch = carrier.waybills(1, 3_000);
    let merchant = batch[0].merchant.clone();
    for w in &mut batch {
        w.merchant = merchant.clone();
    }
    let (_, token) = g
        .create_account(
            Actor::Local("test"),
            "M-test",
            "merchant",
            None,
            Some(merchant.as_str()),
            &meta,
        )
        .unwrap();
    let other = carrier
        .waybills(1, 200)
        .into_iter()
        .find(|w| w.merchant != merchant)
        .expect("the carrier has more than one merchant")
        .merchant;
    batch[2_500].merchant = other;
    let audit_before = g.store().audit_size().unwrap();
    let err = g
        .ingest(Actor::Token(&token), batch.clone(), &meta)
        .unwrap_err();
    assert!(
        matches!(&err, GuardError::Forbidden(m) if m.starts_with("waybills[2500]:")),
        "{err:?}"
    );
    assert_eq!(g.store().waybill_count().unwrap(), 0);
    // The refusal is on record, naming the waybill.
    assert_eq!(g.store().audit_size().unwrap(), audit_before + 1);
    let entry = g.store().audit_entry(audit_before).unwrap().unwrap();
    let text = String::from_utf8_lossy(&entry);
    assert!(
        text.contains("deny") && text.contains(batch[2_500].waybill_no.as_str()),
        "{text}"
    );
    // Without the stray waybill the same batch lands.
    batch.remove(2_500);
    g.ingest(Actor::Token(&token), batch, &meta).unwrap();
    assert_eq!(g.store().waybill_count().unwrap(), 2_999);
}
