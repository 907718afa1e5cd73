//! Draws the summary `compare-report` wrote as an SVG chart: one panel per workload, one bar
//! per implementation (its median, on a logarithmic axis in the workload's unit), a min–max
//! whisker over several rounds, and each bar labelled with its median and its ratio to the
//! hand-rolled loop.
//!
//! ```text
//! cargo run --release -p bench --bin compare-chart -- bench/results/latest.json bench/results/latest.svg
//! ```

use std::error::Error;
use std::process::ExitCode;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// Panel size in pixels, and how many panels side by side.
const PANEL: (u32, u32) = (620, 330);
const COLUMNS: usize = 2;
/// Room for the title and the legend.
const HEADER: u32 = 96;
const FONT: &str = "sans-serif";

/// One bar: an implementation's figures in one workload.
struct Bar {
    implementation: String,
    median: f64,
    min: f64,
    max: f64,
    ratio: Option<f64>,
}

/// One panel: a workload and its bars, in the summary's order.
struct Panel {
    workload: String,
    unit: String,
    bars: Vec<Bar>,
}

/// The same colour for an implementation in every panel.
fn colour(implementation: &str) -> RGBColor {
    match implementation {
        "ltp-codec" => RGBColor(31, 119, 180),
        "ltp-frame" => RGBColor(23, 190, 207),
        "ltp-typed-async" => RGBColor(188, 189, 34),
        "ltp-runtime" => RGBColor(122, 174, 214),
        "handrolled" => RGBColor(255, 127, 14),
        "lengthdelimited" => RGBColor(44, 160, 44),
        "rawtcp" => RGBColor(140, 86, 75),
        "ancestor" => RGBColor(148, 103, 189),
        "ancestor-server" => RGBColor(197, 176, 213),
        "python-server" => RGBColor(255, 187, 120),
        _ => RGBColor(127, 127, 127),
    }
}

/// An axis tick: a power of ten without trailing zeros (`10 k`, `1 M`).
fn tick(x: f64) -> String {
    let (value, suffix) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, " G"),
        a if a >= 1e6 => (x / 1e6, " M"),
        a if a >= 1e3 => (x / 1e3, " k"),
        _ => (x, ""),
    };
    format!("{value}{suffix}")
}

fn panels(summary: &Value) -> Vec<Panel> {
    let mut panels: Vec<Panel> = Vec::new();
    for row in summary["results"].as_array().into_iter().flatten() {
        let number = |key: &str| row[key].as_f64();
        let (Some(workload), Some(median)) = (row["workload"].as_str(), number("median")) else {
            continue;
        };
        let bar = Bar {
            implementation: row["impl"].as_str().unwrap_or("?").to_owned(),
            median,
            min: number("min").unwrap_or(median),
            max: number("max").unwrap_or(median),
            ratio: number("ratio_vs_handrolled"),
        };
        match panels.iter_mut().find(|p| p.workload == workload) {
            Some(panel) => panel.bars.push(bar),
            None => panels.push(Panel {
                workload: workload.to_owned(),
                unit: row["unit"].as_str().unwrap_or("").to_owned(),
                bars: vec![bar],
            }),
        }
    }
    panels
}

