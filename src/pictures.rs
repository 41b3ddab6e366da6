//! What a network learned, as pictures: `weights.png` (the first layer's filters), `mistakes.png`
//! (test digits it got wrong), `confusion.svg` (the confusion matrix as a heat map), and
//! `report.html`, one page with a run's settings, final numbers, plots and pictures.
//!
//! PNGs are encoded by the `png` crate (8-bit grayscale); the SVG and the HTML are written as
//! text. The page links its files by relative name and holds no script, so it reads offline.

use std::fmt::Write as _;
use std::path::Path;

use backprop_core::network::LayerPlan;
use backprop_data::mnist::{CLASSES, Dataset};
use ndarray::{Array2, ArrayView1};

use crate::model_file::SavedModel;
use crate::output::{EpochMetrics, OutputError, write_atomically};

/// How many misclassified test images `mistakes.png` shows, at most.
pub const MISTAKES_SHOWN: usize = 64;

/// A grayscale image, row-major, one byte per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `height * width` bytes.
    pub pixels: Vec<u8>,
}

impl Gray {
    /// A `width x height` image of one shade.
    pub fn filled(width: usize, height: usize, shade: u8) -> Self {
        Gray {
            width,
            height,
            pixels: vec![shade; width * height],
        }
    }

    /// Copies `tile` (values in [0, 1], `rows x cols`) with its top-left at `(x, y)`, each value
    /// a `scale x scale` square.
    fn put(&mut self, tile: &Array2<f32>, x: usize, y: usize, scale: usize) {
        for ((row, col), &value) in tile.indexed_iter() {
            let shade = (value.clamp(0.0, 1.0) * 255.0).round() as u8;
            for dy in 0..scale {
                let start = (y + row * scale + dy) * self.width + x + col * scale;
                self.pixels[start..start + scale].fill(shade);
            }
        }
    }

    /// The PNG file of this image.
    ///
    /// # Errors
    /// What the encoder said.
    pub fn to_png(&self) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        let (width, height) = (self.width as u32, self.height as u32);
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|error| error.to_string())?;
        writer
            .write_image_data(&self.pixels)
            .map_err(|error| error.to_string())?;
        writer.finish().map_err(|error| error.to_string())?;
        Ok(bytes)
    }
}

/// `values` scaled to its own range: min to 0, max to 1 (all equal: 0.5 each).
fn own_range(values: ArrayView1<f32>) -> Vec<f32> {
    let (low, high) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(low, high), &v| {
            (low.min(v), high.max(v))
        });
    let span = high - low;
    values
        .iter()
        .map(|&value| match span > 0.0 {
            true => (value - low) / span,
            false => 0.5,
        })
        .collect()
}

/// Tiles on a grid as close to square as the count allows: `ceil(sqrt(n))` columns, each tile
/// upscaled to at least 28 pixels, one pixel of mid-gray between tiles.
fn grid(tiles: &[Array2<f32>], shade_between: u8) -> Gray {
    let (rows, cols) = tiles.first().map_or((1, 1), |tile| tile.dim());
    let scale = 28usize.div_ceil(rows.max(cols)).max(1);
    let columns = (tiles.len() as f64).sqrt().ceil().max(1.0) as usize;
    let lines = tiles.len().div_ceil(columns).max(1);
    let (cell_width, cell_height) = (cols * scale + 1, rows * scale + 1);
    let mut image = Gray::filled(
        columns * cell_width + 1,
        lines * cell_height + 1,
        shade_between,
    );
    for (index, tile) in tiles.iter().enumerate() {
        let (x, y) = (
            index % columns * cell_width + 1,
            index / columns * cell_height + 1,
        );
        image.put(tile, x, y, scale);
    }
    image
}

/// The first weight layer's filters, one tile each, each scaled to its own range (CS231n's
/// `visualize_grid`): a `Linear` on the image gives one `H x W` tile per output (a column of
/// its `(pixels, outputs)` weight); a `Conv2d` one `kh x kw` tile per filter (of the first
/// input channel). A first `Linear` that does not read the image directly gives one row per
/// output.
pub fn weights_picture(model: &SavedModel, image_rows: usize, image_cols: usize) -> Gray {
    let Some((weight, _)) = model.params.first() else {
        return Gray::filled(1, 1, 128);
    };
    // A first Conv2d's kernel; else (a Linear first) the image.
    let first_kernel = model
        .layers
        .as_ref()
        .and_then(|layers| layers.spec().ok())
        .and_then(|spec| {
            spec.plan().into_iter().find_map(|layer| match layer {
                LayerPlan::Conv2d(geometry) => Some(Some(geometry.kernel)),
                LayerPlan::Linear { .. } => Some(None),
                _ => None,
            })
        })
        .flatten();
    let (kernel_rows, kernel_cols) = first_kernel.unwrap_or((image_rows, image_cols));
    // A Linear that does not read the image directly: one row per output.
    let (tile_rows, tile_cols) = match kernel_rows * kernel_cols {
        area if area > 0 && area <= weight.nrows() => (kernel_rows, kernel_cols),
        _ => (1, weight.nrows()),
    };
    let tiles: Vec<Array2<f32>> = weight
        .columns()
        .into_iter()
        .map(|column| {
            let area = tile_rows * tile_cols;
            let scaled = own_range(column.slice(ndarray::s![..area]));
            Array2::from_shape_vec((tile_rows, tile_cols), scaled).expect("area values")
        })
        .collect();
    grid(&tiles, 128)
}

