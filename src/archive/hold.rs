//! Legal holds: on a user (the address and its aliases), an address, or a saved search (text
//! the journal's search finds in sender, recipients or subject). Set and released only
//! explicitly, each change audited with who and why; mail a hold covers is never purged.

use anyhow::{Result, bail};

use crate::storage::Store;

/// Sets a hold; its id.
pub async fn add(
    store: &Store,
    kind: &str,
    target: &str,
    reason: &str,
    actor: &str,
) -> Result<i64> {
    let target = target.trim();
    if reason.trim().is_empty() {
        bail!("a hold needs a reason (--reason)");
    }
    let addresses = match kind {
        "user" => {
            let Some(user) = store.user(target).await? else {
                bail!("no user {target} (hold the address instead: --address)")
            };
            std::iter::once(user.address)
                .chain(user.aliases)
                .collect::<Vec<_>>()
                .join(" ")
        }
        "address" if target.contains('@') && !target.contains(char::is_whitespace) => {
            target.to_lowercase()
        }
        "address" => bail!("`{target}` is not an address"),
        "search" if !target.is_empty() => String::new(),
        "search" => bail!("a search hold needs the text to search"),
        other => bail!("unknown hold kind {other}"),
    };
    store
        .add_hold(
            kind,
            &target.to_lowercase(),
            &addresses,
            reason.trim(),
            actor,
        )
        .await
}

/// Releases a hold in force.
pub async fn release(store: &Store, id: i64, reason: &str, actor: &str) -> Result<()> {
    if reason.trim().is_empty() {
        bail!("releasing a hold needs a reason (--reason)");
    }
    if !store.release_hold(id, reason.trim(), actor).await? {
        bail!("no hold #{id} in force");
    }
    Ok(())
}
