//! `har logs compact` on SYNTHETIC log tables (`har logs synth`): the README's queries give
//! the same answers before and after, the compacted layout (`run_id=…/day=…/compact-N`) is
//! read by pyarrow, pandas and DuckDB exactly as docs/dataflow.md shows, and compacting
//! again is a no-op. Needs python3 with pyarrow, pandas and duckdb (scripts/test.sh).

mod common;
use common::{har_ok, run_docs_snippet};

/// The README's queries, as JSON text.
const QUERIES: [&str; 4] = [
    "SELECT predicted_name, count(*) AS windows FROM predictions GROUP BY 1 ORDER BY 2 DESC, 1",
    "SELECT count(*) AS n, min(e2e_latency_us) AS lo, max(e2e_latency_us) AS hi, sum(CAST(round(e2e_latency_us * 1000) AS BIGINT)) AS total_ns FROM predictions",
    "SELECT subject_id, count(*) AS windows, avg(CASE WHEN predicted_label = true_label THEN 1.0 ELSE 0.0 END) AS accuracy FROM predictions WHERE true_label BETWEEN 1 AND 6 GROUP BY 1 ORDER BY 1",
    "SELECT run_id, node, max(received) AS received, max(sent) AS sent, max(dropped) AS dropped, max(degraded) AS degraded FROM node_health GROUP BY 1, 2 ORDER BY 1, 2",
];

fn answers(logs: &str) -> Vec<String> {
    QUERIES
        .iter()
        .map(|q| {
            let out = har_ok(&["sql", "--log-dir", logs, "--format", "json", q]);
            String::from_utf8(out.stdout).unwrap()
        })
        .collect()
}

fn parquet_count(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += parquet_count(&p);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            n += 1;
        }
    }
    n
}

#[test]
fn compaction_keeps_every_answer_and_other_readers_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let logs_s = logs.to_str().unwrap();
    har_ok(&[
        "logs",
        "synth",
        "--log-dir",
        logs_s,
        "--rows",
        "30000",
        "--files",
        "150",
        "--runs",
        "2",
        "--devices",
        "16",
    ]);
    assert_eq!(parquet_count(&logs.join("predictions")), 300);
    let before = answers(logs_s);
    let snippets_before: Vec<String> = ["pyarrow", "pandas", "duckdb"]
        .iter()
        .map(|r| run_docs_snippet(r, &logs))
        .collect();

    let out = har_ok(&["logs", "compact", "--log-dir", logs_s, "--min-age-s", "0"]);
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("compacted 4 run tables"), "{said}");
    assert!(parquet_count(&logs.join("predictions")) <= 4);
    assert_eq!(answers(logs_s), before, "the same answers after compaction");
    for (reader, expected) in ["pyarrow", "pandas", "duckdb"].iter().zip(&snippets_before) {
        assert_eq!(
            &run_docs_snippet(reader, &logs),
            expected,
            "{reader} on the compacted layout"
        );
    }
    let again = har_ok(&["logs", "compact", "--log-dir", logs_s, "--min-age-s", "0"]);
    assert!(String::from_utf8(again.stdout)
        .unwrap()
        .contains("compacted 0 run tables"));
}
