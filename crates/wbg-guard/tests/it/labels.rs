//! Privacy labels through the guard [T4]: a label in every format holds none of a waybill's personal data, its
//! QR code holds a token, and the token resolves only under policy, at the time of the scan.
use std::sync::Arc;
use wbg_core::{
    AccountId, Address, EventType, ManualClock, MerchantId, NewWaybill, OutletId, Party,
    StatusEvent, View, WaybillNo,
};
use wbg_guard::{
    Actor, Guard, GuardConfig, GuardError, KeyConfig, LabelFormat, RequestMeta, LABEL_TOKEN_PREFIX,
    LABEL_TOKEN_TTL_MS,
};
use wbg_vault::MasterKey;

const NO: &str = "YT2026112300777";
const RECIPIENT: &str = "欧阳娜娜";
const RECIPIENT_PHONE: &str = "13912345678";
const RECIPIENT_STREET: &str = "文三路88号3单元501室";
const SENDER: &str = "诸葛明亮";
const SENDER_PHONE: &str = "13787654321";
const SENDER_STREET: &str = "张江路1000弄77号";
const ITEMS: &str = "婴儿奶粉两罐";

struct Setup {
    guard: Guard,
    clock: Arc<ManualClock>,
    integration: String,
    printer: String,
    courier: String,
    colleague: String,
    stranger: String,
    admin: String,
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
    let clock = Arc::new(ManualClock::new(wbg_core::now_millis()));
    let guard = guard.with_clock(clock.clone());
    let meta = RequestMeta::default();
    let local = Actor::Local("test");
    let make = |id: &str, role: &str, outlet: Option<&str>| {
        guard
            .create_account(local, id, role, outlet, None, &meta)
            .unwrap()
            .1
    };
    let integration = make("I1", "integration", None);
    let printer = make("P0010", "print_station", Some("O001"));
    let courier = make("C0420001", "courier", Some("O042"));
    let colleague = make("C0420002", "courier", Some("O042"));
    let stranger = make("C0990001", "courier", Some("O099"));
    let admin = make("ADM1", "admin", None);
    let party = |name: &str, phone: &str, district: &str, detail: &str| Party {
        name: name.into(),
        phone: phone.into(),
        address: Address {
            province: "浙江省".into(),
            city: "杭州市".into(),
            district: district.into(),
            detail: detail.into(),
        },
    };
    let w = NewWaybill {
        waybill_no: WaybillNo::parse(NO).unwrap(),
        merchant: MerchantId::parse("M001").unwrap(),
        origin_outlet: OutletId::parse("O001").unwrap(),
        destination_outlet: OutletId::parse("O042").unwrap(),
        sender: party(SENDER, SENDER_PHONE, "余杭区", SENDER_STREET),
        recipient: party(RECIPIENT, RECIPIENT_PHONE, "西湖区", RECIPIENT_STREET),
        items: ITEMS.into(),
    };
    guard
        .ingest(Actor::Token(&integration), vec![w], &meta)
        .unwrap();
    Setup {
        guard,
        clock,
        integration,
        printer,
        courier,
        colleague,
        stranger,
        admin,
        _dir: dir,
    }
}

fn entry(s: &Setup, seq: u64) -> wbg_audit::AuditEntry {
    let bytes = s.guard.store().audit_entry(seq).unwrap().unwrap();
    wbg_audit::AuditEntry::decode(&bytes).unwrap()
}

impl Setup {
    fn clock_now(&self) -> i64 {
        use wbg_core::Clock;
        self.clock.now()
    }
}

fn scan(s: &Setup, kind: EventType, outlet: &str, courier: Option<&str>) {
    let ev = StatusEvent {
        kind,
        outlet: OutletId::parse(outlet).unwrap(),
        courier: courier.map(|c| AccountId::parse(c).unwrap()),
        at: None,
    };
    s.guard
        .record_event(
            Actor::Token(&s.integration),
            NO,
            ev,
            &RequestMeta::default(),
        )
        .unwrap();
}

fn out_for_delivery(s: &Setup) {
    scan(s, EventType::PickedUp, "O001", None);
    scan(s, EventType::InTransit, "O001", None);
    scan(s, EventType::AtOutlet, "O042", None);
    scan(s, EventType::OutForDelivery, "O042", Some("C0420001"));
}

/// Every way a value could sit in a file's bytes: UTF-8, and UTF-16 (PDF text strings) both ways round.
fn forms(value: &str) -> Vec<Vec<u8>> {
    let be: Vec<u8> = value.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let le: Vec<u8> = value.encode_utf16().flat_map(u16::to_le_bytes).collect();
    vec![value.as_bytes().to_vec(), be, le]
}

