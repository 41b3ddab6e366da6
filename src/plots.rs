//! The plots, as SVG text (plotters' pure-Rust SVG backend: no system font or image library);
//! [`crate::output::write_svg`] puts them on disk.

use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug)]
pub struct Series<'a> {
    /// The legend label.
    pub label: String,
    /// (x, y) points; non-finite ones are left out (the line stops there).
    pub points: &'a [(f64, f64)],
}

/// One chart of a figure: a title, axis names and its lines.
#[derive(Debug)]
pub struct Panel<'a> {
    /// Shown above the chart.
    pub title: String,
    /// The x axis name.
    pub x_label: &'a str,
    /// The y axis name.
    pub y_label: &'a str,
    /// The lines.
    pub series: Vec<Series<'a>>,
}

/// Draws `series` against the epoch; returns the SVG.
///
/// # Errors
/// The message plotters gave.
pub fn line_chart(title: &str, y_label: &str, series: Vec<Series<'_>>) -> Result<String, String> {
    let panel = Panel {
        title: title.to_string(),
        x_label: "epoch",
        y_label,
        series,
    };
    panel_grid(None, 1, &[panel], (720, 440))
}

/// Draws `panels` in a grid of `columns` columns (row by row) under an optional figure title;
/// `size` is the whole figure's in pixels. Returns the SVG.
///
/// # Errors
/// The message plotters gave.
pub fn panel_grid(
    title: Option<&str>,
    columns: usize,
    panels: &[Panel<'_>],
    size: (u32, u32),
) -> Result<String, String> {
    let to_text = |error: &dyn std::fmt::Display| error.to_string();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|error| to_text(&error))?;
        let root = match title {
            Some(title) => root
                .titled(title, ("sans-serif", 24))
                .map_err(|error| to_text(&error))?,
            None => root,
        };
        let rows = panels.len().div_ceil(columns.max(1));
        for (area, panel) in root.split_evenly((rows, columns.max(1))).iter().zip(panels) {
            draw_panel(area, panel).map_err(|error| to_text(&error))?;
        }
        root.present().map_err(|error| to_text(&error))?;
    }
    Ok(svg)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw_panel(area: &Area<'_>, panel: &Panel<'_>) -> Result<(), String> {
    let to_text = |error: &dyn std::fmt::Display| error.to_string();
    let finite_points = || {
        panel.series.iter().flat_map(|line| {
            line.points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
        })
    };
    let (x_range, y_range) = (
        padded_range(finite_points().map(|point| point.0), 0.0),
        padded_range(finite_points().map(|point| point.1), 0.05),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.clone(), y_range)
        .map_err(|error| to_text(&error))?;
    // Whole-number x values (epochs, layers, steps) get whole-number ticks.
    let x_ticks = ((x_range.end - x_range.start).round() as usize + 1).clamp(2, 10);
    chart
        .configure_mesh()
        .x_desc(panel.x_label)
        .y_desc(panel.y_label)
        .x_labels(x_ticks)
        .x_label_formatter(&|x| compact(*x))
        .y_label_formatter(&|y| compact(*y))
        .draw()
        .map_err(|error| to_text(&error))?;
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (index, line) in panel.series.iter().enumerate() {
        let color = palette[index % palette.len()];
        let points = line
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite());
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
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
    Ok(())
}

/// The range of `values` with `pad` (a fraction of the span) on both sides; never empty.
fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> std::ops::Range<f64> {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| {
        (low.min(v), high.max(v))
    });
    if !low.is_finite() {
        return 0.0..1.0;
    }
    let margin = ((high - low) * pad).max(if high > low { 0.0 } else { 0.5 });
    (low - margin)..(high + margin)
}

/// `0.25`, `97.5`, `-2.3`, `3.1e-5`: short tick labels without float noise.
fn compact(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude < 1e-12 {
        "0".into() // a tick at zero that arrived as -1.1e-16
    } else if (1e-2..1e4).contains(&magnitude) {
        format!("{}", (value * 1000.0).round() / 1000.0)
    } else {
        format!("{value:.1e}")
    }
}
