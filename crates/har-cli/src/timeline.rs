//! `har plot timeline`: one device's predicted activity over time against the ground truth,
//! with the model's confidence, the degraded windows and (when the run logged them) its
//! activity segments, drawn from the Parquet logs.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int32Type, Int64Type};
use clap::Args;
use plotters::prelude::*;

/// Arguments of `har plot timeline`.
#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// Folder of the log tables (as written by the log node).
    #[arg(long, default_value = "logs")]
    log_dir: PathBuf,
    /// Run to draw (default: the latest run in the logs).
    #[arg(long)]
    run: Option<String>,
    /// Device to draw (default: the first device of the run).
    #[arg(long)]
    device: Option<String>,
    /// PNG to write.
    #[arg(long, default_value = "timeline.png")]
    out: PathBuf,
}

/// One logged prediction of the device.
#[derive(Debug, Clone)]
struct Row {
    start_s: f64,
    label: i32,
    name: String,
    truth: Option<i32>,
    confidence: f32,
    degraded: bool,
}

/// One logged segment of the device, in seconds from the first prediction.
#[derive(Debug, Clone)]
struct SegmentBar {
    start_s: f64,
    end_s: f64,
    label: i32,
}

/// The device's predictions in window order, with the run, the device and the first
/// prediction's start (ns).
type Rows = (String, String, Vec<Row>, i64);

/// Reads the device's predictions in window order.
fn rows(args: &TimelineArgs) -> Result<Rows> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the query runtime")?;
    let quote = |s: &str| s.replace('\'', "''");
    let run = match &args.run {
        Some(run) => run.clone(),
        None => single_string(&runtime.block_on(crate::sql::query(
            &args.log_dir,
            "SELECT run_id FROM predictions ORDER BY logged_ts_ns DESC LIMIT 1",
        ))?)
        .context("the logs hold no prediction")?,
    };
    let device = match &args.device {
        Some(device) => device.clone(),
        None => single_string(&runtime.block_on(crate::sql::query(
            &args.log_dir,
            &format!(
                "SELECT device_id FROM predictions WHERE run_id = '{}' ORDER BY device_id LIMIT 1",
                quote(&run)
            ),
        ))?)
        .with_context(|| format!("run {run} has no prediction"))?,
    };
    let batches = runtime.block_on(crate::sql::query(
        &args.log_dir,
        &format!(
            "SELECT start_ns, predicted_label, predicted_name, true_label, confidence, degraded \
             FROM predictions WHERE run_id = '{}' AND device_id = '{}' ORDER BY start_ns",
            quote(&run),
            quote(&device)
        ),
    ))?;
    let mut out = Vec::new();
    let mut first: Option<i64> = None;
    for batch in &batches {
        let start = batch.column(0).as_primitive::<Int64Type>();
        let label = batch.column(1).as_primitive::<Int32Type>();
        let name = utf8(batch.column(2))?;
        let name = name.as_string::<i32>();
        let truth = batch.column(3).as_primitive::<Int32Type>();
        let confidence = batch.column(4).as_primitive::<Float32Type>();
        let degraded = batch.column(5).as_boolean();
        for i in 0..batch.num_rows() {
            let t0 = *first.get_or_insert(start.value(i));
            out.push(Row {
                start_s: (start.value(i) as f64 - t0 as f64) / 1e9,
                label: label.value(i),
                name: name.value(i).to_string(),
                truth: (!truth.is_null(i)).then(|| truth.value(i)),
                confidence: confidence.value(i),
                degraded: degraded.value(i),
            });
        }
    }
    if out.is_empty() {
        bail!("device `{device}` has no prediction in run {run}");
    }
    Ok((run, device, out, first.unwrap_or(0)))
}

/// The device's logged segments (none when the run logged no `segments` table).
fn segment_bars(args: &TimelineArgs, run: &str, device: &str, t0_ns: i64) -> Vec<SegmentBar> {
    let quote = |s: &str| s.replace('\'', "''");
    let query = format!(
        "SELECT start_ns, end_ns, label FROM segments WHERE run_id = '{}' AND device_id = '{}' \
         ORDER BY segment_id",
        quote(run),
        quote(device)
    );
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let Ok(batches) = runtime.block_on(crate::sql::query(&args.log_dir, &query)) else {
        return Vec::new();
    };
    let mut bars = Vec::new();
    for batch in &batches {
        let start = batch.column(0).as_primitive::<Int64Type>();
        let end = batch.column(1).as_primitive::<Int64Type>();
        let label = batch.column(2).as_primitive::<Int32Type>();
        for i in 0..batch.num_rows() {
            bars.push(SegmentBar {
                start_s: (start.value(i) - t0_ns) as f64 / 1e9,
                end_s: (end.value(i) - t0_ns) as f64 / 1e9,
                label: label.value(i),
            });
        }
    }
    bars
}

fn single_string(batches: &[RecordBatch]) -> Option<String> {
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    Some(
        utf8(batch.column(0))
            .ok()?
            .as_string::<i32>()
            .value(0)
            .to_string(),
    )
}