/// Digit glyphs 3 wide and 5 tall (rows top to bottom, bit 2 the left column), then `-`, `>`.
const GLYPHS: [[u8; 5]; 12] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
    [0b000, 0b000, 0b111, 0b000, 0b000],
    [0b100, 0b010, 0b001, 0b010, 0b100],
];

/// Writes `text` (digits, `-` and `>`) in black at `(x, y)`, each glyph pixel a 2x2 square.
fn label(image: &mut Gray, text: &str, x: usize, y: usize) {
    for (index, character) in text.chars().enumerate() {
        let glyph = match character {
            '0'..='9' => GLYPHS[character as usize - '0' as usize],
            '-' => GLYPHS[10],
            '>' => GLYPHS[11],
            _ => continue,
        };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let (px, py) = (x + index * 8 + col * 2 + dx, y + row * 2 + dy);
                        if px < image.width && py < image.height {
                            image.pixels[py * image.width + px] = 0;
                        }
                    }
                }
            }
        }
    }
}

/// The first [`MISTAKES_SHOWN`] test images the model got wrong, in test-set order, 8 to a
/// row, each over a label `true->predicted` (white digits on black, as MNIST stores them).
/// `predicted[i]` is the model's class for image `i`.
pub fn mistakes_picture(data: &Dataset, predicted: &[usize]) -> Gray {
    let wrong: Vec<usize> = (0..data.len())
        .filter(|&index| predicted[index] != data.labels[index])
        .take(MISTAKES_SHOWN)
        .collect();
    let scale = 28usize.div_ceil(data.rows.max(data.cols)).max(2);
    let (cell_width, cell_height) = ((data.cols * scale).max(48) + 4, data.rows * scale + 16);
    let columns = 8.min(wrong.len()).max(1);
    let lines = wrong.len().div_ceil(columns).max(1);
    let mut image = Gray::filled(columns * cell_width, lines * cell_height, 255);
    for (slot, &index) in wrong.iter().enumerate() {
        let (x, y) = (
            slot % columns * cell_width + 2,
            slot / columns * cell_height,
        );
        let pixels = data.images.row(index).to_owned();
        let digit = pixels
            .into_shape_with_order((data.rows, data.cols))
            .expect("rows * cols pixels");
        image.put(&digit, x, y, scale);
        let text = format!("{}->{}", data.labels[index], predicted[index]);
        label(&mut image, &text, x, y + data.rows * scale + 3);
    }
    image
}

/// The confusion matrix (`[true][predicted]` counts) as an SVG heat map: each cell shaded by its
/// share of the true class's images, with its count.
pub fn confusion_svg(confusion: &Array2<usize>) -> String {
    let classes = confusion.nrows();
    let cell = 44;
    let (left, top) = (70, 70);
    let (width, height) = (left + classes * cell + 20, top + classes * cell + 20);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">confusion matrix \
         (rows: true class, columns: predicted)</text>\n\
         <text x=\"{}\" y=\"48\" text-anchor=\"middle\">predicted</text>\n\
         <text x=\"18\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {})\">true</text>\n",
        width / 2,
        left + classes * cell / 2,
        top + classes * cell / 2,
        top + classes * cell / 2,
    );
    for class in 0..classes {
        let middle = class * cell + cell / 2;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{class}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{class}</text>",
            left + middle,
            top - 6,
            left - 8,
            top + middle + 5
        );
    }
    for ((truth, predicted), &count) in confusion.indexed_iter() {
        let total: usize = confusion.row(truth).sum();
        let share = count as f64 / total.max(1) as f64;
        // White (no images) to dark blue (all of the class).
        let shade = |full: f64| (255.0 - share * (255.0 - full)).round() as u8;
        let (red, green, blue) = (shade(8.0), shade(48.0), shade(107.0));
        let text = if share > 0.5 { "white" } else { "black" };
        let (x, y) = (left + predicted * cell, top + truth * cell);
        let _ = writeln!(
            svg,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" \
             fill=\"rgb({red},{green},{blue})\" stroke=\"#ccc\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{text}\">{count}</text>",
            x + cell / 2,
            y + cell / 2 + 5
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Each test image's predicted class: the largest logit (the first on a tie), as
/// [`crate::eval::accuracy`] counts.
pub fn classes_of(logits: &Array2<f32>) -> Vec<usize> {
    logits
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (class, &z)| {
                    if z > best.1 { (class, z) } else { best }
                })
                .0
        })
        .collect()
}

