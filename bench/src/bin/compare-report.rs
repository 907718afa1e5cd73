//! Summarises the result lines `bench/compare.sh` collected: a table of medians with min–max
//! per workload and implementation, ratios against the hand-rolled loop, the Python ancestor
//! and the raw TCP sink where it ran (per round, then their median), and the same as JSON.
//!
//! ```text
//! cargo run --release -p bench --bin compare-report -- RAW.jsonl OUT.json "MACHINE"
//! ```
//!
//! Each input line is a bench result line with three more keys: `round`, `workload` and
//! `impl`. A run that was not verified (or failed) is listed as such and left out.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use serde_json::{Value, json};

/// The implementation the first ratio is taken against.
const BASELINE: &str = "handrolled";
/// The implementation the second ratio is taken against: the Python ancestor, its client
/// against its server.
const ANCESTOR: &str = "ancestor";
/// The third: the ancestor's server alone, driven by the hand-rolled client: what the Python
/// package's server (`python-server`, driven alike) is measured against.
const ANCESTOR_SERVER: &str = "ancestor-server";
/// The fourth: the raw TCP sink, no framing at all (only in the large-body one-way workloads).
const RAW_SINK: &str = "rawtcp";
/// Every reference, in column order: each gives a `×NAME` column and the JSON keys
/// `ratio_vs_NAME` (median) and `ratio_vs_NAME_per_round`; `–` and `null` where it did not run.
const REFERENCES: [&str; 4] = [BASELINE, ANCESTOR, ANCESTOR_SERVER, RAW_SINK];

/// What a workload is judged by: a key of the result line (a JSON pointer), its unit, and
/// whether more is better.
fn metric(workload: &str) -> (&'static str, &'static str, bool) {
    match workload {
        w if w.starts_with("pingpong") => ("/msgs_per_sec", "round trips/s", true),
        w if w.starts_with("fanout") => ("/msgs_per_sec", "deliveries/s", true),
        w if w.starts_with("conns") => ("/rss_per_conn_bytes", "B/conn (lower is better)", false),
        w if w.contains("big") || w.contains("1m") => ("/wire_mb_per_sec", "wire MB/s", true),
        _ => ("/msgs_per_sec", "msgs/s", true),
    }
}

/// Secondary figures shown alongside.
fn extras(workload: &str) -> &'static [(&'static str, &'static str)] {
    if workload.starts_with("pingpong") {
        &[("/latency_us/p50", "p50 µs"), ("/latency_us/p99", "p99 µs")]
    } else if workload.starts_with("conns") {
        &[("/latency_us/p50", "probe p50 µs")]
    } else {
        &[]
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => values.get(n / 2).copied(),
        _ => Some((values.get(n / 2 - 1)? + values.get(n / 2)?) / 2.0),
    }
}

type Key = (String, String);

/// `value / reference` for every round both have, in round order.
fn ratios_per_round(
    rounds: &BTreeMap<u64, f64>,
    reference: Option<&BTreeMap<u64, f64>>,
) -> Vec<f64> {
    rounds
        .iter()
        .filter_map(|(round, v)| {
            let base = reference?.get(round)?;
            (*base > 0.0).then(|| v / base)
        })
        .collect()
}

/// Per reference, in [`REFERENCES`] order: the per-round ratios of `rounds` (an
/// implementation's figures in `workload`) to that reference's, and their median.
fn reference_ratios(
    values: &BTreeMap<Key, BTreeMap<u64, f64>>,
    workload: &str,
    rounds: &BTreeMap<u64, f64>,
) -> Vec<(&'static str, Vec<f64>, Option<f64>)> {
    REFERENCES
        .iter()
        .map(|&reference| {
            let theirs = values.get(&(workload.to_owned(), reference.to_owned()));
            let per_round = ratios_per_round(rounds, theirs);
            let ratio = median(&mut per_round.clone());
            (reference, per_round, ratio)
        })
        .collect()
}

