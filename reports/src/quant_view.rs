//! Views of the quantization suite: bits per weight against perplexity change and against KL
//! divergence (one labelled point per format), and a speed table (each format beside FP32).

use crate::charts::{scatter, Chart};
use crate::format::{cell, ratio};
use crate::machine_limit::{fraction, limit_note, machine_limit};
use crate::metrics::{self, Metric};
use crate::pivot::{header, Pivot};
use crate::section::SuiteSection;
use crate::select::headline;
use crate::Result;
use infermark_suites::{quantization, Record};

const SUITE: &str = quantization::NAME;

/// The quantization suite's part of the report: the trade-off charts and the speed table.
pub struct QuantizationSection;

impl SuiteSection for QuantizationSection {
    fn suite(&self) -> &'static str {
        SUITE
    }

    fn charts(&self, records: &[Record]) -> Result<Vec<Chart>> {
        tradeoff_charts(records)
    }

    fn pivots(&self, records: &[Record]) -> Vec<Pivot> {
        accuracy_tables(records)
            .into_iter()
            .chain(speed_table(records))
            .collect()
    }
}

fn value(
    records: &[Record],
    variant: &str,
    metric: &Metric,
    want: &[(&str, &str)],
    baseline: bool,
) -> Option<f64> {
    headline(records, SUITE, metric.name, want)
        .into_iter()
        .find(|r| r.variant == variant && r.params.contains_key("baseline") == baseline)
        .map(|r| r.value)
}

fn variants(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in records.iter().filter(|r| r.suite == SUITE) {
        if !v.contains(&r.variant) {
            v.push(r.variant.clone());
        }
    }
    v
}

/// The models the suite scored (`model` param of the accuracy records), in record order.
fn models(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.suite == SUITE && r.metric == metrics::PERPLEXITY_DELTA_PCT.name)
    {
        if let Some(m) = r.params.get("model") {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
    }
    out
}

/// Bits per weight of the whole model (32 / compression) against perplexity change and against
/// mean KL divergence, one point per format, one chart pair per scored model.
pub fn tradeoff_charts(records: &[Record]) -> Result<Vec<Chart>> {
    let mut out = Vec::new();
    for model in models(records) {
        let want = [("model", model.as_str())];
        let (mut ppl, mut kl) = (Vec::new(), Vec::new());
        for v in variants(records) {
            let Some(c) = value(records, &v, &metrics::COMPRESSION_VS_FP32, &want, false) else {
                continue;
            };
            let bits = 32.0 / c;
            if let Some(d) = value(records, &v, &metrics::PERPLEXITY_DELTA_PCT, &want, false) {
                ppl.push((v.clone(), bits, d));
            }
            if let Some(k) = value(records, &v, &metrics::KL_DIVERGENCE_MEAN, &want, false) {
                kl.push((v.clone(), bits, k));
            }
        }
        let x = "bits per weight, whole model (32 / compression)";
        if !ppl.is_empty() {
            let title = format!("perplexity change against bits per weight ({model})");
            out.push(Chart {
                suite: SUITE.into(),
                svg: scatter(&title, x, "perplexity change (%)", &ppl)?,
                title,
            });
        }
        if !kl.is_empty() {
            let title = format!("KL divergence from FP32 against bits per weight ({model})");
            out.push(Chart {
                suite: SUITE.into(),
                svg: scatter(&title, x, "mean KL (nats/token)", &kl)?,
                title,
            });
        }
    }
    Ok(out)
}

/// Per scored model: each format's size against FP32 and against BF16 (where a deployment
/// starts), and its accuracy against the FP32 reference three ways: perplexity change, mean KL
/// divergence of the next-token distributions, top-1 agreement; with the text scored.
pub fn accuracy_tables(records: &[Record]) -> Vec<Pivot> {
    let mut out = Vec::new();
    for model in models(records) {
        let want = [("model", model.as_str())];
        let get = |v: &str, m: &Metric| value(records, v, m, &want, false);
        let mut text = None;
        let mut rows = Vec::new();
        for v in variants(records) {
            let Some(delta) = get(&v, &metrics::PERPLEXITY_DELTA_PCT) else {
                continue;
            };
            text = text.or_else(|| {
                records
                    .iter()
                    .find(|r| {
                        r.suite == SUITE && r.variant == v && r.params.get("model") == Some(&model)
                    })
                    .and_then(|r| r.params.get("text").cloned())
            });
            rows.push(vec![
                v.clone(),
                cell(get(&v, &metrics::COMPRESSION_VS_FP32).map(|c| 32.0 / c)),
                cell(get(&v, &metrics::COMPRESSION_VS_FP32)),
                cell(get(&v, &metrics::COMPRESSION_VS_BF16)),
                cell(get(&v, &metrics::PERPLEXITY)),
                cell(Some(delta)),
                cell(get(&v, &metrics::KL_DIVERGENCE_MEAN)),
                cell(get(&v, &metrics::TOP1_AGREEMENT)),
            ]);
        }
        if rows.is_empty() {
            continue;
        }
        out.push(Pivot {
            title: format!("Size and accuracy: {model}"),
            header: header(&[
                "format",
                "bits/weight",
                "× smaller than FP32",
                "× smaller than BF16",
                metrics::PERPLEXITY.name,
                "perplexity change %",
                "mean KL (nats)",
                "top-1 agreement",
            ]),
            rows,
            note: format!(
                "Scored on `{}` against the FP32 model; BF16 stores 2 bytes per parameter, the usual starting point of a deployment.",
                text.unwrap_or_else(|| "?".into())
            ),
        });
    }
    out
}

