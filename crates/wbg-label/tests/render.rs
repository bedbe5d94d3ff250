//! The rendered label through the public API: the PNG's QR code reads back as the token, the barcode as the
//! waybill number's modules, and the PDF is one page of the label's size.
use wbg_label::{render, Format, Label, Party, HEIGHT_DOTS, WIDTH_DOTS};

fn label() -> Label {
    Label {
        waybill_no: "YT2026112300042".into(),
        origin_outlet: "O001".into(),
        destination_outlet: "O042".into(),
        recipient: Party {
            name: "王*".into(),
            phone: "138******00".into(),
            region: "浙江省 杭州市 萧山区".into(),
        },
        sender: Party {
            name: "李*".into(),
            phone: "139******00".into(),
            region: "上海市 上海市 浦东新区".into(),
        },
        token: "WBG1.Zm9yIHRoZSB0ZXN0IG9ubHk_bm90IGEgcmVhbCB0b2tlbiwgYnV0IGFzIGxvbmcgYXMgb25l"
            .into(),
        copy: 2,
    }
}

/// The PNG decoded to one luma byte per dot.
pub fn luma(png_bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}

#[test]
fn the_png_qr_code_reads_back_as_the_token() {
    let l = label();
    let (w, h, px) = luma(&render(&l, Format::Png).unwrap());
    assert_eq!((w, h), (WIDTH_DOTS as usize, HEIGHT_DOTS as usize));
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| px[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the label");
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, l.token);
    if let Ok(dir) = std::env::var("WBG_LABEL_OUT") {
        for f in [Format::Zpl, Format::Pdf, Format::Png] {
            let path = std::path::Path::new(&dir).join(format!("label.{}", f.as_str()));
            std::fs::write(path, render(&l, f).unwrap()).unwrap();
        }
    }
}

#[test]
fn the_pdf_is_one_label_sized_page() {
    let pdf = render(&label(), Format::Pdf).unwrap();
    let text = String::from_utf8_lossy(&pdf);
    assert_eq!(
        text.matches("/Type /Page\n").count() + text.matches("/Type /Page ").count(),
        1
    );
    assert!(text.contains("/MediaBox [0 0 288 432]"), "4×6 inches");
    assert!(text.contains("/STSong-Light"));
}

#[test]
fn the_zpl_prints_the_number_as_a_barcode_and_the_token_as_qr() {
    let z = String::from_utf8(render(&label(), Format::Zpl).unwrap()).unwrap();
    assert!(z.contains("^FDYT2026112300042^FS"));
    assert!(z.contains("^FDMA,WBG1.Zm9y"));
    assert!(z.contains("REPRINT #2"));
}
