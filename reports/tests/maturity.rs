//! M(P) on hand-made records: S from marginal cost against the suite's reference, C from the
//! spread at adequate n and real accuracy retention, I from outcomes only, and no total unless
//! S, C and I are all measured. Every expected value is computed by hand from the records.

use infermark_reports::maturity::{self, Score, Weights};
use infermark_suites::{Record, Stat};

mod common;
use common::record as rec;

/// Attention layer decode latency of `variant` at `ctx`: median, and min / p90 over `n`.
fn layer(variant: &str, ctx: u32, median: f64, spread: (f64, f64), n: u64) -> Vec<Record> {
    let ctx = ctx.to_string();
    let p = [("preset", "p"), ("part", "layer"), ("ctx", ctx.as_str())];
    vec![
        rec(
            "attention",
            variant,
            "decode_latency_ms",
            median,
            Stat::Median,
            n,
            &p,
        ),
        rec(
            "attention",
            variant,
            "decode_latency_ms",
            spread.0,
            Stat::Min,
            n,
            &p,
        ),
        rec(
            "attention",
            variant,
            "decode_latency_ms",
            spread.1,
            Stat::P90,
            n,
            &p,
        ),
    ]
}

/// A sweep over ctx 64, 128, 256 of cost = a + b·ctx (spread ±10% at n = 30).
fn sweep(variant: &str, a: f64, b: f64) -> Vec<Record> {
    [64u32, 128, 256]
        .iter()
        .flat_map(|&ctx| {
            let y = a + b * f64::from(ctx);
            layer(variant, ctx, y, (0.9 * y, 1.1 * y), 30)
        })
        .collect()
}

fn score<'a>(scores: &'a [Score], suite: &str, technique: &str) -> &'a Score {
    scores
        .iter()
        .find(|s| s.suite == suite && s.technique == technique)
        .unwrap_or_else(|| panic!("no score for {suite}/{technique}: {scores:?}"))
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-12)
}

fn deviation(v: f64) -> Record {
    rec(
        "attention",
        "mla-absorbed",
        "mla_absorbed_vs_naive_max_abs_diff",
        v,
        Stat::Max,
        1,
        &[("preset", "p")],
    )
}

fn measured_bytes(variant: &str, v: f64) -> Record {
    rec(
        "attention",
        variant,
        "kv_cache_bytes_per_token",
        v,
        Stat::Exact,
        1,
        &[("preset", "p"), ("source", "measured")],
    )
}

#[test]
fn a_technique_without_s_gets_no_total() {
    // C and I are measured; the latency was timed at one context only, so no slope.
    let mut run = layer("mla-absorbed", 256, 2.0, (1.8, 2.2), 30);
    run.extend(layer("mha", 256, 4.0, (3.8, 4.2), 30));
    run.push(deviation(0.01));
    run.push(measured_bytes("mla-absorbed", 2304.0));
    let scores = maturity::scores(&run, Some(&run), Weights::default());
    let s = score(&scores, "attention", "mla-absorbed");
    assert_eq!(s.s, None, "{:?}", s.inputs);
    assert!(close(s.c, (1.0 - 0.4 / 2.0) * 0.99), "{:?}", s.inputs);
    assert!(close(s.i, 1.0), "{:?}", s.inputs);
    assert_eq!(s.m, None, "{:?}", s.inputs);
    assert_eq!(s.missing, vec!["S"]);
    assert!(
        s.inputs.iter().any(|x| x.contains("M not shown: S")),
        "{:?}",
        s.inputs
    );
}

#[test]
fn a_slower_constant_overhead_does_not_raise_s_and_a_steeper_slope_lowers_it() {
    // MHA: 1 + 0.01·ctx ms. GQA with the same slope 0.005 and a fixed cost of 1 or 3 ms: the
    // same S = 0.01 / (0.01 + 0.005) = 2/3 (the ratio of endpoints gave 0.58 and 0.78).
    let s_of = |a: f64, b: f64| {
        let mut run = sweep("mha", 1.0, 0.01);
        run.extend(sweep("gqa", a, b));
        let scores = maturity::scores(&run, None, Weights::default());
        (
            score(&scores, "attention", "gqa").s,
            score(&scores, "attention", "mha").s,
        )
    };
    let (fast, mha) = s_of(1.0, 0.005);
    let (slow_overhead, _) = s_of(3.0, 0.005);
    assert!(close(fast, 2.0 / 3.0), "{fast:?}");
    assert!(close(slow_overhead, 2.0 / 3.0), "{slow_overhead:?}");
    // Twice MHA's marginal cost: 0.01 / (0.01 + 0.02) = 1/3.
    assert!(close(s_of(1.0, 0.02).0, 1.0 / 3.0));
    // The reference gets no S (not 0.5 or 1 by construction).
    assert_eq!(mha, None);
    // A cost that falls with size (timing noise) measures no marginal cost: no S, not S = 1.
    assert_eq!(s_of(1.0, -0.001).0, None);
}

