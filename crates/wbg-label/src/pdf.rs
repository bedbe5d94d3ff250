//! The label as a one-page PDF: bars, QR modules and rules as filled rectangles; text in Adobe's
//! `STSong-Light` CJK font, which PDF readers supply themselves (nothing is embedded), encoded as UCS-2.
use crate::layout::{Item, Layout, DOTS_PER_INCH, HEIGHT_DOTS, WIDTH_DOTS};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// Points per printer dot.
const PT: f32 = 72.0 / DOTS_PER_INCH as f32;
const FONT: Name<'static> = Name(b"F1");

/// `text` as UCS-2 big-endian, the encoding `UniGB-UCS2-H` reads; a character beyond the BMP becomes `?`.
pub(crate) fn ucs2(text: &str) -> Vec<u8> {
    text.chars()
        .flat_map(|c| {
            u16::try_from(u32::from(c))
                .unwrap_or(u16::from(b'?'))
                .to_be_bytes()
        })
        .collect()
}

/// Writes the `STSong-Light` font (Adobe-GB1, `UniGB-UCS2-H`) as objects `[type0, cid, descriptor]`, with a
/// `ToUnicode` map at `to_unicode` when given (so text extraction needs no CMap files of its own).
pub(crate) fn cjk_font(
    pdf: &mut Pdf,
    [font, cid_font, descriptor]: [Ref; 3],
    to_unicode: Option<Ref>,
) {
    let mut t0 = pdf.type0_font(font);
    t0.base_font(Name(b"STSong-Light-UniGB-UCS2-H"))
        .encoding_predefined(Name(b"UniGB-UCS2-H"))
        .descendant_font(cid_font);
    if let Some(r) = to_unicode {
        t0.to_unicode(r);
    }
    t0.finish();
    let mut cid = pdf.cid_font(cid_font);
    cid.subtype(CidFontType::Type0)
        .base_font(Name(b"STSong-Light"))
        .system_info(GB1)
        .font_descriptor(descriptor)
        .default_width(1000.0);
    // `UniGB-UCS2-H` maps printable ASCII to CIDs 1-95, which are half as wide as the ideographs.
    cid.widths().same(1, 95, 500.0);
    cid.finish();
    pdf.font_descriptor(descriptor)
        .name(Name(b"STSong-Light"))
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(-25.0, -254.0, 1000.0, 880.0))
        .italic_angle(0.0)
        .ascent(752.0)
        .descent(-271.0)
        .cap_height(737.0)
        .stem_v(58.0);
}

/// The character collection `STSong-Light` draws from.
pub(crate) const GB1: SystemInfo<'static> = SystemInfo {
    registry: Str(b"Adobe"),
    ordering: Str(b"GB1"),
    supplement: 2,
};

pub(crate) fn render(layout: &Layout) -> Vec<u8> {
    let (catalog, pages, page, content_id, font, cid_font, descriptor) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
        Ref::new(7),
    );
    let (page_w, page_h) = (WIDTH_DOTS as f32 * PT, HEIGHT_DOTS as f32 * PT);
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    {
        let mut p = pdf.page(page);
        p.media_box(Rect::new(0.0, 0.0, page_w, page_h));
        p.parent(pages);
        p.contents(content_id);
        p.resources().fonts().pair(FONT, font);
        p.finish();
    }
    cjk_font(&mut pdf, [font, cid_font, descriptor], None);

    let mut c = Content::new();
    // A rectangle in dots from the top-left, as PDF's bottom-left points.
    let rect = |c: &mut Content, x: u32, y: u32, rw: u32, rh: u32| {
        c.rect(
            x as f32 * PT,
            page_h - (y + rh) as f32 * PT,
            rw as f32 * PT,
            rh as f32 * PT,
        );
    };
    c.set_fill_gray(0.0);
    for (x, y, w, h) in layout.rects() {
        rect(&mut c, x, y, w, h);
    }
    c.fill_nonzero();
    for item in &layout.items {
        if let Item::Text { x, y, size, text } = item {
            let size_pt = *size as f32 * PT;
            c.begin_text();
            c.set_font(FONT, size_pt);
            // Baseline a little above the text box's bottom.
            c.next_line(*x as f32 * PT, page_h - *y as f32 * PT - size_pt * 0.88);
            c.show(Str(&ucs2(text)));
            c.end_text();
        }
    }
    pdf.stream(content_id, &c.finish());
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucs2_is_big_endian_and_bmp_only() {
        assert_eq!(ucs2("A王"), vec![0x00, 0x41, 0x73, 0x8B]);
        assert_eq!(ucs2("😀"), vec![0x00, b'?']);
    }
}
