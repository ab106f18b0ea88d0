//! The knowledge graph of activities (`activity_graph.json` in a model directory; seed S8):
//! every activity the deployment may meet — the trained ones and those that may be enrolled
//! later — with descriptive attributes and the edges a person would draw between them.
//!
//! ```json
//! { "attributes": ["posture", "motion", ...],
//!   "activities": [ { "name": "SIT_TO_STAND",
//!                     "attributes": { "posture": "sit>stand", "motion": "transition", ... } } ],
//!   "edges": [ { "from": "SIT_TO_STAND", "to": "SITTING", "relation": "starts_in" } ] }
//! ```
//!
//! Edges are undirected for transfer. Two activities are related by their edges and by the
//! share of attribute values they have in common; how much each counts is fitted on the base
//! classes (`har fewshot fit`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// One activity and its attributes (`key → value`; keys from [`ActivityGraph::attributes`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// The activity's name as classes are named (`SIT_TO_STAND`).
    pub name: String,
    /// Attribute values by attribute name.
    pub attributes: BTreeMap<String, String>,
}

/// An edge between two activities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// One end (an activity name).
    pub from: String,
    /// The other end.
    pub to: String,
    /// Why they are related (documentation; every edge counts alike).
    pub relation: String,
}

/// The graph as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityGraph {
    /// What the graph covers (free text).
    #[serde(default)]
    pub description: String,
    /// The attribute names every activity describes.
    pub attributes: Vec<String>,
    /// The activities.
    pub activities: Vec<Activity>,
    /// Edges between activities.
    pub edges: Vec<Edge>,
}

impl ActivityGraph {
    /// Reads and checks a graph file: unique names, every attribute given, edges between
    /// known activities.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::file(path, e))?;
        let graph: Self = serde_json::from_str(&text).map_err(|e| RuntimeError::file(path, e))?;
        graph.validate().map_err(|e| RuntimeError::file(path, e))?;
        Ok(graph)
    }

    /// The checks [`ActivityGraph::load`] makes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.activities {
            if !seen.insert(a.name.as_str()) {
                return Err(format!("activity `{}` is listed twice", a.name));
            }
            for key in &self.attributes {
                if !a.attributes.contains_key(key) {
                    return Err(format!("activity `{}` has no attribute `{key}`", a.name));
                }
            }
            if let Some(key) = a.attributes.keys().find(|k| !self.attributes.contains(k)) {
                return Err(format!(
                    "activity `{}`: attribute `{key}` is not one of {:?}",
                    a.name, self.attributes
                ));
            }
        }
        for e in &self.edges {
            for end in [&e.from, &e.to] {
                if !seen.contains(end.as_str()) {
                    return Err(format!(
                        "edge {} — {} ({}): `{end}` is not an activity of the graph",
                        e.from, e.to, e.relation
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the graph has an activity of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.activities.iter().any(|a| a.name == name)
    }

    /// Whether an edge joins `a` and `b` (either direction).
    pub fn linked(&self, a: &str, b: &str) -> bool {
        self.edges
            .iter()
            .any(|e| (e.from == a && e.to == b) || (e.from == b && e.to == a))
    }

    /// The share of attributes on which `a` and `b` agree (0 to 1; 0 when either is unknown).
    pub fn similarity(&self, a: &str, b: &str) -> f32 {
        let find = |n: &str| self.activities.iter().find(|x| x.name == n);
        let (Some(a), Some(b)) = (find(a), find(b)) else {
            return 0.0;
        };
        if self.attributes.is_empty() {
            return 0.0;
        }
        let same = self
            .attributes
            .iter()
            .filter(|k| a.attributes.get(*k) == b.attributes.get(*k))
            .count();
        same as f32 / self.attributes.len() as f32
    }

    /// The relation features of `target` to each of `senders`: (edge 0/1, attribute
    /// similarity) — what the fitted transfer weighs.
    pub fn relations(&self, target: &str, senders: &[String]) -> Vec<[f32; 2]> {
        senders
            .iter()
            .map(|s| {
                [
                    f32::from(u8::from(self.linked(target, s))),
                    self.similarity(target, s),
                ]
            })
            .collect()
    }
}
