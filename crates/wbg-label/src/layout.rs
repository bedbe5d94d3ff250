//! Where everything sits on the label, in printer dots, once for all three formats.
use crate::{Label, LabelError};
use barcoders::sym::code128::Code128;
use qrcode::{Color, EcLevel, QrCode};

/// Printer resolution the layout is drawn for.
pub const DOTS_PER_INCH: u32 = 203;
/// Label width: 4 inches.
pub const WIDTH_DOTS: u32 = 812;
/// Label height: 6 inches.
pub const HEIGHT_DOTS: u32 = 1218;

/// One thing drawn on the label. Coordinates are dots from the top-left corner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A line of text whose top is at `y`, `size` dots high.
    Text {
        /// Left edge.
        x: u32,
        /// Top edge.
        y: u32,
        /// Character height in dots.
        size: u32,
        /// The text.
        text: String,
    },
    /// A filled rectangle (rules and boxes).
    Rule {
        /// Left edge.
        x: u32,
        /// Top edge.
        y: u32,
        /// Width.
        w: u32,
        /// Height.
        h: u32,
    },
    /// A Code 128 barcode of `data`; `bars` are its modules, `true` for a bar.
    Barcode {
        /// Left edge.
        x: u32,
        /// Top edge.
        y: u32,
        /// Dots per module.
        module: u32,
        /// Bar height.
        h: u32,
        /// What it encodes (ZPL draws it from this).
        data: String,
        /// The modules, left to right.
        bars: Vec<bool>,
    },
    /// A QR code of `data`, `width` modules a side ([`Layout::rects`] draws its modules; ZPL leaves them to
    /// the printer).
    Qr {
        /// Left edge.
        x: u32,
        /// Top edge.
        y: u32,
        /// Dots per module.
        module: u32,
        /// Modules per side.
        width: u32,
        /// What it encodes (ZPL draws it from this).
        data: String,
    },
}

/// A label laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// What to draw, in drawing order.
    pub items: Vec<Item>,
}

const MARGIN: u32 = 32;
const BAR_MODULE: u32 = 3;
const QR_MODULE: u32 = 6;

/// How wide `text` is at `size` dots: ASCII characters are half as wide as they are high, the others square.
pub(crate) fn text_width(text: &str, size: u32) -> u32 {
    text.chars()
        .map(|c| if c.is_ascii() { size / 2 } else { size })
        .sum()
}

fn text(x: u32, y: u32, size: u32, text: impl Into<String>) -> Item {
    Item::Text {
        x,
        y,
        size,
        text: text.into(),
    }
}

fn rule(y: u32) -> Item {
    Item::Rule {
        x: MARGIN,
        y,
        w: WIDTH_DOTS - 2 * MARGIN,
        h: 4,
    }
}

/// The modules of the QR code of `data`, `width × width` row by row, `true` for dark (the symbol
/// [`Layout::of`] sized: the same data and error-correction level give the same version).
fn qr_modules(data: &str) -> Vec<bool> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map(|qr| {
            qr.to_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect()
        })
        .unwrap_or_default()
}

