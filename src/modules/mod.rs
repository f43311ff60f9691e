//! The modules sponts ships, and the builder that turns the config's `modules` list into a
//! [`Pipeline`]. To add a module: a file here, a name in [`KNOWN`], an arm in [`build`].

pub mod access;
pub mod backup;
pub mod journal;
pub mod uce;
pub mod virus;

use anyhow::Result;
use std::sync::Arc;

use crate::config::Config;
use crate::pipeline::{Module, Pipeline};
use crate::storage::Store;

/// Every module name the config may list.
pub const KNOWN: &[&str] = &["access", "virus", "uce", "backup", "journal"];

/// The config's `modules` list names only modules that exist.
pub fn check_names(config: &Config) -> Vec<crate::config::ConfigError> {
    let Some(modules) = &config.modules else {
        return Vec::new();
    };
    modules
        .iter()
        .enumerate()
        .filter(|(_, m)| !KNOWN.contains(&m.as_str()))
        .map(|(i, m)| {
            crate::preflight::problem(
                format!("modules[{i}]"),
                format!("unknown module `{m}` (known: {})", KNOWN.join(", ")),
            )
        })
        .collect()
}

/// Modules that need no outside service: they run when the config has no `modules` list.
pub const DEFAULT: &[&str] = &["access", "uce", "backup", "journal"];

/// Builds the pipeline in the configured order.
/// Runs `pass` every `period` for as long as `owner` (held by the module that starts the job)
/// lives: a module dropped with its pipeline — replaced by a config reload, or built by a reload
/// that then failed — stops its job. The first pass comes after a minute, so a pipeline that
/// was built but never used never runs one.
pub(crate) fn periodic<F, Fut>(period: std::time::Duration, owner: &Arc<()>, mut pass: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let owner = Arc::downgrade(owner);
    let first = tokio::time::Instant::now() + period.min(std::time::Duration::from_secs(60));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(first, period);
        loop {
            tick.tick().await;
            if owner.strong_count() == 0 {
                return;
            }
            pass().await;
        }
    });
}

pub fn build(config: &Config, store: &Store) -> Result<Pipeline> {
    let names: Vec<String> = match &config.modules {
        Some(list) => list.clone(),
        // A clamd in the config turns virus scanning on, before the spam checks.
        None => DEFAULT
            .iter()
            .flat_map(|s| {
                if *s == "uce" && config.virus.enabled() {
                    vec!["virus", "uce"]
                } else {
                    vec![*s]
                }
            })
            .map(str::to_string)
            .collect(),
    };
    let mut modules: Vec<Arc<dyn Module>> = Vec::new();
    for name in &names {
        let m: Arc<dyn Module> = match name.as_str() {
            "access" => Arc::new(access::Access::new(&config.access)),
            "backup" => Arc::new(backup::Backup::start(store.clone(), &config.backup)),
            "journal" => Arc::new(journal::Journal::start(store.clone())),
            "uce" => Arc::new(uce::Uce::new(config, store.clone())?),
            "virus" => Arc::new(virus::Virus::new(config)),
            other => anyhow::bail!("modules: unknown module `{other}`"),
        };
        modules.push(m);
    }
    Ok(Pipeline::new(modules))
}
