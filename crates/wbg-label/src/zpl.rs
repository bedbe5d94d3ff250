//! ZPL II for thermal printers: text in the printer's CJK font, the barcode and the QR code drawn by the
//! printer itself (`^BC`, `^BQ`) from their data.
use crate::layout::{Item, Layout, HEIGHT_DOTS, WIDTH_DOTS};
use std::fmt::Write;

/// The printer font text is set in. Chinese needs a TrueType font on the printer; SimSun is the usual one on
/// Zebra printers sold in China.
const FONT: &str = "E:SIMSUN.TTF";

/// Field data as `^FH` hex escapes where ZPL would read a command: `^`, `~`, `\` and control characters.
fn field(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '^' || c == '~' || c == '\\' || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn render(layout: &Layout) -> String {
    let mut z = String::new();
    // Writing to a String cannot fail.
    let _ = write!(z, "^XA\n^CI28\n^PW{WIDTH_DOTS}\n^LL{HEIGHT_DOTS}\n");
    for item in &layout.items {
        let _ = match item {
            Item::Text { x, y, size, text } => writeln!(
                z,
                "^FO{x},{y}^A@N,{size},{size},{FONT}^FH\\^FD{}^FS",
                field(text)
            ),
            Item::Rule { x, y, w, h } => {
                writeln!(z, "^FO{x},{y}^GB{w},{h},{t}^FS", t = (*h).min(*w))
            }
            Item::Barcode {
                x,
                y,
                module,
                h,
                data,
                ..
            } => writeln!(
                z,
                "^FO{x},{y}^BY{module}^BCN,{h},N,N,N^FH\\^FD{}^FS",
                field(data)
            ),
            Item::Qr {
                x, y, module, data, ..
            } => writeln!(z, "^FO{x},{y}^BQN,2,{module}^FH\\^FDMA,{}^FS", field(data)),
        };
    }
    z.push_str("^XZ\n");
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_and_tildes_in_text_cannot_become_commands() {
        assert_eq!(field("a^XZ~JR\\b"), "a\\5EXZ\\7EJR\\5Cb");
        assert_eq!(field("王*"), "王*");
    }

    #[test]
    fn the_label_is_one_format_with_barcode_and_qr() {
        let z = render(&Layout::of(&crate::sample()).unwrap());
        assert!(z.starts_with("^XA\n^CI28\n"));
        assert!(z.trim_end().ends_with("^XZ"));
        assert_eq!(z.matches("^XA").count(), 1);
        assert!(z.contains("^BCN,150,N,N,N^FH\\^FDYT2026112300001^FS"));
        assert!(z.contains("^BQN,2,6^FH\\^FDMA,WBG1."));
    }
}
