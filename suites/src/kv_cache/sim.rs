//! Trace-driven KV memory simulation: first-come-first-served admission of a request trace into
//! a fixed KV budget, under a reservation policy (each sequence reserves its slots at admission:
//! the pre-paging baselines of the vLLM paper, section 6: `max_len` for every request, the next
//! power of two of its true length, Orca(Pow2), or exactly its true length, Orca(Oracle)) or a
//! paged one (blocks on demand from a [`BlockPool`], admission keeping a watermark of free blocks
//! as vLLM does).
//!
//! Every step admits what has arrived and fits at the head of the queue, then each running
//! sequence generates one token. A paged sequence that cannot get a block preempts the most
//! recently admitted sequence, which is requeued and later recomputed: its prompt and the tokens
//! it had generated are prefilled again (vLLM's recompute policy). A step takes the time the
//! caller's cost function gives it (decode of the batch, plus the prefill of what was admitted),
//! which drives arrivals and yields the trace's throughput.

use infermark_models::kv_cache::{BlockPool, SeqId};

/// One request: prompt tokens, then generated tokens, arriving `arrival` seconds after the trace
/// starts (0: waiting at the start).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    pub prompt: usize,
    pub output: usize,
    pub arrival: f64,
}

impl Request {
    /// A request waiting at the start of the trace.
    pub fn queued(prompt: usize, output: usize) -> Self {
        Request {
            prompt,
            output,
            arrival: 0.0,
        }
    }
}

/// How many token slots a reservation policy holds for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// `max_len` slots for every request (what a server without knowledge of lengths must do).
    MaxLen(usize),
    /// The next power of two of the request's true length (Orca(Pow2)).
    Pow2,
    /// Exactly the request's true length (Orca(Oracle): knows every output length in advance).
    Oracle,
}

impl Reservation {
    /// Slots reserved for `r`.
    pub fn tokens(self, r: &Request) -> usize {
        match self {
            Reservation::MaxLen(n) => n,
            Reservation::Pow2 => (r.prompt + r.output).next_power_of_two(),
            Reservation::Oracle => r.prompt + r.output,
        }
    }
}

/// How KV memory is reserved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// Slots reserved at admission for the whole request.
    Reserve(Reservation),
    /// Blocks of `block_size` tokens allocated as sequences grow; a request is admitted only if
    /// its prompt's blocks leave at least `watermark` (a fraction of all blocks) free.
    Paged { block_size: usize, watermark: f64 },
}

/// Memory state after one step's admissions (before its tokens are generated).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// Token slots reserved.
    pub reserved: usize,
    /// Token slots holding live tokens.
    pub used: usize,
    /// Sequences resident.
    pub running: usize,
    /// Tokens prefilled by this step's admissions (recomputation included).
    pub prefilled: usize,
}

/// Summary of a simulated trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Every step.
    pub steps: Vec<Step>,
    /// 1 − used / reserved, averaged over steps with anything reserved.
    pub fragmentation_mean: f64,
    /// 1 − used / reserved at the peak of reserved memory, averaged over every step that reaches
    /// the peak, so no policy is judged at the one step that happens to favour it.
    pub fragmentation_at_peak: f64,
    /// Most sequences resident at once.
    pub max_concurrent: usize,
    /// Most token slots reserved at once.
    pub reserved_peak: usize,
    /// Most live tokens at once.
    pub used_peak: usize,
    /// Preemptions (paged only).
    pub preemptions: usize,
    /// Tokens prefilled again after preemption.
    pub recomputed_tokens: usize,
    /// Tokens generated (the trace's outputs, each once).
    pub generated: usize,
    /// Simulated seconds from the start of the trace to its last token.
    pub seconds: f64,
    /// Blocks still held at the end (paged; 0 after a whole trace).
    pub blocks_leaked: usize,
}

