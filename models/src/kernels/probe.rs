//! Whether a cache line answers at cache latency or from DRAM, told by timing one load with the
//! time-stamp counter. The attention kernel probes a spread of a call's K/V rows before the
//! call: it prefetches rows ahead only when they come from DRAM, where prefetching doubles its
//! bandwidth, and not when they sit in the caches, where the prefetches cost 10–20% and buy
//! nothing.
//!
//! The threshold is calibrated once per process on this machine: the same timed load on a line
//! just read (an L1 hit: the timer's own overhead) and on lines flushed with `clflush` (DRAM).
//! A load counts as cached below the midpoint (on the Zen 4 used here: 52 and 364–416 ticks,
//! threshold 208–234, about 80–90 ns). If the two cannot be told apart (a timer that traps, or
//! one that does not wait for the load), the probe always answers "not cached", which keeps the
//! prefetches: the safe side, since dropping them where K/V stream from DRAM costs about a third
//! of the bandwidth. Interrupts and TLB misses only make a load look slower, which errs to the
//! same side.

/// Whether the cache line holding `p` was served by a cache, not by DRAM. `p` must point into
/// memory that is valid to read (a row of a live tensor).
#[inline]
pub(super) fn cached(p: *const f32) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match x86::threshold() {
            Some(limit) => {
                // SAFETY: the caller passes a readable address.
                let ticks = unsafe { x86::timed_load(p) };
                ticks < limit
            }
            None => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = p;
        false
    }
}

/// The calibration: (L1-hit ticks, DRAM ticks, threshold) medians, or `None` when the two are
/// too close to tell apart. For the README and tests.
pub fn calibration() -> Option<(u64, u64, u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        x86::calibration()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{_mm_clflush, _mm_lfence, _mm_mfence, _rdtsc};
    use std::sync::OnceLock;

    /// Timed samples of each kind in the calibration.
    const SAMPLES: usize = 33;

    /// DRAM must take at least this many times the L1 figure for the probe to be used.
    const MIN_RATIO: u64 = 3;

    /// Ticks from just before the load of `p` issues until it has completed: the load's
    /// address depends on the first counter read (so it cannot start earlier), and the fence
    /// before the second read waits for it to finish. (`lfence` and `rdtsc` are in every x86-64;
    /// `rdtscp` is not exposed by every hypervisor. Where `lfence` does not wait for loads, the
    /// calibration sees no difference and the probe is not used.)
    ///
    /// # Safety
    /// `p` must be valid to read.
    #[inline]
    pub(super) unsafe fn timed_load(p: *const f32) -> u64 {
        _mm_lfence();
        let t0 = _rdtsc();
        // `t0 >> 63` is 0 (the counter does not reach 2^63), but the compiler cannot know.
        let q = p.wrapping_add((t0 >> 63) as usize);
        let x = std::ptr::read_volatile(q);
        _mm_lfence();
        let t1 = _rdtsc();
        std::hint::black_box(x);
        t1.saturating_sub(t0)
    }

    fn median(mut v: Vec<u64>) -> u64 {
        v.sort_unstable();
        v[v.len() / 2]
    }

    pub(super) fn calibration() -> Option<(u64, u64, u64)> {
        static CAL: OnceLock<Option<(u64, u64, u64)>> = OnceLock::new();
        *CAL.get_or_init(|| {
            // A fresh line per sample, two lines apart (so the adjacent-line prefetcher cannot
            // bring one in with the previous), each read once and timed, then flushed and timed.
            let buf = vec![1f32; SAMPLES * 32];
            let lines: Vec<*const f32> = (0..SAMPLES).map(|i| buf[i * 32..].as_ptr()).collect();
            // SAFETY: every pointer is inside `buf`; `clflush` and the fences are SSE2, which
            // x86-64 always has.
            unsafe {
                let hot: Vec<u64> = lines
                    .iter()
                    .map(|&p| {
                        std::hint::black_box(std::ptr::read_volatile(p));
                        timed_load(p)
                    })
                    .collect();
                let cold: Vec<u64> = lines
                    .iter()
                    .map(|&p| {
                        _mm_clflush(p.cast());
                        _mm_mfence();
                        timed_load(p)
                    })
                    .collect();
                let (hot, cold) = (median(hot), median(cold));
                (cold >= MIN_RATIO * hot.max(1)).then_some((hot, cold, (hot + cold) / 2))
            }
        })
    }

    pub(super) fn threshold() -> Option<u64> {
        calibration().map(|c| c.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_just_read_is_cached_and_a_flushed_one_is_not_when_the_probe_is_usable() {
        let Some((hot, cold, limit)) = calibration() else {
            eprintln!("SKIPPED: the load-latency probe cannot tell L1 from DRAM on this machine");
            return;
        };
        assert!(hot < limit && limit < cold, "{hot} {limit} {cold}");
        let buf = vec![1f32; 1024];
        // The majority of several tries, so that one interrupt cannot fail the test.
        let p = buf[512..].as_ptr();
        let hits = (0..9)
            .filter(|_| {
                std::hint::black_box(unsafe { std::ptr::read_volatile(p) });
                cached(p)
            })
            .count();
        assert!(hits >= 5, "{hits} of 9 L1 reads looked uncached");
        #[cfg(target_arch = "x86_64")]
        {
            let misses = (0..9)
                .filter(|i| {
                    let q = buf[(i * 16) % 1024..].as_ptr();
                    // SAFETY: `q` is inside `buf`; clflush and mfence are SSE2.
                    unsafe {
                        std::arch::x86_64::_mm_clflush(q.cast());
                        std::arch::x86_64::_mm_mfence();
                    }
                    !cached(q)
                })
                .count();
            assert!(misses >= 5, "{misses} of 9 flushed lines looked cached");
        }
    }
}
