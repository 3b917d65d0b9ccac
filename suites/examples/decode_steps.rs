//! Decodes the fetched SmolLM2-135M step by step for a while, for a profiler to look at:
//! `cargo run --release -p infermark-suites --example decode_steps -- [native|f32] [int8|f32] [steps]`.

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use infermark_models::quant::{set_activations, Activations};
use infermark_suites::zoo::gguf::{self, llama};

type B = Flex;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let weights = match args.first().map(String::as_str) {
        Some("f32") => llama::Weights::F32,
        None | Some("native") => llama::Weights::Native,
        Some(other) => panic!("weights `{other}`: expected native or f32"),
    };
    let acts: Activations = args
        .get(1)
        .map(|s| s.parse().expect("int8 or f32"))
        .unwrap_or_default();
    let steps: usize = args
        .get(2)
        .map(|s| s.parse().expect("steps"))
        .unwrap_or(200);
    let path = gguf::smollm2().expect("run ci/fetch-models.sh first");
    infermark_models::kernels::on_pool_worker(move || run(&path, weights, acts, steps)).unwrap();
}

fn run(path: &std::path::Path, weights: llama::Weights, acts: Activations, steps: usize) {
    let dev = Default::default();
    let (mut m, _, _) = llama::load::<B>(path, weights, &dev).expect("load");
    set_activations(&mut m, acts);
    let mut cache = m.contiguous_cache(1, 256, &dev);
    let seq = cache.add_sequence().unwrap();
    let x = |t: i64| Tensor::<B, 2, Int>::from_data(TensorData::new(vec![t], [1, 1]), &dev);
    for t in 0..128 {
        m.forward(x(t + 1), &[seq], &mut cache).unwrap();
    }
    // SPIN=1 keeps the pool's other workers spinning for each step, as the engine's
    // `Session::step` does for decode-sized steps; unset, the step is a bare forward.
    let spin = std::env::var_os("SPIN").is_some();
    let t0 = std::time::Instant::now();
    for i in 0..steps {
        let mut step = || {
            m.forward(x(i as i64 % 100 + 1), &[seq], &mut cache)
                .unwrap()
        };
        let _ = if spin {
            infermark_models::kernels::with_spinning_workers(step)
        } else {
            step()
        };
        cache.truncate(seq, 128).unwrap();
    }
    let dt = t0.elapsed().as_secs_f64();
    let bw = infermark_suites::machine::measure(5);
    println!(
        "{steps} steps: {:.2} ms/step, {:.1} tokens/s (triad {:.1} GB/s, read {:.1} GB/s after)",
        dt * 1e3 / steps as f64,
        steps as f64 / dt,
        bw.triad_gbps,
        bw.read_gbps
    );
}
