//! From labels over time to activity segments — "walked 09:02–09:17, sat 09:17–10:40" — and
//! the action-segmentation metrics that score them (issue 19).
//!
//! **Input**: labelled spans in time order (a window's central hop, or one time step), each
//! with a label and a confidence.
//!
//! **The rule** (what [`Segmenter`] does, online, one span at a time):
//! 1. consecutive spans of one label form a *run*; a gap longer than `max_gap_ns` between
//!    spans ends everything open (no segment bridges a gap);
//! 2. a run becomes a segment once it lasts at least `min_duration_ns`; a run that ends
//!    shorter is *absorbed* by the segment before it (its time joins that segment: a blip
//!    does not split an activity), or, at the start of a stream, by the run after it;
//! 3. after an absorbed blip the segment before it simply continues when its label comes back.
//!
//! A segment is emitted when the next segment is confirmed (so the emission latency is at
//! most `min_duration_ns` after its end) or at a gap / the end of the stream.
//! [`segments`] runs the same segmenter over a whole sequence: online and offline agree by
//! construction, and a test holds them to it.

use std::collections::BTreeMap;

/// A label over a half-open time span `[start_ns, end_ns)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// Start (inclusive).
    pub start_ns: i64,
    /// End (exclusive).
    pub end_ns: i64,
    /// Activity label.
    pub label: i32,
    /// The label's probability.
    pub confidence: f32,
}

/// An activity segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Start (inclusive).
    pub start_ns: i64,
    /// End (exclusive).
    pub end_ns: i64,
    /// Activity label.
    pub label: i32,
    /// Duration-weighted mean confidence of the spans of its own label.
    pub confidence: f32,
    /// Spans that fell into it (absorbed ones included).
    pub spans: usize,
}

impl Segment {
    /// Duration in nanoseconds.
    pub fn duration_ns(&self) -> i64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// The segmentation rule's two settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentRule {
    /// Shortest run that becomes a segment of its own.
    pub min_duration_ns: i64,
    /// Longest gap between spans that a segment bridges.
    pub max_gap_ns: i64,
}

/// A run being built: its extent and the confidence mass of its own label.
#[derive(Debug, Clone, Copy)]
struct Run {
    start_ns: i64,
    end_ns: i64,
    label: i32,
    /// Σ confidence × duration over the spans of `label`, and Σ duration.
    weighted: f64,
    weight: f64,
    spans: usize,
}

impl Run {
    fn new(span: &Span) -> Self {
        let d = span.end_ns.saturating_sub(span.start_ns).max(0) as f64;
        Self {
            start_ns: span.start_ns,
            end_ns: span.end_ns,
            label: span.label,
            weighted: f64::from(span.confidence) * d,
            weight: d,
            spans: 1,
        }
    }

    /// Takes in a run of another label that ended too short.
    fn absorb(&mut self, other: &Run) {
        self.end_ns = self.end_ns.max(other.end_ns);
        self.spans += other.spans;
    }

    fn add(&mut self, span: &Span) {
        self.end_ns = self.end_ns.max(span.end_ns);
        self.spans += 1;
        if span.label == self.label {
            let d = span.end_ns.saturating_sub(span.start_ns).max(0) as f64;
            self.weighted += f64::from(span.confidence) * d;
            self.weight += d;
        }
    }

    fn duration(&self) -> i64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    fn segment(&self) -> Segment {
        Segment {
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            label: self.label,
            confidence: if self.weight > 0.0 {
                (self.weighted / self.weight) as f32
            } else {
                0.0
            },
            spans: self.spans,
        }
    }
}

/// The online segmenter: spans in, closed segments out.
#[derive(Debug, Clone)]
pub struct Segmenter {
    rule: SegmentRule,
    /// The confirmed segment still growing.
    open: Option<Run>,
    /// A run of another label not yet long enough to be confirmed.
    pending: Option<Run>,
    last_end: Option<i64>,
}

impl Segmenter {
    /// A segmenter with `rule`.
    pub fn new(rule: SegmentRule) -> Self {
        Self {
            rule,
            open: None,
            pending: None,
            last_end: None,
        }
    }

