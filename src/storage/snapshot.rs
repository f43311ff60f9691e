//! A consistent copy of the whole SQLite store while sponts runs (`VACUUM INTO`: one read
//! transaction, so the copy is one moment of the database, WAL included). PostgreSQL has its own
//! tools for this (`pg_dump`, base backups), which the operator's guide names.

use anyhow::{Context, Result, bail};
use std::path::Path;

use super::Store;

impl Store {
    /// Writes a copy of the database to `target`, which must not exist yet.
    pub async fn snapshot_into(&self, target: &Path) -> Result<()> {
        let Store::Sqlite(pool) = self else {
            bail!("the store is PostgreSQL: back it up with pg_dump (docs/operations.md, Backups)");
        };
        if target.exists() {
            bail!("{} exists already", target.display());
        }
        let path = target.to_str().context("the backup path is not UTF-8")?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(pool)
            .await
            .with_context(|| format!("cannot write {}", target.display()))?;
        // VACUUM INTO does not sync: the copy is on disk before we say it is.
        std::fs::File::open(target)?.sync_all()?;
        Ok(())
    }
}
