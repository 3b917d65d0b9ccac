//! Speculative decoding of the byte-level target with its draft model at batch 1 and 4: batch
//! utilisation (live sequence-steps over batch × steps), drafting time, plain and speculative
//! decode time (one pass each, for a quick look; the suite's records are the measurement).
//! `cargo run --release -p infermark-suites --example spec_batch [perf]` (`perf`: only batch 4,
//! γ = 4, repeated, for a profiler).
use burn::backend::Flex;
use infermark_models::generation::speculative::{speculative_generate, Gamma, ModelDrafter};
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_suites::speculative::workloads::Workload;
use infermark_suites::zoo::checkpoint;

type B = Flex;

struct Timed<'a>(
    &'a mut dyn infermark_models::generation::speculative::Proposer,
    f64,
);
impl infermark_models::generation::speculative::Proposer for Timed<'_> {
    fn propose(
        &mut self,
        t: &[&[u32]],
        g: &[usize],
        s: &mut Sampler,
    ) -> infermark_models::Result<Vec<infermark_models::generation::speculative::Draft>> {
        let t0 = std::time::Instant::now();
        let r = self.0.propose(t, g, s);
        self.1 += t0.elapsed().as_secs_f64();
        r
    }
    fn prefill(&mut self, p: &[&[u32]]) -> infermark_models::Result<()> {
        self.0.prefill(p)
    }
}

fn main() {
    let device = Default::default();
    let target = checkpoint::load::<B>(&checkpoint::committed("target"), &device)
        .unwrap()
        .0;
    let draft = checkpoint::load::<B>(&checkpoint::committed("draft"), &device)
        .unwrap()
        .0;
    let w = Workload::parse("stories").unwrap();
    let prompts = w.prompts(16);
    let config = GenerateConfig {
        max_new: 48,
        stop: w.stop(),
    };
    if std::env::args().nth(1).as_deref() == Some("perf") {
        let mut cache = target.contiguous_cache(4, target.max_seq_len(), &device);
        let mut d = ModelDrafter::new(
            draft.clone(),
            draft.contiguous_cache(4, draft.max_seq_len(), &device),
            &device,
        );
        for _ in 0..30 {
            for group in prompts.chunks(4) {
                let mut s = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
                speculative_generate(
                    &target,
                    &mut cache,
                    group,
                    &mut d,
                    Gamma::Fixed(4),
                    &config,
                    &mut s,
                    &device,
                )
                .unwrap();
            }
        }
        return;
    }
    for batch in [1, 4] {
        for gamma in [2, 4, 6] {
            let mut cache = target.contiguous_cache(batch, target.max_seq_len(), &device);
            let mut d = ModelDrafter::new(
                draft.clone(),
                draft.contiguous_cache(batch, draft.max_seq_len(), &device),
                &device,
            );
            let (mut steps, mut fw, mut toks, mut st, mut pt, mut dt) = (0, 0, 0, 0.0, 0.0, 0.0);
            for group in prompts.chunks(batch) {
                let mut s = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
                let mut td = Timed(&mut d, 0.0);
                let g = speculative_generate(
                    &target,
                    &mut cache,
                    group,
                    &mut td,
                    Gamma::Fixed(gamma),
                    &config,
                    &mut s,
                    &device,
                )
                .unwrap();
                steps += g.stats.steps;
                fw += g.counters.forwards - 1;
                toks += g.counters.generated_tokens;
                st += g.counters.decode_time.as_secs_f64();
                dt += td.1;
                let mut s = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
                let p = generate(&target, &mut cache, group, &config, &mut s, &device).unwrap();
                pt += p.counters.decode_time.as_secs_f64();
            }
            println!("batch {batch} γ {gamma}: utilisation {:.2} (seq-steps {steps} / {batch}×{fw} steps), {toks} tokens, spec {:.1} ms, plain {:.1} ms, speedup {:.2}, drafting {:.1} ms", steps as f64 / (batch * fw) as f64, st*1e3, pt*1e3, pt/st, dt*1e3);
        }
    }
}
