//! `har enroll` end to end on the shipped HAPT student (its fitted `fewshot.json` and
//! `activity_graph.json`) with examples from the shipped sample recording (real HAPT data,
//! subject 2): deterministic for a seed, refused when it cannot fit, and the enrolled class
//! evaluated by `har eval` through the runtime beside the base classes.

use std::path::Path;

mod common;
use common::flow::repo;
use common::{har, har_ok, shipped_student_copy};

fn enroll(model: &Path, extra: &[&str]) -> std::process::Output {
    let sample = repo().join("samples/hapt-user02");
    let mut args = vec![
        "enroll",
        "--model",
        model.to_str().unwrap(),
        "--examples",
        sample.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    har(&args)
}

#[test]
fn enrolment_is_deterministic_refuses_what_cannot_fit_and_evaluates_beside_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|n| shipped_student_copy(dir.path(), n));
    let new_class = ["--name", "STAND_TO_LIE", "--label", "11", "--shots", "2"];
    for (model, seed) in [(&a, "3"), (&b, "3"), (&c, "4")] {
        let mut args = new_class.to_vec();
        args.extend(["--seed", seed]);
        let out = enroll(model, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let read = |m: &Path| std::fs::read(m.join("enrolled.json")).unwrap();
    assert_eq!(read(&a), read(&b), "same seed, same enrolment");
    assert_ne!(read(&a), read(&c), "another seed draws other examples");
    let enrolled: serde_json::Value = serde_json::from_slice(&read(&a)).unwrap();
    let class = &enrolled["classes"][0];
    assert_eq!(class["id"], 11, "the examples' label id is kept");
    assert_eq!(class["method"], "query-aware");
    assert_eq!(class["support"].as_array().unwrap().len(), 2);

    // What cannot be enrolled is refused with the reason, and the file is left as it was.
    let refusals: [(&[&str], &str); 4] = [
        (&["--name", "WALKING", "--label", "11"], "already taken"),
        (
            &[
                "--name",
                "NOT_IN_THE_GRAPH",
                "--label",
                "7",
                "--method",
                "graph",
            ],
            "activity_graph.json",
        ),
        (
            &["--name", "SIT_TO_STAND", "--label", "8"],
            "0 windows of label 8",
        ),
        (
            &["--name", "STAND_TO_LIE", "--label", "11"],
            "already taken",
        ),
    ];
    for (args, reason) in refusals {
        let out = enroll(&a, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(reason),
            "{args:?}: {err}"
        );
    }
    assert_eq!(read(&a), read(&b));
    // Mean-prototype enrolment needs no graph entry.
    let out = enroll(
        &a,
        &[
            "--name",
            "MY_STRETCH",
            "--label",
            "7",
            "--shots",
            "1",
            "--method",
            "mean",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `har eval` scores the enrolled classes beside the base ones, on the runtime.
    let sample = repo().join("samples/hapt-user02");
    let out = har_ok(&[
        "eval",
        "--model",
        a.to_str().unwrap(),
        "--dataset",
        sample.to_str().unwrap(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("STAND_TO_LIE") && text.contains("MY_STRETCH"),
        "{text}"
    );
    // A broken enrolment file names itself.
    std::fs::write(a.join("enrolled.json"), b"{ not json").unwrap();
    let out = har(&[
        "eval",
        "--model",
        a.to_str().unwrap(),
        "--dataset",
        sample.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("enrolled.json"),
        "{err}"
    );
}
