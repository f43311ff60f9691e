//! One POP3 session: AUTHORIZATION (CAPA, STLS, USER/PASS, AUTH PLAIN) then TRANSACTION (STAT,
//! LIST, UIDL, RETR, TOP, DELE, RSET, NOOP) then UPDATE at QUIT, where DELE takes effect — for
//! this user's view only; the queue and the backup are never touched.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::Pop3;
use crate::smtp::conn::{Conn, Line};
use crate::storage::MailboxEntry;

/// RFC 2449: 255 octets per command line; a little slack for long passwords in AUTH.
const MAX_LINE: usize = 1024;
/// Unknown commands (and lines too long, commands out of place) after which a session is closed.
/// A wrong message number is an ordinary mistake of a client and is not counted.
const MAX_ERRORS: usize = 10;

struct Mailbox {
    address: String,
    /// The login and the account's addresses: what an interception order may name.
    names: Vec<String>,
    entries: Vec<MailboxEntry>,
    deleted: HashSet<usize>,
}

pub async fn run(stream: TcpStream, peer: SocketAddr, p: Arc<Pop3>, implicit_tls: bool) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut conn = Conn::new(Box::new(stream));
    let mut tls = None;
    if implicit_tls {
        let Some(io) = conn.take_io() else { return };
        match tokio::time::timeout(std::time::Duration::from_secs(30), p.tls.accept(io)).await {
            Ok(Ok(s)) => {
                tls = Some(crate::smtp::tls::describe(s.get_ref().1));
                conn.set_io(Box::new(s));
            }
            _ => return,
        }
    }
    conn.set_deadline(Instant::now() + p.config.pop3.session_timeout.0);
    conn.set_read_timeout(Some(p.config.pop3.idle_timeout.0));
    conn.set_write_timeout(p.config.pop3.idle_timeout.0);
    let mut s = Session {
        conn,
        p,
        peer,
        local,
        id: crate::id::new_transaction_id(),
        tls,
        user: None,
        mailbox: None,
        errors: 0,
    };
    s.ok("sponts POP3 emergency access ready");
    let _ = s.conn.flush().await;
    loop {
        let line = match s.conn.read_line(MAX_LINE).await {
            Ok(Line::Text(t)) => t,
            Ok(Line::TooLong) => {
                s.err("line too long");
                if s.count_error() {
                    break;
                }
                continue;
            }
            Ok(Line::Eof) | Err(_) => break,
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        let (verb, arg) = text
            .split_once(' ')
            .map(|(v, a)| (v.to_ascii_uppercase(), a.to_string()))
            .unwrap_or((text.to_ascii_uppercase(), String::new()));
        let go_on = s.command(&verb, &arg).await;
        if s.conn.flush().await.is_err() || !go_on {
            break;
        }
    }
    let _ = s.conn.flush().await;
    s.conn.shutdown().await;
}

struct Session {
    conn: Conn,
    p: Arc<Pop3>,
    peer: SocketAddr,
    local: SocketAddr,
    /// Groups this session's events in interception copies.
    id: String,
    /// "TLSv1.3 TLS13_..." once encrypted.
    tls: Option<String>,
    /// USER given, PASS pending.
    user: Option<String>,
    mailbox: Option<Mailbox>,
    errors: usize,
}

impl Session {
    fn ok(&mut self, text: &str) {
        self.conn.queue_bytes(format!("+OK {text}\r\n").as_bytes());
    }

    fn err(&mut self, text: &str) {
        self.conn.queue_bytes(format!("-ERR {text}\r\n").as_bytes());
    }

