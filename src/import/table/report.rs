//! What `har data import table` made: recordings, subjects per split, rates, gaps, missing
//! values and label counts, so a user can check the mapping did what they meant.

use std::collections::BTreeMap;
use std::fmt;

/// A step between samples longer than this many periods counts as a gap.
pub const GAP_PERIODS: f64 = 1.5;

/// The summary of one table import.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableReport {
    /// Files read.
    pub files: usize,
    /// Recordings written.
    pub recordings: usize,
    /// Recordings left out for having fewer than two samples.
    pub skipped_short: Vec<String>,
    /// Subjects of the train split.
    pub train_subjects: Vec<String>,
    /// Subjects of the test split.
    pub test_subjects: Vec<String>,
    /// Samples per modality, all recordings.
    pub samples: usize,
    /// Duration of all recordings at the nominal rate, seconds.
    pub seconds: f64,
    /// The nominal sample rate written to the manifest.
    pub rate_hz: f64,
    /// Whether the mapping declared it (else it is the median of the recordings' rates).
    pub rate_declared: bool,
    /// Lowest and highest rate estimated per recording (median step).
    pub estimated_rate_range: (f64, f64),
    /// Steps longer than [`GAP_PERIODS`] periods.
    pub gaps: usize,
    /// Time lost in those gaps beyond one period each, seconds.
    pub gap_seconds: f64,
    /// Missing (NaN or empty) values per modality.
    pub missing_values: BTreeMap<String, usize>,
    /// Samples whose label is one of `label.unlabelled`.
    pub unlabelled_samples: usize,
    /// Per class: id, name, recordings holding it, labelled seconds.
    pub classes: Vec<(i32, String, usize, f64)>,
}

impl TableReport {
    /// Counts the gaps of one recording's times.
    pub(crate) fn note_gaps(&mut self, times_ns: &[i64], period_ns: f64) {
        for w in times_ns.windows(2) {
            let step = (w[1] - w[0]) as f64;
            if step > GAP_PERIODS * period_ns {
                self.gaps += 1;
                self.gap_seconds += (step - period_ns) / 1e9;
            }
        }
    }
}

impl fmt::Display for TableReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} recordings from {} files; subjects: {} train {:?}, {} test {:?}",
            self.recordings,
            self.files,
            self.train_subjects.len(),
            self.train_subjects,
            self.test_subjects.len(),
            self.test_subjects
        )?;
        if !self.skipped_short.is_empty() {
            writeln!(
                f,
                "skipped {} recordings with fewer than 2 samples: {:?}",
                self.skipped_short.len(),
                self.skipped_short
            )?;
        }
        writeln!(
            f,
            "samples: {} per modality, {:.1} min at {:.3} Hz ({}; recordings' own rates {:.3}–{:.3} Hz)",
            self.samples,
            self.seconds / 60.0,
            self.rate_hz,
            if self.rate_declared {
                "declared"
            } else {
                "median of the recordings"
            },
            self.estimated_rate_range.0,
            self.estimated_rate_range.1
        )?;
        writeln!(
            f,
            "gaps over {GAP_PERIODS} periods: {} ({:.2} s in all)",
            self.gaps, self.gap_seconds
        )?;
        let missing: Vec<String> = self
            .missing_values
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        writeln!(f, "missing values: {}", missing.join(", "))?;
        writeln!(f, "unlabelled samples: {}", self.unlabelled_samples)?;
        writeln!(f, "classes (id name: recordings, labelled seconds):")?;
        for (id, name, recordings, seconds) in &self.classes {
            writeln!(f, "  {id:>3} {name}: {recordings}, {seconds:.1} s")?;
        }
        Ok(())
    }
}
