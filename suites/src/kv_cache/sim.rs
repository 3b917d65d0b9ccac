//! Trace-driven KV memory simulation: first-come-first-served admission of a request trace into
//! a fixed KV budget, under a contiguous policy (reserve `max_len` tokens per sequence at
//! admission, the pre-paging baseline of Orca-style servers) or a paged one (blocks on demand from
//! a [`BlockPool`]). Every step admits what fits at the head of the queue, then each running
//! sequence generates one token; a paged sequence that cannot get a block preempts the most
//! recently admitted sequence, which is requeued and recomputed (vLLM's recompute policy).

use infermark_models::kv_cache::{BlockPool, SeqId};

/// One request: prompt tokens, then generated tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub prompt: usize,
    pub output: usize,
}

/// How KV memory is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Reserve `max_len` token slots per sequence at admission.
    Contiguous { max_len: usize },
    /// Blocks of `block_size` tokens allocated as sequences grow.
    Paged { block_size: usize },
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
}

/// Summary of a simulated trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Every step.
    pub steps: Vec<Step>,
    /// 1 − used / reserved, averaged over steps with anything reserved.
    pub fragmentation_mean: f64,
    /// 1 − used / reserved at the step where the most was reserved.
    pub fragmentation_at_peak: f64,
    /// Most sequences resident at once.
    pub max_concurrent: usize,
    /// Most token slots reserved at once.
    pub reserved_peak: usize,
    /// Most live tokens at once.
    pub used_peak: usize,
    /// Preemptions (paged only).
    pub preemptions: usize,
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
    #[error("invalid policy: {0}")]
    Policy(String),
}

struct Running {
    index: usize,
    len: usize,
    generated: usize,
    seq: Option<SeqId>,
}

