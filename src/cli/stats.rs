//! `sponts stats [--since DUR] [--json]`: the Report's figures from the hourly buckets — rates
//! by class, load in and out, who decided, and the top spammers.

use anyhow::Result;
use serde_json::{json, Map, Value};
use std::io::Write;

use crate::storage::Store;

/// Rows of the top lists shown.
const TOP: usize = 10;

/// The figures of `[since_us, now)` as JSON: `classes`, `load`, `decided_by`, `top`.
pub async fn figures(store: &Store, since_us: i64) -> Result<Value> {
    // Whole hours: the one that holds `since` counts.
    let rows = store.stats_totals(since_us - since_us.rem_euclid(3_600_000_000), crate::clock::now_us() + 3_600_000_000).await?;
    let mut classes = Map::new();
    let mut load = Map::new();
    let mut decided = Map::new();
    let mut top: Map<String, Value> = Map::new();
    for (metric, key, value) in &rows {
        match metric.as_str() {
            "class" => drop(classes.insert(key.clone(), json!(value))),
            "decided_by" => drop(decided.insert(key.clone(), json!(value))),
            m if m.starts_with("spam_") => {
                let list = top.entry(m.trim_start_matches("spam_").to_string()).or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut().filter(|a| a.len() < TOP) {
                    a.push(json!([key, value]));
                }
            }
            m => drop(load.insert(m.to_string(), json!(value))),
        }
    }
    let total: i64 = classes.values().filter_map(Value::as_i64).sum();
    Ok(json!({ "since": crate::clock::rfc3339(since_us), "transactions": total, "classes": classes, "load": load, "decided_by": decided, "top": top }))
}

pub async fn run(store: &Store, since_us: i64, as_json: bool, out: &mut dyn Write) -> Result<()> {
    let f = figures(store, since_us).await?;
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&f)?)?;
        return Ok(());
    }
    let total = f["transactions"].as_i64().unwrap_or(0);
    writeln!(out, "since {}: {total} transactions", f["since"].as_str().unwrap_or(""))?;
    if let Some(classes) = f["classes"].as_object() {
        for (k, v) in classes {
            let n = v.as_i64().unwrap_or(0);
            writeln!(out, "  {k:<12} {n:>10}  {:>6.2} %", if total > 0 { n as f64 * 100.0 / total as f64 } else { 0.0 })?;
        }
    }
    if let Some(load) = f["load"].as_object() {
        writeln!(out, "load:")?;
        for (k, v) in load {
            writeln!(out, "  {k:<12} {v:>10}")?;
        }
    }
    if let Some(top) = f["top"].as_object() {
        for (k, list) in top {
            writeln!(out, "top spam {k}:")?;
            for item in list.as_array().into_iter().flatten() {
                writeln!(out, "  {:>8}  {}", item[1], item[0].as_str().unwrap_or(""))?;
            }
        }
    }
    Ok(())
}
