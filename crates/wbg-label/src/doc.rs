//! A text document (a report written in Markdown) as an A4 PDF: the same `STSong-Light` font as the labels —
//! which every PDF reader supplies for Chinese (Adobe-GB1), so nothing is embedded and the file stays small —
//! with a `ToUnicode` map, so the text can be copied and extracted (`pdftotext`) anywhere. Headings are set
//! larger, `**` and backticks dropped, table rows kept as text, `---` a new page; long lines wrap at the margin (an ideograph is a
//! full em wide, ASCII half).
use crate::pdf::{cjk_font, ucs2, GB1};
use pdf_writer::types::UnicodeCmap;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use std::collections::BTreeSet;

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;
const BODY: f32 = 10.5;
const FONT: Name<'static> = Name(b"F1");

/// One line to set: its size and text.
struct Line {
    size: f32,
    text: String,
}

/// Width of `text` in ems of the font.
fn ems(text: &str) -> f32 {
    text.chars()
        .map(|c| if (' '..='~').contains(&c) { 0.5 } else { 1.0 })
        .sum()
}

/// `markdown`'s lines as set lines: headings larger, emphasis marks dropped, wrapped to the text width.
fn lines(markdown: &str) -> Vec<Line> {
    let width = PAGE_W - 2.0 * MARGIN;
    let mut out = Vec::new();
    for raw in markdown.lines() {
        // A thematic break starts a new page (a letter a page).
        if raw.trim() == "---" {
            out.push(Line {
                size: 0.0,
                text: String::new(),
            });
            continue;
        }
        let (size, body) = match raw.trim_start() {
            t if t.starts_with("# ") => (16.0, &t[2..]),
            t if t.starts_with("## ") => (13.0, &t[3..]),
            t if t.starts_with("### ") => (11.5, &t[4..]),
            _ => (BODY, raw),
        };
        let text = body.replace("**", "").replace('`', "");
        let fits = (width / size).floor();
        let mut current = String::new();
        for c in text.chars() {
            if ems(&current) + ems(&c.to_string()) > fits {
                out.push(Line {
                    size,
                    text: std::mem::take(&mut current),
                });
            }
            current.push(c);
        }
        out.push(Line {
            size,
            text: current,
        });
    }
    out
}

/// `markdown` as a PDF document titled `title`.
pub fn document_pdf(title: &str, markdown: &str) -> Vec<u8> {
    let lines = lines(markdown);
    // Pages: lines flowed top to bottom, a new page when the next would cross the bottom margin.
    let mut pages: Vec<Vec<(f32, &Line)>> = vec![Vec::new()];
    let mut y = PAGE_H - MARGIN;
    for l in &lines {
        if l.size == 0.0 {
            if pages.last().is_some_and(|p| !p.is_empty()) {
                pages.push(Vec::new());
                y = PAGE_H - MARGIN;
            }
            continue;
        }
        let lead = l.size * 1.5;
        if y - lead < MARGIN {
            pages.push(Vec::new());
            y = PAGE_H - MARGIN;
        }
        y -= lead;
        if let Some(p) = pages.last_mut() {
            p.push((y, l));
        }
    }
    let (catalog, tree, font, cid, descriptor, to_unicode, info) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
        Ref::new(7),
    );
    let first_page = 8;
    let page_ref = |i: usize| Ref::new(first_page + 2 * i as i32);
    let content_ref = |i: usize| Ref::new(first_page + 2 * i as i32 + 1);
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.document_info(info).title(pdf_writer::TextStr(title));
    pdf.pages(tree)
        .kids((0..pages.len()).map(page_ref))
        .count(pages.len() as i32);
    cjk_font(&mut pdf, [font, cid, descriptor], Some(to_unicode));
    let used: BTreeSet<char> = markdown.chars().chain(title.chars()).collect();
    let mut cmap = UnicodeCmap::new(Name(b"WbguardReport-UCS2"), GB1);
    for c in used {
        if let Ok(code) = u16::try_from(u32::from(c)) {
            cmap.pair(code, c);
        }
    }
    pdf.cmap(to_unicode, &cmap.finish());
    for (i, page) in pages.iter().enumerate() {
        let mut p = pdf.page(page_ref(i));
        p.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        p.parent(tree);
        p.contents(content_ref(i));
        p.resources().fonts().pair(FONT, font);
        p.finish();
        let mut c = Content::new();
        for (y, l) in page {
            c.begin_text();
            c.set_font(FONT, l.size);
            c.next_line(MARGIN, *y);
            c.show(Str(&ucs2(&l.text)));
            c.end_text();
        }
        pdf.stream(content_ref(i), &c.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_and_long_documents_take_pages() {
        let long = "个人信息".repeat(60);
        let set = lines(&format!("# 标题\n{long}\n**粗体** `code`"));
        assert_eq!(set[0].size, 16.0);
        assert!(set.len() >= 4, "the long line wraps");
        assert!(set
            .iter()
            .all(|l| ems(&l.text) <= (PAGE_W - 2.0 * MARGIN) / BODY));
        assert_eq!(set.last().map(|l| l.text.as_str()), Some("粗体 code"));
        let many = "一行\n".repeat(200);
        let pdf = document_pdf("t", &many);
        let text = String::from_utf8_lossy(&pdf);
        assert!(
            text.contains("/Count 5"),
            "200 lines at 46 a page take five pages"
        );
        assert!(text.contains("/ToUnicode"));
    }
}