    /// Takes the next span (spans must come in time order; one that starts before the last
    /// one ended is taken as continuing from there); returns the segments it closed.
    pub fn push(&mut self, span: Span) -> Vec<Segment> {
        let mut closed = Vec::new();
        if let Some(end) = self.last_end {
            if span.start_ns.saturating_sub(end) > self.rule.max_gap_ns {
                closed.extend(self.finish());
            }
        }
        self.last_end = Some(self.last_end.map_or(span.end_ns, |e| e.max(span.end_ns)));
        match (&mut self.open, &mut self.pending) {
            (_, Some(p)) if p.label == span.label => p.add(&span),
            (Some(o), pending) if o.label == span.label => {
                // A blip of another label ended short: the segment absorbs it and goes on.
                if let Some(p) = pending.take() {
                    o.absorb(&p);
                }
                o.add(&span);
            }
            (open, pending) => {
                let mut run = Run::new(&span);
                if let Some(p) = pending.take() {
                    match open {
                        Some(o) => o.absorb(&p),
                        // At the start of a stream a short run joins the run after it.
                        None => {
                            run.start_ns = p.start_ns;
                            run.spans += p.spans;
                        }
                    }
                }
                *pending = Some(run);
            }
        }
        if let Some(p) = self.pending {
            if p.duration() >= self.rule.min_duration_ns {
                if let Some(o) = self.open.take() {
                    let mut segment = o.segment();
                    segment.end_ns = segment.end_ns.min(p.start_ns).max(segment.start_ns);
                    closed.push(segment);
                }
                self.open = Some(p);
                self.pending = None;
            }
        }
        closed
    }

    /// Closes what is open (the end of the stream, or a gap).
    pub fn finish(&mut self) -> Option<Segment> {
        let pending = self.pending.take();
        let open = match (self.open.take(), pending) {
            (Some(mut o), Some(p)) => {
                o.absorb(&p);
                Some(o)
            }
            (o, p) => o.or(p),
        };
        self.last_end = None;
        open.map(|r| r.segment())
    }
}

/// The segments of a whole sequence of spans (the online segmenter run to its end).
pub fn segments(spans: &[Span], rule: SegmentRule) -> Vec<Segment> {
    let mut s = Segmenter::new(rule);
    let mut out: Vec<Segment> = spans.iter().flat_map(|span| s.push(*span)).collect();
    out.extend(s.finish());
    out
}

/// The most frequent label of `window`; a tie keeps `centre` when it is among the most
/// frequent, else the smallest label id.
pub fn majority(window: &[i32], centre: i32) -> i32 {
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for &l in window {
        *counts.entry(l).or_default() += 1;
    }
    let best = counts.values().copied().max().unwrap_or(0);
    if counts.get(&centre) == Some(&best) {
        centre
    } else {
        counts
            .iter()
            .find(|(_, &c)| c == best)
            .map_or(centre, |(&l, _)| l)
    }
}

/// Majority smoothing of a label sequence over a centred window of `k` labels (`k / 2` on
/// each side, cut at the ends; ties as [`majority`]).
pub fn majority_smooth(labels: &[i32], k: usize) -> Vec<i32> {
    let half = k / 2;
    (0..labels.len())
        .map(|i| {
            let window = &labels[i.saturating_sub(half)..(i + half + 1).min(labels.len())];
            majority(window, labels[i])
        })
        .collect()
}

/// [`majority_smooth`] online: items in, items with their smoothed label out, `k / 2` items
/// late; [`OnlineMajority::finish`] releases the rest. The output equals the offline one.
#[derive(Debug, Clone)]
pub struct OnlineMajority<T> {
    half: usize,
    /// The last labels seen (at most `2·half + 1`) and the items not yet released.
    labels: std::collections::VecDeque<i32>,
    items: std::collections::VecDeque<(T, i32)>,
    /// Index (in `labels`) of the next item to release.
    next: usize,
}

impl<T> OnlineMajority<T> {
    /// Smoothing over `k` labels.
    pub fn new(k: usize) -> Self {
        Self {
            half: k / 2,
            labels: Default::default(),
            items: Default::default(),
            next: 0,
        }
    }

    /// Takes the next item and its label; returns the items now released.
    pub fn push(&mut self, item: T, label: i32) -> Vec<(T, i32)> {
        self.labels.push_back(label);
        self.items.push_back((item, label));
        let mut out = Vec::new();
        // The item `half` behind the newest has its whole window.
        while self.next + self.half < self.labels.len() {
            out.push(self.release(self.labels.len()));
        }
        out
    }