    /// Counts a protocol error; true when the session must end.
    fn count_error(&mut self) -> bool {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.err("too many errors, closing");
            return true;
        }
        false
    }

    /// Handles one command; false ends the session.
    async fn command(&mut self, verb: &str, arg: &str) -> bool {
        match (verb, self.mailbox.is_some()) {
            ("CAPA", _) => {
                let mut caps = String::from(
                    "+OK Capability list follows\r\nUIDL\r\nTOP\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n",
                );
                // Sign-in mechanisms only where they can be used (RFC 2595 4).
                if self.plaintext_refused().is_none() && self.mailbox.is_none() {
                    caps.push_str("USER\r\nSASL PLAIN\r\n");
                }
                if self.tls.is_none() && self.mailbox.is_none() {
                    caps.push_str("STLS\r\n");
                }
                caps.push_str("IMPLEMENTATION sponts\r\n.\r\n");
                self.conn.queue_bytes(caps.as_bytes());
            }
            ("QUIT", _) => {
                if let Some(mb) = self.mailbox.take() {
                    let uids: Vec<String> = mb
                        .deleted
                        .iter()
                        .map(|&i| mb.entries[i].uid.clone())
                        .collect();
                    if let Err(e) = self.p.store.pop3_hide(&mb.address, &uids).await {
                        tracing::error!("POP3 update failed: {e:#}");
                        self.err("[SYS/TEMP] deleted messages could not be removed");
                        return false;
                    }
                }
                self.ok("bye");
                return false;
            }
            ("NOOP", true) => self.ok(""),
            ("STLS", false) => return self.stls().await,
            ("USER", false) => {
                if let Some(e) = self.plaintext_refused() {
                    self.err(e);
                    return !self.count_error();
                }
                self.user = Some(arg.trim().to_lowercase());
                self.ok("send PASS");
            }
            ("PASS", false) => {
                let Some(user) = self.user.take() else {
                    self.err("USER first");
                    return !self.count_error();
                };
                return self.sign_in(&user, arg).await;
            }
            ("AUTH", false) => return self.auth(arg).await,
            ("STAT", true) => {
                let (n, size) = self.totals();
                self.ok(&format!("{n} {size}"));
            }
            ("LIST", true) | ("UIDL", true) => {
                let uidl = verb == "UIDL";
                let show = |i: usize, e: &MailboxEntry| {
                    if uidl {
                        format!("{} {}", i + 1, e.uid)
                    } else {
                        format!("{} {}", i + 1, e.size)
                    }
                };
                let mb = self.mailbox.as_ref().expect("transaction state");
                if arg.trim().is_empty() {
                    let mut out = String::from("+OK\r\n");
                    for (i, e) in mb
                        .entries
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !mb.deleted.contains(i))
                    {
                        out.push_str(&show(i, e));
                        out.push_str("\r\n");
                    }
                    out.push_str(".\r\n");
                    self.conn.queue_bytes(out.as_bytes());
                } else {
                    match self.message_number(arg) {
                        Ok(i) => {
                            let line = show(
                                i,
                                &self.mailbox.as_ref().expect("transaction state").entries[i],
                            );
                            self.ok(&line);
                        }
                        Err(e) => self.err(e),
                    }
                }
            }
            ("RETR", true) | ("TOP", true) => {
                let mut args = arg.split_whitespace();
                let n = args.next().unwrap_or("");
                let lines = if verb == "TOP" {
                    match args.next().and_then(|k| k.parse::<usize>().ok()) {
                        Some(k) => Some(k),
                        None => {
                            self.err("TOP needs a message number and a line count");
                            return true;
                        }
                    }
                } else {
                    None
                };
                let i = match self.message_number(n) {
                    Ok(i) => i,
                    Err(e) => {
                        self.err(e);
                        return true;
                    }
                };
                return self.send_message(i, lines).await;
            }
            ("DELE", true) => match self.message_number(arg) {
                Ok(i) => {
                    self.mailbox
                        .as_mut()
                        .expect("transaction state")
                        .deleted
                        .insert(i);
                    self.ok(&format!("message {} deleted", i + 1));
                }
                Err(e) => self.err(e),
            },
            ("RSET", true) => {
                self.mailbox
                    .as_mut()
                    .expect("transaction state")
                    .deleted
                    .clear();
                let (n, size) = self.totals();
                self.ok(&format!("{n} messages ({size} octets)"));
            }
            (_, signed_in) => {
                self.err(if signed_in {
                    "unknown command"
                } else {
                    "unknown command, or sign in first"
                });
                return !self.count_error();
            }
        }
        true
    }

    fn plaintext_refused(&self) -> Option<&'static str> {
        (self.tls.is_none() && !self.p.config.pop3.allow_plaintext_auth)
            .then_some("[AUTH] sign-in needs TLS: issue STLS first")
    }

    async fn stls(&mut self) -> bool {
        if self.tls.is_some() {
            self.err("TLS is active already");
            return !self.count_error();
        }
        self.ok("begin TLS negotiation");
        if self.conn.flush().await.is_err() {
            return false;
        }
        // Whatever was pipelined in the clear after STLS does not count.
        let Some(io) = self.conn.take_io() else {
            return false;
        };
        match tokio::time::timeout(std::time::Duration::from_secs(30), self.p.tls.accept(io)).await
        {
            Ok(Ok(s)) => {
                self.tls = Some(crate::smtp::tls::describe(s.get_ref().1));
                self.conn.set_io(Box::new(s));
                self.user = None;
                true
            }
            _ => false,
        }
    }

    /// AUTH PLAIN (RFC 4616 inside RFC 5034): `authzid NUL authcid NUL password`, base64.
    async fn auth(&mut self, arg: &str) -> bool {
        let mut parts = arg.split_whitespace();
        if !parts
            .next()
            .is_some_and(|m| m.eq_ignore_ascii_case("PLAIN"))
        {
            self.err("only AUTH PLAIN is offered");
            return !self.count_error();
        }
        if let Some(e) = self.plaintext_refused() {
            self.err(e);
            return !self.count_error();
        }
        let initial = match parts.next() {
            Some(i) => i.to_string(),
            None => {
                self.conn.queue_bytes(b"+ \r\n");
                if self.conn.flush().await.is_err() {
                    return false;
                }
                match self.conn.read_line(MAX_LINE).await {
                    Ok(Line::Text(t)) => String::from_utf8_lossy(&t).into_owned(),
                    _ => return false,
                }
            }
        };
        if initial.trim() == "*" {
            self.err("AUTH cancelled");
            return true;
        }
        // "=" is an empty initial response (RFC 5034 4).
        let initial = if initial.trim() == "=" {
            String::new()
        } else {
            initial
        };
        let decoded = crate::base64::decode(initial.trim()).unwrap_or_default();
        let fields: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let [authz, user, password] = fields[..] else {
            self.err("malformed AUTH PLAIN");
            return !self.count_error();
        };
        let user = String::from_utf8_lossy(user).to_lowercase();
        if !authz.is_empty() && !String::from_utf8_lossy(authz).eq_ignore_ascii_case(&user) {
            self.err("[AUTH] authorization identity must be empty or the user");
            return !self.count_error();
        }
        let password = String::from_utf8_lossy(password).into_owned();
        self.sign_in(&user, &password).await
    }

    async fn sign_in(&mut self, user: &str, password: &str) -> bool {
        if let Some(e) = self.plaintext_refused() {
            self.err(e);
            return !self.count_error();
        }
        let ip = self.peer.ip();
        let account = match super::sign_in(
            &self.p.store,
            &self.p.config,
            &self.p.throttle,
            ip,
            user,
            password,
        )
        .await
        {
            super::SignIn::Account(a) => a,
            super::SignIn::Blocked => {
                self.err("[AUTH] too many failed sign-ins; try again later");
                return false;
            }
            super::SignIn::Refused => {
                tracing::info!(%ip, %user, "failed POP3 sign-in");
                self.intercept(
                    &[user.to_string()],
                    "login",
                    serde_json::json!({ "login": user, "success": false }),
                    None,
                );
                self.err("[AUTH] wrong user name or password");
                return !self.count_error();
            }
        };
        let mut addresses = vec![account.address.to_lowercase()];
        addresses.extend(account.aliases.iter().map(|a| a.to_lowercase()));
        let mut names = addresses.clone();
        names.push(user.to_string());
        self.intercept(
            &names,
            "login",
            serde_json::json!({ "login": user, "success": true }),
            None,
        );

        let days = self.p.config.pop3.recent_days as i64;
        let since = (days > 0).then(|| crate::clock::now_us() - days * 86_400_000_000);
        match self.p.store.mailbox(&addresses, since).await {
            Ok(entries) => {
                let n = entries.len();
                self.mailbox = Some(Mailbox {
                    address: account.address,
                    names,
                    entries,
                    deleted: HashSet::new(),
                });
                let size = self.totals().1;
                self.ok(&format!("{n} messages ({size} octets)"));
                true
            }
            Err(e) => {
                tracing::error!("POP3 mailbox failed: {e:#}");
                self.err("[SYS/TEMP] mailbox unavailable, try again later");
                false
            }
        }
    }

    fn totals(&self) -> (usize, i64) {
        let mb = self.mailbox.as_ref().expect("transaction state");
        let live = mb
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !mb.deleted.contains(i));
        live.fold((0, 0), |(n, s), (_, e)| (n + 1, s + e.size))
    }

    fn message_number(&self, arg: &str) -> Result<usize, &'static str> {
        let mb = self.mailbox.as_ref().expect("transaction state");
        let n: usize = arg
            .trim()
            .parse()
            .map_err(|_| "a message number is needed")?;
        if n == 0 || n > mb.entries.len() {
            return Err("no such message");
        }
        if mb.deleted.contains(&(n - 1)) {
            return Err("message is deleted");
        }
        Ok(n - 1)
    }

    /// RETR (all) or TOP (headers and `lines` body lines), dot-stuffed.
    async fn send_message(&mut self, i: usize, lines: Option<usize>) -> bool {
        let e = self.mailbox.as_ref().expect("transaction state").entries[i].clone();
        let body = super::message_bytes(&self.p.store, &e).await;
        let Some(body) = body else {
            self.err("[SYS/TEMP] the message cannot be read right now");
            return true;
        };
        let part = match lines {
            None => &body[..],
            Some(k) => {
                let head_end = body
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| p + 4)
                    .unwrap_or(body.len());
                let mut end = head_end;
                for _ in 0..k {
                    match body[end..].iter().position(|&b| b == b'\n') {
                        Some(p) => end += p + 1,
                        None => {
                            end = body.len();
                            break;
                        }
                    }
                }
                &body[..end]
            }
        };
        self.ok(&format!(
            "{} octets",
            if lines.is_none() {
                body.len()
            } else {
                part.len()
            }
        ));
        let sent = crate::smtp::data::write_stuffed(&mut self.conn, &[part])
            .await
            .is_ok();
        let names = self
            .mailbox
            .as_ref()
            .expect("transaction state")
            .names
            .clone();
        let command = match lines {
            None => format!("RETR {}", i + 1),
            Some(k) => format!("TOP {} {k}", i + 1),
        };
        let details = serde_json::json!({ "command": command, "message": i + 1, "uid": e.uid, "complete": sent });
        self.intercept(&names, "retrieve", details, Some(part));
        sent
    }

    /// Hands a login or a retrieval to interception when one of `names` (the login, the account's
    /// addresses) is the target of an order in effect; nothing happens for anyone else.
    fn intercept(
        &self,
        names: &[String],
        kind: &'static str,
        details: serde_json::Value,
        content: Option<&[u8]>,
    ) {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let orders = self.p.intercept.orders_now(&names);
        if orders.is_empty() {
            return;
        }
        let mut details = details;
        details["access"] = serde_json::json!("sponts emergency POP3");
        let event = crate::intercept::Event {
            time_us: crate::clock::now_us(),
            service: "pop3",
            kind,
            client: self.peer,
            server: self.local,
            session: self.id.clone(),
            tls: self.tls.clone(),
            details,
            content: content.map(|c| Arc::new(c.to_vec())),
        };
        self.p.intercept.spawn_record(orders, event);
    }
}