/// Why a trace cannot be simulated; names the request or budget at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error("request {index} needs {need} tokens, more than max_len {max_len}")]
    TooLong {
        index: usize,
        need: usize,
        max_len: usize,
    },
    #[error("KV budget of {budget} tokens cannot hold request {index} alone ({need} tokens)")]
    BudgetTooSmall {
        index: usize,
        need: usize,
        budget: usize,
    },
    #[error("request {index}: arrival `{arrival}` is not a finite number of seconds ≥ 0")]
    Arrival { index: usize, arrival: String },
    #[error("invalid policy: {0}")]
    Policy(String),
}

struct Running {
    index: usize,
    len: usize,
    seq: Option<SeqId>,
}

/// Refuses requests no policy run could finish.
fn check(trace: &[Request], policy: Policy, budget: usize) -> Result<(), SimError> {
    for (index, r) in trace.iter().enumerate() {
        let need = r.prompt + r.output;
        if !(r.arrival.is_finite() && r.arrival >= 0.0) {
            return Err(SimError::Arrival {
                index,
                arrival: r.arrival.to_string(),
            });
        }
        match policy {
            Policy::Reserve(Reservation::MaxLen(max_len)) if need > max_len => {
                return Err(SimError::TooLong {
                    index,
                    need,
                    max_len,
                })
            }
            Policy::Reserve(rule) if rule.tokens(r) > budget => {
                return Err(SimError::BudgetTooSmall {
                    index,
                    need: rule.tokens(r),
                    budget,
                })
            }
            Policy::Paged {
                block_size,
                watermark,
            } => {
                let blocks = budget / block_size.max(1);
                let keep = (watermark * blocks as f64).ceil() as usize;
                // Alone, above the watermark, it must fit whole: a recomputed sequence is
                // readmitted with everything it had generated.
                if need.div_ceil(block_size.max(1)) + keep > blocks {
                    return Err(SimError::BudgetTooSmall {
                        index,
                        need,
                        budget,
                    });
                }
            }
            _ => {}
        }
    }
    if let Policy::Paged { watermark, .. } = policy {
        if !(0.0..1.0).contains(&watermark) {
            return Err(SimError::Policy(format!(
                "watermark {watermark} must be a fraction in [0, 1)"
            )));
        }
    }
    Ok(())
}

