//! A class enrolled while the dataflow runs is predicted without a restart: `dora run` on the
//! shipped HAPT recording at 10× real time with a copy of the student, `har enroll` run
//! against that copy once predictions flow, and the logs read back. Needs the dora CLI and
//! the node binaries, as `tests/dataflow.rs`.

use std::path::Path;

mod common;
use common::flow::{repo, wait_for_predictions, Flow, DORA};
use common::{har_ok, shipped_student_copy};

#[test]
fn a_class_enrolled_while_running_is_predicted_without_a_restart() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let models = tempfile::tempdir().unwrap();
    let model = shipped_student_copy(models.path(), "student");
    let model_path = model.to_str().unwrap();
    let flow = Flow::new(&[
        ("HAR_MODEL", model_path),
        ("HAR_SPEED", "10"),
        ("HAR_FLUSH_MS", "100"),
        ("HAR_DEADLINE_MS", "60000"),
    ]);
    let mut child = flow.spawn("120s");
    wait_for_predictions(&flow);
    let sample = repo().join("samples/hapt-user02");
    har_ok(&[
        "enroll",
        "--model",
        model_path,
        "--name",
        "STAND_TO_LIE",
        "--examples",
        sample.to_str().unwrap(),
        "--label",
        "11",
        "--shots",
        "4",
    ]);
    let status = child.wait().unwrap();
    assert!(status.success(), "the run finishes");

    let by_model = flow.sql(
        "SELECT model_id, count(*) AS n, \
         sum(CASE WHEN predicted_name = 'STAND_TO_LIE' THEN 1 ELSE 0 END) AS new_class, \
         min(array_length(probabilities)) AS min_classes, \
         max(array_length(probabilities)) AS max_classes \
         FROM predictions GROUP BY model_id ORDER BY min(end_ns)",
    );
    assert_eq!(
        by_model.len(),
        2,
        "before and after the enrolment: {by_model:?}"
    );
    let (before, after) = (&by_model[0], &by_model[1]);
    let base_id = before["model_id"].as_str().unwrap();
    assert!(
        after["model_id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base_id}+enrolled@")),
        "{by_model:?}"
    );
    assert_eq!(before["new_class"].as_u64(), Some(0));
    assert_eq!(
        (
            before["min_classes"].as_u64(),
            before["max_classes"].as_u64()
        ),
        (Some(6), Some(6))
    );
    assert_eq!(
        (after["min_classes"].as_u64(), after["max_classes"].as_u64()),
        (Some(7), Some(7))
    );
    assert!(
        after["new_class"].as_u64().unwrap() > 0,
        "the enrolled class is predicted: {by_model:?}"
    );
    // The log keeps the enrolled class's label id beside its name.
    let labels = flow.sql(
        "SELECT DISTINCT predicted_label FROM predictions WHERE predicted_name = 'STAND_TO_LIE'",
    );
    assert_eq!(labels.len(), 1);
    assert_eq!(labels[0]["predicted_label"].as_i64(), Some(11));
    assert!(Path::new(&model.join("enrolled.json")).exists());
}
