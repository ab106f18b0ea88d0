//! The confusion-matrix PNG of `har eval`.

use std::path::Path;

use anyhow::{anyhow, Result};
use har_model::metrics::Metrics;
use plotters::prelude::*;

/// Draws row-normalised confusion cells with counts, true classes down (numbered and named),
/// predictions across (numbered).
pub fn confusion_png(path: &Path, metrics: &Metrics, title: &str) -> Result<()> {
    let k = metrics.confusion.len();
    let cell = 56u32;
    let margin_left = 190u32;
    let margin_top = 60u32;
    let size = (
        margin_left + cell * k as u32 + 20,
        margin_top + cell * k as u32 + 150,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let text = |s: &str, x: i32, y: i32, size: u32| -> Result<()> {
        root.draw(&Text::new(
            s.to_string(),
            (x, y),
            ("sans-serif", size).into_font(),
        ))
        .map_err(|e| anyhow!("{e}"))
    };
    text(title, 10, 10, 18)?;
    text("rows: true class   columns: predicted class", 10, 34, 14)?;
    for t in 0..k {
        let support: usize = metrics.confusion[t].iter().sum::<usize>().max(1);
        let name = &metrics.per_class[t].name;
        text(
            &format!("{t} {}", name.chars().take(20).collect::<String>()),
            8,
            (margin_top + cell * t as u32 + cell / 2 - 7) as i32,
            13,
        )?;
        for p in 0..k {
            let count = metrics.confusion[t][p];
            let share = count as f64 / support as f64;
            let shade = (255.0 * (1.0 - share)) as u8;
            let (x0, y0) = (
                (margin_left + cell * p as u32) as i32,
                (margin_top + cell * t as u32) as i32,
            );
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell as i32 - 2, y0 + cell as i32 - 2)],
                RGBColor(shade, shade, 255).filled(),
            ))
            .map_err(|e| anyhow!("{e}"))?;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell as i32 - 2, y0 + cell as i32 - 2)],
                RGBColor(200, 200, 220),
            ))
            .map_err(|e| anyhow!("{e}"))?;
            let colour = if share > 0.5 { WHITE } else { BLACK };
            root.draw(&Text::new(
                count.to_string(),
                (x0 + 8, y0 + cell as i32 / 2 - 8),
                ("sans-serif", 14).into_font().color(&colour),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        }
        let label_y = (margin_top + cell * k as u32 + 8) as i32;
        text(
            &t.to_string(),
            (margin_left + cell * t as u32 + 4) as i32,
            label_y,
            12,
        )?;
    }
    let footer_y = (margin_top + cell * k as u32 + 40) as i32;
    text(
        &format!(
            "accuracy {:.4}   macro-F1 {:.4}",
            metrics.accuracy, metrics.macro_f1
        ),
        10,
        footer_y,
        16,
    )?;
    root.present()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(())
}
