//! The training plots, as SVG (plotters' pure-Rust SVG backend: no system font or image library).

use std::path::Path;

use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug)]
pub struct Series<'a> {
    /// The legend label.
    pub label: String,
    /// (epoch, value) points.
    pub points: &'a [(f64, f64)],
}

/// Draws `series` against the epoch into an SVG at `path` (written whole, then renamed).
///
/// # Errors
/// The message plotters or the file system gave.
pub fn line_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[Series<'_>],
) -> Result<(), String> {
    let finite: Vec<f64> = series
        .iter()
        .flat_map(|line| line.points.iter().map(|point| point.1))
        .filter(|v| v.is_finite())
        .collect();
    let (low, high) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), &v| {
            (low.min(v), high.max(v))
        });
    // A little room above and below, and a non-empty range for a flat line.
    let pad = ((high - low) * 0.05).max(1e-6);
    let (low, high) = if low.is_finite() {
        (low - pad, high + pad)
    } else {
        (0.0, 1.0)
    };
    let epochs = series
        .iter()
        .flat_map(|line| line.points.iter().map(|point| point.0))
        .fold(1.0, f64::max);
    let to_text = |error: &dyn std::fmt::Display| error.to_string();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|error| to_text(&error))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(1.0..epochs.max(1.5), low..high)
            .map_err(|error| to_text(&error))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_label)
            .x_labels(epochs as usize)
            .x_label_formatter(&|epoch| format!("{epoch:.0}"))
            .y_label_formatter(&|value| compact(*value))
            .draw()
            .map_err(|error| to_text(&error))?;
        let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for (index, line) in series.iter().enumerate() {
            let color = palette[index % palette.len()];
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|error| to_text(&error))?
                .label(line.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|error| to_text(&error))?;
        root.present().map_err(|error| to_text(&error))?;
    }
    crate::run::write_atomically(path, |temporary| std::fs::write(temporary, &svg))
        .map_err(|error| error.to_string())
}

/// `0.25`, `97.5`, `-2.3`, `3.1e-5`: short tick labels without float noise.
fn compact(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-2..1e4).contains(&magnitude) {
        format!("{}", (value * 1000.0).round() / 1000.0)
    } else {
        format!("{value:.1e}")
    }
}
