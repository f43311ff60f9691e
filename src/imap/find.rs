//! The text keys of a SEARCH, answered for a folder before its messages are tested: FROM, TO and
//! SUBJECT by the journal's search (its indexes: envelope sender, recipients, decoded subject,
//! over this person's records only); BODY, TEXT, CC, BCC and HEADER by reading the messages
//! (decompressed one at a time, matched case-insensitively).

use std::collections::{HashMap, HashSet};

use super::mailbox::Message;
use super::search::TextField;
use crate::storage::{JournalFilter, Store};

/// For each text key, the ids of the folder's messages that match it.
pub type Answers = HashMap<(TextField, String), HashSet<String>>;

pub async fn answer(
    store: &Store,
    addresses: &[String],
    messages: &[Message],
    keys: &[(&TextField, &str)],
) -> anyhow::Result<Answers> {
    let mut out = Answers::new();
    let in_folder: HashSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let mut scans: Vec<(TextField, String)> = Vec::new();
    for &(field, value) in keys {
        let key = (field.clone(), value.to_string());
        if out.contains_key(&key) || scans.contains(&key) {
            continue;
        }
        let mut f = JournalFilter {
            visible_to: Some(addresses.to_vec()),
            limit: Some(i64::MAX),
            ..Default::default()
        };
        let v = value.to_lowercase();
        match field {
            TextField::From => f.sender = Some(v),
            TextField::To => f.rcpt = Some(v),
            TextField::Subject => f.subject = Some(v),
            _ => {
                scans.push(key);
                continue;
            }
        }
        let ids: HashSet<String> = store
            .journal_ids(&f)
            .await?
            .into_iter()
            .filter(|id| in_folder.contains(id.as_str()))
            .collect();
        out.insert(key, ids);
    }
    if scans.is_empty() {
        return Ok(out);
    }
    for key in &scans {
        out.insert(key.clone(), HashSet::new());
    }
    for m in messages {
        let Some(bytes) = crate::pop3::message_bytes(store, &m.entry()).await else {
            continue;
        };
        let root = super::mime::parse(&bytes);
        for (field, value) in &scans {
            let needle = value.to_lowercase();
            let header = &bytes[root.header.clone()];
            let hit = match field {
                TextField::Body => contains(&bytes[root.body.clone()], &needle),
                TextField::Text => contains(&bytes, &needle),
                // HEADER name "" matches every message that has the field (RFC 3501 6.4.4).
                other => header_name(other).is_some_and(|name| {
                    super::mime::header_fields(header).iter().any(|(n, v)| {
                        n.eq_ignore_ascii_case(name) && v.to_lowercase().contains(&needle)
                    })
                }),
            };
            if hit {
                out.get_mut(&(field.clone(), value.clone()))
                    .expect("inserted")
                    .insert(m.id.clone());
            }
        }
    }
    Ok(out)
}

/// The header field a key looks in (CC, BCC, HEADER name).
fn header_name(f: &TextField) -> Option<&str> {
    match f {
        TextField::Cc => Some("cc"),
        TextField::Bcc => Some("bcc"),
        TextField::Header(n) => Some(n),
        _ => None,
    }
}

/// ASCII case-insensitive substring search (`needle` lower case).
fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    if n.is_empty() {
        return true;
    }
    hay.windows(n.len())
        .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn substring() {
        assert!(
            super::contains(b"Hello World", "o wor")
                && !super::contains(b"Hello", "hello!")
                && super::contains(b"", "")
        );
    }
}
