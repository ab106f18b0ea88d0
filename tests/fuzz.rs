//! Every file parser under a bounded mutation fuzzer (`har_core::fuzz`): no input may make
//! a parser panic or abort; broken files are errors. Saved crashing inputs under
//! `tests/fuzz-regressions/<target>/` are replayed. `har fuzz` runs the same targets longer.

use std::path::Path;

use har_core::fuzz::{self, FuzzReport, Target};

/// Mutated inputs per target and CI run (a few seconds in a debug build).
const ITERATIONS: u64 = 400;

fn regressions() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions")
}

fn assert_no_crash(target: Target, report: &FuzzReport) {
    let shown: Vec<String> = report
        .crashes
        .iter()
        .take(3)
        .map(|(input, message)| {
            format!(
                "{message}: {:?}",
                String::from_utf8_lossy(&input[..input.len().min(200)])
            )
        })
        .collect();
    assert!(
        report.crashes.is_empty(),
        "{}: {} of {} inputs crashed the parser, e.g. {shown:#?}",
        target.name(),
        report.crashes.len(),
        report.executions
    );
}

#[test]
fn the_seeds_are_valid_inputs() {
    for target in Target::ALL {
        let scratch = tempfile::tempdir().unwrap();
        for seed in fuzz::seeds(target, scratch.path()).unwrap() {
            fuzz::parse(target, &seed, scratch.path())
                .unwrap_or_else(|e| panic!("{}: the seed is rejected: {e}", target.name()));
        }
    }
}

#[test]
fn no_mutated_input_crashes_a_parser() {
    for target in Target::ALL {
        let scratch = tempfile::tempdir().unwrap();
        let report = fuzz::run(target, ITERATIONS, 0x5eed, scratch.path()).unwrap();
        assert_eq!(report.executions, ITERATIONS);
        assert!(
            report.rejected > ITERATIONS / 10,
            "{}: only {} of {ITERATIONS} mutations were rejected: the mutator is too gentle",
            target.name(),
            report.rejected
        );
        assert_no_crash(target, &report);
    }
}

#[test]
fn saved_crashing_inputs_are_rejected_cleanly() {
    for target in Target::ALL {
        let scratch = tempfile::tempdir().unwrap();
        fuzz::seeds(target, scratch.path()).unwrap();
        let mut report = FuzzReport::default();
        for path in fuzz::regression_inputs(&regressions(), target).unwrap() {
            let input = std::fs::read(&path).unwrap();
            fuzz::check(target, &input, scratch.path(), &mut report);
        }
        assert_no_crash(target, &report);
    }
}
