#![doc = include_str!("../README.md")]
//!
//! The label is laid out once (`layout`) as text, bars, a QR matrix and rules in printer dots (203 dpi, a
//! 4×6 inch label), and each format draws that same layout: ZPL with the printer's own barcode and QR commands,
//! PDF with vector rectangles and a non-embedded CJK font, PNG as a 1-bit raster.
#![deny(missing_docs)]

mod doc;
mod layout;
mod pdf;
mod raster;
mod zpl;

pub use doc::document_pdf;
pub use layout::{Item, Layout, DOTS_PER_INCH, HEIGHT_DOTS, WIDTH_DOTS};

/// A party as the label shows it: already masked by the guard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Party {
    /// Masked name (`王*`).
    pub name: String,
    /// Masked phone (`138******78`).
    pub phone: String,
    /// Province, city and district, as one line.
    pub region: String,
}

/// Everything a privacy label carries. The guard builds it from a masked view; nothing else goes on the label.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Label {
    /// Waybill number (the Code 128 barcode and its human-readable line).
    pub waybill_no: String,
    /// Outlet the parcel leaves from.
    pub origin_outlet: String,
    /// Outlet that delivers it: the sort code, printed large.
    pub destination_outlet: String,
    /// Recipient, masked.
    pub recipient: Party,
    /// Sender, masked.
    pub sender: Party,
    /// The opaque token the QR code holds; the courier app resolves it through the guard.
    pub token: String,
    /// Which print of this waybill this is (1 = first; more is a reprint, and the label says so).
    pub copy: u32,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Zebra Programming Language, for thermal label printers.
    Zpl,
    /// PDF, one 4×6 inch page.
    Pdf,
    /// PNG, 812×1218 pixels (203 dpi), black and white.
    Png,
}

impl Format {
    /// Parses `zpl`, `pdf` or `png`.
    pub fn parse(s: &str) -> Result<Format, LabelError> {
        match s {
            "zpl" => Ok(Format::Zpl),
            "pdf" => Ok(Format::Pdf),
            "png" => Ok(Format::Png),
            _ => Err(LabelError::Format),
        }
    }

    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Zpl => "zpl",
            Format::Pdf => "pdf",
            Format::Png => "png",
        }
    }

    /// The media type of the rendered bytes.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Zpl => "application/zpl; charset=utf-8",
            Format::Pdf => "application/pdf",
            Format::Png => "image/png",
        }
    }
}

/// Why a label could not be produced. Messages never hold a label's contents.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// An unknown format name.
    #[error("format must be zpl, pdf or png")]
    Format,
    /// The waybill number cannot be a Code 128 barcode.
    #[error("the waybill number cannot be encoded as a Code 128 barcode")]
    Barcode,
    /// The token does not fit a QR code.
    #[error("the label token does not fit a QR code")]
    Qr,
    /// The raster or PDF encoder failed.
    #[error("cannot encode the label: {0}")]
    Encode(String),
    /// The PNG encoder failed; its error is kept as the source.
    #[error("cannot encode the label: {0}")]
    Png(#[from] png::EncodingError),
}

/// Renders `label` in `format`.
pub fn render(label: &Label, format: Format) -> Result<Vec<u8>, LabelError> {
    let layout = Layout::of(label)?;
    Ok(match format {
        Format::Zpl => zpl::render(&layout).into_bytes(),
        Format::Pdf => pdf::render(&layout),
        Format::Png => raster::render(&layout)?,
    })
}

#[cfg(test)]
pub(crate) fn sample() -> Label {
    Label {
        waybill_no: "YT2026112300001".into(),
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
        token: "WBG1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        copy: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_name_themselves() {
        for f in [Format::Zpl, Format::Pdf, Format::Png] {
            assert_eq!(Format::parse(f.as_str()).unwrap(), f);
        }
        assert!(Format::parse("svg").is_err());
    }

    #[test]
    fn every_format_renders() {
        let l = sample();
        assert!(render(&l, Format::Zpl).unwrap().starts_with(b"^XA"));
        assert!(render(&l, Format::Pdf).unwrap().starts_with(b"%PDF-"));
        assert!(render(&l, Format::Png)
            .unwrap()
            .starts_with(b"\x89PNG\r\n\x1a\n"));
    }
}
