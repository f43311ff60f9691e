//! MTA-STS (RFC 8461): a domain announces in `_mta-sts.DOMAIN` TXT that it publishes a policy
//! at `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`; in `enforce` mode its MX hosts must
//! match the policy's `mx` patterns and show a certificate valid for their name. Policies are
//! cached in the database until their `max_age`, fetched again when the TXT id changes.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::dns::{Dns, Lookup};
use crate::storage::{Store, StsCached};

const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// RFC 8461 §3.3: policy bodies are small; more is refused.
const MAX_BODY: usize = 64 * 1024;
/// RFC 8461 §3.2: max_age at most a year.
const MAX_AGE: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    /// RFC 8461 §3.2 policy text: `key: value` lines.
    pub fn parse(text: &str) -> anyhow::Result<Policy> {
        let (mut version, mut mode, mut mx, mut max_age) = (None, None, Vec::new(), None);
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "version" => version = Some(v.to_string()),
                "mode" => {
                    mode = Some(match v {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => anyhow::bail!("unknown mode `{other}`"),
                    })
                }
                "mx" => mx.push(v.to_ascii_lowercase()),
                "max_age" => {
                    max_age = Some(
                        v.parse::<u64>()
                            .map_err(|_| anyhow::anyhow!("bad max_age `{v}`"))?
                            .min(MAX_AGE),
                    )
                }
                _ => {}
            }
        }
        anyhow::ensure!(version.as_deref() == Some("STSv1"), "not an STSv1 policy");
        let mode = mode.ok_or_else(|| anyhow::anyhow!("no mode"))?;
        anyhow::ensure!(mode == Mode::None || !mx.is_empty(), "no mx pattern");
        Ok(Policy {
            mode,
            mx,
            max_age: max_age.ok_or_else(|| anyhow::anyhow!("no max_age"))?,
        })
    }

    /// Does an MX host name match one of the patterns (`*.example.net` covers one label)?
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
            None => *p == host,
        })
    }
}

/// The domain's policy now: the cached one if its id still matches the TXT record (or the TXT
/// is gone and the cache still valid), else freshly fetched. `None`: the domain has none.
pub async fn policy(
    store: &Store,
    dns: &Dns,
    roots: &Arc<rustls::RootCertStore>,
    domain: &str,
) -> Option<Policy> {
    let now = crate::clock::now_us();
    let cached = store
        .mta_sts_get(domain)
        .await
        .ok()
        .flatten()
        .filter(|c| c.expires_us > now);
    let id = match dns.txt(&format!("_mta-sts.{domain}")).await {
        Ok(Lookup::Found { records, .. }) => records
            .iter()
            .filter(|t| t.starts_with("v=STSv1"))
            .find_map(|t| txt_id(t)),
        _ => None,
    };
    let Some(id) = id else {
        return cached.and_then(|c| Policy::parse(&c.policy).ok());
    };
    if let Some(c) = cached.as_ref().filter(|c| c.id == id) {
        return Policy::parse(&c.policy).ok();
    }
    match fetch(dns, roots, domain)
        .await
        .and_then(|text| Ok((Policy::parse(&text)?, text)))
    {
        Ok((policy, text)) => {
            let expires_us = now + (policy.max_age as i64) * 1_000_000;
            if let Err(e) = store
                .mta_sts_put(
                    domain,
                    &StsCached {
                        id,
                        policy: text,
                        expires_us,
                    },
                )
                .await
            {
                tracing::warn!(%domain, "MTA-STS policy not cached: {e:#}");
            }
            Some(policy)
        }
        Err(e) => {
            // A fetch that fails keeps the last valid policy (RFC 8461 §5.1); without one, none.
            tracing::info!(%domain, "MTA-STS policy not fetched: {e:#}");
            cached.and_then(|c| Policy::parse(&c.policy).ok())
        }
    }
}

