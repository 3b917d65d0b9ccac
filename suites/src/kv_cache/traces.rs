//! Request traces: built-in synthetic ones whose mean lengths match published dataset statistics,
//! and user traces read from CSV.
//!
//! Sources for the built-in means (Kwon et al., "Efficient Memory Management for Large Language
//! Model Serving with PagedAttention", SOSP 2023, section 6.1 and figure 11): ShareGPT has on
//! average 161.31 input and 337.99 output tokens (8.4x longer inputs and 5.8x longer outputs than
//! Alpaca), Alpaca 19.31 input and 58.45 output tokens. Lengths are drawn from a log-normal with
//! σ = 0.8 whose mean matches, clipped to [1, 1024].

use std::path::Path;

use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

use super::sim::Request;

/// A named trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Name used in records (`trace` param).
    pub name: String,
    /// The requests, in arrival order.
    pub requests: Vec<Request>,
}

/// Built-in synthetic traces: (name, mean prompt, mean output); sources in the module docs.
pub const BUILT_IN: [(&str, f64, f64); 2] =
    [("sharegpt", 161.31, 337.99), ("alpaca", 19.31, 58.45)];

const SIGMA: f64 = 0.8;
const MAX_LEN: f64 = 1024.0;

/// A log-normal length distribution (σ = 0.8) whose mean is `mean`.
fn lognormal(mean: f64) -> LogNormal<f64> {
    LogNormal::new(mean.ln() - SIGMA * SIGMA / 2.0, SIGMA).expect("finite parameters")
}

/// The built-in traces with `n` requests each, seeded.
pub fn built_in(n: usize, seed: u64) -> Vec<Trace> {
    BUILT_IN
        .iter()
        .enumerate()
        .map(|(i, &(name, prompt, output))| {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64));
            let (p, o) = (lognormal(prompt), lognormal(output));
            let mut len =
                |d: &LogNormal<f64>| d.sample(&mut rng).round().clamp(1.0, MAX_LEN) as usize;
            let requests = (0..n)
                .map(|_| {
                    let prompt = len(&p);
                    Request::queued(prompt, len(&o))
                })
                .collect();
            Trace {
                name: name.into(),
                requests,
            }
        })
        .collect()
}

/// Reads a CSV trace with the header `prompt_tokens,output_tokens` and optionally a third
/// column `arrival_s` (seconds from the start, non-decreasing; without it every request waits at
/// the start). Whitespace around fields is ignored. Errors name the file and the line at fault.
pub fn read_csv(path: &Path) -> Result<Trace, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let at = |line: u64, why: String| format!("{} line {line}: {why}", path.display());
    let header = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let cols: Vec<&str> = header.iter().collect();
    if cols.is_empty() || cols == [""] {
        return Err(format!(
            "{}: empty file (expected the header `prompt_tokens,output_tokens`)",
            path.display()
        ));
    }
    let arrivals = match cols.as_slice() {
        ["prompt_tokens", "output_tokens"] => false,
        ["prompt_tokens", "output_tokens", "arrival_s"] => true,
        _ => {
            return Err(at(
                1,
                format!(
                    "header `{}`: expected `prompt_tokens,output_tokens` or `prompt_tokens,output_tokens,arrival_s`",
                    cols.join(",")
                ),
            ))
        }
    };
    let mut requests = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| match e.position() {
            Some(p) => at(p.line(), e.to_string()),
            None => format!("{}: {e}", path.display()),
        })?;
        let line = row.position().map_or(0, |p| p.line());
        let count = |i: usize, name: &str| -> Result<usize, String> {
            let f = &row[i];
            match f.parse::<usize>() {
                Ok(v) if v >= 1 => Ok(v),
                _ => Err(at(
                    line,
                    format!("{name} `{f}` is not a whole number of at least 1"),
                )),
            }
        };
        let arrival = if arrivals {
            let f = &row[2];
            match f.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => v,
                _ => {
                    return Err(at(
                        line,
                        format!("arrival_s `{f}` is not a finite number of seconds ≥ 0"),
                    ))
                }
            }
        } else {
            0.0
        };
        if let Some(prev) = requests.last().map(|r: &Request| r.arrival) {
            if arrival < prev {
                return Err(at(
                    line,
                    format!("arrival_s {arrival} is earlier than the row before ({prev}): rows must be in arrival order"),
                ));
            }
        }
        requests.push(Request {
            prompt: count(0, "prompt_tokens")?,
            output: count(1, "output_tokens")?,
            arrival,
        });
    }
    if requests.is_empty() {
        return Err(format!("{}: no requests after the header", path.display()));
    }
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("trace")
        .to_string();
    Ok(Trace { name, requests })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_traces_are_deterministic_and_match_their_means() {
        let (a, b) = (built_in(4000, 7), built_in(4000, 7));
        assert_eq!(a, b);
        for (t, &(_, prompt, output)) in a.iter().zip(&BUILT_IN) {
            let n = t.requests.len() as f64;
            let mp = t.requests.iter().map(|r| r.prompt as f64).sum::<f64>() / n;
            let mo = t.requests.iter().map(|r| r.output as f64).sum::<f64>() / n;
            assert!(
                (mp / prompt - 1.0).abs() < 0.06,
                "{}: prompt mean {mp} vs {prompt}",
                t.name
            );
            assert!(
                (mo / output - 1.0).abs() < 0.06,
                "{}: output mean {mo} vs {output}",
                t.name
            );
        }
    }

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p =
            std::env::temp_dir().join(format!("infermark-trace-{}-{name}.csv", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn csv_traces_parse_and_malformed_rows_name_their_line() {
        let ok = read_csv(&write("ok", "prompt_tokens, output_tokens\n10,5\n\n3, 7\n")).unwrap();
        assert_eq!(
            ok.requests,
            vec![Request::queued(10, 5), Request::queued(3, 7)]
        );
        let e = read_csv(&write("bad", "prompt_tokens,output_tokens\n10,5\n7,x\n")).unwrap_err();
        assert!(
            e.contains("line 3") && e.contains("output_tokens `x`"),
            "{e}"
        );
        let e = read_csv(&write("hdr", "prompt,output\n1,2\n")).unwrap_err();
        assert!(e.contains("line 1") && e.contains("header"), "{e}");
        let e = read_csv(&write("zero", "prompt_tokens,output_tokens\n0,2\n")).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = read_csv(&write("fields", "prompt_tokens,output_tokens\n1,2,3\n")).unwrap_err();
        assert!(e.contains("line 2") && e.contains("3 fields"), "{e}");
        let timed = read_csv(&write(
            "arrival",
            "prompt_tokens,output_tokens,arrival_s\n1,2,0\n4,5,0.25\n",
        ))
        .unwrap();
        assert_eq!(timed.requests[1].arrival, 0.25);
        let e = read_csv(&write(
            "order",
            "prompt_tokens,output_tokens,arrival_s\n1,2,3\n4,5,1\n",
        ))
        .unwrap_err();
        assert!(e.contains("line 3") && e.contains("arrival order"), "{e}");
        let e = read_csv(&write(
            "nan",
            "prompt_tokens,output_tokens,arrival_s\n1,2,NaN\n",
        ))
        .unwrap_err();
        assert!(e.contains("line 2") && e.contains("arrival_s"), "{e}");
        let e = read_csv(&write("empty", "")).unwrap_err();
        assert!(e.contains("empty file"), "{e}");
    }
}
