//! The machine's own limits, measured inside the run so that every bandwidth metric can be read
//! as a fraction of what this machine moves: a STREAM-style triad (`a[i] = b[i] + s·c[i]`, McCalpin's
//! STREAM benchmark) and a read-only stream (`Σ a[i]`), on arrays far larger than the last-level
//! cache, split across the same thread pool the kernels use.
//!
//! Deviations from STREAM: f32 elements; the triad counts 3 × 4 bytes per element (two reads,
//! one write) as STREAM does, although write-allocate caches move a fourth stream; the run takes a
//! few hundred milliseconds, not minutes, so its figure is a median of short repetitions.

use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::measure::Summary;
use crate::metric::{Metric, READ_STREAM_GBPS, TRIAD_GBPS};
use crate::recorder::Recorder;
use crate::suite::RunContext;
use crate::{Result, Stat};

/// Suite name of the machine's records (not a suite of the registry: it runs in every run).
pub const SUITE: &str = "machine";

/// Elements per array: 3 × 64 MiB for the triad, far beyond any CPU's last-level cache.
const ELEMS: usize = 16 << 20;

/// Measured memory bandwidth of this machine.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Bandwidth {
    /// Triad GB/s (10⁹ bytes per second): median of the repetitions.
    pub triad_gbps: f64,
    /// Slowest and fastest triad repetitions, GB/s.
    pub triad_min_gbps: f64,
    pub triad_max_gbps: f64,
    /// Read-only stream GB/s: median.
    pub read_gbps: f64,
    pub read_min_gbps: f64,
    pub read_max_gbps: f64,
    /// Repetitions of each.
    pub n: usize,
    /// Bytes of one array.
    pub array_bytes: usize,
    /// Threads that ran it.
    pub threads: usize,
}

/// Per-thread slices of `len` elements.
fn chunk(len: usize) -> usize {
    len.div_ceil(rayon::current_num_threads().max(1))
        .max(1 << 12)
}

/// Measures triad and read bandwidth, `reps` timed repetitions each after one untimed pass
/// (which also touches every page). About 50 ms per repetition on a 40 GB/s machine.
pub fn measure(reps: usize) -> Bandwidth {
    let reps = reps.max(1);
    let n = ELEMS;
    let c = chunk(n);
    let mut a = vec![0f32; n];
    let b: Vec<f32> = (0..n).into_par_iter().map(|i| (i % 7) as f32).collect();
    let cc: Vec<f32> = (0..n).into_par_iter().map(|i| (i % 5) as f32).collect();
    let s = 3.0f32;
    let triad = |a: &mut [f32]| {
        a.par_chunks_mut(c)
            .zip(b.par_chunks(c))
            .zip(cc.par_chunks(c))
            .for_each(|((a, b), c)| {
                for ((x, y), z) in a.iter_mut().zip(b).zip(c) {
                    *x = y + s * z;
                }
            });
    };
    let read = |a: &[f32]| -> f32 {
        a.par_chunks(c)
            .map(|x| {
                let mut lanes = [0f32; 16];
                for ch in x.chunks_exact(16) {
                    for l in 0..16 {
                        lanes[l] += ch[l];
                    }
                }
                lanes.iter().sum::<f32>()
            })
            .sum()
    };
    triad(&mut a);
    let mut t_ms = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        triad(&mut a);
        t_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut sink = read(&a);
    let mut r_ms = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        sink += read(&a);
        r_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    std::hint::black_box(sink);
    let gbps = |bytes: usize, ms: f64| bytes as f64 / (ms * 1e-3) / 1e9;
    let (ts, rs) = (Summary::of(&t_ms), Summary::of(&r_ms));
    let (tb, rb) = (3 * 4 * n, 4 * n);
    Bandwidth {
        triad_gbps: gbps(tb, ts.median),
        triad_min_gbps: gbps(tb, ts.max),
        triad_max_gbps: gbps(tb, ts.min),
        read_gbps: gbps(rb, rs.median),
        read_min_gbps: gbps(rb, rs.max),
        read_max_gbps: gbps(rb, rs.min),
        n: reps,
        array_bytes: 4 * n,
        threads: rayon::current_num_threads(),
    }
}

/// The measurement as records (`suite = machine`, `experiment = bandwidth`): median, min and max
/// of each metric with the repetition count, and the SIMD path the kernels ran on (`isa`).
pub fn records(bw: &Bandwidth, ctx: &RunContext, isa: &str) -> Result<Vec<crate::Record>> {
    let base = [
        ("threads".to_string(), bw.threads.to_string()),
        ("array_bytes".to_string(), bw.array_bytes.to_string()),
        ("isa".to_string(), isa.to_string()),
    ]
    .into_iter()
    .collect();
    let mut rec = Recorder::new(ctx, SUITE, "stream", base);
    let rows: [(&'static Metric, [f64; 3]); 2] = [
        (
            &TRIAD_GBPS,
            [bw.triad_gbps, bw.triad_min_gbps, bw.triad_max_gbps],
        ),
        (
            &READ_STREAM_GBPS,
            [bw.read_gbps, bw.read_min_gbps, bw.read_max_gbps],
        ),
    ];
    for (metric, [med, min, max]) in rows {
        for (stat, v) in [(Stat::Median, med), (Stat::Min, min), (Stat::Max, max)] {
            rec.metric("bandwidth", metric).stat(stat, bw.n).value(v)?;
        }
    }
    Ok(rec.records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidths_are_finite_positive_and_ordered() {
        // Not a timing assertion: only that the summary is internally consistent.
        let bw = measure(1);
        for (lo, mid, hi) in [
            (bw.triad_min_gbps, bw.triad_gbps, bw.triad_max_gbps),
            (bw.read_min_gbps, bw.read_gbps, bw.read_max_gbps),
        ] {
            assert!(lo.is_finite() && lo > 0.0, "{bw:?}");
            assert!(lo <= mid && mid <= hi, "{bw:?}");
        }
        assert_eq!((bw.n, bw.array_bytes), (1, 4 * ELEMS));
    }
}