/// A logarithmic axis from a power of ten below the smallest figure to room above the largest
/// for the labels.
fn axis(bars: &[Bar]) -> (f64, f64) {
    let positive = |x: f64| if x > 0.0 { Some(x) } else { None };
    let low = bars
        .iter()
        .filter_map(|b| positive(b.min.min(b.median)))
        .fold(f64::INFINITY, f64::min);
    let high = bars
        .iter()
        .filter_map(|b| positive(b.max.max(b.median)))
        .fold(0.0, f64::max);
    if !low.is_finite() || high <= 0.0 {
        return (1.0, 10.0);
    }
    let low = 10f64.powf((low / 2.0).log10().floor());
    let high = 10f64.powf((high * 8.0).log10().ceil());
    (low, high)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    let (low, high) = axis(&panel.bars);
    // Segment i holds bar i; an integer range includes its end, so 0..n-1 makes n segments
    // (and 0..1 two, for a lone bar: a one-value range has no width).
    let last = i32::try_from(panel.bars.len())
        .unwrap_or(i32::MAX)
        .saturating_sub(1)
        .max(1);
    let names: Vec<&str> = panel
        .bars
        .iter()
        .map(|b| b.implementation.as_str())
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{} — {}", panel.workload, panel.unit), (FONT, 17))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(62)
        .build_cartesian_2d((0..last).into_segmented(), (low..high).log_scale())?;
    let label_of = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => usize::try_from(*i)
            .ok()
            .and_then(|i| names.get(i))
            .map_or(String::new(), |name| (*name).to_owned()),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len() + 1)
        .x_label_formatter(&label_of)
        .x_label_style((FONT, 12))
        .y_label_formatter(&|v| tick(*v))
        .y_label_style((FONT, 11))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    let centre = SegmentValue::CenterOf;
    // A bar spans its segment: from its own left edge to the next one's (or the axis' end).
    let right = |i: i32| {
        if i < last {
            SegmentValue::Exact(i + 1)
        } else {
            SegmentValue::Last
        }
    };
    chart.draw_series(panel.bars.iter().zip(0..).map(|(bar, i)| {
        let mut rect = Rectangle::new(
            [
                (SegmentValue::Exact(i), low),
                (right(i), bar.median.max(low)),
            ],
            colour(&bar.implementation).filled(),
        );
        rect.set_margin(0, 0, 10, 10);
        rect
    }))?;
    chart.draw_series(
        panel
            .bars
            .iter()
            .zip(0..)
            .filter(|(bar, _)| bar.max > bar.min)
            .map(|(bar, i)| {
                PathElement::new(
                    vec![(centre(i), bar.min.max(low)), (centre(i), bar.max)],
                    BLACK.stroke_width(2),
                )
            }),
    )?;
    let above = |bar: &Bar| bar.max.max(bar.median) * 1.25;
    let value_style =
        TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(panel.bars.iter().zip(0..).map(|(bar, i)| {
        Text::new(
            bench::outcome::human(bar.median),
            (centre(i), above(bar) * 1.9),
            value_style.clone(),
        )
    }))?;
    let grey = BLACK.mix(0.6);
    let ratio_style = TextStyle::from((FONT, 11).into_font())
        .color(&grey)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(panel.bars.iter().zip(0..).map(|(bar, i)| {
        let text = match bar.ratio {
            _ if bar.implementation == "handrolled" => "reference".to_owned(),
            Some(r) if r >= 0.1 => format!("{r:.2}× handrolled"),
            Some(r) if r >= 0.01 => format!("{r:.3}× handrolled"),
            Some(r) => format!("{r:.4}× handrolled"),
            None => String::new(),
        };
        Text::new(text, (centre(i), above(bar)), ratio_style.clone())
    }))?;
    Ok(())
}

fn draw(summary: &Value, out: &str) -> Result<usize, Box<dyn Error>> {
    let panels = panels(summary);
    let rows = panels.len().div_ceil(COLUMNS).max(1);
    let size = (
        PANEL.0 * COLUMNS as u32,
        HEADER + PANEL.1 * u32::try_from(rows)?,
    );
    let root = SVGBackend::new(out, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER);
    let rounds = summary["rounds"].as_u64().unwrap_or(0);
    header.draw(&Text::new(
        format!(
            "ltp bench comparison: medians of {rounds} round(s), logarithmic axes \
             (whiskers: min–max)"
        ),
        (16, 10),
        (FONT, 20).into_font(),
    ))?;
    let machine = summary["machine"].as_str().unwrap_or("");
    let grey = BLACK.mix(0.7);
    header.draw(&Text::new(
        machine.to_owned(),
        (16, 38),
        TextStyle::from((FONT, 12).into_font()).color(&grey),
    ))?;
    // The legend: every implementation once, in the order they first appear.
    let mut seen: Vec<&str> = Vec::new();
    for bar in panels.iter().flat_map(|p| &p.bars) {
        if !seen.contains(&bar.implementation.as_str()) {
            seen.push(&bar.implementation);
        }
    }
    for (implementation, slot) in seen.iter().zip(0..) {
        let x = 16 + slot * 165;
        header.draw(&Rectangle::new(
            [(x, 64), (x + 14, 78)],
            colour(implementation).filled(),
        ))?;
        header.draw(&Text::new(
            (*implementation).to_owned(),
            (x + 20, 64),
            (FONT, 13).into_font(),
        ))?;
    }
    for (area, panel) in body.split_evenly((rows, COLUMNS)).iter().zip(&panels) {
        draw_panel(area, panel)?;
    }
    root.present()?;
    Ok(panels.len())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(summary_path), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: compare-chart SUMMARY.json OUT.svg");
        return ExitCode::from(2);
    };
    let summary: Value = match std::fs::read_to_string(summary_path)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(summary) => summary,
        Err(err) => {
            eprintln!("compare-chart: cannot read {summary_path}: {err}");
            return ExitCode::from(2);
        }
    };
    match draw(&summary, out) {
        Ok(0) => {
            eprintln!("compare-chart: {summary_path} holds no verified result to draw");
            ExitCode::from(1)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("compare-chart: cannot draw {out}: {err}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(median: f64, min: f64, max: f64) -> Bar {
        Bar {
            implementation: "x".to_owned(),
            median,
            min,
            max,
            ratio: None,
        }
    }

    #[test]
    fn axis_spans_powers_of_ten_around_every_figure() {
        assert_eq!(
            axis(&[bar(290e3, 280e3, 300e3), bar(47.8e6, 40e6, 50e6)]),
            (1e5, 1e9)
        );
        assert_eq!(axis(&[]), (1.0, 10.0));
    }

    #[test]
    fn ticks_drop_trailing_zeros() {
        assert_eq!([tick(1e9), tick(1e5), tick(100.0)], ["1 G", "100 k", "100"]);
    }
}
