//! `sponts learn --spam PATH --ham PATH`: trains the built-in filter on the mail people already
//! have. A PATH is a folder of message files (symlinks followed), a Maildir (its `cur/` and
//! `new/`), or an mbox file. What is skipped is counted with its reason; learning nothing at all
//! is an error, so a script notices a wrong path.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::modules::uce::learn;
use crate::storage::Store;

/// Progress is shown every this many messages.
const PROGRESS_EVERY: usize = 1000;

/// What one PATH gave.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    pub learned: usize,
    /// Already learned before (the same content).
    pub known: usize,
    /// Reason → how many.
    pub skipped: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn skip(&mut self, why: &'static str) {
        *self.skipped.entry(why).or_default() += 1;
    }
}

pub async fn run(
    store: &Store,
    spam: Option<&Path>,
    ham: Option<&Path>,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<()> {
    if spam.is_none() && ham.is_none() {
        bail!(
            "learn needs --spam PATH and/or --ham PATH (a folder of messages, a Maildir or an mbox file), or --from-journal"
        );
    }
    let mut any = false;
    for (path, is_spam) in [(spam, true), (ham, false)] {
        let Some(path) = path else { continue };
        let t = learn_path(store, path, is_spam, progress).await?;
        let skipped: Vec<String> = t
            .skipped
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        let skipped = if skipped.is_empty() {
            String::new()
        } else {
            format!("; skipped: {}", skipped.join(", "))
        };
        writeln!(
            out,
            "{}: {} learned as {}, {} already known{skipped}",
            path.display(),
            t.learned,
            if is_spam { "spam" } else { "ham" },
            t.known
        )?;
        any |= t.learned + t.known > 0;
    }
    let (s, h) = store.learned_totals().await?;
    writeln!(out, "the filter knows {s} spam and {h} ham messages")?;
    if !any {
        bail!("nothing could be learned from the paths given");
    }
    Ok(())
}

/// Learns every message at `path`, whatever its shape.
pub async fn learn_path(
    store: &Store,
    path: &Path,
    spam: bool,
    progress: &mut dyn Write,
) -> Result<Tally> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut tally = Tally::default();
    let mut seen = 0;
    let mut one = async |message: &[u8], tally: &mut Tally| -> Result<()> {
        learn_one(store, message, spam, tally).await?;
        seen += 1;
        if seen % PROGRESS_EVERY == 0 {
            let _ = writeln!(progress, "{}: {seen} messages", path.display());
        }
        Ok(())
    };
    if meta.is_file() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if is_mbox(&bytes) {
            for message in mbox_messages(&bytes) {
                one(&message, &mut tally).await?;
            }
        } else {
            one(&bytes, &mut tally).await?;
        }
        return Ok(tally);
    }
    let folders: Vec<PathBuf> = if is_maildir(path) {
        ["cur", "new"]
            .iter()
            .map(|d| path.join(d))
            .filter(|d| d.is_dir())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    for folder in folders {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read {}", folder.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            if entry
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                tally.skip("hidden files");
                continue;
            }
            // Metadata of what a symlink points to: a link to a message is a message.
            match std::fs::metadata(&entry) {
                Err(_) => tally.skip("broken links or unreadable entries"),
                Ok(m) if m.is_dir() => tally.skip("folders (give a folder's own path to learn it)"),
                Ok(m) if !m.is_file() => tally.skip("special files"),
                Ok(_) => match std::fs::read(&entry) {
                    Err(_) => tally.skip("unreadable files"),
                    Ok(bytes) => one(&bytes, &mut tally).await?,
                },
            }
        }
    }
    Ok(tally)
}

async fn learn_one(store: &Store, message: &[u8], spam: bool, tally: &mut Tally) -> Result<()> {
    if message.iter().all(|b| b.is_ascii_whitespace()) {
        tally.skip("empty files");
        return Ok(());
    }
    if !looks_like_mail(message) {
        tally.skip("files that are no mail message");
        return Ok(());
    }
    // The same message learned twice counts once: it is known by its content.
    let digest = ring::digest::digest(&ring::digest::SHA256, message);
    let key = format!(
        "file:{}",
        digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if learn::learn_from(store, &key, message, spam, learn::Source::Cli).await? {
        tally.learned += 1;
    } else {
        tally.known += 1;
    }
    Ok(())
}

/// A message starts with a header field (`Name: value`), possibly after an mbox `From ` line.
fn looks_like_mail(message: &[u8]) -> bool {
    let start = if message.starts_with(b"From ") {
        message
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |i| i + 1)
    } else {
        0
    };
    let first = &message[start..];
    let line = &first[..first
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(first.len())];
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon]
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b':'),
        _ => false,
    }
}

fn is_maildir(path: &Path) -> bool {
    path.join("cur").is_dir() || path.join("new").is_dir()
}

/// `From sender date`: the date has a time (`00:00:00`), which text that happens to begin with
/// "From " rarely has.
fn is_separator(line: &[u8]) -> bool {
    line.starts_with(b"From ") && line.contains(&b':') && line.iter().any(u8::is_ascii_digit)
}

/// An mbox starts with a `From ` line and holds more than that line.
fn is_mbox(bytes: &[u8]) -> bool {
    is_separator(
        &bytes[..bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(bytes.len())],
    ) && looks_like_mail(bytes)
}

/// The messages of an mbox (mboxrd and mboxo alike): split at `From ` lines that follow an empty
/// line or begin the file, with one `>` taken off quoted `>From ` lines.
fn mbox_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut previous_blank = true;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if previous_blank && is_separator(line) {
            messages.extend(current.take());
            current = Some(Vec::new());
            previous_blank = false;
            continue;
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        let Some(m) = current.as_mut() else { continue };
        let quoted = line
            .iter()
            .position(|&b| b != b'>')
            .is_some_and(|i| i > 0 && line[i..].starts_with(b"From "));
        m.extend_from_slice(if quoted { &line[1..] } else { line });
    }
    messages.extend(current);
    // The empty line before each `From ` belongs to the mbox, not to the message.
    for m in &mut messages {
        if m.ends_with(b"\n\n") {
            m.pop();
        } else if m.ends_with(b"\r\n\r\n") {
            m.truncate(m.len() - 2);
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mbox_splits_into_its_messages_with_from_lines_unquoted() {
        let mbox = b"From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n>From the start\n\nFrom b@x Mon Jan  1 00:00:01 2024\nSubject: two\n\nFrom here on, text\n";
        let m = mbox_messages(mbox);
        assert_eq!(
            m.len(),
            2,
            "a `From ` without an empty line before it is text: {m:?}"
        );
        assert_eq!(m[0], b"Subject: one\n\nbody\nFrom the start\n");
        assert_eq!(m[1], b"Subject: two\n\nFrom here on, text\n");
    }

    #[test]
    fn mail_is_told_from_other_files() {
        assert!(looks_like_mail(
            b"Return-Path: <a@x>\r\nSubject: hi\r\n\r\nx"
        ));
        assert!(looks_like_mail(
            b"From a@x Mon Jan  1 00:00:00 2024\nSubject: hi\n"
        ));
        assert!(!looks_like_mail(b"%PDF-1.4 binary"));
        assert!(!looks_like_mail(b"just some words: and a colon"));
    }
}
