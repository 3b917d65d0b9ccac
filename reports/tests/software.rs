//! Timings from a software device (wgpu on lavapipe) are refused by claims and M(P), fail
//! closed: the claim's verdict and the score's inputs say "not comparable: software device"
//! where the same records on a real device give a verdict and a number. Deterministic records
//! from the same device still count.

use infermark_reports::maturity::{self, Weights};
use infermark_reports::{claims, software};
use infermark_suites::backend::DeviceInfo;
use infermark_suites::{Record, Stat};

mod common;

/// The record `device` label of lavapipe (software) or of a discrete GPU.
fn label(software: bool) -> String {
    DeviceInfo {
        backend: "wgpu".into(),
        adapter: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
        device_type: if software { "cpu" } else { "discrete-gpu" }.into(),
        driver: "vulkan, llvmpipe, Mesa 22.3.6".into(),
        software,
    }
    .label()
}

fn on(device: &str, mut records: Vec<Record>) -> Vec<Record> {
    for r in &mut records {
        r.device = device.into();
        r.scale = "quick".into();
    }
    records
}

/// MLA absorbed at 10 ms, MHA at 30 ms (n = 10, samples within ±1%): a 3x speedup; and MLA's KV bytes, 93.75%
/// less than MHA's.
fn attention() -> Vec<Record> {
    let lat = |v: &str, ms: f64| {
        let mut r = common::record(
            "attention",
            v,
            "decode_latency_ms",
            ms,
            Stat::Median,
            10,
            &[("preset", "deepseek-v2"), ("part", "layer"), ("ctx", "64")],
        );
        // The ten samples behind the median, ±1%: a 95% interval well clear of 2x.
        r.samples = (0..10)
            .map(|i| ms * (0.99 + 0.002 * f64::from(i)))
            .collect();
        r
    };
    let bytes = |v: &str, b: f64| {
        common::record(
            "attention",
            v,
            "kv_cache_bytes_per_token",
            b,
            Stat::Exact,
            1,
            &[("preset", "deepseek-v2"), ("source", "measured")],
        )
    };
    vec![
        lat("mla-absorbed", 10.0),
        lat("mha", 30.0),
        bytes("mla-absorbed", 2304.0),
        bytes("mha", 36864.0),
    ]
}

fn verdict(records: &[Record], id: &str) -> claims::ClaimVerdict {
    let ledger = claims::parse(claims::LEDGER).unwrap();
    claims::evaluate(&ledger, records)
        .into_iter()
        .find(|c| c.id == id)
        .unwrap()
}

#[test]
fn a_timed_claim_on_a_software_device_is_not_comparable_and_a_byte_claim_still_counts() {
    let gpu = on(&label(false), attention());
    assert_eq!(verdict(&gpu, "mla-speed").verdict, "reproduced");
    assert_eq!(verdict(&gpu, "mla-memory").verdict, "reproduced");

    let soft = on(&label(true), attention());
    let v = verdict(&soft, "mla-speed");
    assert_eq!(v.verdict, software::NOT_COMPARABLE, "{:?}", v.details);
    assert_eq!(v.verdict, "not comparable: software device");
    assert!(v.details[0].contains("llvmpipe"), "{:?}", v.details);
    assert!(!v.figures[0].contains("3.000x"), "{:?}", v.figures);
    assert_eq!(verdict(&soft, "mla-memory").verdict, "reproduced");
}

/// Attention layer latency of `variant` over ctx 64, 128, 256: `a + b·ctx` ms, min and p90
/// ±10% at n = 30.
fn sweep(variant: &str, a: f64, b: f64) -> Vec<Record> {
    [64u32, 128, 256]
        .iter()
        .flat_map(|&ctx| {
            let y = a + b * f64::from(ctx);
            let c = ctx.to_string();
            let p = [("preset", "p"), ("part", "layer"), ("ctx", c.as_str())];
            [
                (Stat::Median, y),
                (Stat::Min, 0.9 * y),
                (Stat::P90, 1.1 * y),
            ]
            .map(|(stat, v)| {
                common::record("attention", variant, "decode_latency_ms", v, stat, 30, &p)
            })
        })
        .collect()
}

#[test]
fn m_p_refuses_s_and_predictability_from_a_software_device() {
    let run = |device: &str| {
        let mut r = sweep("mha", 1.0, 0.01);
        r.extend(sweep("gqa", 1.0, 0.005));
        on(device, r)
    };
    let gqa = |records: &[Record]| {
        maturity::scores(records, None, Weights::default())
            .into_iter()
            .find(|s| s.technique == "gqa")
            .unwrap()
    };
    // A real device: S = 0.01 / (0.01 + 0.005) = 2/3.
    let s = gqa(&run(&label(false)));
    assert!(
        s.s.is_some_and(|x| (x - 2.0 / 3.0).abs() < 1e-12),
        "{:?}",
        s.inputs
    );
    assert!(
        s.inputs
            .iter()
            .any(|x| x.starts_with("predictability[") && x.contains(" = 1 − ")),
        "{:?}",
        s.inputs
    );
    // The same records from lavapipe: no S and no predictability, each saying why.
    let s = gqa(&run(&label(true)));
    assert_eq!(s.s, None, "{:?}", s.inputs);
    assert_eq!(s.m, None, "{:?}", s.inputs);
    for part in ["S", "predictability"] {
        assert!(
            s.inputs
                .iter()
                .any(|x| x.starts_with(part) && x.contains(software::NOT_COMPARABLE)),
            "{part}: {:?}",
            s.inputs
        );
    }
}
