//! The demo's stand-in for the organisation's mail server: a small SMTP server inside the process
//! that takes mail for the demo's users, refuses other addresses as unknown, and keeps what it
//! gets (counted), so deliveries, replays and queue drains are visible. It can be taken down and
//! brought back on the same port to show an outage: while down, connections are refused and
//! those open are closed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct StandIn {
    pub addr: SocketAddr,
    mailboxes: Arc<HashSet<String>>,
    up: watch::Sender<bool>,
    /// Messages taken so far.
    pub received: Arc<AtomicUsize>,
}

impl StandIn {
    /// Listens on a free loopback port; `mailboxes` are the addresses it knows.
    pub async fn start(mailboxes: HashSet<String>) -> std::io::Result<StandIn> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, _) = watch::channel(true);
        let s = StandIn {
            addr,
            mailboxes: Arc::new(mailboxes),
            up,
            received: Arc::default(),
        };
        s.serve(listener);
        Ok(s)
    }

    fn serve(&self, listener: TcpListener) {
        let (mailboxes, received, up, mut stop) = (
            self.mailboxes.clone(),
            self.received.clone(),
            self.up.subscribe(),
            self.up.subscribe(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (mailboxes, received, up) = (mailboxes.clone(), received.clone(), up.clone());
                        tokio::spawn(session(stream, mailboxes, received, up));
                    }
                    _ = stop.wait_for(|up| !*up) => return, // the listener closes: connections are refused
                }
            }
        });
    }

    /// The outage: new connections are refused, open ones closed.
    pub fn stop(&self) {
        self.up.send_replace(false);
    }

    /// Back on the same port.
    pub async fn restart(&self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        self.up.send_replace(true);
        self.serve(listener);
        Ok(())
    }
}

async fn session(
    stream: TcpStream,
    mailboxes: Arc<HashSet<String>>,
    received: Arc<AtomicUsize>,
    mut up: watch::Receiver<bool>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let reply = |text: &'static str| text.as_bytes().to_vec();
    if write
        .write_all(&reply("220 mail.demo.example ESMTP stand-in\r\n"))
        .await
        .is_err()
    {
        return;
    }
    let (mut rcpts, mut in_data) = (0usize, false);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::select! {
            n = lines.read_until(b'\n', &mut line) => n,
            _ = up.wait_for(|up| !*up) => return,
        };
        if !matches!(n, Ok(n) if n > 0) {
            return;
        }
        if in_data {
            if line == b".\r\n" {
                in_data = false;
                rcpts = 0;
                let n = received.fetch_add(1, Ordering::Relaxed) + 1;
                let answer = format!("250 2.0.0 Ok: queued as DEMO{n:05}\r\n");
                if write.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
            continue;
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let verb = text
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer: Vec<u8> = match verb.as_str() {
            "EHLO" => reply(
                "250-mail.demo.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n",
            ),
            "HELO" | "NOOP" => reply("250 2.0.0 Ok\r\n"),
            "MAIL" => reply("250 2.1.0 Ok\r\n"),
            "RSET" => {
                rcpts = 0;
                reply("250 2.0.0 Ok\r\n")
            }
            "RCPT" => {
                let address = text
                    .split_once('<')
                    .and_then(|(_, r)| r.split_once('>'))
                    .map(|(a, _)| a.to_ascii_lowercase())
                    .unwrap_or_default();
                if mailboxes.contains(&address) {
                    rcpts += 1;
                    reply("250 2.1.5 Ok\r\n")
                } else {
                    format!("550 5.1.1 <{address}>: Recipient address rejected: User unknown in local recipient table\r\n").into_bytes()
                }
            }
            "DATA" if rcpts > 0 => {
                in_data = true;
                reply("354 End data with <CR><LF>.<CR><LF>\r\n")
            }
            "DATA" => reply("554 5.5.1 Error: no valid recipients\r\n"),
            "QUIT" => {
                let _ = write.write_all(&reply("221 2.0.0 Bye\r\n")).await;
                return;
            }
            _ => reply("502 5.5.2 Error: command not recognized\r\n"),
        };
        if write.write_all(&answer).await.is_err() {
            return;
        }
    }
}
