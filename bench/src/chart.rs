//! The PNG chart: for each payload, QPS and p99 latency by concurrency, one line per system.
//! Text is drawn with DejaVu Sans embedded in the binary (the `dejavu` crate), so the chart
//! needs no system fonts.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{size, Row};
use crate::systems::BenchError;

/// Colours per series label, stable across runs.
fn colour(label: &str) -> RGBColor {
    match label {
        "raw x1" => RGBColor(90, 90, 90),
        "rpc x1" => RGBColor(214, 39, 40),
        "rpc x4" => RGBColor(255, 127, 14),
        "tarpc x1" => RGBColor(31, 119, 180),
        "tonic x1" => RGBColor(44, 160, 44),
        "volo x1" => RGBColor(140, 86, 75),
        _ => RGBColor(148, 103, 189),
    }
}

fn register_fonts() -> Result<(), BenchError> {
    static ONCE: Once = Once::new();
    let mut failed = false;
    ONCE.call_once(|| {
        failed = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        )
        .is_err()
            || plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold())
                .is_err();
    });
    if failed {
        return Err("the embedded DejaVu Sans font does not load".into());
    }
    Ok(())
}

/// Draws the chart of `rows` to `path` (PNG).
pub fn draw(rows: &[Row], path: &Path, title: &str) -> Result<(), BenchError> {
    register_fonts()?;
    let payloads: Vec<usize> = rows
        .iter()
        .map(|r| r.payload)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if payloads.is_empty() {
        return Err("no results to chart".into());
    }
    let labels: Vec<String> = rows
        .iter()
        .map(Row::label)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let height = 80 + 420 * payloads.len() as u32;
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(title, ("sans-serif", 26).into_font().style(FontStyle::Bold))
        .map_err(err)?;
    let panels = root.split_evenly((payloads.len(), 2));
    for (i, payload) in payloads.iter().enumerate() {
        let at: Vec<&Row> = rows.iter().filter(|r| r.payload == *payload).collect();
        panel(&panels[2 * i], &at, &labels, *payload, Metric::Qps)?;
        panel(&panels[2 * i + 1], &at, &labels, *payload, Metric::P99)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Metric {
    Qps,
    P99,
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    rows: &[&Row],
    labels: &[String],
    payload: usize,
    metric: Metric,
) -> Result<(), BenchError> {
    let value = |r: &Row| match metric {
        Metric::Qps => r.qps,
        Metric::P99 => r.p99_us,
    };
    let max_c = rows.iter().map(|r| r.concurrency).max().unwrap_or(1).max(2) as f64;
    let max_v = rows
        .iter()
        .map(|r| value(r))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let min_v = rows
        .iter()
        .map(|r| value(r))
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min)
        .min(max_v);
    let caption = match metric {
        Metric::Qps => format!("{} payload: throughput (calls/s, log scale)", size(payload)),
        Metric::P99 => format!("{} payload: p99 latency (µs, log scale)", size(payload)),
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80);
    let (y_desc, y_format): (&str, fn(&f64) -> String) = match metric {
        Metric::Qps => ("calls / s", |y| {
            if *y >= 1_000.0 {
                format!("{:.0}k", y / 1_000.0)
            } else {
                format!("{y:.0}")
            }
        }),
        Metric::P99 => ("p99 µs", |y| format!("{y:.0}")),
    };
    let x_range = (1f64..max_c * 1.15).log_scale();
    let y_range = (min_v * 0.7..max_v * 1.4).log_scale();
    let mut chart = builder.build_cartesian_2d(x_range, y_range).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("concurrency (closed loop)")
        .y_desc(y_desc)
        .y_labels(8)
        .max_light_lines(2)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&y_format)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    series(&mut chart, rows, labels, value)?;
    Ok(())
}

type LogChart<'a> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>;

fn series(
    chart: &mut LogChart<'_>,
    rows: &[&Row],
    labels: &[String],
    value: impl Fn(&Row) -> f64,
) -> Result<(), BenchError> {
    for label in labels {
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| &r.label() == label)
            .map(|r| (r.concurrency as f64, value(r)))
            .collect();
        if points.is_empty() {
            continue;
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let c = colour(label);
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn err(e: impl std::fmt::Display) -> BenchError {
    format!("chart: {e}").into()
}
