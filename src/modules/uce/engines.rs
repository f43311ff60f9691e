//! External spam engines: rspamd over its HTTP protocol (`POST /checkv2`) and SpamAssassin's
//! spamd over the SPAMC protocol (`SYMBOLS`). Each call is bounded by the engine's timeout; an
//! engine that is down gives no verdict (the caller notes it and goes on: fail-open).

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::EngineConfig;
use crate::pipeline::{SessionInfo, TxInfo};

/// An engine's answer: its own score and the rules that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineScore {
    pub score: f64,
    pub symbols: Vec<String>,
}

/// Answers bigger than this are not from a spam engine.
const MAX_ANSWER: usize = 1024 * 1024;

pub async fn spamd(config: &EngineConfig, message: &[u8]) -> Result<EngineScore> {
    tokio::time::timeout(config.timeout.0, spamd_call(&config.address, message))
        .await
        .map_err(|_| anyhow!("spamd at {}: timed out", config.address))?
}

async fn spamd_call(address: &str, message: &[u8]) -> Result<EngineScore> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("spamd at {address}"))?;
    let head = format!(
        "SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\nUser: sponts\r\n\r\n",
        message.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(message).await?;
    stream.shutdown().await?;
    let answer = read_all(&mut stream).await?;
    parse_spamd(&answer)
}

/// `SPAMD/1.1 0 EX_OK` + `Spam: True ; 1000.0 / 5.0` + blank line + `RULE_A,RULE_B`.
fn parse_spamd(answer: &[u8]) -> Result<EngineScore> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("");
    if !status.starts_with("SPAMD/") || !status.contains("EX_OK") {
        bail!("spamd answered `{}`", status.trim());
    }
    let spam = lines
        .find_map(|l| l.strip_prefix("Spam:"))
        .ok_or_else(|| anyhow!("spamd answer has no Spam: header"))?;
    let score = spam
        .split(';')
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("spamd score unreadable: `{}`", spam.trim()))?;
    let symbols = body
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().to_string())
        .collect();
    Ok(EngineScore { score, symbols })
}

pub async fn rspamd(
    config: &EngineConfig,
    s: &SessionInfo,
    tx: &TxInfo,
    message: &[u8],
) -> Result<EngineScore> {
    tokio::time::timeout(
        config.timeout.0,
        rspamd_call(&config.address, s, tx, message),
    )
    .await
    .map_err(|_| anyhow!("rspamd at {}: timed out", config.address))?
}

async fn rspamd_call(
    address: &str,
    s: &SessionInfo,
    tx: &TxInfo,
    message: &[u8],
) -> Result<EngineScore> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("rspamd at {address}"))?;
    let clean = |v: &str| v.chars().filter(|c| !c.is_control()).collect::<String>();
    let mut head = format!(
        "POST /checkv2 HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\nIP: {}\r\nQueue-Id: {}\r\n",
        message.len(),
        s.peer.ip().to_canonical(),
        clean(&tx.id)
    );
    if let Some(h) = &s.helo {
        head.push_str(&format!("Helo: {}\r\n", clean(h)));
    }
    head.push_str(&format!(
        "From: {}\r\n",
        tx.sender
            .as_ref()
            .map(|a| clean(&a.to_string()))
            .unwrap_or_default()
    ));
    for r in &tx.recipients {
        head.push_str(&format!("Rcpt: {}\r\n", clean(&r.to_string())));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(message).await?;
    let answer = read_all(&mut stream).await?;
    parse_rspamd(&answer)
}

/// An HTTP/1.1 answer with a JSON body: `{"score": 15.2, "symbols": {"GTUBE": {...}}, ...}`.
fn parse_rspamd(answer: &[u8]) -> Result<EngineScore> {
    let split = memchr::memmem::find(answer, b"\r\n\r\n")
        .ok_or_else(|| anyhow!("rspamd answer has no header end"))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("rspamd answered `{}`", status.trim());
    }
    let mut body = answer[split + 4..].to_vec();
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked")
    {
        body = dechunk(&body)?;
    }
    let json: serde_json::Value =
        serde_json::from_slice(&body).context("rspamd answer is not JSON")?;
    let score = json
        .get("score")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| anyhow!("rspamd answer has no score"))?;
    let mut symbols: Vec<String> = json
        .get("symbols")
        .and_then(|v| v.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    symbols.sort();
    Ok(EngineScore { score, symbols })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = memchr::memmem::find(body, b"\r\n").ok_or_else(|| anyhow!("bad chunk"))?;
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&body[..eol])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or_else(|| anyhow!("short chunk"))?);
        body = body.get(size + 2..).unwrap_or(&[]);
    }
}

async fn read_all(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut answer = Vec::new();
    let mut limited = stream.take(MAX_ANSWER as u64 + 1);
    limited.read_to_end(&mut answer).await?;
    if answer.len() > MAX_ANSWER {
        bail!("answer too long");
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spamd_answers() {
        let a = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 12\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTUBE,OTHER\r\n";
        assert_eq!(
            parse_spamd(a).unwrap(),
            EngineScore {
                score: 1000.0,
                symbols: vec!["GTUBE".into(), "OTHER".into()]
            }
        );
        let a = b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -0.3 / 5.0\r\n\r\n";
        assert_eq!(parse_spamd(a).unwrap().score, -0.3);
        assert!(parse_spamd(b"SPAMD/1.0 76 Bad header line\r\n\r\n").is_err());
    }

    #[test]
    fn rspamd_answers() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n{\"score\": 15.5, \"required_score\": 15, \"symbols\": {\"GTUBE\": {}}}";
        assert_eq!(
            parse_rspamd(a).unwrap(),
            EngineScore {
                score: 15.5,
                symbols: vec!["GTUBE".into()]
            }
        );
        let a = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nc\r\n{\"score\": 1}\r\n0\r\n\r\n";
        assert_eq!(parse_rspamd(a).unwrap().score, 1.0);
        assert!(parse_rspamd(b"HTTP/1.1 500 Oops\r\n\r\n").is_err());
    }
}