/// The `id=` of an `_mta-sts` TXT record.
fn txt_id(txt: &str) -> Option<String> {
    txt.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.trim() == "id")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// GET the policy over HTTPS (a certificate valid for `mta-sts.DOMAIN`), HTTP/1.1, no redirects.
async fn fetch(
    dns: &Dns,
    roots: &Arc<rustls::RootCertStore>,
    domain: &str,
) -> anyhow::Result<String> {
    let host = format!("mta-sts.{domain}");
    let request = format!(
        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sponts\r\nConnection: close\r\n\r\n"
    );
    let raw = https_exchange(dns, roots, &host, 443, request.as_bytes(), MAX_BODY + 8192)
        .await
        .map_err(|e| anyhow::anyhow!("fetching the policy: {e:#}"))?;
    parse_response(&raw)
}

/// One HTTPS request to `host` (its certificate verified against `roots`), the raw answer up
/// to `max` bytes; bounded by [`FETCH_TIMEOUT`]. MTA-STS policies and TLS reports use it.
pub async fn https_exchange(
    dns: &Dns,
    roots: &Arc<rustls::RootCertStore>,
    host: &str,
    port: u16,
    request: &[u8],
    max: usize,
) -> anyhow::Result<Vec<u8>> {
    let addrs = dns.addresses(host).await?;
    let ip = *addrs
        .records()
        .first()
        .ok_or_else(|| anyhow::anyhow!("{host} has no address"))?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect((ip, port)).await?;
        let config = rustls::ClientConfig::builder_with_provider(crate::smtp::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        tls.write_all(request).await?;
        let mut raw = Vec::new();
        match (&mut tls).take(max as u64).read_to_end(&mut raw).await {
            // Many servers close without TLS close_notify; a Content-Length still shows truncation.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            other => {
                other?;
            }
        }
        Ok(raw)
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))?
}

/// The body of a 200 text/plain answer (plain or chunked).
fn parse_response(raw: &[u8]) -> anyhow::Result<String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("");
    anyhow::ensure!(
        status.split(' ').nth(1) == Some("200"),
        "HTTP answer `{status}`"
    );
    let header = |name: &str| {
        lines
            .clone()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    anyhow::ensure!(
        header("content-type").is_some_and(|t| t.starts_with("text/plain")),
        "policy is not text/plain"
    );
    let body = &raw[end + 4..];
    let body = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        unchunk(body)?
    } else {
        if let Some(len) = header("content-length") {
            anyhow::ensure!(
                len.parse::<usize>().ok() == Some(body.len()),
                "policy cut short"
            );
        }
        body.to_vec()
    };
    anyhow::ensure!(body.len() <= MAX_BODY, "policy too long");
    Ok(String::from_utf8(body)?)
}

fn unchunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow::anyhow!("bad chunk"))?;
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(
            data.get(..size)
                .ok_or_else(|| anyhow::anyhow!("short chunk"))?,
        );
        data = data
            .get(size + 2..)
            .ok_or_else(|| anyhow::anyhow!("short chunk"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_patterns_match() {
        let p = Policy::parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.allows("mail.example.com") && p.allows("MX1.example.net."));
        assert!(
            !p.allows("example.net")
                && !p.allows("a.b.example.net")
                && !p.allows("mail.example.org")
        );
        assert!(
            Policy::parse("version: STSv1\nmode: enforce\nmax_age: 5\n").is_err(),
            "enforce without mx"
        );
        assert!(
            Policy::parse("mode: testing\nmx: a.example\nmax_age: 5\n").is_err(),
            "no version"
        );
        assert_eq!(
            txt_id("v=STSv1; id=20260101T000000;"),
            Some("20260101T000000".into())
        );
    }

    #[test]
    fn http_answers_are_read_plain_and_chunked() {
        let plain = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\r\n";
        assert_eq!(parse_response(plain).unwrap(), "version: STSv1\r\n");
        let chunked = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nversi\r\n3\r\non:\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), "version:");
        assert!(
            parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n").is_err()
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nx").is_err());
    }
}
