//! Times the fused flex attention core alone: one GQA decode step (4 query rows per K/V head,
//! heads of 128, as Llama-3-8B) over contexts, called again and again on a pool worker as a
//! decode loop would, so that K/V stay wherever the previous call left them (the caches, when
//! they fit). Prints the median time with p10 and p90, the K/V bytes read per second, and how
//! many calls prefetched K/V rows.
//!
//! ```sh
//! cargo run --release -p infermark-models --example attention_core -- [--isa avx2] [--heads 8] [--ctx 256,1024,4096]
//! ```
//!
//! `--heads 1` with a short context times one task on one core.

use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use infermark_models::kernels::{
    flex_grouped_attention_with, isa, on_pool_worker, prefetch_calls, Prefetch, Visibility,
};

struct Args {
    isa: isa::Isa,
    heads: usize,
    ctxs: Vec<usize>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        isa: isa::detected(),
        heads: 8,
        ctxs: vec![256, 512, 1024, 2048, 4096],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--isa" => {
                let want: isa::Isa = value.parse().map_err(|e| format!("--isa: {e}"))?;
                args.isa = isa::check(want, "--isa").map_err(|e| e.to_string())?;
            }
            "--heads" => {
                args.heads = value
                    .parse()
                    .map_err(|_| format!("--heads {value:?}: expected a count"))?
            }
            "--ctx" => {
                args.ctxs = value
                    .split(',')
                    .map(|c| c.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--ctx {value:?}: expected lengths like 256,1024"))?
            }
            _ => return Err(format!("unknown option {flag} (--isa, --heads, --ctx)")),
        }
    }
    if args.heads == 0 || args.ctxs.contains(&0) {
        return Err("--heads and every --ctx must be at least 1".into());
    }
    Ok(args)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("attention_core: {e}");
            std::process::exit(2);
        }
    };
    on_pool_worker(|| run(&args)).expect("thread pool");
}

fn run(args: &Args) {
    let dev = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    println!(
        "isa {}, {} K/V heads of 128, 4 query rows each",
        args.isa, args.heads
    );
    for &ctx in &args.ctxs {
        let q = Tensor::<Flex, 4>::random([1, args.heads, 4, 128], normal, &dev);
        let k = Tensor::<Flex, 4>::random([1, args.heads, ctx, 128], normal, &dev);
        let v = Tensor::<Flex, 4>::random([1, args.heads, ctx, 128], normal, &dev);
        let bytes = (2 * args.heads * ctx * 128 * 4) as f64;
        // About 2 GB of K/V per context, at least 200 timed calls, a quarter more to warm up.
        let n = (2e9 / bytes) as usize;
        let n = n.max(200);
        let call = || {
            flex_grouped_attention_with(
                args.isa,
                Prefetch::Probe,
                q.clone(),
                k.clone(),
                v.clone(),
                Visibility::All,
                0.088,
            )
        };
        for _ in 0..n / 4 {
            std::hint::black_box(call());
        }
        let before = prefetch_calls();
        let mut secs: Vec<f64> = (0..n)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(call());
                t.elapsed().as_secs_f64()
            })
            .collect();
        let after = prefetch_calls();
        secs.sort_by(f64::total_cmp);
        let at = |p: usize| secs[(secs.len() * p / 100).min(secs.len() - 1)] * 1e6;
        println!(
            "ctx {ctx:5}  n {n:5}  median {:8.1} µs  p10 {:8.1}  p90 {:8.1}  {:6.1} GB/s  prefetched {} of {}",
            at(50),
            at(10),
            at(90),
            bytes / (at(50) * 1e-6) / 1e9,
            after[1] - before[1],
            (after[0] - before[0]) + (after[1] - before[1]),
        );
    }
}
