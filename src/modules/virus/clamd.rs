//! clamd's INSTREAM protocol: `zINSTREAM\0`, then the data in chunks each prefixed by its
//! length (4 bytes, big-endian), then a zero length; the answer is one NUL-terminated line,
//! `stream: OK` or `stream: NAME FOUND` (or an `... ERROR`).

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What clamd said about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    Clean,
    Infected(String),
}

/// clamd's default StreamMaxLength is 25 MB; chunks of 64 KiB keep its buffers small.
const CHUNK: usize = 64 * 1024;
const MAX_ANSWER: usize = 4096;

/// Scans `data` with the clamd at `address` (`HOST:PORT` or a unix socket path).
pub async fn scan(address: &str, data: &[u8]) -> Result<Scan> {
    if address.starts_with('/') {
        let stream = tokio::net::UnixStream::connect(address)
            .await
            .with_context(|| format!("clamd at {address}"))?;
        instream(stream, data).await
    } else {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("clamd at {address}"))?;
        instream(stream, data).await
    }
}

async fn instream<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, data: &[u8]) -> Result<Scan> {
    stream.write_all(b"zINSTREAM\0").await?;
    for chunk in data.chunks(CHUNK) {
        stream
            .write_all(&(chunk.len() as u32).to_be_bytes())
            .await?;
        stream.write_all(chunk).await?;
    }
    stream.write_all(&0u32.to_be_bytes()).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER as u64)
        .read_to_end(&mut answer)
        .await?;
    parse(&answer)
}

fn parse(answer: &[u8]) -> Result<Scan> {
    let text = String::from_utf8_lossy(answer);
    let line = text.trim_end_matches(['\0', '\n']).trim();
    let result = line
        .strip_prefix("stream:")
        .map(str::trim)
        .ok_or_else(|| anyhow!("clamd answered `{line}`"))?;
    if result == "OK" {
        return Ok(Scan::Clean);
    }
    if let Some(name) = result.strip_suffix(" FOUND") {
        return Ok(Scan::Infected(name.trim().to_string()));
    }
    bail!("clamd could not scan: {result}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(parse(b"stream: OK\0").unwrap(), Scan::Clean);
        assert_eq!(
            parse(b"stream: Win.Test.EICAR_HDB-1 FOUND\0").unwrap(),
            Scan::Infected("Win.Test.EICAR_HDB-1".into())
        );
        assert!(parse(b"INSTREAM size limit exceeded. ERROR\0").is_err());
        assert!(parse(b"stream: Can't allocate memory ERROR\0").is_err());
    }
}