    /// Releases every item still held (their windows cut at the end).
    pub fn finish(&mut self) -> Vec<(T, i32)> {
        let mut out = Vec::new();
        while !self.items.is_empty() {
            out.push(self.release(self.labels.len()));
        }
        self.labels.clear();
        self.next = 0;
        out
    }

    fn release(&mut self, end: usize) -> (T, i32) {
        let i = self.next;
        let window: Vec<i32> = self
            .labels
            .range(i.saturating_sub(self.half)..(i + self.half + 1).min(end))
            .copied()
            .collect();
        let (item, label) = self.items.pop_front().expect("an item per label");
        let smoothed = majority(&window, label);
        self.next += 1;
        // Keep only the labels a later window can still reach.
        while self.next > self.half && self.labels.len() > 2 * self.half + 1 {
            self.labels.pop_front();
            self.next -= 1;
        }
        (item, smoothed)
    }
}

/// Segments of a per-time-step label sequence on a regular grid (`UNLABELLED` steps make
/// gaps): runs of equal labels, no rule applied — how ground truth is turned into segments.
pub fn label_runs(labels: &[i32], timestamps_ns: &[i64], period_ns: i64) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for (i, (&l, &t)) in labels.iter().zip(timestamps_ns).enumerate() {
        if l == crate::recording::UNLABELLED {
            continue;
        }
        match out.last_mut() {
            Some(s) if s.label == l && i > 0 && labels[i - 1] == l => {
                s.end_ns = t + period_ns;
                s.spans += 1;
            }
            _ => out.push(Segment {
                start_ns: t,
                end_ns: t + period_ns,
                label: l,
                confidence: 1.0,
                spans: 1,
            }),
        }
    }
    out
}

/// `predicted` cut to the time covered by `regions` (e.g. the annotated stretches of a
/// recording: a segment running across an unannotated gap becomes one piece per side, and
/// what lies in the gap is dropped) — scoring only where there is a truth to score against.
pub fn restrict_to(predicted: &[Segment], regions: &[(i64, i64)]) -> Vec<Segment> {
    let mut out = Vec::new();
    for p in predicted {
        for &(a, b) in regions {
            let (start, end) = (p.start_ns.max(a), p.end_ns.min(b));
            if start < end {
                out.push(Segment {
                    start_ns: start,
                    end_ns: end,
                    ..*p
                });
            }
        }
    }
    out
}

/// The annotated stretches of a per-step label sequence: maximal runs of labelled steps
/// (any label), as `[start, end)` times.
pub fn labelled_regions(labels: &[i32], timestamps_ns: &[i64], period_ns: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (i, (&l, &t)) in labels.iter().zip(timestamps_ns).enumerate() {
        if l == crate::recording::UNLABELLED {
            continue;
        }
        match out.last_mut() {
            Some(r) if i > 0 && labels[i - 1] != crate::recording::UNLABELLED => {
                r.1 = t + period_ns
            }
            _ => out.push((t, t + period_ns)),
        }
    }
    out
}

/// Segmental edit score (Lea et al.): 100 × (1 − Levenshtein distance between the predicted
/// and true segment label sequences / the longer one's length).
pub fn edit_score(predicted: &[Segment], truth: &[Segment]) -> f64 {
    let (p, t): (Vec<i32>, Vec<i32>) = (
        predicted.iter().map(|s| s.label).collect(),
        truth.iter().map(|s| s.label).collect(),
    );
    let longest = p.len().max(t.len());
    if longest == 0 {
        return 100.0;
    }
    let mut row: Vec<usize> = (0..=t.len()).collect();
    for (i, a) in p.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, b) in t.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(prev + usize::from(a != b));
            prev = here;
        }
    }
    100.0 * (1.0 - row[t.len()] as f64 / longest as f64)
}

