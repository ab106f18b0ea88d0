//! Leave-subjects-out folds of the training subjects (`--val-fold K/N`): whole subjects on one
//! side, the folds a partition of the subjects, the same folds for every training seed.

use std::collections::BTreeSet;

use har_core::preprocess::WindowSet;
use har_model::data::{carve_validation, Holdout};

/// Two windows (no modalities) for each of `subjects` subjects.
fn windows(subjects: usize) -> WindowSet {
    let mut set = WindowSet::new(Vec::new(), 4);
    for s in 0..subjects {
        for w in 0..2 {
            set.labels.push(w);
            set.subjects.push(format!("{s:02}"));
            set.recordings.push(format!("r{s:02}"));
            set.start_ns.push(i64::from(w));
        }
    }
    set
}

fn subjects(set: &WindowSet) -> BTreeSet<String> {
    set.subjects.iter().cloned().collect()
}

#[test]
fn three_folds_partition_the_subjects_whatever_the_training_seed() {
    let all = windows(21);
    let mut held = Vec::new();
    for fold in 1..=3 {
        let holdout = Holdout::Fold { fold, folds: 3 };
        let (train, validation) = carve_validation(&all, holdout, 1).unwrap();
        let (train2, validation2) = carve_validation(&all, holdout, 99).unwrap();
        assert_eq!(
            subjects(&validation),
            subjects(&validation2),
            "seed moved fold {fold}"
        );
        assert_eq!(train.len(), train2.len());
        assert_eq!(subjects(&validation).len(), 7);
        assert!(subjects(&train).is_disjoint(&subjects(&validation)));
        assert_eq!(train.len() + validation.len(), all.len());
        held.push(subjects(&validation));
    }
    let union: BTreeSet<String> = held.iter().flatten().cloned().collect();
    assert_eq!(union, subjects(&all));
    assert!(held[0].is_disjoint(&held[1]) && held[1].is_disjoint(&held[2]));
}

#[test]
fn fractions_follow_the_seed_and_zero_holds_out_nothing() {
    let all = windows(10);
    let (_, a) = carve_validation(&all, Holdout::Fraction(0.2), 1).unwrap();
    assert_eq!(subjects(&a).len(), 2);
    let moved = (2..40).any(|seed| {
        let (_, b) = carve_validation(&all, Holdout::Fraction(0.2), seed).unwrap();
        subjects(&b) != subjects(&a)
    });
    assert!(
        moved,
        "the training seed never changed the held-out subjects"
    );
    let (train, none) = carve_validation(&all, Holdout::Fraction(0.0), 1).unwrap();
    assert_eq!((train.len(), none.len()), (20, 0));
}

#[test]
fn bad_folds_are_refused_with_the_reason() {
    for text in ["3", "0/3", "4/3", "1/1", "a/3", "1/b"] {
        let error = Holdout::parse_fold(text).unwrap_err();
        assert!(error.contains(text), "{text}: {error}");
    }
    assert_eq!(
        Holdout::parse_fold("2/3").unwrap(),
        Holdout::Fold { fold: 2, folds: 3 }
    );
    let error = carve_validation(&windows(2), Holdout::Fold { fold: 1, folds: 3 }, 1)
        .unwrap_err()
        .to_string();
    assert!(error.contains("only 2 subjects"), "{error}");
}
