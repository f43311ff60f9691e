//! A signed-in person's folders: `INBOX` (the view POP3 emergency access gives: mail queued for
//! them while the mail server is down, and what was delivered to them in the last
//! `pop3.recent_days`), `Archive/YEAR` (kept mail they received) and `Sent/YEAR` (kept mail they
//! sent out), each in UID order. Read from the store once per sign-in (INBOX again at each
//! SELECT and STATUS: it changes during an outage).

use anyhow::Result;

use crate::storage::{MailboxEntry, Store};

/// One message in a folder.
#[derive(Debug, Clone)]
pub struct Message {
    pub uid: u32,
    /// The transaction id: the key of its body in the backup (or the queue).
    pub id: String,
    pub time_us: i64,
    pub size: i64,
    /// Read from the queue (INBOX during an outage) rather than the backup.
    pub queued: bool,
}

impl Message {
    /// As POP3's store functions take it.
    pub fn entry(&self) -> MailboxEntry {
        MailboxEntry {
            uid: self.id.clone(),
            time_us: self.time_us,
            size: self.size,
            queued: self.queued,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub name: String,
    /// `Archive` and `Sent` only hold the years.
    pub selectable: bool,
    pub has_children: bool,
    /// Shared: selecting a folder does not copy it.
    pub messages: std::sync::Arc<Vec<Message>>,
}

impl Folder {
    pub fn uid_next(&self) -> u32 {
        self.messages
            .last()
            .map(|m| m.uid.saturating_add(1))
            .unwrap_or(1)
    }
}

pub const INBOX: &str = "INBOX";

/// Every folder of a person whose addresses (lowercase) are `addresses`, INBOX first.
pub async fn folders(store: &Store, addresses: &[String], recent_days: u64) -> Result<Vec<Folder>> {
    let mut archived = store.archived_messages(addresses).await?;
    let missing: Vec<String> = archived
        .iter()
        .filter(|m| m.uid.is_none())
        .map(|m| m.id.clone())
        .collect();
    if !missing.is_empty() {
        let uids = store.imap_uids(&missing).await?;
        let mut given = uids.into_iter();
        for m in archived.iter_mut().filter(|m| m.uid.is_none()) {
            m.uid = given.next();
        }
    }
    let mut by_name: std::collections::BTreeMap<String, Vec<Message>> = Default::default();
    for m in archived {
        let Some(uid) = m.uid.and_then(|u| u32::try_from(u).ok()) else {
            continue;
        };
        let year = crate::clock::date(m.time_us).0;
        let message = Message {
            uid,
            id: m.id,
            time_us: m.time_us,
            size: m.size,
            queued: false,
        };
        if m.received {
            by_name
                .entry(format!("Archive/{year}"))
                .or_default()
                .push(message.clone());
        }
        if m.sent {
            by_name
                .entry(format!("Sent/{year}"))
                .or_default()
                .push(message);
        }
    }
    let mut out = vec![inbox(store, addresses, recent_days).await?];
    for parent in ["Archive", "Sent"] {
        let prefix = format!("{parent}/");
        if by_name.keys().any(|k| k.starts_with(&prefix)) {
            out.push(Folder {
                name: parent.to_string(),
                selectable: false,
                has_children: true,
                messages: Default::default(),
            });
        }
        let names: Vec<String> = by_name
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for name in names {
            let mut messages = by_name.remove(&name).unwrap_or_default();
            messages.sort_by_key(|m| m.uid);
            out.push(Folder {
                name,
                selectable: true,
                has_children: false,
                messages: messages.into(),
            });
        }
    }
    Ok(out)
}

/// INBOX: the POP3 view (`Store::mailbox`), with IMAP UIDs.
pub async fn inbox(store: &Store, addresses: &[String], recent_days: u64) -> Result<Folder> {
    let days = recent_days as i64;
    let since = (days > 0).then(|| crate::clock::now_us() - days * 86_400_000_000);
    let entries = store.mailbox(addresses, since).await?;
    let ids: Vec<String> = entries.iter().map(|e| e.uid.clone()).collect();
    let uids = store.imap_uids(&ids).await?;
    let mut messages: Vec<Message> = entries
        .into_iter()
        .zip(uids)
        .filter_map(|(e, uid)| {
            Some(Message {
                uid: u32::try_from(uid).ok()?,
                id: e.uid,
                time_us: e.time_us,
                size: e.size,
                queued: e.queued,
            })
        })
        .collect();
    messages.sort_by_key(|m| m.uid);
    Ok(Folder {
        name: INBOX.to_string(),
        selectable: true,
        has_children: false,
        messages: messages.into(),
    })
}

/// Does a LIST pattern (`*` any text, `%` any text without the delimiter `/`) match `name`?
/// INBOX matches case-insensitively.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = if name == INBOX {
        (
            pattern.to_uppercase().chars().collect(),
            name.chars().collect(),
        )
    } else {
        (pattern.chars().collect(), name.chars().collect())
    };
    // ok[j]: the pattern so far matches the first j characters of the name. Quadratic at
    // worst (pattern length times a short name), never exponential.
    let mut ok = vec![false; n.len() + 1];
    ok[0] = true;
    for &c in &p {
        let mut next = vec![false; n.len() + 1];
        match c {
            '*' | '%' => {
                for j in 0..=n.len() {
                    next[j] = ok[j] || (j > 0 && next[j - 1] && (c == '*' || n[j - 1] != '/'));
                }
            }
            _ => {
                for j in 1..=n.len() {
                    next[j] = ok[j - 1] && n[j - 1] == c;
                }
            }
        }
        ok = next;
    }
    ok[n.len()]
}

#[cfg(test)]
mod tests {
    use super::pattern_matches as m;

    #[test]
    fn list_patterns() {
        assert!(m("*", "Archive/2026") && m("%", "Archive") && !m("%", "Archive/2026"));
        assert!(m("Archive/%", "Archive/2026") && m("inbox", "INBOX") && !m("inbox", "Sent"));
        assert!(
            m("A*6", "Archive/2026") && !m("Sent/*", "Archive/2026") && m("%/2026", "Sent/2026")
        );
        assert!(!m(&"*a".repeat(200), &"b".repeat(200)));
        assert!(m("*/%", "Archive/2026/x") && !m("%/%", "Archive/2026/x"));
    }
}
