//! Result files. A run directory holds `results.parquet`, `results.ndjson` (one record per line)
//! and `run.json` (the environment). Directories are written atomically: everything goes to a
//! hidden staging directory beside the target, which is renamed into place only when complete.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use infermark_suites::env::RunEnv;
use infermark_suites::{Record, Stat};
use polars::prelude::*;

use crate::{io_err, ReportError, Result};

/// File names inside a run directory.
pub const PARQUET: &str = "results.parquet";
pub const NDJSON: &str = "results.ndjson";
pub const RUN_JSON: &str = "run.json";

/// Fails unless `out` is free (or `force` allows replacing it).
pub fn check_out_dir(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        return Err(ReportError::OutExists(out.to_path_buf()));
    }
    Ok(())
}

/// Writes a run directory atomically. An existing `out` is refused unless `force`.
pub fn write_run(out: &Path, records: &[Record], env: &RunEnv, force: bool) -> Result<()> {
    write_run_as(out, records, env, force)
}

/// [`write_run`] with any `run.json` content that extends [`RunEnv`] (a shard's or a merged
/// run's [`infermark_suites::shard::ShardedEnv`]).
pub fn write_run_as<E: serde::Serialize>(
    out: &Path,
    records: &[Record],
    env: &E,
    force: bool,
) -> Result<()> {
    check_out_dir(out, force)?;
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let result = (|| {
        fs::create_dir_all(&staging).map_err(io_err(&staging))?;
        write_parquet(&staging.join(PARQUET), records)?;
        write_ndjson(&staging.join(NDJSON), records)?;
        let json = serde_json::to_string_pretty(env).map_err(|e| ReportError::Malformed {
            path: staging.join(RUN_JSON),
            reason: e.to_string(),
        })?;
        fs::write(staging.join(RUN_JSON), json + "\n").map_err(io_err(staging.join(RUN_JSON)))?;
        if out.exists() {
            let old = parent.join(format!(".{name}.replaced-{}", std::process::id()));
            fs::rename(out, &old).map_err(io_err(out))?;
            fs::rename(&staging, out).map_err(io_err(out))?;
            fs::remove_dir_all(&old).map_err(io_err(&old))?;
        } else {
            fs::rename(&staging, out).map_err(io_err(out))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Writes `bytes` to `path` atomically (temporary file beside it, then rename).
pub fn write_file_atomic(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(ReportError::OutExists(path.to_path_buf()));
    }
    let tmp = path.with_extension(format!("partial-{}", std::process::id()));
    let result = fs::write(&tmp, bytes)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(io_err(path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_ndjson(path: &Path, records: &[Record]) -> Result<()> {
    let mut f = std::io::BufWriter::new(fs::File::create(path).map_err(io_err(path))?);
    for r in records {
        let line = serde_json::to_string(r).expect("Record serialises");
        writeln!(f, "{line}").map_err(io_err(path))?;
    }
    f.flush().map_err(io_err(path))
}

/// Records as a polars frame, one row per record; `params` as a JSON object string, `samples`
/// as a JSON array string (empty where a record keeps none).
pub fn to_frame(records: &[Record]) -> PolarsResult<DataFrame> {
    let s = |f: fn(&Record) -> &str| records.iter().map(f).collect::<Vec<_>>();
    df!(
        "run_id" => s(|r| &r.run_id),
        "suite" => s(|r| &r.suite),
        "experiment" => s(|r| &r.experiment),
        "variant" => s(|r| &r.variant),
        "backend" => s(|r| &r.backend),
        "device" => s(|r| &r.device),
        "scale" => s(|r| &r.scale),
        "params" => records.iter().map(|r| serde_json::to_string(&r.params).expect("params serialise")).collect::<Vec<_>>(),
        "metric" => s(|r| &r.metric),
        "value" => records.iter().map(|r| r.value).collect::<Vec<_>>(),
        "unit" => s(|r| &r.unit),
        "stat" => records.iter().map(|r| r.stat.name()).collect::<Vec<_>>(),
        "n" => records.iter().map(|r| r.n).collect::<Vec<_>>(),
        "git_rev" => s(|r| &r.git_rev),
        "timestamp" => s(|r| &r.timestamp),
        "samples" => records.iter().map(|r| if r.samples.is_empty() { String::new() } else { serde_json::to_string(&r.samples).expect("samples serialise") }).collect::<Vec<_>>(),
    )
}

fn write_parquet(path: &Path, records: &[Record]) -> Result<()> {
    let perr = |e: PolarsError| ReportError::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut df = to_frame(records).map_err(perr)?;
    let file = fs::File::create(path).map_err(io_err(path))?;
    ParquetWriter::new(file).finish(&mut df).map_err(perr)?;
    Ok(())
}

/// Reads the records of a run directory from its Parquet file.
pub fn read_parquet(path: &Path) -> Result<Vec<Record>> {
    let perr = |e: PolarsError| ReportError::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = fs::File::open(path).map_err(io_err(path))?;
    let df = ParquetReader::new(file).finish().map_err(perr)?;
    let strs = |name: &str| -> PolarsResult<Vec<String>> {
        Ok(df
            .column(name)?
            .str()?
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    };
    let bad = |reason: String| ReportError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let get = |name: &str| strs(name).map_err(perr);
    let (run_id, suite, experiment, variant, backend, device, scale) = (
        get("run_id")?,
        get("suite")?,
        get("experiment")?,
        get("variant")?,
        get("backend")?,
        get("device")?,
        get("scale")?,
    );
    let (params, metric, unit, stat, git_rev, timestamp) = (
        get("params")?,
        get("metric")?,
        get("unit")?,
        get("stat")?,
        get("git_rev")?,
        get("timestamp")?,
    );
    let value: Vec<f64> = df
        .column("value")
        .and_then(|c| {
            c.f64()
                .map(|c| c.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        })
        .map_err(perr)?;
    // Files written before records kept their samples have no such column.
    let samples = match df.column("samples") {
        Ok(_) => get("samples")?,
        Err(_) => vec![String::new(); df.height()],
    };
    let n: Vec<u64> = df
        .column("n")
        .and_then(|c| c.u64().map(|c| c.iter().map(|v| v.unwrap_or(0)).collect()))
        .map_err(perr)?;
    (0..df.height())
        .map(|i| {
            Ok(Record {
                run_id: run_id[i].clone(),
                suite: suite[i].clone(),
                experiment: experiment[i].clone(),
                variant: variant[i].clone(),
                backend: backend[i].clone(),
                device: device[i].clone(),
                scale: scale[i].clone(),
                params: serde_json::from_str(&params[i])
                    .map_err(|e| bad(format!("row {i}: params: {e}")))?,
                metric: metric[i].clone(),
                value: value[i],
                unit: unit[i].clone(),
                stat: serde_json::from_value::<Stat>(serde_json::Value::String(stat[i].clone()))
                    .map_err(|e| bad(format!("row {i}: stat: {e}")))?,
                n: n[i],
                git_rev: git_rev[i].clone(),
                timestamp: timestamp[i].clone(),
                samples: if samples[i].is_empty() {
                    Vec::new()
                } else {
                    serde_json::from_str(&samples[i])
                        .map_err(|e| bad(format!("row {i}: samples: {e}")))?
                },
            })
        })
        .collect()
}

/// Reads the records of an NDJSON file; a malformed line is an error naming its line number.
pub fn read_ndjson(path: &Path) -> Result<Vec<Record>> {
    let f = fs::File::open(path).map_err(io_err(path))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io_err(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(&line).map_err(|e| ReportError::Malformed {
            path: path.to_path_buf(),
            reason: format!("line {}: {e}", i + 1),
        })?;
        out.push(rec);
    }
    Ok(out)
}

/// A run directory read back.
pub struct Run {
    /// Where it was read from.
    pub dir: PathBuf,
    /// Its environment.
    pub env: RunEnv,
    /// Its records.
    pub records: Vec<Record>,
}

/// Reads a run directory (`run.json` and `results.parquet`).
pub fn read_run(dir: &Path) -> Result<Run> {
    if !dir.is_dir() {
        return Err(ReportError::Malformed {
            path: dir.to_path_buf(),
            reason: "not a run directory (expected a folder written by `infermark run`)".into(),
        });
    }
    let env_path = dir.join(RUN_JSON);
    let text = fs::read_to_string(&env_path).map_err(io_err(&env_path))?;
    let env: RunEnv = serde_json::from_str(&text).map_err(|e| ReportError::Malformed {
        path: env_path.clone(),
        reason: e.to_string(),
    })?;
    let records = read_parquet(&dir.join(PARQUET))?;
    Ok(Run {
        dir: dir.to_path_buf(),
        env,
        records,
    })
}