#[test]
fn predictability_below_the_sample_threshold_is_not_measured() {
    let run = |n: u64| {
        let mut r = layer("mla-absorbed", 64, 1.0, (0.9, 1.2), n);
        r.extend(layer("mla-absorbed", 256, 2.0, (1.8, 3.0), n));
        r.push(deviation(0.0));
        r
    };
    // n = 5: p90 is the maximum; C is not measured rather than 1 − (max − min)/median.
    let few = maturity::scores(&run(5), None, Weights::default());
    let s = score(&few, "attention", "mla-absorbed");
    assert_eq!(s.c, None, "{:?}", s.inputs);
    assert!(
        s.inputs.iter().any(|x| x.contains("n = 5 < 10")),
        "{:?}",
        s.inputs
    );
    let enough = maturity::scores(&run(10), None, Weights::default());
    let s = score(&enough, "attention", "mla-absorbed");
    assert!(close(s.c, 1.0 - (3.0 - 1.8) / 2.0), "{:?}", s.inputs);
}

/// Quantization records: a one-row product over two shapes timed beside burn FP32, perplexity.
fn quant(variant: &str, ppl: f64, per_element_ms: f64) -> Vec<Record> {
    let mut v = Vec::new();
    for (shape, elems) in [("a 100x100", 1e4), ("b 200x300", 6e4)] {
        let p = [("rows", "1"), ("shape", shape)];
        let b = [("rows", "1"), ("shape", shape), ("baseline", "burn-f32")];
        let y = 0.5 + per_element_ms * elems;
        v.push(rec(
            "quantization",
            variant,
            "matvec_latency_ms",
            y,
            Stat::Median,
            20,
            &p,
        ));
        v.push(rec(
            "quantization",
            variant,
            "matvec_latency_ms",
            0.9 * y,
            Stat::Min,
            20,
            &p,
        ));
        v.push(rec(
            "quantization",
            variant,
            "matvec_latency_ms",
            1.2 * y,
            Stat::P90,
            20,
            &p,
        ));
        // burn FP32: 1e-5 ms per element, timed alternately with the variant.
        let f = 0.1 + 1e-5 * elems;
        v.push(rec(
            "quantization",
            variant,
            "matvec_latency_ms",
            f,
            Stat::Median,
            20,
            &b,
        ));
    }
    v.push(rec(
        "quantization",
        variant,
        "perplexity",
        ppl,
        Stat::Exact,
        4064,
        &[("model", "target"), ("tokens", "4064")],
    ));
    v
}

#[test]
fn a_quantized_variant_retains_what_its_perplexity_keeps_of_fp32() {
    let mut run = quant("f32", 2.0, 1e-5);
    run.extend(quant("int4-g32", 2.5, 5e-6));
    run.extend(quant("bf16", 1.9, 1e-5));
    let scores = maturity::scores(&run, None, Weights::default());
    let int4 = score(&scores, "quantization", "int4-g32");
    // Retention 2.0 / 2.5 = 0.8; predictability 1 − (1.2 − 0.9) = 0.7 at the largest shape.
    assert!(close(int4.c, 0.7 * 0.8), "{:?}", int4.inputs);
    // S from the slope per element against burn FP32's beside it: 1e-5 / (1e-5 + 5e-6).
    assert!(close(int4.s, 2.0 / 3.0), "{:?}", int4.inputs);
    // A better perplexity than FP32 is capped at full retention.
    let bf16 = score(&scores, "quantization", "bf16");
    assert!(close(bf16.c, 0.7), "{:?}", bf16.inputs);
    // FP32 is the reference: its retention, and so its C, is not measured.
    let f32 = score(&scores, "quantization", "f32");
    assert_eq!(f32.c, None, "{:?}", f32.inputs);
    assert!(
        f32.inputs
            .iter()
            .any(|x| x.contains("f32 is the perplexity reference")),
        "{:?}",
        f32.inputs
    );
}

#[test]
fn speculative_s_reads_the_verify_cost_slope_in_plain_decoding_steps() {
    let v = |gamma: &str, x: f64| {
        rec(
            "speculative",
            "draft",
            "verify_cost_ratio",
            x,
            Stat::Median,
            5,
            &[
                ("gamma", gamma),
                ("target", "target"),
                ("workload", "stories"),
            ],
        )
    };
    let run = [v("2", 1.5), v("4", 1.9)];
    let s = &maturity::scores(&run, None, Weights::default())[0];
    // Slope 0.2 target steps per drafted token against plain decoding's 1: S = 1 / 1.2.
    assert!(close(s.s, 1.0 / 1.2), "{:?}", s.inputs);
    // Medians only: no spread, so C is not measured.
    assert_eq!(s.c, None);
}

