//! The live line format under the mutation fuzzer (`har_core::fuzz::mutate`): no line —
//! invalid numbers, absurd timestamps, changing channel counts, thousands of devices — makes
//! the parser, the chunker or the streaming preprocessor panic; bad lines are errors.

use std::panic::{catch_unwind, AssertUnwindSafe};

use har_core::fuzz::mutate;
use har_core::rng::Rng;
use har_dataflow::live::{parse_line, LiveChunker};
use har_dataflow::windower::StreamingPreprocessor;

mod common;

fn preprocessor() -> StreamingPreprocessor {
    StreamingPreprocessor::new(common::spec(&[("acc", 3), ("gyro", 3)], 8, 4)).unwrap()
}

#[test]
fn no_mutated_live_line_crashes_the_live_path() {
    // Three devices, acc and gyro each, advancing 20 ms every six lines.
    let seed_line = |round: usize| {
        let t = (round / 6) as i64 * 20_000_000;
        let device = round % 3;
        match round % 6 < 3 {
            true => format!("d{device},s1,acc,{t},0.1,0.2,9.8"),
            false => format!("d{device},s1,gyro,{t},0.01,0.02,0.03"),
        }
    };
    let mut rng = Rng::new(42);
    let mut chunker = LiveChunker::with_max_streams(4, 50.0, 64);
    let mut pre = preprocessor();
    let (mut accepted, mut rejected, mut windows) = (0u64, 0u64, 0usize);
    for round in 0..20_000 {
        let seed = seed_line(round);
        // Half the lines pass unmutated so streams get long enough to window (a mutated
        // timestamp far ahead blocks its stream for good: later lines do not advance).
        let line = if rng.next_u64() % 2 == 0 {
            seed.clone().into_bytes()
        } else {
            mutate(&mut rng, seed.as_bytes())
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<usize, String> {
            let sample = parse_line(&text, round + 1).map_err(|e| e.to_string())?;
            let Some(sample) = sample else { return Ok(0) };
            let chunk = chunker.push(sample).map_err(|e| e.to_string())?;
            Ok(match chunk {
                Some(chunk) => pre.push(&chunk).map_err(|e| e.to_string())?.len(),
                None => 0,
            })
        }));
        match outcome {
            Ok(Ok(n)) => {
                accepted += 1;
                windows += n;
            }
            Ok(Err(_)) => rejected += 1,
            Err(_) => panic!("line {round} crashed the live path: {text:?}"),
        }
    }
    assert!(
        accepted > 1_000 && rejected > 1_000,
        "{accepted} accepted, {rejected} rejected"
    );
    assert!(windows > 0, "the fuzzed stream still produced windows");
}