/// Overlap F1 at IoU threshold `k` (Lea et al.): a predicted segment is a true positive when
/// its IoU with the best-overlapping unmatched true segment of its label reaches `k`.
pub fn f1_at(predicted: &[Segment], truth: &[Segment], k: f64) -> f64 {
    let iou = |a: &Segment, b: &Segment| {
        // In f64: times from outside may sit anywhere on the clock.
        let inter = (a.end_ns.min(b.end_ns) as f64 - a.start_ns.max(b.start_ns) as f64).max(0.0);
        let union = a.end_ns.max(b.end_ns) as f64 - a.start_ns.min(b.start_ns) as f64;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    };
    let mut used = vec![false; truth.len()];
    let mut tp = 0usize;
    for p in predicted {
        let best = truth
            .iter()
            .enumerate()
            .filter(|(j, t)| !used[*j] && t.label == p.label)
            .map(|(j, t)| (j, iou(p, t)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((j, v)) = best {
            if v >= k {
                used[j] = true;
                tp += 1;
            }
        }
    }
    let (fp, fn_) = (predicted.len() - tp, truth.len() - tp);
    if tp == 0 {
        return 0.0;
    }
    let (precision, recall) = (tp as f64 / (tp + fp) as f64, tp as f64 / (tp + fn_) as f64);
    100.0 * 2.0 * precision * recall / (precision + recall)
}

/// For each true segment whose label is in `labels`: the mean of its start and end errors
/// (seconds) against the predicted segment of the same label that overlaps it most, or
/// `None` when no predicted segment of its label overlaps it (missed).
pub fn boundary_errors(
    predicted: &[Segment],
    truth: &[Segment],
    labels: &[i32],
) -> Vec<Option<f64>> {
    truth
        .iter()
        .filter(|t| labels.contains(&t.label))
        .map(|t| {
            predicted
                .iter()
                .filter(|p| p.label == t.label)
                .map(|p| {
                    let overlap = p.end_ns.min(t.end_ns) as f64 - p.start_ns.max(t.start_ns) as f64;
                    (p, overlap)
                })
                .filter(|(_, overlap)| *overlap > 0.0)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(p, _)| {
                    ((p.start_ns as f64 - t.start_ns as f64).abs()
                        + (p.end_ns as f64 - t.end_ns as f64).abs())
                        / 2e9
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn spans(labels: &[i32]) -> Vec<Span> {
        labels
            .iter()
            .enumerate()
            .map(|(i, &label)| Span {
                start_ns: i as i64 * S,
                end_ns: (i as i64 + 1) * S,
                label,
                confidence: 0.5 + 0.1 * (label as f32),
            })
            .collect()
    }

    fn rule(min_s: i64) -> SegmentRule {
        SegmentRule {
            min_duration_ns: min_s * S,
            max_gap_ns: S / 2,
        }
    }

    fn summary(s: &[Segment]) -> Vec<(i64, i64, i32)> {
        s.iter()
            .map(|s| (s.start_ns / S, s.end_ns / S, s.label))
            .collect()
    }

    #[test]
    fn short_blips_are_absorbed_and_runs_become_segments() {
        // 1 1 1 2 1 1 3 3 3 3 : the single 2 is a blip inside the 1s.
        let got = segments(&spans(&[1, 1, 1, 2, 1, 1, 3, 3, 3, 3]), rule(2));
        assert_eq!(summary(&got), [(0, 6, 1), (6, 10, 3)]);
        // Without a minimum every run is a segment.
        let got = segments(&spans(&[1, 1, 2, 1]), rule(0));
        assert_eq!(summary(&got), [(0, 2, 1), (2, 3, 2), (3, 4, 1)]);
        // A short run at the start joins the run after it; at the end, the one before.
        let got = segments(&spans(&[2, 1, 1, 1, 4]), rule(2));
        assert_eq!(summary(&got), [(0, 5, 1)]);
        // Confidence: the mean over the segment's own label only.
        let got = segments(&spans(&[1, 1, 2, 1]), rule(2));
        assert!((got[0].confidence - 0.6).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn a_gap_ends_every_segment_and_online_equals_offline() {
        let mut input = spans(&[1, 1, 1, 2, 2, 2]);
        for s in &mut input[3..] {
            s.start_ns += 10 * S;
            s.end_ns += 10 * S;
        }
        let offline = segments(&input, rule(2));
        assert_eq!(summary(&offline), [(0, 3, 1), (13, 16, 2)]);
        // Online, segments come out as soon as the next one is confirmed.
        let mut online = Segmenter::new(rule(2));
        let mut out = Vec::new();
        for (i, s) in input.iter().enumerate() {
            let closed = online.push(*s);
            if i == 3 {
                assert_eq!(summary(&closed), [(0, 3, 1)], "closed at the gap");
            }
            out.extend(closed);
        }
        out.extend(online.finish());
        assert_eq!(out, offline);
    }

    /// Hostile spans (out of order, overlapping, empty, at the ends of the clock): no panic in
    /// the rule or the metrics, and every segment holds spans and a finite confidence.
    #[test]
    fn hostile_spans_never_panic_and_every_segment_holds_spans() {
        let mut rng = crate::rng::Rng::new(7);
        let extremes = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        for round in 0..200 {
            let mut spans = Vec::new();
            let mut t = (rng.next_u64() % 1000) as i64 * S;
            for _ in 0..50 {
                let pick = rng.next_u64();
                let (start, end) = if pick % 13 == 0 {
                    (
                        extremes[(pick >> 8) as usize % 7],
                        extremes[(pick >> 16) as usize % 7],
                    )
                } else {
                    let jump = (rng.next_u64() % 5) as i64 - 1;
                    t = t.saturating_add(jump * S / 2);
                    (t, t.saturating_add((rng.next_u64() % 3) as i64 * S))
                };
                spans.push(Span {
                    start_ns: start,
                    end_ns: end,
                    label: (rng.next_u64() % 4) as i32,
                    confidence: rng.uniform(0.0, 1.0) as f32,
                });
            }
            let rule = SegmentRule {
                min_duration_ns: (round % 3) as i64 * S,
                max_gap_ns: if round % 2 == 0 { S } else { i64::MAX },
            };
            let out = segments(&spans, rule);
            for s in &out {
                assert!(s.confidence.is_finite() && s.spans > 0, "{s:?}");
            }
            assert!(out.len() <= spans.len());
            let _ = (edit_score(&out, &out), f1_at(&out, &out, 0.5));
        }
    }

    #[test]
    fn metrics_on_hand_built_segments() {
        let seg = |a: i64, b: i64, l: i32| Segment {
            start_ns: a * S,
            end_ns: b * S,
            label: l,
            confidence: 1.0,
            spans: 1,
        };
        let truth = [seg(0, 10, 1), seg(10, 14, 7), seg(14, 30, 4)];
        assert_eq!(edit_score(&truth, &truth), 100.0);
        assert_eq!(f1_at(&truth, &truth, 0.5), 100.0);
        // The transition missed: one deletion of three.
        let merged = [seg(0, 12, 1), seg(12, 30, 4)];
        assert!((edit_score(&merged, &truth) - 100.0 * (1.0 - 1.0 / 3.0)).abs() < 1e-9);
        // Two of two predicted match (IoU 10/12 and 16/18), one of three true missed.
        assert!((f1_at(&merged, &truth, 0.5) - 80.0).abs() < 1e-9);
        assert_eq!(boundary_errors(&merged, &truth, &[7]), [None]);
        // The transition found 1 s late at both ends.
        let late = [seg(0, 11, 1), seg(11, 15, 7), seg(15, 30, 4)];
        assert_eq!(boundary_errors(&late, &truth, &[7]), [Some(1.0)]);
        assert!(f1_at(&late, &truth, 0.5) > 99.0);
        // Ground truth from per-step labels: runs, with unlabelled steps as gaps.
        let steps = [1, 1, -1, 2, 2, 2];
        let t: Vec<i64> = (0..6).map(|i| i * S).collect();
        assert_eq!(summary(&label_runs(&steps, &t, S)), [(0, 2, 1), (3, 6, 2)]);
        assert_eq!(
            majority_smooth(&[1, 1, 2, 1, 1, 3, 3], 3),
            [1, 1, 1, 1, 1, 3, 3]
        );
        // Online smoothing releases the same labels, k / 2 items late.
        let labels = [1, 2, 2, 1, 3, 3, 1, 1, 2, 3, 3, 3, 1];
        for k in [1, 3, 5, 9] {
            let mut online = OnlineMajority::new(k);
            let mut got = Vec::new();
            for (i, &l) in labels.iter().enumerate() {
                let out = online.push(i, l);
                assert!(
                    out.iter().all(|(j, _)| j + k / 2 <= i),
                    "k {k}: released early"
                );
                got.extend(out);
            }
            got.extend(online.finish());
            let order: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
            assert_eq!(order, (0..labels.len()).collect::<Vec<_>>());
            let smoothed: Vec<i32> = got.iter().map(|(_, l)| *l).collect();
            assert_eq!(smoothed, majority_smooth(&labels, k), "k {k}");
        }
        // Scoring only where there is truth: a prediction across a gap is cut in two.
        let regions = labelled_regions(&steps, &t, S);
        assert_eq!(regions, [(0, 2 * S), (3 * S, 6 * S)]);
        let cut = restrict_to(&[seg(0, 6, 1)], &regions);
        assert_eq!(summary(&cut), [(0, 2, 1), (3, 6, 1)]);
    }
}