#[test]
fn iterability_ignores_closed_form_records() {
    let analytic = |v: f64| {
        rec(
            "attention",
            "mla-absorbed",
            "kv_cache_bytes_per_token",
            v,
            Stat::Exact,
            1,
            &[("preset", "p"), ("source", "analytic")],
        )
    };
    let flops = |v: f64| {
        rec(
            "attention",
            "mla-absorbed",
            "flops_per_token",
            v,
            Stat::Exact,
            1,
            &[("preset", "p")],
        )
    };
    let run = vec![
        analytic(2304.0),
        flops(5.0),
        measured_bytes("mla-absorbed", 2304.0),
    ];
    // The closed-form values differ from the baseline, the measured bytes are identical: only
    // the measured record counts, so I = 1 of 1 (all three counted gave 1/3).
    let base = vec![
        analytic(1152.0),
        flops(6.0),
        measured_bytes("mla-absorbed", 2304.0),
    ];
    let s = &maturity::scores(&run, Some(&base), Weights::default())[0];
    assert!(close(s.i, 1.0), "{:?}", s.inputs);
    assert!(
        s.inputs.iter().any(|x| x.contains("I = 1 of 1")),
        "{:?}",
        s.inputs
    );
    // A changed measured record lowers it.
    let mut moved = base.clone();
    moved[2].value = 1152.0;
    let s = &maturity::scores(&run, Some(&moved), Weights::default())[0];
    assert!(close(s.i, 0.0), "{:?}", s.inputs);
    // Closed-form records alone, identical to themselves, measure nothing.
    let only = vec![analytic(2304.0), flops(5.0)];
    let s = &maturity::scores(&only, Some(&only), Weights::default())[0];
    assert_eq!(s.i, None, "{:?}", s.inputs);
}

#[test]
fn m_is_the_weighted_mean_when_all_three_parts_are_measured() {
    let mut run = sweep("mha", 1.0, 0.01);
    run.extend(sweep("mla-absorbed", 2.0, 0.0025));
    run.push(deviation(0.01));
    run.push(measured_bytes("mla-absorbed", 2304.0));
    let mut base = run.clone();
    base.push(deviation(0.02));
    base.retain(|r| !(r.metric == "mla_absorbed_vs_naive_max_abs_diff" && r.value == 0.01));
    let w = Weights {
        s: 1.0,
        c: 1.0,
        i: 2.0,
    };
    let scores = maturity::scores(&run, Some(&base), w);
    let s = score(&scores, "attention", "mla-absorbed");
    // S = 0.01 / (0.01 + 0.0025) = 0.8; C = (1 − 0.2·y/y) · 0.99 = 0.792; I = 1 of 2.
    let (es, ec, ei) = (0.8, 0.8 * 0.99, 0.5);
    assert!(close(s.s, es) && close(s.c, ec) && close(s.i, ei), "{s:?}");
    assert!(close(s.m, (es + ec + 2.0 * ei) / 4.0), "{s:?}");
    assert!(s.missing.is_empty());
}

#[test]
fn weights_parse_and_reject_bad_input() {
    assert_eq!(
        "1,2,3".parse::<Weights>().unwrap(),
        Weights {
            s: 1.0,
            c: 2.0,
            i: 3.0
        }
    );
    for bad in ["1,2", "1,-2,3", "0,0,0", "a,b,c"] {
        let e = bad.parse::<Weights>().unwrap_err();
        assert!(e.contains(bad), "{e}");
    }
}