/// A string column as plain UTF-8 (DataFusion may hand out dictionaries or views).
fn utf8(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(array, &DataType::Utf8)?)
}

/// A colour per class id, distinct for the first dozen.
fn class_colour(label: i32) -> RGBColor {
    const PALETTE: [RGBColor; 12] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(57, 59, 121),
        RGBColor(99, 121, 57),
    ];
    PALETTE[label.rem_euclid(PALETTE.len() as i32) as usize]
}

/// Writes the timeline PNG and says what it drew.
pub fn timeline_command(args: &TimelineArgs) -> Result<()> {
    let (run, device, rows, t0_ns) = rows(args)?;
    let segments = segment_bars(args, &run, &device, t0_ns);
    // The last window is drawn one stride wide (the smallest gap between windows).
    let stride_s = rows
        .windows(2)
        .map(|w| w[1].start_s - w[0].start_s)
        .fold(f64::INFINITY, f64::min)
        .clamp(0.1, 10.0);
    let end_s = rows.last().map_or(1.0, |r| r.start_s) + stride_s;
    let root = BitMapBackend::new(&args.out, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (top, legend) = root.split_vertically(470);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{device} — run {}", &run[..run.len().min(13)]),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..end_s, 0f64..4.2f64)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("time (s)")
        .y_labels(0)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let font = ("sans-serif", 13).into_font();
    for (text, y) in [
        ("segments", 3.95),
        ("truth", 2.95),
        ("predicted", 1.98),
        ("confidence 1", 1.0),
        ("0", 0.05),
    ] {
        chart
            .draw_series(std::iter::once(Text::new(text, (0.0, y), font.clone())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    for (i, row) in rows.iter().enumerate() {
        let next = rows.get(i + 1).map_or(end_s, |r| r.start_s);
        let colour = class_colour(row.label);
        chart
            .draw_series([Rectangle::new(
                [(row.start_s, 1.2), (next, 1.8)],
                colour.filled(),
            )])
            .map_err(|e| anyhow!("{e}"))?;
        if let Some(truth) = row.truth {
            chart
                .draw_series([Rectangle::new(
                    [(row.start_s, 2.2), (next, 2.8)],
                    class_colour(truth).filled(),
                )])
                .map_err(|e| anyhow!("{e}"))?;
        }
        if row.degraded {
            chart
                .draw_series([Rectangle::new(
                    [(row.start_s, 1.82), (next, 1.95)],
                    RED.filled(),
                )])
                .map_err(|e| anyhow!("{e}"))?;
        }
        if row.truth.is_some_and(|t| t != row.label) {
            chart
                .draw_series([Rectangle::new(
                    [(row.start_s, 1.05), (next, 1.15)],
                    BLACK.filled(),
                )])
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    for bar in &segments {
        chart
            .draw_series([Rectangle::new(
                [(bar.start_s.max(0.0), 3.2), (bar.end_s.min(end_s), 3.8)],
                class_colour(bar.label).filled(),
            )])
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series([Rectangle::new(
                [(bar.start_s.max(0.0), 3.2), (bar.end_s.min(end_s), 3.8)],
                BLACK.stroke_width(1),
            )])
            .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            rows.iter()
                .map(|r| (r.start_s, r.confidence as f64))
                .collect::<Vec<_>>(),
            BLUE.stroke_width(1),
        )))
        .map_err(|e| anyhow!("{e}"))?;
    // Legend: the classes seen, then the marks.
    let mut classes: Vec<(i32, String)> = rows.iter().map(|r| (r.label, r.name.clone())).collect();
    // Truth classes the model never predicted (e.g. classes it does not know) by id.
    classes.extend(
        rows.iter()
            .filter_map(|r| r.truth)
            .map(|t| (t, String::new())),
    );
    classes.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    classes.dedup_by_key(|c| c.0);
    let mut x = 20;
    for (label, name) in &classes {
        legend
            .draw(&Rectangle::new(
                [(x, 20), (x + 14, 34)],
                class_colour(*label).filled(),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        legend
            .draw(&Text::new(
                format!("{label} {name}"),
                (x + 18, 20),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        x += 30 + 8 * (name.len() as i32 + 2);
    }
    let marks = "red bar: degraded (a modality missing)   black bar: prediction ≠ truth   blue line: confidence";
    legend
        .draw(&Text::new(marks, (20, 55), ("sans-serif", 13).into_font()))
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    let wrong = rows
        .iter()
        .filter(|r| r.truth.is_some_and(|t| t != r.label))
        .count();
    let labelled = rows.iter().filter(|r| r.truth.is_some()).count();
    println!(
        "wrote {}: device {device}, {} windows ({} degraded, {wrong} of {labelled} labelled wrong), {} segments",
        args.out.display(),
        rows.len(),
        rows.iter().filter(|r| r.degraded).count(),
        segments.len()
    );
    Ok(())
}
