//! Few-shot enrolment's prediction-time arithmetic on SYNTHETIC embeddings (hand-built so
//! the expected answer is known; the evaluation on real data is `har fewshot eval`).

use har_runtime::fewshot::{
    aggregate, mean, ActivityGraph, Enrollment, GraphTransfer, Imprint, Method, Transfer,
};

const D: usize = 4;

fn unit(i: usize, scale: f32) -> Vec<f32> {
    let mut v = vec![0f32; D];
    v[i] = scale;
    v
}

/// A head whose class `c` is axis `c` (3 classes), and a transfer mapping a prototype to a
/// row by `4·p`.
fn setup() -> (Vec<Vec<f32>>, Vec<f32>, Transfer) {
    let weights = (0..3).map(|c| unit(c, 4.0)).collect();
    let transfer = Transfer {
        model_id: "test".into(),
        base_classes: vec!["A".into(), "B".into(), "C".into()],
        base_prototypes: (0..3).map(|c| unit(c, 1.0)).collect(),
        base_exemplars: (0..3).map(|c| unit(c, 1.0)).collect(),
        claim_budget: 0.0,
        imprint: Imprint {
            scale: 4.0,
            offset: vec![0.0; D],
        },
        margin: 1.0,
        query_temperature: 5.0,
        graph: GraphTransfer {
            edge_weight: 3.0,
            similarity_weight: 0.0,
            keep: vec![0.75; D],
        },
        provenance: serde_json::Value::Null,
    };
    (weights, vec![0.0; 3], transfer)
}

fn graph() -> ActivityGraph {
    serde_json::from_str(
        r#"{"attributes": ["kind"],
            "activities": [
              {"name": "A", "attributes": {"kind": "x"}},
              {"name": "B", "attributes": {"kind": "y"}},
              {"name": "C", "attributes": {"kind": "y"}},
              {"name": "NEW", "attributes": {"kind": "y"}}],
            "edges": [{"from": "NEW", "to": "B", "relation": "like"}]}"#,
    )
    .unwrap()
}

fn support() -> Vec<Vec<f32>> {
    vec![
        vec![0.1, 0.0, 0.0, 1.0],
        vec![0.0, 0.1, 0.0, 0.9],
        vec![0.0, 0.0, 0.1, 1.1],
    ]
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0
}

#[test]
fn aggregation_at_zero_temperature_is_the_mean_and_leans_to_the_nearest_support() {
    let s = support();
    let flat = aggregate(&[1.0, 0.0, 0.0, 1.0], &s, 0.0);
    for (a, b) in flat.iter().zip(mean(&s)) {
        assert!((a - b).abs() < 1e-6);
    }
    // A query like the first support example weighs it most.
    let sharp = aggregate(&[1.0, 0.0, 0.0, 1.0], &s, 50.0);
    assert!(sharp[0] > flat[0] && sharp[0] <= 0.1 + 1e-6, "{sharp:?}");
}

#[test]
fn an_enrolled_class_is_recognised_and_the_base_classes_keep_theirs() {
    let (w, b, transfer) = setup();
    let graph = graph();
    for method in Method::ALL {
        let class = transfer
            .enroll(4, "NEW", method, support(), (&w, &b), Some(&graph), vec![])
            .unwrap();
        let enrollment = Enrollment {
            model_id: "test".into(),
            classes: vec![class],
        };
        let logits = |q: &[f32]| {
            let mut l: Vec<f32> = w
                .iter()
                .zip(&b)
                .map(|(w, b)| har_runtime::fewshot::dot(w, q) + b)
                .collect();
            enrollment.extend_logits(q, &mut l);
            l
        };
        assert_eq!(argmax(&logits(&[0.05, 0.0, 0.05, 1.0])), 3, "{method:?}");
        for c in 0..3 {
            assert_eq!(argmax(&logits(&unit(c, 1.0))), c, "{method:?}");
        }
    }
}

#[test]
fn the_graph_mixes_the_prototype_row_with_the_linked_base_rows() {
    let (w, b, transfer) = setup();
    let graph = graph();
    let mean_row = transfer
        .enroll(4, "NEW", Method::Mean, support(), (&w, &b), None, vec![])
        .unwrap();
    let graph_row = transfer
        .enroll(
            4,
            "NEW",
            Method::Graph,
            support(),
            (&w, &b),
            Some(&graph),
            vec![],
        )
        .unwrap();
    // Attention: softmax(3·edge) over A, B, C = (1, e³, 1) / (2 + e³).
    let e3 = 3f32.exp();
    let att = [1.0 / (2.0 + e3), e3 / (2.0 + e3), 1.0 / (2.0 + e3)];
    for (d, (got, imprinted)) in graph_row.weight.iter().zip(&mean_row.weight).enumerate() {
        let message: f32 = att.iter().zip(&w).map(|(a, row)| a * row[d]).sum();
        let expected = 0.75 * imprinted + 0.25 * message;
        assert!((got - expected).abs() < 1e-5, "dim {d}");
    }
    // The graph methods need the graph and the class in it.
    assert!(transfer
        .enroll(4, "NEW", Method::Graph, support(), (&w, &b), None, vec![])
        .is_err());
    let err = transfer
        .enroll(
            4,
            "OTHER",
            Method::Graph,
            support(),
            (&w, &b),
            Some(&graph),
            vec![],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("OTHER") && err.contains("activity_graph.json"),
        "{err}"
    );
}

#[test]
fn graph_files_with_unknown_activities_are_refused() {
    let mut g = graph();
    g.edges[0].to = "NOBODY".into();
    let err = g.validate().unwrap_err();
    assert!(err.contains("NOBODY"), "{err}");
    let mut g = graph();
    g.activities[0].attributes.clear();
    assert!(g.validate().unwrap_err().contains("kind"));
}