impl Layout {
    /// Every filled rectangle `(x, y, w, h)` the rules, barcode bars and QR modules make: what a format that
    /// draws them itself (PDF, PNG) fills.
    pub fn rects(&self) -> impl Iterator<Item = (u32, u32, u32, u32)> + '_ {
        self.items
            .iter()
            .flat_map(|item| -> Box<dyn Iterator<Item = _> + '_> {
                match item {
                    Item::Rule { x, y, w, h } => Box::new(std::iter::once((*x, *y, *w, *h))),
                    Item::Barcode {
                        x,
                        y,
                        module,
                        h,
                        bars,
                        ..
                    } => Box::new(
                        bars.iter()
                            .enumerate()
                            .filter(|(_, b)| **b)
                            .map(move |(i, _)| (x + i as u32 * module, *y, *module, *h)),
                    ),
                    Item::Qr {
                        x,
                        y,
                        module,
                        width,
                        data,
                    } => Box::new(
                        qr_modules(data)
                            .into_iter()
                            .enumerate()
                            .filter(|(_, d)| *d)
                            .map(move |(i, _)| {
                                let (col, row) = (i as u32 % width, i as u32 / width);
                                (x + col * module, y + row * module, *module, *module)
                            }),
                    ),
                    Item::Text { .. } => Box::new(std::iter::empty()),
                }
            })
    }

    /// Lays out `label`.
    pub fn of(label: &Label) -> Result<Layout, LabelError> {
        let mut items = vec![
            text(MARGIN, 28, 32, "Waybill Guard 隐私面单 privacy label"),
            text(MARGIN, 76, 112, label.destination_outlet.clone()),
            text(
                MARGIN + 440,
                100,
                32,
                format!("from {}", label.origin_outlet),
            ),
            rule(204),
        ];
        if label.copy > 1 {
            items.push(text(
                MARGIN + 440,
                148,
                32,
                format!("REPRINT #{}", label.copy),
            ));
        }
        let bars = Code128::new(format!("\u{0181}{}", label.waybill_no))
            .map_err(|_| LabelError::Barcode)?
            .encode();
        let bar_width = bars.len() as u32 * BAR_MODULE;
        if bar_width > WIDTH_DOTS - 2 * MARGIN {
            return Err(LabelError::Barcode);
        }
        items.push(Item::Barcode {
            x: (WIDTH_DOTS - bar_width) / 2,
            y: 232,
            module: BAR_MODULE,
            h: 150,
            data: label.waybill_no.clone(),
            bars: bars.into_iter().map(|b| b == 1).collect(),
        });
        items.push(text(
            WIDTH_DOTS.saturating_sub(text_width(&label.waybill_no, 32)) / 2,
            392,
            32,
            label.waybill_no.clone(),
        ));
        items.push(rule(444));
        let party = |items: &mut Vec<Item>, y: u32, heading: &str, p: &crate::Party| {
            items.push(text(MARGIN, y, 32, heading));
            items.push(text(MARGIN, y + 44, 64, format!("{}  {}", p.name, p.phone)));
            items.push(text(MARGIN, y + 124, 32, p.region.clone()));
        };
        party(&mut items, 468, "收件人 TO", &label.recipient);
        items.push(rule(660));
        party(&mut items, 684, "寄件人 FROM", &label.sender);
        items.push(rule(876));
        // Only the symbol's size here: choosing its mask (most of the cost of a QR code) is left to the formats
        // that draw its modules, and a ZPL printer draws the symbol itself.
        let width = qrcode::bits::encode_auto(label.token.as_bytes(), EcLevel::M)
            .map_err(|_| LabelError::Qr)?
            .version()
            .width() as u32;
        let side = width * QR_MODULE;
        if side > HEIGHT_DOTS - 900 - MARGIN {
            return Err(LabelError::Qr);
        }
        items.push(Item::Qr {
            x: WIDTH_DOTS - MARGIN - side,
            y: 900,
            module: QR_MODULE,
            width,
            data: label.token.clone(),
        });
        items.push(text(MARGIN, 920, 32, "派送扫码 scan to deliver"));
        items.push(text(MARGIN, 968, 32, "号码已隐藏 numbers masked"));
        Ok(Layout { items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_laid_out_is_the_size_drawn() {
        for n in [1, 40, 90, 120] {
            let mut l = crate::sample();
            l.token = "W".repeat(n);
            let Some(Item::Qr { width, data, .. }) = Layout::of(&l)
                .unwrap()
                .items
                .into_iter()
                .find(|i| matches!(i, Item::Qr { .. }))
            else {
                panic!("no QR code on the label");
            };
            assert_eq!(
                qr_modules(&data).len() as u32,
                width * width,
                "token of {n}"
            );
        }
    }

    #[test]
    fn everything_stays_on_the_label() {
        let mut l = crate::sample();
        l.copy = 3;
        for item in Layout::of(&l).unwrap().items {
            let (right, bottom) = match &item {
                Item::Text { x, y, size, text } => (x + text_width(text, *size), y + size),
                Item::Rule { x, y, w, h } => (x + w, y + h),
                Item::Barcode {
                    x,
                    y,
                    module,
                    h,
                    bars,
                    ..
                } => (x + module * bars.len() as u32, y + h),
                Item::Qr {
                    x,
                    y,
                    module,
                    width,
                    ..
                } => (x + module * width, y + module * width),
            };
            assert!(right <= WIDTH_DOTS && bottom <= HEIGHT_DOTS, "{item:?}");
        }
    }

    #[test]
    fn a_reprint_says_so() {
        let mut l = crate::sample();
        let has = |l: &crate::Label| {
            Layout::of(l)
                .unwrap()
                .items
                .iter()
                .any(|i| matches!(i, Item::Text { text, .. } if text.starts_with("REPRINT")))
        };
        assert!(!has(&l));
        l.copy = 2;
        assert!(has(&l));
    }

    #[test]
    fn a_number_too_long_for_the_label_is_refused() {
        let mut l = crate::sample();
        l.waybill_no = "Y".repeat(80);
        assert!(matches!(Layout::of(&l), Err(LabelError::Barcode)));
    }
}
