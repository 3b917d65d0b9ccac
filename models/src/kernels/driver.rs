//! Where a decode loop should run: on a worker of the thread pool its kernels fork into.
//!
//! The kernels (fused attention, quantized matvecs) and burn's flex ops split each call across
//! rayon's pool. Called from a thread outside the pool, every such call hands its whole job to
//! the pool and puts the caller to sleep until a worker wakes it again: on a 2-core machine
//! this costs about 8 µs per call at the join alone, which is a fifth of a decode attention
//! call at a 256-token context. Called from a worker, the call forks in place: the caller runs
//! one half itself and only waits, without sleeping, if the other half is still running.

/// Runs `f` on a worker of a fresh rayon pool (sized as rayon sizes its global pool, so
/// `RAYON_NUM_THREADS` still applies), so that every parallel call inside it forks and joins
/// in place. Returns `f`'s result.
///
/// # Errors
/// When the pool's threads cannot be started.
pub fn on_pool_worker<R: Send>(
    f: impl FnOnce() -> R + Send,
) -> Result<R, rayon::ThreadPoolBuildError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("infermark-worker-{i}"))
        .build()?;
    Ok(pool.install(f))
}

/// Runs `f` with the pool's other workers kept awake: each runs a job that looks for work with
/// `rayon::yield_now` in a loop instead of going to sleep between parallel calls, until `f`
/// returns. A decode step forks about a hundred small products; a worker that sleeps between
/// them (rayon parks an idle worker after a few dozen yields) is woken by a futex call each
/// time, and the product starts on one thread. llama.cpp's thread pool spins the same way
/// between the operations of a graph. The workers are busy (not idle) for the duration of `f`,
/// so the engine uses it around decode-sized steps only. Called from outside a pool, or on a
/// one-thread pool, it just runs `f`.
pub fn with_spinning_workers<R>(f: impl FnOnce() -> R) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Some(owner) = rayon::current_thread_index() else {
        return f();
    };
    let others = rayon::current_num_threads().saturating_sub(1);
    if others == 0 {
        return f();
    }
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..others {
        let stop = Arc::clone(&stop);
        rayon::spawn(move || {
            // A keeper that this thread picks up itself (a join in `f` waiting on a stolen
            // half runs queued jobs), or that starts after `f`, returns at once: only a
            // keeper on another worker may spin, and only while `f` runs.
            if rayon::current_thread_index() == Some(owner) {
                return;
            }
            while !stop.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::hint::spin_loop();
                }
            }
        });
    }
    let r = f();
    stop.store(true, Ordering::Release);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn sum_of_squares() -> u64 {
        (0..100_000u64).into_par_iter().map(|i| i * i).sum()
    }

    #[test]
    fn spinning_workers_run_parallel_work_and_stop_nested_or_not() {
        let want: u64 = (0..100_000u64).map(|i| i * i).sum();
        // Outside a pool: just runs.
        assert_eq!(with_spinning_workers(sum_of_squares), want);
        let got = on_pool_worker(|| {
            let mut all = Vec::new();
            for _ in 0..50 {
                all.push(with_spinning_workers(sum_of_squares));
                all.push(with_spinning_workers(|| {
                    with_spinning_workers(sum_of_squares) + with_spinning_workers(|| 0)
                }));
            }
            all
        })
        .unwrap();
        assert!(got.iter().all(|&s| s == want), "{got:?}");
    }
}