/// Simulates `trace` under `policy` with `budget` token slots of KV memory.
pub fn simulate(trace: &[Request], policy: Policy, budget: usize) -> Result<Outcome, SimError> {
    let mut pool = match policy {
        Policy::Paged { block_size } => Some(
            BlockPool::new(budget / block_size, block_size)
                .map_err(|e| SimError::Policy(e.to_string()))?,
        ),
        Policy::Contiguous { .. } => None,
    };
    for (index, r) in trace.iter().enumerate() {
        let need = r.prompt + r.output;
        match policy {
            Policy::Contiguous { max_len } if need > max_len => {
                return Err(SimError::TooLong {
                    index,
                    need,
                    max_len,
                })
            }
            Policy::Contiguous { max_len } if max_len > budget => {
                return Err(SimError::BudgetTooSmall {
                    index,
                    need: max_len,
                    budget,
                })
            }
            Policy::Paged { block_size } if need.div_ceil(block_size) * block_size > budget => {
                return Err(SimError::BudgetTooSmall {
                    index,
                    need,
                    budget,
                })
            }
            _ => {}
        }
    }
    let mut queue: std::collections::VecDeque<usize> = (0..trace.len()).collect();
    let mut running: Vec<Running> = Vec::new();
    let mut steps = Vec::new();
    let mut preemptions = 0;
    while !queue.is_empty() || !running.is_empty() {
        // Admit from the head of the queue while the next request fits.
        while let Some(&index) = queue.front() {
            let r = trace[index];
            let admitted = match (&mut pool, policy) {
                (None, Policy::Contiguous { max_len }) => {
                    let reserved = running.len() * max_len;
                    (reserved + max_len <= budget).then_some(None)
                }
                (Some(pool), _) => {
                    // The prompt and the first generated token must fit.
                    if pool.blocks_for(r.prompt + 1) <= pool.free_blocks() {
                        let s = pool.add_sequence();
                        pool.append(s, r.prompt).expect("checked free blocks");
                        Some(Some(s))
                    } else {
                        None
                    }
                }
                _ => unreachable!("pool exists exactly for the paged policy"),
            };
            let Some(seq) = admitted else { break };
            queue.pop_front();
            running.push(Running {
                index,
                len: r.prompt,
                generated: 0,
                seq,
            });
        }
        let (reserved, used) = match (&pool, policy) {
            (None, Policy::Contiguous { max_len }) => {
                (running.len() * max_len, running.iter().map(|s| s.len).sum())
            }
            (Some(pool), _) => (pool.slots_reserved(), pool.slots_used()),
            _ => unreachable!(),
        };
        steps.push(Step {
            reserved,
            used,
            running: running.len(),
        });

        // Generate one token for each running sequence, oldest first.
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
            s.generated += 1;
            if s.generated == trace[s.index].output {
                if let (Some(pool), Some(seq)) = (&mut pool, s.seq) {
                    pool.free(seq).expect("resident");
                }
                running.remove(i);
            } else {
                i += 1;
            }
        }
    }
    let frag = |s: &Step| {
        if s.reserved == 0 {
            None
        } else {
            Some(1.0 - s.used as f64 / s.reserved as f64)
        }
    };
    let fr: Vec<f64> = steps.iter().filter_map(frag).collect();
    let peak = steps
        .iter()
        .enumerate()
        .max_by_key(|(i, s)| (s.reserved, std::cmp::Reverse(*i)))
        .map(|(_, s)| *s);
    Ok(Outcome {
        fragmentation_mean: if fr.is_empty() {
            0.0
        } else {
            fr.iter().sum::<f64>() / fr.len() as f64
        },
        fragmentation_at_peak: peak.and_then(|s| frag(&s)).unwrap_or(0.0),
        max_concurrent: steps.iter().map(|s| s.running).max().unwrap_or(0),
        reserved_peak: steps.iter().map(|s| s.reserved).max().unwrap_or(0),
        used_peak: steps.iter().map(|s| s.used).max().unwrap_or(0),
        preemptions,
        blocks_leaked: pool
            .map(|p| p.total_blocks() - p.free_blocks())
            .unwrap_or(0),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> Vec<Request> {
        [(5, 3), (17, 2), (8, 8), (30, 1)]
            .map(|(prompt, output)| Request { prompt, output })
            .to_vec()
    }

    #[test]
    fn fragmentation_matches_the_closed_forms_with_all_requests_resident() {
        let lens: Vec<usize> = trace().iter().map(|r| r.prompt).collect();
        let max_len = 64;
        let c = simulate(&trace(), Policy::Contiguous { max_len }, 1 << 20).unwrap();
        let want =
            lens.iter().map(|l| (max_len - l) as f64).sum::<f64>() / (lens.len() * max_len) as f64;
        assert_eq!(c.steps[0].running, 4);
        assert!((1.0 - c.steps[0].used as f64 / c.steps[0].reserved as f64 - want).abs() < 1e-12);
        for b in [8, 16] {
            let p = simulate(&trace(), Policy::Paged { block_size: b }, 1 << 20).unwrap();
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
    fn every_block_is_back_in_the_pool_after_a_whole_trace() {
        // A budget of 48 slots forces queueing and preemption.
        let p = simulate(&trace(), Policy::Paged { block_size: 8 }, 48).unwrap();
        assert_eq!(p.blocks_leaked, 0);
        assert!(p.reserved_peak <= 48);
        let generated: usize = p.steps.iter().map(|s| s.running).sum();
        assert!(generated >= trace().iter().map(|r| r.output).sum::<usize>());
    }

    #[test]
    fn too_small_a_budget_or_too_long_a_request_is_an_error() {
        let t = trace();
        assert_eq!(
            simulate(&t, Policy::Contiguous { max_len: 16 }, 1000).unwrap_err(),
            SimError::TooLong {
                index: 1,
                need: 19,
                max_len: 16
            }
        );
        assert_eq!(
            simulate(&t, Policy::Paged { block_size: 8 }, 24).unwrap_err(),
            SimError::BudgetTooSmall {
                index: 3,
                need: 31,
                budget: 24
            }
        );
        assert!(matches!(
            simulate(&t, Policy::Paged { block_size: 12 }, 100),
            Err(SimError::Policy(_))
        ));
    }

    #[test]
    fn paging_admits_more_sequences_than_reservation_under_one_budget() {
        let t: Vec<Request> = (0..32)
            .map(|i| Request {
                prompt: 20 + i % 7,
                output: 10 + i % 5,
            })
            .collect();
        let c = simulate(&t, Policy::Contiguous { max_len: 256 }, 1024).unwrap();
        let p = simulate(&t, Policy::Paged { block_size: 16 }, 1024).unwrap();
        assert_eq!(c.max_concurrent, 4);
        assert!(
            p.max_concurrent > 4 * c.max_concurrent,
            "{} vs {}",
            p.max_concurrent,
            c.max_concurrent
        );
        assert!(p.fragmentation_mean < c.fragmentation_mean);
    }
}
