//! SmolLM2-135M (f32 weights): a step of `n` tokens after a 64-token prompt against a step of
//! one, alternately, for a profiler and for the verify cost v(n − 1):
//! `cargo run --release -p infermark-suites --example verify_rows -- [n] [reps] [only]`.
use burn::backend::Flex;
use infermark_suites::measure::{time_pair, Plan};
use infermark_suites::stepper::Stepper;
use infermark_suites::zoo::gguf::{self, llama};

type B = Flex;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(5, |s| s.parse().expect("n"));
    let reps: usize = args.get(1).map_or(20, |s| s.parse().expect("reps"));
    let path = gguf::smollm2().expect("run ci/fetch-models.sh first");
    let dev = Default::default();
    let (m, _, _) = llama::load::<B>(&path, llama::Weights::F32, &dev).expect("load");
    let prompt: Vec<u32> = (0..64).map(|i| 100 + 37 * i).collect();
    let mut a = Stepper::new(&m, &prompt, n, &dev).unwrap();
    if args.get(2).is_some() {
        for _ in 0..reps {
            a.step(n).unwrap();
        }
        return;
    }
    let mut b = Stepper::new(&m, &prompt, 1, &dev).unwrap();
    let plan = Plan::new(2, reps, reps, 60_000);
    let (sa, sb) = time_pair(plan, || a.step(n), || b.step(1)).unwrap();
    println!(
        "{n} rows {:.2} ms, 1 row {:.2} ms, v = {:.2}",
        sa.median,
        sb.median,
        sa.median / sb.median
    );
}
