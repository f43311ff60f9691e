//! The one storage API of sponts, with two real backends behind it: SQLite (the embedded
//! default, WAL mode) and PostgreSQL (selected by a `postgres://` URL, shared by several nodes).
//! Both take the same SQL (`$1` placeholders work in both); where they differ, `migrations`
//! says so. Schema migrations run at open.

mod api_tokens;
mod archive;
mod backup;
pub mod batch;
mod directory;
mod dkim_keys;
mod events;
mod imap;
pub mod intercept;
pub mod intercept_copies;
mod journal;
mod links;
mod mailbox;
mod migrations;
pub mod outbound;
mod outbound_tls;
mod queue;
mod sender_lists;
mod sessions;
mod snapshot;
pub mod sqlite_reader;
pub mod sqlite_writer;
pub mod stats;
mod twofactor;
mod uce;
mod uce_layer;
mod users;

pub use api_tokens::ApiToken;
pub use archive::{Hold, HoldAudit, KeptRow, PurgeCandidate, PurgeRecord, Seal};
pub use backup::{Purged, StoredBody};
pub use directory::DirectoryUser;
pub use dkim_keys::{DkimKey, DkimKeyInfo, DkimKeyState};
pub use events::GatewayEvent;
pub use imap::ArchivedMessage;
pub use journal::{AttachmentEntry, JournalEntry, JournalFilter, RcptEntry};
pub use mailbox::MailboxEntry;
pub use outbound::{MxLease, NewQueued, OutboundHour, OutboundLock, OutboundParty, Route};
pub use outbound_tls::{MxDestination, StsCached};
pub use queue::Queued;
pub use sender_lists::{SenderEntry, SenderVerdict};
pub use sessions::WebSession;
pub use stats::StatDelta;
pub use twofactor::Totp;
pub use uce::{Disposable, Penalty, TOTALS_TOKEN};
pub use uce_layer::{LearnedFrom, Mark};
pub use users::{Role, User};

use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

use crate::config::DatabaseLocation;

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the store holds.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::storage::Store::Sqlite($pool) => $body,
            $crate::storage::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Opens a transaction that writes. On SQLite it takes the write lock at BEGIN (IMMEDIATE), where
/// the busy timeout applies: a deferred transaction that has read first cannot wait for the lock
/// once another connection committed, and fails at once with "database is locked".
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<sqlx::Transaction<'static, Self::Db>>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>>> + Send {
        self.begin()
    }
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn open(location: &DatabaseLocation) -> Result<Store> {
        let store = match location {
            DatabaseLocation::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("storage.data_dir: cannot create {}", dir.display())
                    })?;
                }
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL: commits survive a crash of sponts; the queue's commits are made FULL
                    // (on disk before they return), see storage/queue.rs and docs/storage.md.
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts)
                    .await
                    .with_context(|| {
                        format!(
                            "storage.database: cannot open SQLite database {}",
                            path.display()
                        )
                    })?;
                Store::Sqlite(pool)
            }
            DatabaseLocation::Postgres(url) => {
                let opts = PgConnectOptions::from_str(url)
                    .context("storage.database: bad postgres:// URL")?;
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .context("storage.database: cannot connect to PostgreSQL")?;
                Store::Postgres(pool)
            }
        };
        migrations::run(&store)
            .await
            .context("database schema migration failed")?;
        Ok(store)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }
}
