//! Many windows on every core: each worker thread owns a copy of the model (its own scratch
//! buffers) and takes a contiguous share of the windows. Windows are independent, so results
//! do not depend on the number of workers.

use crate::dmft::Dmft;
use crate::error::{Result, RuntimeError};

/// `threads` copies of `model` (at least one), for [`map_windows`].
pub fn workers(model: &Dmft, threads: usize) -> Vec<Dmft> {
    vec![model.clone(); threads.max(1)]
}

/// The number of worker threads worth starting on this machine (at most `cap`).
pub fn available_threads(cap: usize) -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(cap.max(1)))
}

/// `f(model, i)` for every window `i` in `0..n`, in order, spread over `workers`.
pub fn map_windows<T: Send>(
    workers: &mut [Dmft],
    n: usize,
    f: impl Fn(&mut Dmft, usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if workers.is_empty() {
        return Err(RuntimeError::Invalid("map_windows: no workers".into()));
    }
    let per_worker = n.div_ceil(workers.len()).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let jobs: Vec<_> = workers
            .iter_mut()
            .enumerate()
            .map(|(w, model)| {
                let range = (w * per_worker).min(n)..((w + 1) * per_worker).min(n);
                scope.spawn(move || range.map(|i| f(model, i)).collect::<Result<Vec<T>>>())
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for job in jobs {
            out.extend(
                job.join()
                    .map_err(|_| RuntimeError::Invalid("a worker thread panicked".into()))??,
            );
        }
        Ok(out)
    })
}
