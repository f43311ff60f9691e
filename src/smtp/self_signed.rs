//! The certificate every TLS listener shows when none is configured: self-signed, made for
//! `smtp.hostname` (its subject and its one DNS name), valid for a year from the day before it
//! was made, kept in `DATA_DIR/tls/` and made again by sponts a month before it ends — or at once
//! when the host name changed or the kept one predates this rule. A note beside it
//! (`self-signed.txt`) says for which host and until when, so no certificate parser is needed.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

const DAY_US: i64 = 86_400_000_000;
/// How long a certificate made here is valid.
const VALID_DAYS: i64 = 365;
/// How long before its end it is made again.
const RENEW_DAYS: i64 = 30;

/// The paths of the certificate and key for `hostname`, made or made again when due.
pub fn ensure(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join("tls");
    let (cert, key, note) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("self-signed.txt"),
    );
    let kept = std::fs::read_to_string(&note)
        .ok()
        .and_then(|t| Note::parse(&t));
    if cert.is_file() && key.is_file() {
        match due(kept.as_ref(), hostname, crate::clock::now_us()) {
            None => return Ok((cert, key)),
            Some(why) => {
                tracing::info!(cert = %cert.display(), "making the self-signed certificate again: {why}")
            }
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let now = crate::clock::now_us();
    let made = make(hostname, now - DAY_US, now + VALID_DAYS * DAY_US)?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
    write_file(&cert, made.cert.pem().as_bytes())?;
    let note_text = Note {
        host: hostname.to_string(),
        not_after_us: now + VALID_DAYS * DAY_US,
    }
    .to_text();
    write_file(&note, note_text.as_bytes())?;
    tracing::info!(cert = %cert.display(), "made a self-signed certificate for {hostname}, valid until {}", crate::clock::rfc3339(now + VALID_DAYS * DAY_US));
    Ok((cert, key))
}

/// Whether the kept certificate for `hostname` must be made again now.
pub fn is_due(data_dir: &Path, hostname: &str) -> bool {
    let kept = std::fs::read_to_string(data_dir.join("tls/self-signed.txt"))
        .ok()
        .and_then(|t| Note::parse(&t));
    due(kept.as_ref(), hostname, crate::clock::now_us()).is_some()
}

/// Why the kept certificate must be made again, if it must.
fn due(kept: Option<&Note>, hostname: &str, now_us: i64) -> Option<&'static str> {
    match kept {
        None => Some("it was made before sponts noted its host and end"),
        Some(n) if !n.host.eq_ignore_ascii_case(hostname) => Some("smtp.hostname changed"),
        Some(n) if n.not_after_us - now_us < RENEW_DAYS * DAY_US => Some("it ends within a month"),
        Some(_) => None,
    }
}

fn make(
    hostname: &str,
    not_before_us: i64,
    not_after_us: i64,
) -> Result<rcgen::CertifiedKey<rcgen::KeyPair>> {
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_string()])
        .with_context(|| format!("smtp.hostname `{hostname}` cannot name a certificate"))?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, hostname);
    params.distinguished_name = name;
    let ymd = |us| {
        let (y, m, d) = crate::clock::date(us);
        rcgen::date_time_ymd(y as i32, m as u8, d as u8)
    };
    params.not_before = ymd(not_before_us);
    params.not_after = ymd(not_after_us);
    let signing_key = rcgen::KeyPair::generate().context("cannot make a key")?;
    let cert = params
        .self_signed(&signing_key)
        .context("cannot make a self-signed certificate")?;
    Ok(rcgen::CertifiedKey { cert, signing_key })
}

/// What `self-signed.txt` records.
#[derive(Debug, PartialEq)]
struct Note {
    host: String,
    not_after_us: i64,
}

impl Note {
    fn to_text(&self) -> String {
        format!(
            "# sponts made the certificate beside this note; it makes it again when due.\nhost = {}\nnot_after_us = {}\n",
            self.host, self.not_after_us
        )
    }

    fn parse(text: &str) -> Option<Note> {
        let value = |key: &str| {
            text.lines().find_map(|l| {
                l.split_once('=')
                    .filter(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim().to_string())
            })
        };
        Some(Note {
            host: value("host")?,
            not_after_us: value("not_after_us")?.parse().ok()?,
        })
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with_mode(path, bytes, 0o644)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with_mode(path, bytes, 0o600)
}

/// Written whole and synced, so a crash leaves the old file or the new one.
fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_again_when_old_renamed_or_near_its_end() {
        let now = 1_800_000_000_000_000;
        let fresh = Note {
            host: "mx.example.org".into(),
            not_after_us: now + 200 * DAY_US,
        };
        assert_eq!(due(Some(&fresh), "MX.example.org", now), None);
        assert!(due(Some(&fresh), "mail.example.org", now).is_some());
        assert!(
            due(
                Some(&Note {
                    not_after_us: now + 29 * DAY_US,
                    ..fresh
                }),
                "mx.example.org",
                now
            )
            .is_some()
        );
        assert!(due(None, "mx.example.org", now).is_some());
        let note = Note {
            host: "mx.example.org".into(),
            not_after_us: now,
        };
        assert_eq!(Note::parse(&note.to_text()), Some(note));
    }
}
