//! The label as a 1-bit PNG at printer resolution, text drawn with a bitmap CJK font (WenQuanYi 16 px from
//! U8g2, scaled by whole dots so it stays crisp).
use crate::layout::{Item, Layout, HEIGHT_DOTS, WIDTH_DOTS};
use crate::LabelError;
use embedded_graphics_core::draw_target::DrawTarget;
use embedded_graphics_core::geometry::{OriginDimensions, Point, Size};
use embedded_graphics_core::pixelcolor::BinaryColor;
use embedded_graphics_core::Pixel;
use u8g2_fonts::types::{FontColor, VerticalPosition};
use u8g2_fonts::{fonts, FontRenderer};

/// The font's own height, which text sizes are scaled from.
const FONT_PX: u32 = 16;

/// Black-on-white dots, `true` for black.
struct Canvas {
    dots: Vec<bool>,
}

impl Canvas {
    fn new() -> Canvas {
        Canvas {
            dots: vec![false; (WIDTH_DOTS * HEIGHT_DOTS) as usize],
        }
    }

    fn fill(&mut self, x: u32, y: u32, w: u32, h: u32) {
        for row in y..(y + h).min(HEIGHT_DOTS) {
            for col in x..(x + w).min(WIDTH_DOTS) {
                self.dots[(row * WIDTH_DOTS + col) as usize] = true;
            }
        }
    }
}

/// The font renderer draws into this at 1 px per font pixel; each becomes `scale × scale` dots at `origin`.
struct Scaled<'a> {
    canvas: &'a mut Canvas,
    origin: (u32, u32),
    scale: u32,
}

impl OriginDimensions for Scaled<'_> {
    fn size(&self) -> Size {
        Size::new(WIDTH_DOTS / self.scale, HEIGHT_DOTS / self.scale)
    }
}

impl DrawTarget for Scaled<'_> {
    type Color = BinaryColor;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        // Glyphs may reach a little above the line's top (negative y): they are drawn from the origin, not cut.
        let at = |o: u32, p: i32| i64::from(o) + i64::from(p) * i64::from(self.scale);
        for Pixel(p, color) in pixels {
            let (Ok(x), Ok(y)) = (
                u32::try_from(at(self.origin.0, p.x)),
                u32::try_from(at(self.origin.1, p.y)),
            ) else {
                continue;
            };
            if color == BinaryColor::On {
                self.canvas.fill(x, y, self.scale, self.scale);
            }
        }
        Ok(())
    }
}

pub(crate) fn render(layout: &Layout) -> Result<Vec<u8>, LabelError> {
    let font =
        FontRenderer::new::<fonts::u8g2_font_wqy16_t_gb2312>().with_ignore_unknown_chars(true);
    let mut canvas = Canvas::new();
    for item in &layout.items {
        if let Item::Text { x, y, size, text } = item {
            let mut target = Scaled {
                canvas: &mut canvas,
                origin: (*x, *y),
                scale: (size / FONT_PX).max(1),
            };
            font.render(
                text.as_str(),
                Point::zero(),
                VerticalPosition::Top,
                FontColor::Transparent(BinaryColor::On),
                &mut target,
            )
            .map_err(|e| LabelError::Encode(format!("text: {e:?}")))?;
        }
    }
    for (x, y, w, h) in layout.rects() {
        canvas.fill(x, y, w, h);
    }
    encode(&canvas)
}

/// PNG, 1 bit per pixel, 0 = black (grayscale).
fn encode(canvas: &Canvas) -> Result<Vec<u8>, LabelError> {
    let row_bytes = WIDTH_DOTS.div_ceil(8) as usize;
    let mut packed = vec![0xFFu8; row_bytes * HEIGHT_DOTS as usize];
    for (i, _) in canvas.dots.iter().enumerate().filter(|(_, d)| **d) {
        let (col, row) = (i % WIDTH_DOTS as usize, i / WIDTH_DOTS as usize);
        packed[row * row_bytes + col / 8] &= !(0x80 >> (col % 8));
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, WIDTH_DOTS, HEIGHT_DOTS);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        // 203 dpi, as pixels per metre.
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: 7992,
            yppu: 7992,
            unit: png::Unit::Meter,
        }));
        let mut w = enc.write_header()?;
        w.write_image_data(&packed)?;
    }
    Ok(out)
}
