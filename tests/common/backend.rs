//! A capture backend: a small SMTP server on loopback that records every message it gets. Its
//! DATA reader is written here, independently of sponts' own, so byte-exactness is checked
//! against a second implementation.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub helo: String,
    pub mail: String,
    pub rcpts: Vec<String>,
    /// The message after dot-unstuffing.
    pub data: Vec<u8>,
    /// The DATA bytes as they came over the wire, up to and including CRLF.CRLF.
    pub wire: Vec<u8>,
}

#[derive(Clone, Default)]
pub struct CaptureOptions {
    /// Recipients (lowercase) answered with 550 5.1.1 user unknown.
    pub unknown: HashSet<String>,
    /// When set, the only mailboxes there are (lowercase); everyone else is unknown.
    pub mailboxes: Option<HashSet<String>>,
    /// Reply to the end of DATA; default `250 2.0.0 Ok: queued as CAPTURE`.
    pub data_reply: Option<String>,
    /// A message containing the first string gets the second as its reply (and is not kept).
    pub data_reply_if: Option<(String, String)>,
    /// After answering DATA, hang up (as an idle backend does later) ...
    pub hang_up_after_data: bool,
    /// ... and say `421` first.
    pub say_421_on_hang_up: bool,
    /// Answer the DATA command itself with this (the transaction stays open, as in Postfix).
    pub data_command_reply: Option<String>,
    /// Think this long before answering each RCPT (a backend that looks recipients up).
    pub rcpt_delay: Option<std::time::Duration>,
}

#[derive(Clone)]
pub struct Capture {
    pub addr: SocketAddr,
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    pub sessions: Arc<Mutex<usize>>,
}

impl Capture {
    pub async fn start(opts: CaptureOptions) -> Capture {
        Capture::start_on("127.0.0.1:0".parse().unwrap(), opts).await
    }

    /// On a given address (a backend that comes back where it was).
    pub async fn start_on(addr: SocketAddr, opts: CaptureOptions) -> Capture {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cap = Capture {
            addr,
            deliveries: Default::default(),
            sessions: Default::default(),
        };
        let c = cap.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                *c.sessions.lock().unwrap() += 1;
                let (c, o) = (c.clone(), opts.clone());
                tokio::spawn(async move {
                    let _ = session(s, c, o).await;
                });
            }
        });
        cap
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Waits until `n` messages have arrived, or 30 s (a loaded machine); returns what arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        for _ in 0..3000 {
            if self.deliveries.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.deliveries()
    }
}

async fn session(
    s: tokio::net::TcpStream,
    cap: Capture,
    opts: CaptureOptions,
) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 capture.test ESMTP\r\n").await?;
    let mut cur = Delivery::default();
    let mut helo = String::new();
    // A transaction is open from MAIL to the end of DATA or RSET; MAIL inside one is an error.
    let mut in_tx = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            helo = line[5..].to_string();
            w.write_all(
                b"250-capture.test\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n250 8BITMIME\r\n",
            )
            .await?;
        } else if upper.starts_with("MAIL FROM:") {
            if in_tx {
                w.write_all(b"503 5.5.1 Error: nested MAIL command\r\n")
                    .await?;
                continue;
            }
            in_tx = true;
            cur = Delivery {
                helo: helo.clone(),
                mail: line[10..].to_string(),
                ..Default::default()
            };
            w.write_all(b"250 2.1.0 Ok\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            if let Some(d) = opts.rcpt_delay {
                tokio::time::sleep(d).await;
            }
            let addr = line[8..].trim_matches(['<', '>']).to_ascii_lowercase();
            if opts.unknown.contains(&addr)
                || opts.mailboxes.as_ref().is_some_and(|m| !m.contains(&addr))
            {
                w.write_all(format!("550 5.1.1 <{addr}>: Recipient address rejected: User unknown in virtual mailbox table\r\n").as_bytes()).await?;
            } else {
                cur.rcpts.push(addr);
                w.write_all(b"250 2.1.5 Ok\r\n").await?;
            }
        } else if upper == "DATA" {
            if let Some(r) = &opts.data_command_reply {
                w.write_all(format!("{r}\r\n").as_bytes()).await?;
                continue;
            }
            if cur.rcpts.is_empty() {
                // As Postfix answers a (pipelined) DATA after every recipient was refused.
                w.write_all(b"554 5.5.1 Error: no valid recipients\r\n")
                    .await?;
                continue;
            }
            in_tx = false;
            w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut wire = Vec::new();
            loop {
                let mut b = [0u8; 1];
                r.read_exact(&mut b).await?;
                wire.push(b[0]);
                if wire.ends_with(b"\r\n.\r\n") || wire == b".\r\n" {
                    break;
                }
            }
            cur.data = unstuff(&wire);
            cur.wire = wire;
            let special = opts
                .data_reply_if
                .as_ref()
                .filter(|(marker, _)| String::from_utf8_lossy(&cur.data).contains(marker.as_str()));
            if let Some((_, reply)) = special {
                cur = Delivery::default();
                w.write_all(format!("{reply}\r\n").as_bytes()).await?;
                continue;
            }
            cap.deliveries
                .lock()
                .unwrap()
                .push(std::mem::take(&mut cur));
            let reply = opts
                .data_reply
                .clone()
                .unwrap_or_else(|| "250 2.0.0 Ok: queued as CAPTURE".into());
            w.write_all(format!("{reply}\r\n").as_bytes()).await?;
            if opts.hang_up_after_data {
                if opts.say_421_on_hang_up {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    w.write_all(b"421 4.4.2 capture.test Error: timeout exceeded\r\n")
                        .await?;
                }
                return Ok(());
            }
        } else if upper == "RSET" {
            in_tx = false;
            cur = Delivery::default();
            w.write_all(b"250 2.0.0 Ok\r\n").await?;
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"502 5.5.2 Error: command not recognized\r\n")
                .await?;
        }
    }
}

/// Splits on CRLF, removes one leading dot from each line, drops the final "." line.
fn unstuff(wire: &[u8]) -> Vec<u8> {
    let body = if wire == b".\r\n" {
        &b""[..]
    } else {
        &wire[..wire.len() - 3]
    };
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}