/// Simulates `trace` under `policy` with `budget` token slots of KV memory; a step that decodes
/// `batch` sequences after prefilling `prefilled` tokens takes `cost(batch, prefilled)` seconds.
pub fn simulate(
    trace: &[Request],
    policy: Policy,
    budget: usize,
    cost: &dyn Fn(usize, usize) -> f64,
) -> Result<Outcome, SimError> {
    let mut pool = match policy {
        Policy::Paged { block_size, .. } => Some(
            BlockPool::new(budget / block_size.max(1), block_size)
                .map_err(|e| SimError::Policy(e.to_string()))?,
        ),
        Policy::Reserve(_) => None,
    };
    check(trace, policy, budget)?;
    let keep = match (&pool, policy) {
        (Some(p), Policy::Paged { watermark, .. }) => {
            (watermark * p.total_blocks() as f64).ceil() as usize
        }
        _ => 0,
    };
    let mut queue: std::collections::VecDeque<usize> = (0..trace.len()).collect();
    let mut generated = vec![0usize; trace.len()];
    let mut preempted = vec![false; trace.len()];
    let mut running: Vec<Running> = Vec::new();
    let mut steps = Vec::new();
    let (mut preemptions, mut recomputed, mut clock) = (0, 0, 0f64);
    let mut reserved_slots = 0usize;
    while !queue.is_empty() || !running.is_empty() {
        // Admit from the head of the queue while the next request has arrived and fits.
        let mut prefilled = 0;
        while let Some(&index) = queue.front() {
            let r = trace[index];
            if r.arrival > clock {
                break;
            }
            // A recomputed sequence prefills its prompt and what it had generated.
            let len = r.prompt + generated[index];
            let seq = match (&mut pool, policy) {
                (None, Policy::Reserve(rule)) => {
                    if reserved_slots + rule.tokens(&r) > budget {
                        break;
                    }
                    reserved_slots += rule.tokens(&r);
                    None
                }
                (Some(pool), _) => {
                    // The prefilled tokens and the next one must fit above the watermark.
                    if pool.blocks_for(len + 1) + keep > pool.free_blocks() {
                        break;
                    }
                    let s = pool.add_sequence();
                    pool.append(s, len).expect("checked free blocks");
                    Some(s)
                }
                _ => unreachable!("pool exists exactly for the paged policy"),
            };
            queue.pop_front();
            prefilled += len;
            if preempted[index] {
                recomputed += len;
            }
            running.push(Running { index, len, seq });
        }
        if running.is_empty() {
            // Nothing resident: wait for the next arrival (admission of an arrived request into
            // an empty pool cannot fail: `check` made sure each fits alone).
            match queue.front() {
                Some(&i) if trace[i].arrival > clock => {
                    clock = trace[i].arrival;
                    continue;
                }
                _ => unreachable!("an arrived request always fits an empty pool"),
            }
        }
        let (reserved, used) = match &pool {
            None => (reserved_slots, running.iter().map(|s| s.len).sum()),
            Some(pool) => (pool.slots_reserved(), pool.slots_used()),
        };
        steps.push(Step {
            reserved,
            used,
            running: running.len(),
            prefilled,
        });

        // Generate one token for each running sequence, oldest first.
        let batch = running.len();
        let mut i = 0;
        while i < running.len() {
            if let Some(pool) = &mut pool {
                let seq = running[i].seq.expect("paged sequences have a pool id");
                let mut preempted_self = false;
                while pool.append(seq, 1).is_err() {
                    // Preempt the most recently admitted sequence (possibly this one) and
                    // recompute it later. Alone, a sequence always fits: the budget was checked.
                    let victim = running.len() - 1;
                    let v = running.remove(victim);
                    pool.free(v.seq.expect("paged")).expect("resident");
                    queue.push_front(v.index);
                    preempted[v.index] = true;
                    preemptions += 1;
                    if victim == i {
                        preempted_self = true;
                        break;
                    }
                }
                if preempted_self {
                    continue;
                }
            }
            let s = &mut running[i];
            s.len += 1;
            generated[s.index] += 1;
            if generated[s.index] == trace[s.index].output {
                match (&mut pool, s.seq, policy) {
                    (Some(pool), Some(seq), _) => pool.free(seq).expect("resident"),
                    (None, _, Policy::Reserve(rule)) => {
                        reserved_slots -= rule.tokens(&trace[s.index])
                    }
                    _ => unreachable!(),
                }
                running.remove(i);
            } else {
                i += 1;
            }
        }
        clock += cost(batch, prefilled);
    }
    let frag = |s: &Step| {
        if s.reserved == 0 {
            None
        } else {
            Some(1.0 - s.used as f64 / s.reserved as f64)
        }
    };
    let fr: Vec<f64> = steps.iter().filter_map(frag).collect();
    let reserved_peak = steps.iter().map(|s| s.reserved).max().unwrap_or(0);
    let tied: Vec<f64> = steps
        .iter()
        .filter(|s| s.reserved == reserved_peak)
        .filter_map(frag)
        .collect();
    let at_peak = (!tied.is_empty()).then(|| tied.iter().sum::<f64>() / tied.len() as f64);
    Ok(Outcome {
        fragmentation_mean: if fr.is_empty() {
            0.0
        } else {
            fr.iter().sum::<f64>() / fr.len() as f64
        },
        fragmentation_at_peak: at_peak.unwrap_or(0.0),
        max_concurrent: steps.iter().map(|s| s.running).max().unwrap_or(0),
        reserved_peak,
        used_peak: steps.iter().map(|s| s.used).max().unwrap_or(0),
        preemptions,
        recomputed_tokens: recomputed,
        generated: generated.iter().sum(),
        seconds: clock,
        blocks_leaked: pool
            .map(|p| p.total_blocks() - p.free_blocks())
            .unwrap_or(0),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_COST: &dyn Fn(usize, usize) -> f64 = &|_, _| 0.0;

    fn trace() -> Vec<Request> {
        [(5, 3), (17, 2), (8, 8), (30, 1)]
            .map(|(prompt, output)| Request::queued(prompt, output))
            .to_vec()
    }

    fn paged(block_size: usize) -> Policy {
        Policy::Paged {
            block_size,
            watermark: 0.0,
        }
    }

    #[test]
    fn fragmentation_matches_the_closed_forms_with_all_requests_resident() {
        let t = trace();
        let lens: Vec<usize> = t.iter().map(|r| r.prompt).collect();
        // Slots reserved for (5+3, 17+2, 8+8, 30+1)-token requests: 64 each; the next powers
        // of two 8, 32, 16, 32; the true lengths 8, 19, 16, 31.
        for (rule, reserved) in [
            (Reservation::MaxLen(64), 4 * 64),
            (Reservation::Pow2, 8 + 32 + 16 + 32),
            (Reservation::Oracle, 8 + 19 + 16 + 31),
        ] {
            let c = simulate(&t, Policy::Reserve(rule), 1 << 20, NO_COST).unwrap();
            assert_eq!(c.steps[0].running, 4, "{rule:?}");
            assert_eq!(
                (c.steps[0].reserved, c.steps[0].used),
                (reserved, lens.iter().sum()),
                "{rule:?}"
            );
        }
        for b in [8, 16] {
            let p = simulate(&t, paged(b), 1 << 20, NO_COST).unwrap();
            let slots: usize = lens.iter().map(|l| l.div_ceil(b) * b).sum();
            let waste: usize = lens.iter().map(|l| l.div_ceil(b) * b - l).sum();
            let s = p.steps[0];
            assert_eq!(
                (s.reserved, s.reserved - s.used),
                (slots, waste),
                "block size {b}"
            );
        }
    }

    #[test]
    fn fragmentation_at_the_peak_averages_every_step_tied_at_the_peak() {
        // Two requests reserve 8 slots each (16 = the peak) for all 4 steps, holding 2+2, 3+3,
        // 4+4 and 5+5 live tokens: waste 0.75, 0.625, 0.5, 0.375 (the first step alone would
        // say 0.75).
        let t = vec![Request::queued(2, 4), Request::queued(2, 4)];
        let o = simulate(&t, Policy::Reserve(Reservation::MaxLen(8)), 16, NO_COST).unwrap();
        assert_eq!(o.steps.len(), 4);
        assert_eq!(o.fragmentation_at_peak, (0.75 + 0.625 + 0.5 + 0.375) / 4.0);
    }

    #[test]
    fn every_block_is_back_in_the_pool_after_a_whole_trace() {
        // A budget of 48 slots forces queueing.
        let p = simulate(&trace(), paged(8), 48, NO_COST).unwrap();
        assert_eq!(p.blocks_leaked, 0);
        assert!(p.reserved_peak <= 48);
        assert_eq!(p.generated, trace().iter().map(|r| r.output).sum::<usize>());
    }

    #[test]
    fn a_preempted_sequence_is_recomputed_with_what_it_had_generated() {
        // Blocks of 8, 4 of them. A (prompt 8, 12 out) and B (prompt 6, 16 out) are admitted
        // with one block each; A takes a second block at its 1st token, B at its 3rd. At step
        // 9, A needs a third block and none is free: B (the newest) is preempted after 8
        // tokens, and readmitted when A finishes, prefilling 6 + 8 = 14 tokens.
        let t = vec![Request::queued(8, 12), Request::queued(6, 16)];
        let o = simulate(&t, paged(8), 32, NO_COST).unwrap();
        assert_eq!(o.preemptions, 1);
        assert_eq!(o.recomputed_tokens, 14);
        let prefilled: usize = o.steps.iter().map(|s| s.prefilled).sum();
        assert_eq!(prefilled, 8 + 6 + 14);
        assert_eq!(o.generated, 28);
    }

    #[test]
    fn the_watermark_keeps_blocks_free_at_admission() {
        // 10 blocks of 8; a 16-token prompt holds 2 blocks and is admitted only if its prompt
        // and first token (3 blocks) fit above the watermark: 4 admitted without one (free
        // 10, 8, 6, 4), 3 when 2 blocks must stay free.
        let t: Vec<Request> = (0..8).map(|_| Request::queued(16, 1)).collect();
        let none = simulate(&t, paged(8), 80, NO_COST).unwrap();
        let kept = simulate(
            &t,
            Policy::Paged {
                block_size: 8,
                watermark: 0.2,
            },
            80,
            NO_COST,
        )
        .unwrap();
        assert_eq!(none.steps[0].running, 4);
        assert_eq!(kept.steps[0].running, 3);
    }

    #[test]
    fn the_clock_charges_each_step_and_waits_for_arrivals() {
        let t = vec![
            Request::queued(2, 2),
            Request {
                prompt: 3,
                output: 1,
                arrival: 10.0,
            },
        ];
        // 1 s per decode step plus 0.5 s per prefilled token.
        let cost = |batch: usize, prefilled: usize| {
            assert!(batch >= 1);
            1.0 + 0.5 * prefilled as f64
        };
        let o = simulate(&t, Policy::Reserve(Reservation::Oracle), 100, &cost).unwrap();
        // Step 1: prefill 2 + decode (2 s), step 2: decode (1 s); idle until 10; step 3:
        // prefill 3 + decode (2.5 s).
        assert_eq!(o.seconds, 12.5);
        assert_eq!(o.steps.len(), 3);
    }

    #[test]
    fn too_small_a_budget_or_too_long_a_request_is_an_error() {
        let t = trace();
        assert_eq!(
            simulate(&t, Policy::Reserve(Reservation::MaxLen(16)), 1000, NO_COST).unwrap_err(),
            SimError::TooLong {
                index: 1,
                need: 19,
                max_len: 16
            }
        );
        assert_eq!(
            simulate(&t, paged(8), 24, NO_COST).unwrap_err(),
            SimError::BudgetTooSmall {
                index: 3,
                need: 31,
                budget: 24
            }
        );
        assert_eq!(
            simulate(&t, Policy::Reserve(Reservation::Pow2), 31, NO_COST).unwrap_err(),
            SimError::BudgetTooSmall {
                index: 1,
                need: 32,
                budget: 31
            }
        );
        assert!(matches!(
            simulate(&t, paged(12), 100, NO_COST),
            Err(SimError::Policy(_))
        ));
        let mut late = trace();
        late[2].arrival = f64::NAN;
        assert!(matches!(
            simulate(&late, paged(8), 100, NO_COST),
            Err(SimError::Arrival { index: 2, .. })
        ));
    }

    #[test]
    fn paging_admits_more_sequences_than_reservation_under_one_budget() {
        let t: Vec<Request> = (0..32)
            .map(|i| Request::queued(20 + i % 7, 10 + i % 5))
            .collect();
        let c = simulate(&t, Policy::Reserve(Reservation::MaxLen(256)), 1024, NO_COST).unwrap();
        let p = simulate(&t, paged(16), 1024, NO_COST).unwrap();
        let o = simulate(&t, Policy::Reserve(Reservation::Oracle), 1024, NO_COST).unwrap();
        assert_eq!(c.max_concurrent, 4);
        assert!(
            p.max_concurrent > 4 * c.max_concurrent,
            "{} vs {}",
            p.max_concurrent,
            c.max_concurrent
        );
        assert!(p.fragmentation_mean < c.fragmentation_mean);
        // The oracle reserves no more than each request's true length.
        assert!(o.max_concurrent > c.max_concurrent);
    }
}