/// The text of the one QR code in a PNG.
fn qr_of(png_bytes: &[u8]) -> String {
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1);
    grids[0].decode().unwrap().1
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_label_format_holds_personal_data() {
    let s = setup();
    let meta = RequestMeta::default();
    let secrets = [
        RECIPIENT,
        RECIPIENT_PHONE,
        RECIPIENT_STREET,
        SENDER,
        SENDER_PHONE,
        SENDER_STREET,
        ITEMS,
        // The given names alone, and a phone's hidden middle digits with what follows.
        "阳娜娜",
        "葛明亮",
        "1234",
        "3456",
        "8765",
    ];
    for format in [LabelFormat::Zpl, LabelFormat::Pdf, LabelFormat::Png] {
        let printed = s.guard.print_label(&s.printer, NO, format, &meta).unwrap();
        let l = &printed.label;
        assert_eq!(l.recipient.name, "欧*");
        assert_eq!(l.recipient.phone, "139******78");
        assert_eq!(l.recipient.region, "浙江省 杭州市 西湖区");
        assert!(l.token.starts_with(LABEL_TOKEN_PREFIX));
        let bytes = wbg_label::render(l, format).unwrap();
        for secret in secrets {
            for form in forms(secret) {
                assert!(
                    !contains(&bytes, &form),
                    "{} label holds {secret}",
                    format.as_str()
                );
            }
        }
        // The ZPL carries the token as the printer's QR data (the PNG's QR is read back below).
        if format == LabelFormat::Zpl {
            assert!(contains(&bytes, &l.token.as_bytes()[..40]));
        }
        // Nor does the label's own structure: the masked view and a token, nothing more.
        let debug = format!("{l:?}");
        for secret in secrets {
            assert!(!debug.contains(secret), "label data holds {secret}");
        }
    }
}

/// GB/T 41833-2022: a label hides at least six digits of the phone. The default shows 3 and 2; a carrier may
/// show fewer (here the last four only), never more.
#[test]
fn labels_hide_at_least_six_phone_digits_and_a_carrier_may_hide_more() {
    let Setup {
        guard,
        printer,
        _dir,
        ..
    } = setup();
    let meta = RequestMeta::default();
    let strict = wbg_guard::MaskingConfig {
        phone_keep_first: 0,
        phone_keep_last: 4,
    };
    let guard = guard.with_masking(&strict).unwrap();
    for format in [LabelFormat::Zpl, LabelFormat::Pdf, LabelFormat::Png] {
        let printed = guard.print_label(&printer, NO, format, &meta).unwrap();
        assert_eq!(printed.label.recipient.phone, "*******5678");
        assert_eq!(printed.label.sender.phone, "*******4321");
    }
    for (first, last) in [(3, 4), (4, 0), (0, 6), (3, 3)] {
        let showy = wbg_guard::MaskingConfig {
            phone_keep_first: first,
            phone_keep_last: last,
        };
        let refused = Guard::open(GuardConfig {
            keys: KeyConfig::Given {
                master: MasterKey::generate(),
                signer: None,
            },
            ..GuardConfig::embedded(tempfile::tempdir().unwrap().path().join("data"))
        })
        .unwrap()
        .0
        .with_masking(&showy);
        assert!(
            matches!(refused, Err(GuardError::Config(_))),
            "{first}+{last} shows too much"
        );
    }
}

#[test]
fn prints_are_audited_and_reprints_counted() {
    let s = setup();
    let meta = RequestMeta::default();
    let first = s
        .guard
        .print_label(&s.printer, NO, LabelFormat::Zpl, &meta)
        .unwrap();
    assert_eq!(first.label.copy, 1);
    let again = s
        .guard
        .print_label(&s.printer, NO, LabelFormat::Pdf, &meta)
        .unwrap();
    assert_eq!(again.label.copy, 2);
    let zpl =
        String::from_utf8(wbg_label::render(&again.label, LabelFormat::Zpl).unwrap()).unwrap();
    assert!(zpl.contains("REPRINT #2"));
    for (seq, format) in [(first.audit_seq, "zpl"), (again.audit_seq, "pdf")] {
        let e = entry(&s, seq);
        assert_eq!(e.account, "P0010");
        assert_eq!(e.action, "view");
        assert_eq!(e.purpose.as_deref(), Some("label"));
        assert_eq!(e.view.as_deref(), Some("masked"));
        assert!(
            e.detail
                .as_deref()
                .unwrap_or("")
                .contains(&format!("print={format}")),
            "{:?}",
            e.detail
        );
    }
    // Another outlet's print station gets no label; an admin neither; both attempts are on record.
    let (_, other) = s
        .guard
        .create_account(
            Actor::Local("test"),
            "P0990",
            "print_station",
            Some("O099"),
            None,
            &meta,
        )
        .unwrap();
    for token in [&other, &s.admin] {
        let before = s.guard.store().audit_size().unwrap();
        assert!(matches!(
            s.guard.print_label(token, NO, LabelFormat::Zpl, &meta),
            Err(GuardError::Forbidden(_))
        ));
        assert_eq!(s.guard.store().audit_size().unwrap(), before + 1);
    }
    // A refused print job is on record but not counted: the station's next print is the third.
    let third = s
        .guard
        .print_label(&s.printer, NO, LabelFormat::Zpl, &meta)
        .unwrap();
    assert_eq!(third.label.copy, 3);
}

