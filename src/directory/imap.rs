//! The mail-server source: a password is good when the organisation's IMAP server (implicit TLS,
//! certificate verified against `directory.imap_ca` and naming the host) accepts it —
//! AUTHENTICATE PLAIN, or LOGIN where PLAIN is not offered.

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::config::{DirectoryConfig, ImapLogin};

const MAX_LINE: usize = 16 * 1024;
const MAX_LINES: usize = 200;

/// `Ok(true)`: the server took the password; `Ok(false)`: it refused it; `Err`: no answer.
pub async fn login(d: &DirectoryConfig, address: &str, password: &str) -> Result<bool> {
    if password.is_empty() {
        return Ok(false);
    }
    let target = d.imap.as_deref().context("directory.imap is not set")?;
    let (host, port) = crate::net::parse_host_port(target)
        .with_context(|| format!("directory.imap: `{target}` is not HOST:PORT"))?;
    let roots = super::roots(
        d.imap_ca
            .as_deref()
            .context("directory.imap_ca is not set")?,
    )?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("cannot connect to {target}"))?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .context("directory.imap: not a host name")?;
    let tls = tokio_rustls::TlsConnector::from(crate::smtp::tls::verifying_client_config(roots))
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with {target} failed"))?;
    let mut io = BufReader::new(tls);
    let greeting = line(&mut io).await?;
    if !greeting.starts_with("* OK") {
        bail!("{target} did not greet: {}", greeting.trim_end());
    }
    let user = match d.imap_login {
        ImapLogin::Address => address.to_string(),
        ImapLogin::Local => address
            .rsplit_once('@')
            .map(|(l, _)| l.to_string())
            .unwrap_or_else(|| address.to_string()),
    };
    io.get_mut().write_all(b"a1 AUTHENTICATE PLAIN\r\n").await?;
    let first = line(&mut io).await?;
    let accepted = if first.starts_with('+') {
        let plain = crate::base64::encode(format!("\0{user}\0{password}").as_bytes());
        io.get_mut()
            .write_all(format!("{plain}\r\n").as_bytes())
            .await?;
        tagged(&mut io, "a1").await?
    } else if !quotable(&user) || !quotable(password) {
        false
    } else {
        // No PLAIN: the tagged refusal may still be ahead.
        if !first.starts_with("a1 ") {
            tagged(&mut io, "a1").await?;
        }
        let cmd = format!("a2 LOGIN {} {}\r\n", quote(&user), quote(password));
        io.get_mut().write_all(cmd.as_bytes()).await?;
        tagged(&mut io, "a2").await?
    };
    let _ = io.get_mut().write_all(b"a3 LOGOUT\r\n").await;
    let _ = io.get_mut().shutdown().await;
    Ok(accepted)
}

/// Reads to the tagged answer: OK or not.
async fn tagged<R: tokio::io::AsyncBufRead + Unpin>(io: &mut R, tag: &str) -> Result<bool> {
    for _ in 0..MAX_LINES {
        let l = line(io).await?;
        if let Some(rest) = l.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            return Ok(rest.get(..2).is_some_and(|s| s.eq_ignore_ascii_case("OK")));
        }
    }
    bail!("the IMAP server sent too many lines")
}

async fn line<R: tokio::io::AsyncBufRead + Unpin>(io: &mut R) -> Result<String> {
    let mut buf = Vec::new();
    let n = (&mut *io)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        bail!("the IMAP server closed the connection");
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn quotable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
