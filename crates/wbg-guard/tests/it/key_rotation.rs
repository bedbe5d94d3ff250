//! Master key rotation: every key re-wrapped under the new master key in one audited transaction, the data
//! readable under it and not under the old one, the old wrapped keys gone from the store's files, and a rotation
//! cut short between its transaction and its key file finished at the next open.
use crate::common;

use common::files_hold;
use std::path::Path;
use wbg_guard::{
    Actor, Guard, GuardConfig, GuardError, KeyConfig, LabelFormat, ReadRequest, RequestMeta,
    MASTER_KEY_FILE, NEXT_MASTER_KEY_FILE,
};
use wbg_sim::{Carrier, CarrierSpec};
use wbg_vault::MasterKey;

fn open(data: &Path, keys: &Path) -> Result<Guard, GuardError> {
    Guard::open(GuardConfig {
        keys: KeyConfig::Dir(keys.to_owned()),
        ..GuardConfig::embedded(data)
    })
    .map(|(g, _)| g)
}

#[test]
fn rotation_rewraps_every_key_and_a_cut_short_one_finishes_at_open() {
    let root = tempfile::tempdir().unwrap();
    let (data, keys) = (root.path().join("data"), root.path().join("keys"));
    let g = open(&data, &keys).unwrap();
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let (_, integ) = g
        .create_account(local, "I1", "integration", None, None, &meta)
        .unwrap();
    let (_, cs) = g
        .create_account(local, "K1", "customer_service", None, None, &meta)
        .unwrap();
    let carrier = Carrier::generate(CarrierSpec::default());
    let batch = carrier.waybills(1, 50);
    let (no, phone) = (
        batch[0].waybill_no.to_string(),
        batch[0].recipient.phone.clone(),
    );
    let origin = batch[0].origin_outlet.to_string();
    g.ingest(Actor::Token(&integ), batch, &meta).unwrap();
    // The ticketing system registers the ticket the agent works.
    g.open_ticket(
        Actor::Token(&integ),
        &wbg_guard::TicketRegistration {
            ticket: "T-1".into(),
            waybills: vec![no.clone()],
            opened_at: None,
            assignee: None,
        },
        &meta,
    )
    .unwrap();
    let (_, printer) = g
        .create_account(local, "P1", "print_station", Some(&origin), None, &meta)
        .unwrap();
    let label = g
        .print_label(&printer, &no, LabelFormat::Zpl, &meta)
        .unwrap()
        .label;
    let read = |g: &Guard| {
        g.read(
            &cs,
            &ReadRequest {
                waybill_no: &no,
                purpose: "customer_service",
                ticket: Some("T-1"),
            },
            &meta,
        )
        .map(|v| v.recipient.map(|r| r.phone))
    };
    assert_eq!(read(&g).unwrap().as_deref(), Some(phone.as_str()));
    let old_wrapped: Vec<Vec<u8>> = ["index", "token"]
        .iter()
        .map(|id| g.store().get_wrapped_key(id).unwrap().unwrap())
        .collect();
    let old_key = std::fs::read(keys.join(MASTER_KEY_FILE)).unwrap();

    // A rotation: the next key file, the transaction, and — here cut short — no rename.
    let next = MasterKey::create_file(&keys.join(NEXT_MASTER_KEY_FILE)).unwrap();
    let n = g.rotate_master_key(local, &next, &meta).unwrap();
    assert!(n >= 3, "the blind-index key, the token key and a data key");
    assert!(matches!(
        g.rotate_master_key(Actor::Token(&cs), &next, &meta),
        Err(GuardError::Forbidden(_))
    ));
    drop(g);
    for w in &old_wrapped {
        assert!(
            !files_hold(&data, w),
            "an old wrapped key is still in the store's files"
        );
    }

    // The next open finds the store under the next key and finishes the rotation.
    let g = open(&data, &keys).unwrap();
    assert!(!keys.join(NEXT_MASTER_KEY_FILE).exists());
    let new_key = std::fs::read(keys.join(MASTER_KEY_FILE)).unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(read(&g).unwrap().as_deref(), Some(phone.as_str()));
    let view = g.resolve_label(&cs, &label.token, None, &meta).unwrap();
    assert_eq!(
        view.waybill_no, no,
        "a label printed before the rotation still resolves"
    );
    wbg_guard::verify_store(g.store().as_ref(), &g.verifier_key()).unwrap();
    let rotations: Vec<_> = g
        .store()
        .audit_entries(0, 1000)
        .unwrap()
        .into_iter()
        .map(|e| wbg_audit::AuditEntry::decode(&e.bytes).unwrap())
        .filter(|e| e.action == "keys_rotate")
        .collect();
    assert_eq!(rotations.len(), 1);
    let detail = rotations[0].detail.as_deref().unwrap_or("");
    assert!(
        detail.ends_with(&format!("to={}", next.key_id())),
        "{detail}"
    );
    drop(g);

    // The old master key opens nothing any more.
    std::fs::write(keys.join(MASTER_KEY_FILE), &old_key).unwrap();
    let err = open(&data, &keys).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}
