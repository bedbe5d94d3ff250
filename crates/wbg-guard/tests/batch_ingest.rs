//! Large batches take the overlapped seal-and-insert path: everything lands, blind indexes included, or nothing.
use wbg_guard::{Actor, Guard, GuardConfig, GuardError, KeyConfig, RateLimitConfig, RequestMeta};
use wbg_sim::{Carrier, CarrierSpec};
use wbg_vault::MasterKey;

fn guard(dir: &std::path::Path) -> (Guard, String) {
    let (guard, _) = Guard::open(GuardConfig {
        data: dir.join("data"),
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        policies: None,
        rate_limit: RateLimitConfig::default(),
        create_keys: true,
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
