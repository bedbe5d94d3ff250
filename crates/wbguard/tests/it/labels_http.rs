//! Privacy labels through a real server and the CLI: every format free of personal data, reprints counted, the
//! QR token resolved under policy, bad requests refused, and nothing personal in the server's log.
use crate::common;

use common::*;
use serde_json::{json, Value};

const NO: &str = "YT2026120100001";
const NAME: &str = "欧阳娜娜";
const PHONE: &str = "13912345678";
const STREET: &str = "文三路88号3单元501室";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn utf16be(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn event(s: &Server, integ: &str, kind: &str, outlet: &str, courier: Option<&str>) {
    let r = s.post(
        &format!("/v1/waybills/{NO}/events"),
        Some(integ),
        &json!({"type": kind, "outlet": outlet, "courier": courier}),
    );
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}

#[test]
fn labels_over_http_and_the_cli() {
    let dirs = Dirs::new("");
    let admin = dirs.create_account("root", "admin", None);
    let s = Server::start(&dirs, "debug");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let printer = s.account(&admin, "P0010", "print_station", Some("O001"), None);
    let courier = s.account(&admin, "C0420001", "courier", Some("O042"), None);
    let r = s.post(
        "/v1/waybills",
        Some(&integ),
        &waybill(NO, "M001", "O001", "O042", NAME, PHONE, STREET),
    );
    assert_eq!(r.status(), 201);

    let mut zpl_token = String::new();
    for (i, (format, kind)) in [
        ("zpl", "application/zpl"),
        ("pdf", "application/pdf"),
        ("png", "image/png"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = s.get(
            &format!("/v1/waybills/{NO}/label?format={format}"),
            Some(&printer),
        );
        assert_eq!(r.status(), 200, "{format}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind));
        assert_eq!(
            header("x-label-copy"),
            (i + 1).to_string(),
            "reprints counted"
        );
        let bytes = r.bytes().unwrap().to_vec();
        for secret in [NAME, PHONE, STREET, "测试商品", "阳娜娜"] {
            assert!(!contains(&bytes, secret.as_bytes()), "{format}: {secret}");
            assert!(!contains(&bytes, &utf16be(secret)), "{format}: {secret}");
        }
        if format == "zpl" {
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.contains("欧*") && text.contains("139******78"));
            let start = text.find("^FDMA,").unwrap() + "^FDMA,".len();
            zpl_token = text[start..start + text[start..].find("^FS").unwrap()].to_owned();
        }
    }

    // The courier app scans the token: masked until the parcel is out for delivery with this courier.
    let resolve = |token: &str, body: Value| s.post("/v1/labels/resolve", Some(token), &body);
    let r = resolve(&courier, json!({"token": zpl_token}));
    assert_eq!(r.json::<Value>().unwrap()["view"], "masked");
    event(&s, &integ, "picked_up", "O001", None);
    event(&s, &integ, "at_outlet", "O042", None);
    event(&s, &integ, "out_for_delivery", "O042", Some("C0420001"));
    let v: Value = resolve(&courier, json!({"token": zpl_token}))
        .json()
        .unwrap();
    assert_eq!(v["view"], "full");
    assert_eq!(v["recipient"]["phone"], PHONE);
    assert_eq!(
        error_code(resolve(&printer, json!({"token": zpl_token}))),
        (403, "forbidden".into())
    );
    assert_eq!(
        error_code(resolve(&courier, json!({"token": "WBG1.forged"}))),
        (400, "invalid_request".into())
    );
    assert_eq!(
        error_code(resolve(&courier, json!({"token": zpl_token, "extra": 1}))).0,
        400
    );
    assert_eq!(
        error_code(resolve(
            &courier,
            json!({"token": zpl_token, "purpose": "gossip"})
        ))
        .0,
        400
    );
    assert_eq!(
        error_code(s.post("/v1/labels/resolve", None, &json!({"token": zpl_token}))).0,
        401
    );
    // Bad label requests change nothing.
    // The checkpoint is signed over the log as it is now; its second line is the log's size.
    let size = |s: &Server| {
        let note = s.get("/v1/audit/checkpoint", None).text().unwrap();
        note.lines().nth(1).unwrap().to_owned()
    };
    let before = size(&s);
    assert_eq!(
        error_code(s.get(
            &format!("/v1/waybills/{NO}/label?format=svg"),
            Some(&printer)
        ))
        .0,
        400
    );
    assert_eq!(
        error_code(s.get(&format!("/v1/waybills/{NO}/label"), Some(&printer))).0,
        400
    );
    assert_eq!(before, size(&s));
    let openapi: Value = s.get("/openapi.json", None).json().unwrap();
    assert!(openapi["paths"]["/v1/waybills/{no}/label"].is_object());
    assert!(openapi["paths"]["/v1/labels/resolve"].is_object());

    // The CLI prints as the print station whose token it is given, and refuses without one.
    let token_file = dirs.root.path().join("printer.token");
    std::fs::write(&token_file, &printer).unwrap();
    let out_file = dirs.root.path().join("label.png");
    let out = dirs.cli(&[
        "label",
        NO,
        "--format",
        "png",
        "--out",
        path_str(&out_file),
        "--token-file",
        path_str(&token_file),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&out_file).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("print #4"));
    let out = dirs.cli(&["label", NO, "--out", path_str(&out_file)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));

    let log = s.log_text();
    assert!(
        log.contains("/v1/waybills/{no}/label"),
        "the log is at debug"
    );
    for secret in [NAME, PHONE, STREET, "139******78"] {
        assert!(!log.contains(secret), "server log holds {secret}");
    }
    assert!(!log.contains(&zpl_token), "server log holds a label token");
}