/// Per format: decode (1 row) and prefill (many rows) products on the largest layer, beside
/// burn's FP32 product timed alternately, and whole-model decode tokens per second.
pub fn speed_table(records: &[Record]) -> Option<Pivot> {
    let big = records
        .iter()
        .filter(|r| r.suite == SUITE && r.metric == metrics::MATVEC_LATENCY_MS.name)
        .filter_map(|r| r.params.get("shape"))
        .find(|s| !s.starts_with("target"))?
        .clone();
    let prefill_rows = records
        .iter()
        .filter(|r| r.suite == SUITE && r.metric == metrics::MATMUL_LATENCY_MS.name)
        .filter_map(|r| r.params.get("rows"))
        .next()?
        .clone();
    let triad = machine_limit(records, &metrics::TRIAD_GBPS).map(|x| x.0);
    let mut rows = Vec::new();
    for v in variants(records) {
        let mv = value(
            records,
            &v,
            &metrics::MATVEC_LATENCY_MS,
            &[("shape", &big)],
            false,
        );
        let dec = value(records, &v, &metrics::DECODE_TOKENS_PER_S, &[], false);
        if mv.is_none() && dec.is_none() {
            continue;
        }
        let mv_f32 = value(
            records,
            &v,
            &metrics::MATVEC_LATENCY_MS,
            &[("shape", &big)],
            true,
        );
        let mm = value(
            records,
            &v,
            &metrics::MATMUL_LATENCY_MS,
            &[("shape", &big)],
            false,
        );
        let mm_f32 = value(
            records,
            &v,
            &metrics::MATMUL_LATENCY_MS,
            &[("shape", &big)],
            true,
        );
        let dec_f32 = value(records, &v, &metrics::DECODE_TOKENS_PER_S, &[], true);
        let gbps = value(
            records,
            &v,
            &metrics::WEIGHT_READ_GBPS,
            &[("shape", &big)],
            false,
        );
        let gbps_f32 = value(
            records,
            &v,
            &metrics::WEIGHT_READ_GBPS,
            &[("shape", &big)],
            true,
        );
        // The activations the matvec row ran with, and the f32-against-int8 pair where the
        // format has integer kernels (timed alternately on the same layer size).
        let acts = records
            .iter()
            .find(|r| {
                r.suite == SUITE
                    && r.variant == v
                    && r.metric == metrics::MATVEC_LATENCY_MS.name
                    && r.params.get("shape") == Some(&big)
                    && !r.params.contains_key("baseline")
            })
            .and_then(|r| r.params.get("activations").cloned())
            .unwrap_or_else(|| "f32".into());
        let by_acts = |a: &str| {
            value(
                records,
                &v,
                &metrics::MATVEC_LATENCY_MS,
                &[("layer", &big), ("activations", a)],
                false,
            )
        };
        let (mv_a32, mv_a8) = (by_acts("f32"), by_acts("int8"));
        rows.push(vec![
            v.clone(),
            acts,
            cell(mv),
            cell(mv_f32),
            ratio(mv_f32, mv),
            cell(gbps),
            fraction(gbps, triad),
            fraction(gbps_f32, triad),
            cell(mm),
            cell(mm_f32),
            ratio(mm_f32, mm),
            cell(dec),
            cell(dec_f32),
            ratio(dec, dec_f32),
            cell(mv_a32),
            cell(mv_a8),
            ratio(mv_a32, mv_a8),
        ]);
    }
    if rows.is_empty() {
        return None;
    }
    Some(Pivot {
        title: format!("Speed: {big} layer and whole-model decode"),
        header: header(&[
            "format",
            "activations",
            "matvec ms",
            "FP32 matvec ms",
            "speedup",
            "matvec weight GB/s",
            "of triad",
            "FP32 of triad",
            &format!("matmul ms ({prefill_rows} rows)"),
            "FP32 matmul ms",
            "speedup",
            "decode tokens/s",
            "FP32 decode tokens/s",
            "ratio",
            "matvec ms, f32 activations",
            "matvec ms, int8 activations",
            "int8 speedup",
        ]),
        rows,
        note: format!("Medians; each format is timed alternately with burn's FP32 product on the same input (A B A B), so the ratios are side by side. Matvec uses the fused dequantize-and-multiply kernel; matmul dequantizes, then multiplies. Weight GB/s: the layer's weight bytes (codes and scales) over the matvec median. Activations: what decode rows multiply the codes with (int8: the input quantized to int8 blocks of 32 once per product and integer dot products, llama.cpp's arithmetic; f32: codes unpacked to f32); the last three columns time the same layer with f32 and with int8 activations alternately. {}", limit_note(records)),
    })
}
