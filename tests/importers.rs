//! Dataset importers on small files of exactly the real layouts, and their errors on bad input.

use std::path::Path;

use har_core::dataset::{Dataset, Split};
use har_core::import::basic_motions::parse_ts;
use har_core::import::bvh::parse_bvh;
use har_core::import::mat::{parse_mat, read_mat, write_mat, MatArray};
use har_core::import::{hapt, utd_mhad};
use har_core::recording::UNLABELLED;

const HAPT_HEADER: &str = "acc-x,acc-y,acc-z,gyro-x,gyro-y,gyro-z,sequence,label\n";

fn hapt_csv(labels: &[i32]) -> String {
    let mut text = HAPT_HEADER.to_string();
    for (i, l) in labels.iter().enumerate() {
        text += &format!(
            "{},0.1,-0.2,0.01,0.02,0.03,{i},{l}\n",
            1.0 + i as f64 * 1e-3
        );
    }
    text
}

#[test]
fn hapt_csvs_import_with_the_uci_split_and_label_intervals() {
    let src = tempfile::tempdir().unwrap();
    let labels: Vec<i32> = [vec![UNLABELLED; 3], vec![5; 4], vec![7; 2]].concat();
    std::fs::write(src.path().join("user02_rec01.csv"), hapt_csv(&labels)).unwrap();
    std::fs::write(src.path().join("user03_rec01.csv"), hapt_csv(&[1, 1])).unwrap();
    std::fs::write(src.path().join("notes.txt"), "ignored").unwrap();
    let out = tempfile::tempdir().unwrap();
    let dataset = hapt::import(src.path(), out.path(), None, &|_, _| {}).unwrap();
    let m = &dataset.manifest;
    assert_eq!(m.recordings.len(), 2);
    assert_eq!(
        m.recordings[0].split,
        Split::Test,
        "user 2 is a UCI test user"
    );
    assert_eq!(m.recordings[1].split, Split::Train);
    assert_eq!(m.class_name(7), "STAND_TO_SIT");
    let rec = Dataset::open(out.path())
        .unwrap()
        .read(&m.recordings[0])
        .unwrap();
    assert_eq!(
        rec.streams[0].timestamps_ns[4], 80_000_000,
        "50 Hz clock from the sequence column"
    );
    assert_eq!(rec.streams[0].sample(1), &[1.001, 0.1, -0.2]);
    assert_eq!(rec.streams[1].sample(0), &[0.01, 0.02, 0.03]);
    let ts = rec.streams[0].timestamps_ns.clone();
    assert_eq!(rec.labels_at(&ts), labels);
}

fn hapt_error(file: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    hapt::read_csv(&path).unwrap_err().to_string()
}

#[test]
fn bad_hapt_csvs_are_errors_naming_file_line_and_column() {
    let err = hapt_error("user01_rec01.csv", &hapt_csv(&[1, 13]));
    assert!(
        err.contains("user01_rec01.csv")
            && err.contains("line 3")
            && err.contains("unknown label 13"),
        "{err}"
    );
    let err = hapt_error(
        "user01_rec01.csv",
        &(HAPT_HEADER.to_string() + "1,2,x,4,5,6,0,1\n"),
    );
    assert!(
        err.contains("line 2, column `acc-z`") && err.contains("`x` is not a number"),
        "{err}"
    );
    let err = hapt_error("user01_rec01.csv", &(HAPT_HEADER.to_string() + "1,2,3\n"));
    assert!(err.contains("line 2") && err.contains("3 fields"), "{err}");
    let err = hapt_error("user01_rec01.csv", "acc-x,acc-y,label\n1,2,1\n");
    assert!(err.contains("missing column `acc-z`"), "{err}");
    let err = hapt_error(
        "user01_rec01.csv",
        &(HAPT_HEADER.to_string() + "1,2,3,4,5,6,5,1\n1,2,3,4,5,6,4,1\n"),
    );
    assert!(
        err.contains("sequence") && err.contains("not increasing"),
        "{err}"
    );
    for index in ["1e17", "-3", "2.5", "NaN"] {
        let err = hapt_error(
            "user01_rec01.csv",
            &(HAPT_HEADER.to_string() + &format!("1,2,3,4,5,6,0,1\n1,2,3,4,5,6,{index},1\n")),
        );
        assert!(
            err.contains("line 3, column `sequence`") && err.contains("sample index"),
            "{index}: {err}"
        );
    }
    let err = hapt_error("user01_rec01.csv", "");
    assert!(err.contains("empty file"), "{err}");
    let err = hapt_error("whatever.csv", HAPT_HEADER);
    assert!(err.contains("userUU_recRR.csv"), "{err}");
}

const TS: &str =
    "#comment\n@problemName Tiny\n@timeStamps false\n@univariate false\n@dimensions 2\n\
                  @classLabel true Walk Run\n@data\n1,2,3:4,5,?:Run\n0.5,0.5,0.5:1,1,1:Walk\n";