#[test]
fn attention_retention_comes_from_the_twins_trained_alike_and_mqa_has_none() {
    // The lm suite's decoders trained alike: MHA 2.0, GQA 2.5, MLA 1.9 perplexity.
    let ppl = |twin: &str, v: f64| {
        rec(
            "lm",
            twin,
            "valid_perplexity",
            v,
            Stat::Exact,
            1000,
            &[("tokens", "1000")],
        )
    };
    let mut records = vec![
        ppl("target-mha", 2.0),
        ppl("target", 2.5),
        ppl("target-mla", 1.9),
    ];
    for v in ["mha", "gqa", "mqa", "mla-absorbed"] {
        records.extend(sweep(v, 1.0, 0.01));
    }
    let scores = maturity::scores(&records, None, Weights::default());
    let inputs = |t: &str| score(&scores, "attention", t).inputs.join(" · ");
    // GQA: 2.0 / 2.5 = 0.8; predictability at ctx 256 = 1 − 0.2 = 0.8; C = 0.64.
    let gqa = score(&scores, "attention", "gqa");
    assert!(
        (gqa.c.unwrap() - 0.8 * 0.8).abs() < 1e-12,
        "{}",
        inputs("gqa")
    );
    assert!(
        inputs("gqa").contains("target valid_perplexity"),
        "{}",
        inputs("gqa")
    );
    // MLA: better than MHA, capped at 1; C = predictability.
    let mla = score(&scores, "attention", "mla-absorbed");
    assert!(
        (mla.c.unwrap() - 0.8).abs() < 1e-12,
        "{}",
        inputs("mla-absorbed")
    );
    // MQA has no twin; MHA is the reference.
    assert_eq!(score(&scores, "attention", "mqa").c, None);
    assert!(inputs("mqa").contains("no twin"), "{}", inputs("mqa"));
    assert!(
        inputs("mha").contains("mha is the valid_perplexity reference"),
        "{}",
        inputs("mha")
    );
}

#[test]
fn adacot_sweeps_each_gate_setting_alone_against_always_thinking() {
    // Response tokens over digits 1..3 on the balanced mix: always 10 + 20·d, the learned gate
    // at λ 0.5 2 + 10·d and at λ 1 2 + 5·d, a confidence gate 5 + 10·d; spread at 3 digits
    // min = 0.5·median, p90 = 1.5·median over 100 problems.
    let toks = |variant: &str, setting: Option<(&str, &str)>, d: u32, median: f64| {
        let d = d.to_string();
        let mut p = vec![("workload", "balanced"), ("digits", d.as_str())];
        p.extend(setting);
        [
            (Stat::Median, median),
            (Stat::Min, 0.5 * median),
            (Stat::P90, 1.5 * median),
        ]
        .map(|(st, v)| rec("adacot", variant, "response_tokens", v, st, 100, &p))
    };
    let mut records = Vec::new();
    for d in 1..=3u32 {
        let x = f64::from(d);
        records.extend(toks("always", None, d, 10.0 + 20.0 * x));
        records.extend(toks("learned", Some(("lambda", "0.5")), d, 2.0 + 10.0 * x));
        records.extend(toks("learned", Some(("lambda", "1")), d, 2.0 + 5.0 * x));
        records.extend(toks("confidence", Some(("tau", "0.5")), d, 5.0 + 10.0 * x));
    }
    let scores = maturity::scores(&records, None, Weights::default());
    // λ 0.5: 20 / (20 + 10) = 2/3; λ 1: 20 / 25 = 0.8; mean 0.7333.
    let learned = score(&scores, "adacot", "learned");
    assert!(
        (learned.s.unwrap() - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12,
        "{:?}",
        learned.inputs
    );
    assert!(
        learned.inputs.iter().any(|x| x.starts_with("S[lambda=1]")),
        "{:?}",
        learned.inputs
    );
    let conf = score(&scores, "adacot", "confidence");
    assert!(
        (conf.s.unwrap() - 2.0 / 3.0).abs() < 1e-12,
        "{:?}",
        conf.inputs
    );
    assert!(
        conf.inputs.iter().any(|x| x.starts_with("S[tau=0.5]")),
        "{:?}",
        conf.inputs
    );
    // Predictability at 3 digits: 1 − (1.5 − 0.5) = 0 for every gate.
    assert!(learned
        .inputs
        .iter()
        .any(|x| x.starts_with("predictability[lambda=0.5] = ")));
}

#[test]
fn outcome_records_are_the_deterministic_outcomes_without_samples() {
    let mut timed = rec(
        "attention",
        "gqa",
        "decode_latency_ms",
        1.0,
        Stat::Median,
        3,
        &[],
    );
    timed.samples = vec![1.0, 0.9, 1.1];
    let mut measured = rec(
        "attention",
        "gqa",
        "kv_cache_bytes_per_token",
        64.0,
        Stat::Exact,
        1,
        &[("source", "measured")],
    );
    measured.samples = vec![64.0];
    let analytic = rec(
        "attention",
        "gqa",
        "kv_cache_bytes_per_token",
        64.0,
        Stat::Exact,
        1,
        &[("source", "analytic")],
    );
    let flops = rec(
        "attention",
        "gqa",
        "flops_per_token",
        1e6,
        Stat::Exact,
        1,
        &[],
    );
    let out = maturity::outcome_records(&[timed, measured.clone(), analytic, flops]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].params, measured.params);
    assert!(out[0].samples.is_empty());
}
