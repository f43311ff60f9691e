//! `sponts backup DIR` and `sponts restore DIR`: a consistent copy of the whole SQLite store
//! (journal, kept messages, queue, users, filter) taken while sponts runs, with the self-signed
//! certificate beside it, and its way back into an empty data directory on a new machine.
//! PostgreSQL is backed up with its own tools (pg_dump); the guide says how.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::Path;

use crate::config::{Config, DatabaseLocation};
use crate::storage::Store;

const DATABASE: &str = "sponts.db";
const MANIFEST: &str = "MANIFEST";

/// Writes the copy into `dir` (made if missing; it must not hold a copy already).
pub async fn backup(config: &Config, store: &Store, dir: &Path, out: &mut dyn Write) -> Result<()> {
    make_private_dir(dir)?;
    let database = dir.join(DATABASE);
    store.snapshot_into(&database).await?;
    let certificates = copy_tls(&config.storage.data_dir.join("tls"), &dir.join("tls"))?;
    let manifest = format!(
        "# sponts backup: restore with `sponts restore {}` into an empty data directory\nversion = {}\nmade = {}\nsource = {}\n",
        dir.display(),
        env!("CARGO_PKG_VERSION"),
        crate::clock::rfc3339(crate::clock::now_us()),
        config.storage.data_dir.display()
    );
    write_synced(&dir.join(MANIFEST), manifest.as_bytes())?;
    sync_dir(dir)?;
    let size = std::fs::metadata(&database)?.len();
    writeln!(
        out,
        "backup written to {}: {DATABASE} ({size} bytes){}",
        dir.display(),
        if certificates > 0 { ", tls/" } else { "" }
    )?;
    Ok(())
}

/// Puts the copy in `dir` in place as this config's database. The data directory must not hold a
/// database yet: restoring over live data is a mistake sponts refuses to make.
pub async fn restore(config: &Config, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let DatabaseLocation::Sqlite(target) = config.storage.database_location() else {
        bail!("the store is PostgreSQL: restore it with pg_restore (docs/operations.md, Backups)");
    };
    let source = dir.join(DATABASE);
    if !source.is_file() {
        bail!(
            "{} holds no sponts backup ({DATABASE} is missing)",
            dir.display()
        );
    }
    if target.exists() {
        bail!(
            "{} exists: restore goes into an empty data directory (move the old one away first)",
            target.display()
        );
    }
    let parent = target.parent().context("the database has no directory")?;
    make_private_dir(parent)?;
    let partial = target.with_extension("db.restoring");
    std::fs::copy(&source, &partial)
        .with_context(|| format!("cannot copy {} to {}", source.display(), partial.display()))?;
    std::fs::File::open(&partial)?.sync_all()?;
    // Opened once before it takes the database's name: a copy that is no sponts store (or needs
    // migrating to this version) shows it here, and a crash leaves no half-restored database.
    let store = Store::open(&DatabaseLocation::Sqlite(partial.clone()))
        .await
        .with_context(|| format!("{} is not a usable sponts store", source.display()))?;
    let users = store.users(None).await?.len();
    let records = store
        .query_journal(&crate::storage::JournalFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .len();
    store.close().await;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    std::fs::rename(&partial, &target)?;
    sync_dir(parent)?;
    copy_tls(&dir.join("tls"), &config.storage.data_dir.join("tls"))?;
    writeln!(
        out,
        "restored {} from {}: {users} account(s){}",
        target.display(),
        dir.display(),
        if records > 0 {
            ", the journal and the kept mail"
        } else {
            ""
        }
    )?;
    Ok(())
}

fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// Copies the certificate files (if any); returns how many.
fn copy_tls(from: &Path, to: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(0);
    };
    make_private_dir(to)?;
    let mut n = 0;
    for e in entries.flatten().filter(|e| e.path().is_file()) {
        let target = to.join(e.file_name());
        if target.exists() {
            continue;
        }
        std::fs::copy(e.path(), &target)
            .with_context(|| format!("cannot copy {}", e.path().display()))?;
        std::fs::File::open(&target)?.sync_all()?;
        n += 1;
    }
    sync_dir(to)?;
    Ok(n)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