#[test]
fn ts_files_parse_with_missing_values() {
    let ts = parse_ts(Path::new("t.ts"), TS).unwrap();
    assert_eq!(ts.problem_name, "Tiny");
    assert_eq!(ts.class_names, vec!["Walk", "Run"]);
    assert_eq!(ts.cases.len(), 2);
    assert_eq!(ts.cases[0].label, 1);
    assert_eq!(ts.cases[0].dimensions[0], vec![1.0, 2.0, 3.0]);
    assert!(ts.cases[0].dimensions[1][2].is_nan());
}

#[test]
fn bad_ts_files_are_errors_naming_file_and_line() {
    let p = Path::new("BasicMotions_TRAIN.ts");
    let err = parse_ts(p, &TS.replace(":Walk", ":Swim"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("BasicMotions_TRAIN.ts") && err.contains("line 9") && err.contains("Swim"),
        "{err}"
    );
    let err = parse_ts(p, &TS.replace("1,2,3:4,5,?:Run", "1,2,3:Run"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 8") && err.contains("1 dimensions"),
        "{err}"
    );
    let err = parse_ts(p, &TS.replace("0.5,0.5,0.5:1,1,1", "0.5,0.5:1,1,1"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("differ in length"), "{err}");
    let err = parse_ts(p, &TS.replace("4,5,?", "4,five,6"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 8, dimension 1") && err.contains("`five`"),
        "{err}"
    );
    let err = parse_ts(p, &TS[..TS.find("@data").unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("@data"), "{err}");
}

#[test]
fn mat_files_round_trip_plain_and_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let var = MatArray {
        name: "d_iner".into(),
        dims: vec![4, 6],
        data: (0..24).map(|v| v as f64 * 0.25 - 1.0).collect(),
    };
    for compress in [false, true] {
        let path = dir.path().join(format!("x{compress}.mat"));
        write_mat(&path, std::slice::from_ref(&var), compress).unwrap();
        assert_eq!(read_mat(&path).unwrap(), vec![var.clone()]);
    }
    assert_eq!(var.at(&[1, 2]), var.data[1 + 4 * 2]);
}

#[test]
fn bad_mat_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a1_s1_t1_inertial.mat");
    let var = MatArray {
        name: "d_iner".into(),
        dims: vec![10, 6],
        data: vec![0.0; 60],
    };
    write_mat(&path, &[var], false).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let err = parse_mat(&path, &bytes[..bytes.len() - 100])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a1_s1_t1_inertial.mat") && err.contains("truncated"),
        "{err}"
    );
    let err = parse_mat(&path, &bytes[..50]).unwrap_err().to_string();
    assert!(err.contains("header"), "{err}");
    let mut bad = bytes.clone();
    bad[126..128].copy_from_slice(b"XX");
    assert!(parse_mat(&path, &bad)
        .unwrap_err()
        .to_string()
        .contains("endian"));
}

/// Writes one UTD-MHAD trial: `n` inertial samples and `frames` skeleton frames.
fn write_trial(dir: &Path, a: u32, s: u32, t: u32, n: usize, frames: usize) {
    let iner = MatArray {
        name: "d_iner".into(),
        dims: vec![n, 6],
        data: (0..n * 6)
            .map(|i| (i % n) as f64 * 0.01 + (i / n) as f64)
            .collect(),
    };
    write_mat(
        &dir.join(format!("a{a}_s{s}_t{t}_inertial.mat")),
        &[iner],
        true,
    )
    .unwrap();
    let skel = MatArray {
        name: "d_skel".into(),
        dims: vec![20, 3, frames],
        data: (0..20 * 3 * frames)
            .map(|i| (i % 60) as f64 * 0.05 + (i / 60) as f64 * 0.001)
            .collect(),
    };
    write_mat(
        &dir.join(format!("a{a}_s{s}_t{t}_skeleton.mat")),
        &[skel],
        false,
    )
    .unwrap();
}

#[test]
fn utd_mhad_folders_import_with_both_modalities_and_odd_even_split() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("Inertial")).unwrap();
    write_trial(src.path(), 1, 1, 1, 150, 90);
    write_trial(src.path(), 27, 2, 4, 100, 60);
    // An inertial file without its skeleton partner is skipped and reported.
    let lone = MatArray {
        name: "d_iner".into(),
        dims: vec![5, 6],
        data: vec![0.0; 30],
    };
    write_mat(
        &src.path().join("Inertial").join("a3_s5_t1_inertial.mat"),
        &[lone],
        true,
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (dataset, report) = utd_mhad::import(src.path(), out.path()).unwrap();
    assert_eq!(report.imported, 2);
    assert_eq!(report.unpaired.len(), 1);
    let m = &dataset.manifest;
    assert_eq!(m.recordings[0].split, Split::Train);
    assert_eq!(m.recordings[1].split, Split::Test);
    let rec = dataset.read(&m.recordings[0]).unwrap();
    assert_eq!(rec.labels[0].label, 1);
    let acc = rec.stream("acc").unwrap();
    let gyro = rec.stream("gyro").unwrap();
    let skel = rec.stream("skeleton").unwrap();
    assert_eq!((acc.len(), skel.len()), (150, 90));
    // d_iner column 4 (gyro y) of row 7 is 7 * 0.01 + 4.
    assert!((gyro.sample(7)[1] - 4.07).abs() < 1e-6);
    // d_skel(j=2, axis=1, t=3) = ((2 + 20*1) % 60) * 0.05 + 3 * 0.001.
    assert!((skel.sample(3)[2 * 3 + 1] - (22.0 * 0.05 + 0.003)).abs() < 1e-6);
    assert_eq!(skel.timestamps_ns[3], 100_000_000, "30 Hz skeleton clock");
}

#[test]
fn utd_mhad_files_with_wrong_shapes_or_variables_are_errors_naming_them() {
    let src = tempfile::tempdir().unwrap();
    write_trial(src.path(), 2, 1, 1, 50, 30);
    let wrong = MatArray {
        name: "d_skel".into(),
        dims: vec![25, 3, 4],
        data: vec![0.0; 300],
    };
    write_mat(&src.path().join("a2_s1_t1_skeleton.mat"), &[wrong], true).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = utd_mhad::import(src.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a2_s1_t1_skeleton.mat")
            && err.contains("d_skel")
            && err.contains("20 × 3 × T"),
        "{err}"
    );
    let other = MatArray {
        name: "other".into(),
        dims: vec![1, 1],
        data: vec![0.0],
    };
    write_mat(&src.path().join("a2_s1_t1_skeleton.mat"), &[other], true).unwrap();
    let err = utd_mhad::import(src.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("variable `d_skel`") && err.contains("not found"),
        "{err}"
    );
}

const BVH: &str = "HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation\n \
    JOINT Spine\n {\n  OFFSET 0 10 0\n  CHANNELS 3 Zrotation Yrotation Xrotation\n  JOINT Neck\n  {\n   OFFSET 0 5 0\n   \
    CHANNELS 3 Zrotation Yrotation Xrotation\n   End Site\n   {\n    OFFSET 0 1 0\n   }\n  }\n }\n}\nMOTION\nFrames: 2\n\
    Frame Time: 0.01\n1 2 3 0 0 0 0 0 0 0 0 0\n0 0 0 90 0 0 0 0 0 0 0 0\n";

#[test]
fn bvh_forward_kinematics_places_joints() {
    let bvh = parse_bvh(Path::new("t.bvh"), BVH).unwrap();
    assert_eq!(bvh.joints.len(), 3, "end sites are not joints");
    let close = |a: [f64; 3], b: [f64; 3]| a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-9);
    let p = bvh.joint_positions(0);
    assert!(
        close(p[0], [1.0, 2.0, 3.0])
            && close(p[1], [1.0, 12.0, 3.0])
            && close(p[2], [1.0, 17.0, 3.0])
    );
    // Root turned 90° about z: the +y offsets point along -x.
    let p = bvh.joint_positions(1);
    assert!(
        close(p[1], [-10.0, 0.0, 0.0]) && close(p[2], [-15.0, 0.0, 0.0]),
        "{p:?}"
    );
    let stream = bvh.to_stream("skeleton", "cm");
    assert_eq!(stream.info.sample_rate_hz, 100.0);
    assert_eq!(stream.info.channels(), 9);
    match &stream.info.kind {
        har_core::recording::ModalityKind::Skeleton(layout) => {
            assert_eq!((layout.centre_joint, layout.torso_top_joint), (0, 2));
            assert_eq!(layout.parents, vec![None, Some(0), Some(1)]);
        }
        other => panic!("not a skeleton: {other:?}"),
    }
}

#[test]
fn bad_bvh_files_are_errors_naming_file_and_line() {
    let p = Path::new("01_01.bvh");
    let err = parse_bvh(p, &BVH.replace("Frames: 2", "Frames: 3"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("01_01.bvh") && err.contains("truncated"),
        "{err}"
    );
    let err = parse_bvh(p, &BVH.replace("0 0 0 90 0 0 0 0 0 0 0 0", "0 0 0 90 0 0"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("6 values") && err.contains("12 channels"),
        "{err}"
    );
    let err = parse_bvh(p, &BVH.replace("Xrotation\n JOINT", "Wrotation\n JOINT"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 5") && err.contains("Wrotation"), "{err}");
    let err = parse_bvh(p, &BVH[..BVH.find("MOTION").unwrap()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("MOTION"), "{err}");
}
