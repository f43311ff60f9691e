//! The learning filter on a labelled split, in memory: the same tokens and arithmetic as a
//! running sponts, without SMTP or a database — seconds per run, for reading why a message
//! scored as it did. `bench/spam-eval` (over SMTP, through a running sponts) gives the figures.
//!
//!   cargo run --release --example spam_offline -- WORK [misses]
//! WORK holds train/spam/*, train/ham/* and test.tsv (`label<TAB>path` lines), as
//! `bench/spam-eval` splits a corpus (KEEP=1 keeps it). `misses` lists the spam that was not
//! refused and the ham that was, each with its most telling tokens.

use sponts::modules::uce::learn::{combine, token_probability, tokens, view};
use std::collections::HashMap;
use std::path::Path;

/// Where the default config refuses and tags (`uce.learning.spam_probability` 0.9; half the
/// weight is the tag score).
const REFUSE: f64 = 0.9;
const TAG: f64 = 0.7;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let work = Path::new(args.get(1).expect("usage: spam_offline WORK [misses]"));
    let misses = args.get(2).map(|a| a == "misses").unwrap_or(false);
    let mut counts: HashMap<i64, (i64, i64)> = HashMap::new();
    let (mut spam_n, mut ham_n) = (0i64, 0i64);
    for (label, spam) in [("spam", true), ("ham", false)] {
        let dir = work.join("train").join(label);
        for entry in std::fs::read_dir(&dir).expect("train dir") {
            let raw = std::fs::read(entry.unwrap().path()).unwrap();
            for h in tokens::hashes(&raw) {
                let c = counts.entry(h).or_default();
                if spam { c.0 += 1 } else { c.1 += 1 }
            }
            if spam { spam_n += 1 } else { ham_n += 1 }
        }
    }
    let list = std::fs::read_to_string(work.join("test.tsv")).expect("test.tsv");
    let mut scored: Vec<(bool, f64, String)> = Vec::new();
    for line in list.lines() {
        let Some((label, path)) = line.split_once('\t') else {
            continue;
        };
        let raw = std::fs::read(path).unwrap();
        let tokens_seen = view(tokens::with_families(&raw), &counts, spam_n, ham_n);
        let p = combine(&tokens_seen).unwrap_or(0.5);
        let spam = label == "spam";
        if misses && ((spam && p < REFUSE) || (!spam && p >= REFUSE)) {
            let mut named: Vec<(f64, String)> = tokens::named(&raw)
                .into_iter()
                .map(|(h, name)| {
                    let (s, hm) = counts.get(&h).copied().unwrap_or((0, 0));
                    (token_probability(s, hm, spam_n, ham_n), name)
                })
                .collect();
            named.sort_by(|a, b| (b.0 - 0.5).abs().total_cmp(&(a.0 - 0.5).abs()));
            let top: Vec<String> = named
                .iter()
                .take(14)
                .map(|(p, n)| format!("{n}={p:.2}"))
                .collect();
            println!("{label} p={p:.3} {path}\n    {}", top.join(" "));
        }
        scored.push((spam, p, path.to_string()));
    }
    let rate = |spam: bool, at: f64| {
        let all = scored.iter().filter(|s| s.0 == spam).count().max(1);
        100.0 * scored.iter().filter(|s| s.0 == spam && s.1 >= at).count() as f64 / all as f64
    };
    println!(
        "trained {spam_n} spam / {ham_n} ham; spam refused {:.1} % (refused or tagged {:.1} %), ham refused {:.2} % (tagged {:.2} %)",
        rate(true, REFUSE),
        rate(true, TAG),
        rate(false, REFUSE),
        rate(false, TAG),
    );
    for at in [0.93, 0.95, 0.97, 0.99] {
        println!(
            "refused from {at}: spam {:.1} %, ham {:.2} %",
            rate(true, at),
            rate(false, at)
        );
    }
    // The best spam rate at ham <= 0.2 %: how far the tokens and arithmetic could go with the
    // threshold alone.
    let mut hams: Vec<f64> = scored.iter().filter(|s| !s.0).map(|s| s.1).collect();
    hams.sort_by(|a, b| b.total_cmp(a));
    let allowed = (hams.len() as f64 * 0.002).floor() as usize;
    let at = hams.get(allowed).copied().unwrap_or(1.0) + 1e-9;
    println!(
        "at ham <= 0.2 % (threshold {at:.4}): spam {:.1} %",
        rate(true, at)
    );
}
