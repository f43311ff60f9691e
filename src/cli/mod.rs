//! Subcommands besides `serve`: each reads the config the same way and talks to the store.

pub mod archive;
pub mod backup;
pub mod directory;
pub mod dkim;
pub mod init;
pub mod intercept;
pub mod invoker;
pub mod journal;
pub mod learn;
pub mod outbound;
pub mod queue;
pub mod replay;
pub mod sender;
pub mod stats;
pub mod uce;
pub mod user;

use anyhow::Result;
use std::path::Path;

use crate::config::Config;

/// The config named by `--config` / `SPONTS_CONFIG`, or the embedded defaults.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => crate::preflight::load(p).map_err(|e| anyhow::anyhow!("{}:\n{e}", p.display())),
        None => Ok(Config::default()),
    }
}