#[test]
fn the_token_resolves_only_under_policy_and_only_in_time() {
    let s = setup();
    let meta = RequestMeta::default();
    // The token as a courier app gets it: read off the printed PNG's QR code.
    let printed = s
        .guard
        .print_label(&s.printer, NO, LabelFormat::Png, &meta)
        .unwrap();
    let token = qr_of(&wbg_label::render(&printed.label, LabelFormat::Png).unwrap());
    assert_eq!(token, printed.label.token);
    let resolve = |account: &str| s.guard.resolve_label(account, &token, None, &meta);

    // Before the parcel is out for delivery nobody is assigned: the destination's couriers see it masked.
    assert_eq!(resolve(&s.courier).unwrap().view, View::Masked);
    out_for_delivery(&s);
    let v = resolve(&s.courier).unwrap();
    assert_eq!(v.view, View::Full, "the assigned courier, out for delivery");
    assert_eq!(v.recipient.as_ref().unwrap().phone, RECIPIENT_PHONE);
    let e = entry(&s, v.audit_seq);
    assert_eq!(e.account, "C0420001");
    assert!(e
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("via=label_token"));

    assert_eq!(resolve(&s.colleague).unwrap().view, View::Masked);
    assert!(matches!(
        resolve(&s.stranger),
        Err(GuardError::Forbidden(_))
    ));
    assert!(matches!(resolve(&s.admin), Err(GuardError::Forbidden(_))));
    assert!(
        matches!(resolve(&s.printer), Err(GuardError::Forbidden(_))),
        "a print station's own tokens give it nothing for delivery"
    );
    assert!(matches!(
        s.guard.resolve_label("not-a-token", &token, None, &meta),
        Err(GuardError::Unauthenticated)
    ));

    // Signed: two hours of grace in full, then masked.
    scan(&s, EventType::Signed, "O042", None);
    assert_eq!(resolve(&s.courier).unwrap().view, View::Full);
    s.clock.set(s.clock_now() + 2 * 3_600_000 + 1_000);
    assert_eq!(resolve(&s.courier).unwrap().view, View::Masked);

    // Past the token's own life it is refused, and the refusal is audited.
    s.clock.set(s.clock_now() + LABEL_TOKEN_TTL_MS);
    let before = s.guard.store().audit_size().unwrap();
    assert!(matches!(resolve(&s.courier), Err(GuardError::Expired(_))));
    assert_eq!(s.guard.store().audit_size().unwrap(), before + 1);
}

#[test]
fn forged_or_altered_tokens_are_refused_and_audited() {
    let s = setup();
    let meta = RequestMeta::default();
    out_for_delivery(&s);
    let token = s
        .guard
        .print_label(&s.printer, NO, LabelFormat::Zpl, &meta)
        .unwrap()
        .label
        .token;
    let mut altered: Vec<char> = token.chars().collect();
    let i = altered.len() - 5;
    altered[i] = if altered[i] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    // A token of another store (another vault key) does not open here either.
    let other = setup();
    let foreign = other
        .guard
        .print_label(&other.printer, NO, LabelFormat::Zpl, &meta)
        .unwrap()
        .label
        .token;
    for bad in [
        altered.as_str(),
        foreign.as_str(),
        NO,
        "WBG1.",
        "WBG1.!!!",
        &format!("WBG1.{}", "A".repeat(400)),
    ] {
        let before = s.guard.store().audit_size().unwrap();
        let err = s
            .guard
            .resolve_label(&s.courier, bad, None, &meta)
            .unwrap_err();
        assert!(matches!(err, GuardError::Invalid(_)), "{bad}: {err:?}");
        assert_eq!(s.guard.store().audit_size().unwrap(), before + 1);
        let (size, _) = s.guard.store().audit_head().unwrap();
        let e = entry(&s, size - 1);
        assert_eq!(
            (e.action.as_str(), e.decision.as_str()),
            ("label_resolve", "deny")
        );
    }
    // A suspended courier's valid token is refused too.
    s.guard
        .set_status(Actor::Local("test"), "C0420001", true, None, &meta)
        .unwrap();
    assert!(matches!(
        s.guard.resolve_label(&s.courier, &token, None, &meta),
        Err(GuardError::AccountSuspended)
    ));
}
