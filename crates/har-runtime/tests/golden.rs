//! The shipped HAPT models predict exactly what they predicted before the runtime existed:
//! every window of the shipped recording (test subject 2) gives the same class probabilities,
//! bit for bit, as the plain-Rust forward of the previous release (recorded in `golden/`).

use std::path::Path;

use har_core::dataset::{Dataset, Split};
use har_core::preprocess::dataset_windows;
use har_runtime::model_dir;

fn check(model: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut loaded = model_dir::load(&root.join("models").join(model)).unwrap();
    let dataset = Dataset::open(&root.join("samples/hapt-user02")).unwrap();
    let (mut windows, _) = dataset_windows(&dataset, Split::Test, &loaded.card.preprocess).unwrap();
    let labels = windows.labels.clone();
    let ids: Vec<i32> = loaded.card.classes.iter().map(|c| c.id).collect();
    windows.retain(|i| ids.contains(&labels[i]));
    loaded.normalizer.apply(&mut windows).unwrap();
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{model}.csv")),
    )
    .unwrap();
    let rows: Vec<(i64, Vec<u32>)> = golden
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (start, bits) = l.split_once(',').unwrap();
            let bits = bits
                .split(' ')
                .map(|b| u32::from_str_radix(b, 16).unwrap())
                .collect();
            (start.parse().unwrap(), bits)
        })
        .collect();
    assert_eq!(rows.len(), windows.len(), "{model}: window count");
    assert!(rows.len() > 100, "{model}: only {} windows", rows.len());
    for (i, (start, bits)) in rows.iter().enumerate() {
        assert_eq!(windows.start_ns[i], *start, "{model}: window {i} start");
        let inputs: Vec<&[f32]> = windows
            .values
            .iter()
            .zip(&windows.modalities)
            .map(|(v, m)| {
                let size = windows.length * m.channels();
                &v[i * size..(i + 1) * size]
            })
            .collect();
        let p = loaded.model.predict(&inputs).unwrap();
        let got: Vec<u32> = p.iter().map(|v| v.to_bits()).collect();
        assert_eq!(&got, bits, "{model}: window {i} (start {start}): {p:?}");
    }
}

#[test]
fn the_shipped_student_predicts_exactly_as_before() {
    check("hapt-student");
}

#[test]
fn the_shipped_teacher_predicts_exactly_as_before() {
    check("hapt-teacher");
}
