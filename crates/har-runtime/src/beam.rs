//! Beam search over label **sets** decoded one label at a time (seed S11): each hypothesis is
//! a sequence of distinct labels closed by an end token; a step scores every label not yet
//! in the hypothesis and the end token (log-probabilities from the decoder, which sees the
//! labels so far — so it learns which labels go together). Width 1 is greedy decoding.
//!
//! The search is generic over the decoder's state: `step(state, token)` advances a copy of a
//! hypothesis's state by its last token and returns the next log-probabilities
//! (`labels + 1` values, the end token last).

/// One finished hypothesis.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Labels in the order decoded (indices below `labels`).
    pub labels: Vec<usize>,
    /// Sum of the log-probabilities of its labels and of its end (when it ended).
    pub score: f32,
}

/// Finished hypotheses of a beam search, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamResult {
    /// Best first (at most `width`).
    pub hypotheses: Vec<Hypothesis>,
}

impl BeamResult {
    /// The best label set, ascending.
    pub fn best_set(&self) -> Vec<usize> {
        let mut labels = self
            .hypotheses
            .first()
            .map(|h| h.labels.clone())
            .unwrap_or_default();
        labels.sort_unstable();
        labels
    }
}

/// Decodes with `width` hypotheses over `labels` labels (the end token is index `labels`),
/// at most `max_len` labels per set (a hypothesis reaching it ends without an end token).
/// `first` gives the state and log-probabilities before any label; `step(state, token)`
/// gives the state and log-probabilities after `token`. Non-finite scores never win.
pub fn search<S: Clone>(
    width: usize,
    labels: usize,
    max_len: usize,
    first: (S, Vec<f32>),
    mut step: impl FnMut(&S, usize) -> (S, Vec<f32>),
) -> BeamResult {
    let width = width.max(1);
    let end = labels;
    // Live hypotheses: labels so far, score, state, next log-probabilities.
    let mut live: Vec<(Vec<usize>, f32, S, Vec<f32>)> = vec![(Vec::new(), 0.0, first.0, first.1)];
    let mut finished: Vec<Hypothesis> = Vec::new();
    while !live.is_empty() {
        // Every extension of every live hypothesis: (hypothesis, token, score).
        let mut candidates: Vec<(usize, usize, f32)> = Vec::new();
        for (h, (prefix, score, _, logp)) in live.iter().enumerate() {
            for (token, &lp) in logp.iter().enumerate().take(labels + 1) {
                if token != end && prefix.contains(&token) {
                    continue;
                }
                let total = score + lp;
                if total.is_finite() {
                    candidates.push((h, token, total));
                }
            }
        }
        candidates.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        // The `width` best extensions: ended ones finish, the others live on.
        let mut next = Vec::new();
        for (h, token, total) in candidates.into_iter().take(width) {
            let mut labels_so_far = live[h].0.clone();
            if token == end {
                finished.push(Hypothesis {
                    labels: labels_so_far,
                    score: total,
                });
                continue;
            }
            labels_so_far.push(token);
            if labels_so_far.len() >= max_len {
                finished.push(Hypothesis {
                    labels: labels_so_far,
                    score: total,
                });
                continue;
            }
            let (state, logp) = step(&live[h].2, token);
            next.push((labels_so_far, total, state, logp));
        }
        // Stop once no live hypothesis can beat the width-th finished one (scores only fall).
        finished.sort_by(|a, b| b.score.total_cmp(&a.score));
        if finished.len() >= width {
            let bar = finished[width - 1].score;
            next.retain(|(_, score, _, _)| *score > bar);
        }
        live = next;
    }
    finished.truncate(width);
    BeamResult {
        hypotheses: finished,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::softmax_in_place;

    /// A toy decoder over 4 labels whose next-token scores depend on the whole prefix
    /// (co-occurrence: label 2 likes to follow 0, the end token likes sets of two).
    fn toy(prefix: &[usize]) -> Vec<f32> {
        let mut x: Vec<f32> = (0..5)
            .map(|t| {
                let h = prefix
                    .iter()
                    .fold(7u64, |a, &p| a.wrapping_mul(31).wrapping_add(p as u64 + 1));
                ((h.wrapping_mul(2654435761).wrapping_add(t as u64 * 97)) % 1000) as f32 / 300.0
            })
            .collect();
        if prefix.first() == Some(&0) {
            x[2] += 1.5;
        }
        if prefix.len() == 2 {
            x[4] += 1.0;
        }
        softmax_in_place(&mut x);
        x.iter().map(|p| p.ln()).collect()
    }

    /// Every set sequence: distinct labels, ended by the end token or by the length limit.
    fn brute_force(max_len: usize) -> Vec<Hypothesis> {
        let mut out = Vec::new();
        let mut stack = vec![(Vec::<usize>::new(), 0f32)];
        while let Some((prefix, score)) = stack.pop() {
            let logp = toy(&prefix);
            out.push(Hypothesis {
                labels: prefix.clone(),
                score: score + logp[4],
            });
            for (t, &lp) in logp.iter().enumerate().take(4) {
                if prefix.contains(&t) {
                    continue;
                }
                let mut p = prefix.clone();
                p.push(t);
                if p.len() == max_len {
                    out.push(Hypothesis {
                        labels: p,
                        score: score + lp,
                    });
                } else {
                    stack.push((p, score + lp));
                }
            }
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }

    fn run(width: usize, max_len: usize) -> BeamResult {
        search(
            width,
            4,
            max_len,
            (Vec::new(), toy(&[])),
            |prefix: &Vec<usize>, t| {
                let mut p = prefix.clone();
                p.push(t);
                let logp = toy(&p);
                (p, logp)
            },
        )
    }

    #[test]
    fn a_wide_beam_finds_the_brute_force_best_sequences() {
        for max_len in [1, 2, 3, 4] {
            let all = brute_force(max_len);
            let result = run(all.len(), max_len);
            assert_eq!(result.hypotheses.len(), all.len(), "max_len {max_len}");
            for (got, want) in result.hypotheses.iter().zip(&all) {
                assert!((got.score - want.score).abs() < 1e-5, "{got:?} vs {want:?}");
            }
            assert_eq!(result.hypotheses[0].labels, all[0].labels);
        }
    }

    #[test]
    fn no_beam_beats_the_best_and_greedy_follows_the_argmax() {
        let best = brute_force(4)[0].score;
        for width in [1, 2, 4, 8] {
            assert!(
                run(width, 4).hypotheses[0].score <= best + 1e-5,
                "width {width}"
            );
        }
        assert!((run(64, 4).hypotheses[0].score - best).abs() < 1e-5);
        // Greedy: at each step the most likely token among those allowed.
        let mut prefix = Vec::new();
        let mut score = 0.0;
        loop {
            let logp = toy(&prefix);
            let (t, lp) = logp
                .iter()
                .enumerate()
                .filter(|(t, _)| *t == 4 || !prefix.contains(t))
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(t, lp)| (t, *lp))
                .unwrap();
            score += lp;
            if t == 4 {
                break;
            }
            prefix.push(t);
            if prefix.len() == 4 {
                break;
            }
        }
        let greedy = run(1, 4);
        assert_eq!(greedy.hypotheses[0].labels, prefix);
        assert!((greedy.hypotheses[0].score - score).abs() < 1e-5);
    }
}
