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
