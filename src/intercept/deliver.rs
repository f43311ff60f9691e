//! Delivery of one copy to the agency named in its order:
//! - `dir:/PATH`: `PATH/ORDER/COPY.eml` (the message as it passed) and `COPY.json` (the metadata
//!   record), each written to a temporary name, fsynced, renamed, and the directory fsynced; the
//!   `.json` comes last, so a complete pair is one whose `.json` exists.
//! - `smtp://HOST:PORT`: one mail to the order's `--deliver-to` over STARTTLS that must verify
//!   against `intercept.agency_ca` (no TLS, no mail): the metadata record and the original
//!   message as base64 attachments, so the message reaches the agency byte for byte.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::StartTls;
use crate::smtp::client::{Backend, BackendTarget, ClientTimeouts};
use crate::smtp::tls;
use crate::storage::intercept::Order;
use crate::storage::intercept_copies::StoredCopy;

/// Where and how copies are delivered, from the config.
pub struct Delivery {
    /// Verifying TLS towards the agency; none when `intercept.agency_ca` is not set.
    pub agency_tls: Option<Arc<rustls::ClientConfig>>,
    pub from: String,
    pub helo: String,
    pub timeout: Duration,
}

impl Delivery {
    pub fn from_config(config: &crate::config::Config) -> Result<Delivery> {
        let agency_tls = match &config.intercept.agency_ca {
            Some(path) => Some(tls::verifying_client_config(
                tls::roots_from_file(path).context("intercept.agency_ca")?,
            )),
            None => None,
        };
        let from = if config.intercept.from.is_empty() {
            format!("postmaster@{}", config.smtp.hostname)
        } else {
            config.intercept.from.clone()
        };
        Ok(Delivery {
            agency_tls,
            from,
            helo: config.smtp.hostname.clone(),
            timeout: Duration::from_secs(60),
        })
    }

    /// Delivers one copy; the answer says where it went, for the audit log.
    pub async fn deliver(&self, copy: &StoredCopy, order: &Order) -> Result<String> {
        let content = match &copy.content {
            Some(c) => Some(
                crate::modules::backup::unpack(c, copy.content_size)
                    .context("the kept copy cannot be read")?,
            ),
            None => None,
        };
        if let Some(dir) = order.deliver.strip_prefix("dir:") {
            let dir = PathBuf::from(dir).join(&order.id);
            let (meta, id) = (copy.meta.clone(), copy.id.clone());
            let written = dir.clone();
            tokio::task::spawn_blocking(move || write_pair(&dir, &id, &meta, content.as_deref()))
                .await??;
            return Ok(format!("to {}", written.display()));
        }
        if let Some(address) = order.deliver.strip_prefix("smtp://") {
            let to = order
                .deliver_to
                .as_deref()
                .context("the order has no --deliver-to address")?;
            let Some(tls) = &self.agency_tls else {
                bail!(
                    "intercept.agency_ca is not configured: copies go by SMTP only over TLS that verifies"
                )
            };
            let message = agency_mail(copy, order, &self.from, to, content.as_deref());
            self.send(address, tls.clone(), to, &message).await?;
            return Ok(format!("to {to} via smtp://{address}"));
        }
        bail!("unknown destination `{}`", order.deliver)
    }

    async fn send(
        &self,
        address: &str,
        tls: Arc<rustls::ClientConfig>,
        to: &str,
        message: &[u8],
    ) -> Result<()> {
        let mut timeouts = ClientTimeouts::rfc5321(Duration::from_secs(30));
        timeouts.greeting = self.timeout;
        timeouts.command = self.timeout;
        let target = BackendTarget {
            address: address.to_string(),
            helo: self.helo.clone(),
            starttls: StartTls::Required,
            timeouts,
            tls,
            tls_name: None,
        };
        let mut smtp = Backend::connect(&target)
            .await
            .with_context(|| format!("smtp://{address}"))?;
        let steps = async {
            let r = smtp
                .mail(&self.from, Some(message.len() as u64), false)
                .await?;
            if r.code != 250 {
                bail!("MAIL refused: {}", r.summary());
            }
            let r = smtp.rcpt(to).await?;
            if !r.is_positive() {
                bail!("RCPT refused: {}", r.summary());
            }
            let r = smtp.data(&[message]).await?;
            if !r.is_positive() {
                bail!("message refused: {}", r.summary());
            }
            Ok(())
        };
        let result = steps.await;
        smtp.quit().await;
        result
    }
}

/// Writes `ID.eml` (if any) and then `ID.json` durably into `dir`.
fn write_pair(dir: &Path, id: &str, meta: &str, content: Option<&[u8]>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let Some(c) = content {
        write_durably(dir, &format!("{id}.eml"), c)?;
    }
    write_durably(dir, &format!("{id}.json"), meta.as_bytes())?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok(())
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let (tmp, path) = (dir.join(format!(".{name}.tmp")), dir.join(name));
    // A leftover of an interrupted attempt goes; a symlink planted there is removed, never followed.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot rename to {}", path.display()))?;
    Ok(())
}

/// The mail to the agency: a short text part, the metadata record, the original message.
pub fn agency_mail(
    copy: &StoredCopy,
    order: &Order,
    from: &str,
    to: &str,
    content: Option<&[u8]>,
) -> Vec<u8> {
    let boundary = format!("=_sponts_li_{}", copy.id);
    // The reference is the officer's text: cut, so the header stays within the line limit.
    let reference: String = order
        .reference
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let subject = encode_header(&format!(
        "LI {reference} copy {} ({} {})",
        copy.id, copy.service, copy.event
    ));
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nDate: {}\r\nMessage-ID: <li.{}@{}>\r\nSubject: {subject}\r\nAuto-Submitted: auto-generated\r\n\
         X-Sponts-Order: {}\r\nX-Sponts-Copy: {}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n",
        crate::clock::rfc5322(crate::clock::now_us()),
        copy.id,
        from.rsplit('@').next().unwrap_or("localhost"),
        order.id,
        copy.id,
    );
    let text = format!(
        "Interception copy {} for order {} (reference: {}), target {}.\r\nEvent: {} {} at {}.\r\nAttached: metadata.json{}.\r\n",
        copy.id,
        order.id,
        order.reference,
        order.target,
        copy.service,
        copy.event,
        crate::clock::rfc3339(copy.time_us),
        if content.is_some() {
            " and original.eml (the message byte for byte)"
        } else {
            ""
        }
    );
    let mut parts: Vec<(&str, &str, &[u8])> = vec![
        ("text/plain; charset=utf-8", "", text.as_bytes()),
        ("application/json", "metadata.json", copy.meta.as_bytes()),
    ];
    if let Some(c) = content {
        parts.push(("application/octet-stream", "original.eml", c));
    }
    for (ctype, name, body) in parts {
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n"
        ));
        if !name.is_empty() {
            m.push_str(&format!(
                "Content-Disposition: attachment; filename=\"{name}\"\r\n"
            ));
        }
        m.push_str("\r\n");
        m.push_str(&crate::base64::encode_lines(body));
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// A header value as is when it is printable ASCII, else as one RFC 2047 encoded word.
fn encode_header(value: &str) -> String {
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        value.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", crate::base64::encode(value.as_bytes()))
    }
}