/// A ratio to three significant figures (`165`, `25.6`, `0.16`, `0.0031`).
fn ratio_text(ratio: Option<f64>) -> String {
    match ratio {
        None => "–".to_owned(),
        Some(r) if r >= 100.0 => format!("{r:.0}"),
        Some(r) if r >= 10.0 => format!("{r:.1}"),
        Some(r) if r >= 0.1 => format!("{r:.2}"),
        Some(r) if r >= 0.01 => format!("{r:.3}"),
        Some(r) => format!("{r:.4}"),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(raw_path), Some(out_path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: compare-report RAW.jsonl OUT.json [MACHINE]");
        return ExitCode::from(2);
    };
    let machine = args.get(3).cloned().unwrap_or_default();
    let raw = match std::fs::read_to_string(raw_path) {
        Ok(raw) => raw,
        Err(err) => {
            eprintln!("compare-report: cannot read {raw_path}: {err}");
            return ExitCode::from(2);
        }
    };
    // (workload, impl) → round → value; plus the extras.
    let mut values: BTreeMap<Key, BTreeMap<u64, f64>> = BTreeMap::new();
    let mut extra_values: BTreeMap<(Key, &'static str), Vec<f64>> = BTreeMap::new();
    let mut failures: Vec<Value> = Vec::new();
    let mut workloads: Vec<String> = Vec::new();
    let mut impls: BTreeSet<String> = BTreeSet::new();
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(run) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let workload = run["workload"].as_str().unwrap_or("?").to_owned();
        let implementation = run["impl"].as_str().unwrap_or("?").to_owned();
        let round = run["round"].as_u64().unwrap_or(0);
        if !workloads.contains(&workload) {
            workloads.push(workload.clone());
        }
        impls.insert(implementation.clone());
        let (pointer, _, _) = metric(&workload);
        match run.pointer(pointer).and_then(Value::as_f64) {
            Some(value) if run["verified"] == true => {
                let key = (workload.clone(), implementation.clone());
                values.entry(key.clone()).or_default().insert(round, value);
                for &(extra, label) in extras(&workload) {
                    if let Some(v) = run.pointer(extra).and_then(Value::as_f64) {
                        extra_values
                            .entry((key.clone(), label))
                            .or_default()
                            .push(v);
                    }
                }
            }
            _ => failures.push(json!({
                "workload": workload,
                "impl": implementation,
                "round": round,
                "error": run.get("error").cloned().unwrap_or(run["problems"].clone()),
            })),
        }
    }

    let mut order: Vec<String> = vec![
        "ltp-codec".into(),
        "ltp-frame".into(),
        "ltp-typed-async".into(),
        "ltp-runtime".into(),
        BASELINE.into(),
        "lengthdelimited".into(),
        RAW_SINK.into(),
        ANCESTOR.into(),
        ANCESTOR_SERVER.into(),
        "python-server".into(),
    ];
    order.retain(|i| impls.contains(i));
    let rest: Vec<String> = impls
        .iter()
        .filter(|i| !order.contains(i))
        .cloned()
        .collect();
    order.extend(rest);

    println!("{machine}");
    println!();
    // A column per reference that ran (`--no-ancestor` has no ancestor column); the JSON
    // keeps every key, `null` where the reference did not run.
    let shown: Vec<&str> = REFERENCES
        .into_iter()
        .filter(|r| impls.iter().any(|i| i == r))
        .collect();
    let ratio_heads: String = shown.iter().map(|r| format!(" ×{r} |")).collect();
    println!("| workload | implementation | median | min–max |{ratio_heads} extras | runs |");
    println!(
        "|---|---|---:|---:|{}---|---:|",
        "---:|".repeat(shown.len())
    );
    let mut rows = Vec::new();
    for workload in &workloads {
        let (_, unit, _) = metric(workload);
        for implementation in &order {
            let key = (workload.clone(), implementation.clone());
            let Some(rounds) = values.get(&key) else {
                continue;
            };
            let mut all: Vec<f64> = rounds.values().copied().collect();
            let Some(med) = median(&mut all) else {
                continue;
            };
            let (min, max) = (
                all.first().copied().unwrap_or(med),
                all.last().copied().unwrap_or(med),
            );
            let ratios = reference_ratios(&values, workload, rounds);
            let mut extra_json = serde_json::Map::new();
            let mut extra_text = Vec::new();
            for &(_, label) in extras(workload) {
                if let Some(mut xs) = extra_values.get(&(key.clone(), label)).cloned()
                    && let Some(m) = median(&mut xs)
                {
                    extra_json.insert(label.to_owned(), json!(m));
                    extra_text.push(format!("{label} {}", bench::outcome::human(m)));
                }
            }
            let ratio_cells: String = ratios
                .iter()
                .filter(|(reference, _, _)| shown.contains(reference))
                .map(|(_, _, ratio)| format!(" {} |", ratio_text(*ratio)))
                .collect();
            println!(
                "| {workload} ({unit}) | {implementation} | {} | {}–{} |{ratio_cells} {} | {} |",
                bench::outcome::human(med),
                bench::outcome::human(min),
                bench::outcome::human(max),
                extra_text.join(", "),
                all.len(),
            );
            let mut row = serde_json::Map::new();
            row.insert("workload".into(), json!(workload));
            row.insert("impl".into(), json!(implementation));
            row.insert("unit".into(), json!(unit));
            row.insert("median".into(), json!(med));
            row.insert("min".into(), json!(min));
            row.insert("max".into(), json!(max));
            row.insert("per_round".into(), json!(rounds));
            for (reference, per_round, ratio) in ratios {
                row.insert(format!("ratio_vs_{reference}"), json!(ratio));
                row.insert(format!("ratio_vs_{reference}_per_round"), json!(per_round));
            }
            row.insert("extras".into(), Value::Object(extra_json));
            rows.push(Value::Object(row));
        }
    }
    println!();
    let raw_sink_note = if shown.contains(&RAW_SINK) {
        format!(": {RAW_SINK} runs only the large-body one-way workloads")
    } else {
        String::new()
    };
    println!(
        "{}: the median of the per-round ratios (this implementation's figure over the \
         reference's in the same round; for B/conn, above 1 means more memory; – where the \
         reference did not run{raw_sink_note}).",
        shown
            .iter()
            .map(|r| format!("×{r}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !failures.is_empty() {
        println!();
        println!("Runs left out (not verified or failed): {}", failures.len());
        for failure in &failures {
            println!("  {failure}");
        }
    }
    let rounds = values
        .values()
        .flat_map(BTreeMap::keys)
        .collect::<BTreeSet<_>>()
        .len();
    let summary = json!({
        "machine": machine,
        "rounds": rounds,
        "ratios_against": REFERENCES,
        "results": rows,
        "failures": failures,
    });
    if let Err(err) = std::fs::write(out_path, format!("{summary:#}\n")) {
        eprintln!("compare-report: cannot write {out_path}: {err}");
        return ExitCode::from(1);
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_keep_three_significant_figures() {
        let texts: Vec<String> = [Some(164.9), Some(25.57), Some(0.155), Some(0.0061), None]
            .into_iter()
            .map(ratio_text)
            .collect();
        assert_eq!(texts, ["165", "25.6", "0.15", "0.0061", "–"]);
    }

    #[test]
    fn ratios_pair_rounds_and_skip_missing_ones() {
        let ours = BTreeMap::from([(1, 10.0), (2, 30.0), (3, 5.0)]);
        let theirs = BTreeMap::from([(1, 5.0), (2, 10.0)]);
        assert_eq!(ratios_per_round(&ours, Some(&theirs)), [2.0, 3.0]);
        assert!(ratios_per_round(&ours, None).is_empty());
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }

    #[test]
    fn raw_sink_ratios_appear_only_in_workloads_it_ran() {
        let key = |workload: &str, implementation: &str| -> Key {
            (workload.to_owned(), implementation.to_owned())
        };
        let values = BTreeMap::from([
            (
                key("oneway-big65532", "ltp-codec"),
                BTreeMap::from([(1, 3000.0), (2, 2000.0)]),
            ),
            (
                key("oneway-big65532", RAW_SINK),
                BTreeMap::from([(1, 4000.0), (2, 4000.0)]),
            ),
            (key("oneway16", "ltp-codec"), BTreeMap::from([(1, 10.0)])),
            (key("oneway16", BASELINE), BTreeMap::from([(1, 20.0)])),
        ]);
        let big = reference_ratios(
            &values,
            "oneway-big65532",
            &values[&key("oneway-big65532", "ltp-codec")],
        );
        let names: Vec<&str> = big.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(names, [BASELINE, ANCESTOR, ANCESTOR_SERVER, RAW_SINK]);
        assert_eq!(
            (big[3].1.as_slice(), big[3].2),
            ([0.75, 0.5].as_slice(), Some(0.625))
        );
        assert_eq!(big[0].2, None);
        let small = reference_ratios(&values, "oneway16", &values[&key("oneway16", "ltp-codec")]);
        assert_eq!(small[0].2, Some(0.5));
        assert!(small[3].1.is_empty() && small[3].2.is_none());
    }
}
