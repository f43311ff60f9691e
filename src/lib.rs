//! sponts — a modular SMTP gateway in front of an organisation's mail server.
//!
//! Map of the crate, in the order a message meets it:
//! - [`server`]: listeners, connection limits, shutdown; one session per connection.
//! - [`smtp`]: the protocol — [`smtp::conn`] (buffered lines with limits), [`smtp::command`]
//!   (parser), [`smtp::address`] (strict envelope syntax), [`smtp::data`] (DATA and
//!   smuggling defence), [`smtp::session`] (the state machine, the only writer of replies),
//!   [`smtp::client`] (the backend side), [`smtp::tls`], [`smtp::received`], [`smtp::reply`].
//! - [`pipeline`]: the module contract — hooks per SMTP phase returning verdicts, and the
//!   transaction record every module sees at the end.
//! - [`modules`]: the modules sponts ships (`access`, `journal`).
//! - [`storage`]: one store API over SQLite and PostgreSQL, with migrations.
//! - [`config`]: the TOML config, validated at start with the key named in every error.
//! - [`cli`]: the subcommands other than `serve`.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod id;
pub mod logging;
pub mod modules;
pub mod net;
pub mod pipeline;
pub mod replay;
pub mod server;
pub mod smtp;
pub mod storage;

/// Starts sponts on a config: opens storage, builds the pipeline, binds the listeners.
pub async fn start(config: config::Config) -> anyhow::Result<(server::Server, storage::Store)> {
    let store = storage::Store::open(&config.storage.database_location()).await?;
    let pipeline = modules::build(&config, &store)?;
    let server = server::Server::start(config, pipeline).await?;
    Ok((server, store))
}