/// Writes `weights.png`, `mistakes.png` and `confusion.svg` into `out`.
///
/// # Errors
/// An encoder or a file that failed, naming the file.
pub fn write_pictures(
    out: &Path,
    model: &SavedModel,
    data: &Dataset,
    predicted: &[usize],
    confusion: &Array2<usize>,
) -> Result<(), OutputError> {
    debug_assert_eq!(confusion.dim(), (CLASSES, CLASSES));
    for (name, picture) in [
        ("weights.png", weights_picture(model, data.rows, data.cols)),
        ("mistakes.png", mistakes_picture(data, predicted)),
    ] {
        let path = out.join(name);
        let bytes = picture
            .to_png()
            .map_err(|problem| OutputError::new(&path, problem))?;
        write_atomically(&path, &bytes)?;
    }
    write_atomically(
        &out.join("confusion.svg"),
        confusion_svg(confusion).as_bytes(),
    )
}

/// `text` with `&`, `<`, `>` and `"` escaped for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `report.html`: the run's settings (`config`, the JSON of `config.json`), its last epoch's
/// numbers, and every plot and picture of the folder by relative name.
pub fn report_html(title: &str, config: &serde_json::Value, history: &[EpochMetrics]) -> String {
    let mut page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{0}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 24px; color: #222; }}\n\
         table {{ border-collapse: collapse; margin-bottom: 16px; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 3px 10px; text-align: left; }}\n\
         figure {{ display: inline-block; margin: 8px; vertical-align: top; }}\n\
         .row {{ display: flex; flex-wrap: wrap; gap: 32px; align-items: flex-start; }}\n\
         img {{ border: 1px solid #ccc; }}\n\
         img.plot {{ width: 380px; }}\n\
         figcaption {{ max-width: 380px; }}\n\
         </style>\n</head>\n<body>\n<h1>{0}</h1>\n",
        escape(title)
    );
    // The numbers and the settings side by side, then the plots, then the pictures.
    page.push_str("<div class=\"row\">\n<div>\n<h2>Result</h2>\n<table>\n");
    match history.last() {
        Some(last) => {
            for (name, value) in [
                ("epochs", last.epoch.to_string()),
                ("train loss", format!("{:.4}", last.train_loss)),
                (
                    "train accuracy",
                    format!("{:.2}%", 100.0 * last.train_accuracy),
                ),
                (
                    "test accuracy",
                    format!("{:.2}%", 100.0 * last.test_accuracy),
                ),
            ] {
                let _ = writeln!(page, "<tr><th>{name}</th><td>{value}</td></tr>");
            }
        }
        None => page.push_str("<tr><td>no epoch finished yet</td></tr>\n"),
    }
    page.push_str("</table>\n</div>\n<div>\n<h2>Settings</h2>\n<table>\n");
    if let Some(settings) = config.as_object() {
        for (name, value) in settings {
            let value = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(
                page,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(name),
                escape(&value)
            );
        }
    }
    page.push_str("</table>\n</div>\n</div>\n");
    for (heading, figures) in [
        (
            "Training",
            &[
                ("loss.svg", "training loss per epoch"),
                ("accuracy.svg", "train and test accuracy per epoch"),
                (
                    "grad_norms.svg",
                    "each layer's weight-gradient norm (log10)",
                ),
            ][..],
        ),
        (
            "What it learned, and where it goes wrong",
            &[
                (
                    "weights.png",
                    "the first layer's filters, each scaled to its own range",
                ),
                (
                    "mistakes.png",
                    "the first misclassified test digits, true -> predicted",
                ),
                ("confusion.svg", "the confusion matrix of the test set"),
            ][..],
        ),
    ] {
        let _ = writeln!(page, "<h2>{heading}</h2>\n<div class=\"row\">");
        for (file, caption) in figures {
            // The training plots side by side; the pictures at their own size.
            let class = match heading {
                "Training" => " class=\"plot\"",
                _ => "",
            };
            let _ = writeln!(
                page,
                "<figure><img{class} src=\"{file}\" alt=\"{caption}\"><figcaption>{caption} \
                 (<a href=\"{file}\">{file}</a>)</figcaption></figure>"
            );
        }
        page.push_str("</div>\n");
    }
    page.push_str("</body>\n</html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn a_tile_is_scaled_to_its_own_range() {
        let scaled = own_range(array![-2.0f32, 0.0, 2.0].view());
        assert_eq!(scaled, [0.0, 0.5, 1.0]);
        let flat = own_range(array![3.0f32, 3.0].view());
        assert_eq!(flat, [0.5, 0.5]);
    }

    #[test]
    fn a_label_draws_each_glyph_where_it_belongs() {
        let mut image = Gray::filled(24, 10, 255);
        label(&mut image, "1-", 0, 0);
        // "1": the middle column of the top row is set, its left column is not.
        assert_eq!(image.pixels[2], 0);
        assert_eq!(image.pixels[0], 255);
        // "-": only its middle row (rows 4 and 5 of the image) is set.
        assert_eq!(image.pixels[4 * 24 + 8], 0);
        assert_eq!(image.pixels[8], 255);
    }
}
