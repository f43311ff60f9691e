//! The IMAP proxy session (RFC 9051/3501, STARTTLS, LITERAL+). Before login, one command at a
//! time: STARTTLS is sponts' own, capabilities are adjusted, LOGIN and AUTHENTICATE are read for
//! the user name. A target's session after login is read in both directions at once: literals
//! of APPEND (client to server) and of FETCH body items (server to client) are copied.

use anyhow::{Context, Result};
use tokio::time::timeout;

use super::stream::{Reader, Stream, Writer, MAX_LINE};
use super::{intercept, Session, Shared};
use crate::storage::intercept::Order;

/// Literals larger than this are relayed but copied only in part (the record says so).
const MAX_KEPT: usize = 64 << 20;

pub async fn run(mut client: Stream, mut backend: Stream, greeting: Vec<u8>, shared: &Shared, info: &Session) -> Result<()> {
    client.write(&rewrite_capabilities(&greeting, true, shared.config.allow_plaintext_auth)).await?;
    let idle = shared.config.idle_timeout.0;
    loop {
        let Some(first) = timeout(idle, client.line(MAX_LINE)).await.context("idle")?? else { return Ok(()) };
        let text = String::from_utf8_lossy(&first).trim_end().to_string();
        let mut words = text.splitn(3, ' ');
        let (tag, command) = (words.next().unwrap_or("").to_string(), words.next().unwrap_or("").to_ascii_uppercase());
        let plaintext = client.tls.is_none();
        match command.as_str() {
            "STARTTLS" if plaintext => {
                client.write(format!("{tag} OK Begin TLS negotiation now\r\n").as_bytes()).await?;
                client = client.accept_tls(&shared.tls).await?;
                continue;
            }
            "STARTTLS" => {
                client.write(format!("{tag} BAD TLS is already active\r\n").as_bytes()).await?;
                continue;
            }
            "LOGIN" | "AUTHENTICATE" if plaintext && !shared.config.allow_plaintext_auth => {
                client.write(format!("{tag} NO [PRIVACYREQUIRED] Use STARTTLS first: no passwords in clear\r\n").as_bytes()).await?;
                continue;
            }
            _ => {}
        }
        let (login, done) = if command == "AUTHENTICATE" {
            backend.write(&first).await?;
            let mechanism = text.split(' ').nth(2).unwrap_or("").to_string();
            let mut data: Vec<String> = text.split(' ').nth(3).map(str::to_string).into_iter().collect();
            let done = loop {
                let reply = backend.line(MAX_LINE).await?.context("the backend closed the connection")?;
                if reply.starts_with(b"+") {
                    client.write(&reply).await?;
                    let response = client.line(MAX_LINE).await?.context("the client closed the connection")?;
                    data.push(String::from_utf8_lossy(&response).trim_end().to_string());
                    backend.write(&response).await?;
                } else if reply.starts_with(format!("{tag} ").as_bytes()) {
                    break reply;
                } else {
                    client.write(&rewrite_capabilities(&reply, plaintext, shared.config.allow_plaintext_auth)).await?;
                }
            };
            (super::sasl_user(mechanism.split(' ').next().unwrap_or(""), &data).unwrap_or_default(), done)
        } else {
            let whole = forward_command(first, &mut client, &mut backend, plaintext, shared).await?;
            let Some(whole) = whole else { continue };
            let done = relay_until_tagged(&tag, &mut backend, &mut client, plaintext, shared).await?;
            if command != "LOGIN" {
                client.write(&rewrite_capabilities(&done, plaintext, shared.config.allow_plaintext_auth)).await?;
                if command == "LOGOUT" {
                    return Ok(());
                }
                continue;
            }
            (login_user(&whole).unwrap_or_default(), done)
        };
        client.write(&rewrite_capabilities(&done, plaintext, shared.config.allow_plaintext_auth)).await?;
        let success = done.get(tag.len() + 1..).is_some_and(|r| r.to_ascii_uppercase().starts_with(b"OK"));
        let orders = shared.intercept.orders_for_login(&login, crate::clock::now_us());
        if !orders.is_empty() {
            let details = serde_json::json!({ "login": login, "command": command, "success": success, "reply": String::from_utf8_lossy(&done).trim_end() });
            intercept(shared, info, client.tls.clone(), &orders, "login", details, None).await;
        }
        if success {
            if orders.is_empty() {
                // No target: from here on sponts does not read this session.
                client.relay(backend).await?;
                return Ok(());
            }
            return target_session(client, backend, shared, info, orders).await;
        }
    }
}

/// Forwards one command with its literals, relaying the backend's go-ahead for synchronizing
/// ones. Returns the whole command, or `None` when the backend refused a literal (its tagged
/// answer was relayed; the command is over).
async fn forward_command(first: Vec<u8>, client: &mut Stream, backend: &mut Stream, plaintext: bool, shared: &Shared) -> Result<Option<Vec<u8>>> {
    let mut whole = Vec::new();
    let mut line = first;
    loop {
        backend.write(&line).await?;
        whole.extend_from_slice(&line);
        let Some((n, sync)) = trailing_literal(&line) else { return Ok(Some(whole)) };
        if sync {
            let go = backend.line(MAX_LINE).await?.context("the backend closed the connection")?;
            client.write(&rewrite_capabilities(&go, plaintext, shared.config.allow_plaintext_auth)).await?;
            if !go.starts_with(b"+") {
                return Ok(None);
            }
        }
        let (literal, _) = client.rd.relay_exact(&mut backend.wr, n, MAX_LINE).await?;
        whole.extend_from_slice(&literal);
        line = client.line(MAX_LINE).await?.context("the client closed the connection")?;
    }
}

/// Relays responses (and their literals) until the one tagged `tag`, which is returned unsent.
async fn relay_until_tagged(tag: &str, backend: &mut Stream, client: &mut Stream, plaintext: bool, shared: &Shared) -> Result<Vec<u8>> {
    let tagged = format!("{tag} ");
    loop {
        let line = backend.line(MAX_LINE).await?.context("the backend closed the connection")?;
        if line.starts_with(tagged.as_bytes()) {
            return Ok(line);
        }
        client.write(&rewrite_capabilities(&line, plaintext, shared.config.allow_plaintext_auth)).await?;
        if let Some((n, _)) = trailing_literal(&line) {
            backend.rd.relay_exact(&mut client.wr, n, 0).await?;
        }
    }
}

/// A target's session after login, both directions at once.
async fn target_session(client: Stream, backend: Stream, shared: &Shared, info: &Session, orders: Vec<Order>) -> Result<()> {
    let tls = client.tls.clone();
    let (mut from_client, mut to_client) = client.split();
    let (mut from_backend, mut to_backend) = backend.split();
    let who = (shared, info, tls.as_deref(), orders.as_slice());
    let upload = uploads(&mut from_client, &mut to_backend, shared.config.idle_timeout.0, who);
    let download = downloads(&mut from_backend, &mut to_client, who);
    let result = tokio::select! {
        r = upload => r,
        r = download => r,
    };
    to_client.shutdown().await;
    to_backend.shutdown().await;
    result
}

type Who<'a> = (&'a Shared, &'a Session, Option<&'a str>, &'a [Order]);

async fn record(who: Who<'_>, kind: &'static str, details: serde_json::Value, content: Vec<u8>) {
    let (shared, info, tls, orders) = who;
    let now = crate::clock::now_us();
    let active: Vec<Order> = orders.iter().filter(|o| o.active_at(now)).cloned().collect();
    if active.is_empty() {
        return;
    }
    intercept(shared, info, tls.map(str::to_string), &active, kind, details, Some(content)).await;
}

/// Client to backend: commands relayed; APPEND's messages copied.
async fn uploads(from: &mut Reader, to: &mut Writer, idle: std::time::Duration, who: Who<'_>) -> Result<()> {
    loop {
        let Some(mut line) = timeout(idle, from.line(MAX_LINE)).await.context("idle")?? else { return Ok(()) };
        let text = String::from_utf8_lossy(&line).to_string();
        let command = text.split(' ').nth(1).unwrap_or("").trim_end().to_ascii_uppercase();
        if command == "COMPRESS" {
            // A compressed stream could not be read: the backend is asked for a mechanism that
            // does not exist, and refuses it.
            let tag = text.split(' ').next().unwrap_or("*");
            line = format!("{tag} COMPRESS X-NONE\r\n").into_bytes();
        }
        let head = text.trim_end().to_string();
        let mut messages = Vec::new();
        loop {
            to.write(&line).await?;
            let Some((n, _)) = trailing_literal(&line) else { break };
            let keep = if command == "APPEND" || command == "UID" && head.to_ascii_uppercase().contains(" APPEND ") { MAX_KEPT } else { 0 };
            let (literal, whole) = from.relay_exact(to, n, keep).await?;
            if keep > 0 {
                messages.push((literal, whole, n));
            }
            line = from.line(MAX_LINE).await?.context("the client closed the connection")?;
        }
        for (message, whole, size) in messages {
            let details = serde_json::json!({ "command": head, "size": size, "complete": whole });
            record(who, "append", details, message).await;
        }
    }
}

/// Backend to client: responses relayed; the literals of FETCH body items copied.
async fn downloads(from: &mut Reader, to: &mut Writer, who: Who<'_>) -> Result<()> {
    loop {
        let Some(mut line) = from.line(MAX_LINE).await? else { return Ok(()) };
        let mut response = String::new();
        let mut bodies = Vec::new();
        loop {
            let (plaintext, allow) = (false, who.0.config.allow_plaintext_auth);
            to.write(&rewrite_capabilities(&line, plaintext, allow)).await?;
            response.push_str(String::from_utf8_lossy(&line).trim_end());
            let Some((n, _)) = trailing_literal(&line) else { break };
            let item = body_item(&String::from_utf8_lossy(&line));
            let (literal, whole) = from.relay_exact(to, n, if item.is_some() { MAX_KEPT } else { 0 }).await?;
            if let Some(item) = item {
                bodies.push((item, literal, whole, n));
            }
            line = from.line(MAX_LINE).await?.context("the backend closed the connection")?;
        }
        if bodies.is_empty() {
            continue;
        }
        let sequence = response.split(' ').nth(1).unwrap_or("").to_string();
        let uid = uid_of(&response);
        for (item, body, whole, size) in bodies {
            let details = serde_json::json!({ "item": item, "message": sequence, "uid": uid, "size": size, "complete": whole });
            record(who, "retrieve", details, body).await;
        }
    }
}

/// `{123}` (synchronizing), `{123+}` (LITERAL+) or `~{123}` (binary) at the end of a line.
fn trailing_literal(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let (digits, sync) = match digits.strip_suffix(b"+").or_else(|| digits.strip_suffix(b"-")) {
        Some(d) => (d, false),
        None => (digits, true),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((std::str::from_utf8(digits).ok()?.parse().ok()?, sync))
}

/// The FETCH item a literal at the end of a response line belongs to, when it is (part of) a
/// message: `BODY[...]`, `BINARY[...]`, `RFC822`, `RFC822.TEXT`, `RFC822.HEADER`.
fn body_item(line: &str) -> Option<String> {
    let upper = line.trim_end().to_ascii_uppercase();
    let before = upper.rsplit_once('{')?.0.trim_end().trim_end_matches('~').trim_end();
    // A section may hold spaces and parentheses: BODY[HEADER.FIELDS (SUBJECT)].
    for prefix in [" BODY[", "(BODY[", " BINARY[", "(BINARY["] {
        if let Some(at) = before.rfind(prefix) {
            let item = &before[at + 1..];
            if item.ends_with(']') || item.ends_with('>') && item.contains("]<") {
                return Some(item.to_string());
            }
        }
    }
    let item = before.rsplit([' ', '(']).next()?;
    matches!(item, "RFC822" | "RFC822.TEXT" | "RFC822.HEADER").then(|| item.to_string())
}

fn uid_of(response: &str) -> Option<u64> {
    let upper = response.to_ascii_uppercase();
    let at = upper.find(" UID ").or_else(|| upper.find("(UID "))?;
    upper[at + 5..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The user name of `tag LOGIN user password` (atom, quoted string or literal).
fn login_user(command: &[u8]) -> Option<String> {
    let mut rest = command;
    for _ in 0..2 {
        let space = rest.iter().position(|&b| b == b' ')?;
        rest = &rest[space + 1..];
    }
    if let Some(quoted) = rest.strip_prefix(b"\"") {
        let mut out = Vec::new();
        let mut escaped = false;
        for &b in quoted {
            match (escaped, b) {
                (false, b'\\') => escaped = true,
                (false, b'"') => return String::from_utf8(out).ok(),
                _ => {
                    out.push(b);
                    escaped = false;
                }
            }
        }
        return None;
    }
    if rest.starts_with(b"{") {
        let end = rest.iter().position(|&b| b == b'\n')?;
        let (n, _) = trailing_literal(&rest[..=end])?;
        return String::from_utf8(rest.get(end + 1..end + 1 + n as usize)?.to_vec()).ok();
    }
    let atom = rest.split(|&b| b == b' ' || b == b'\r' || b == b'\n').next()?;
    String::from_utf8(atom.to_vec()).ok()
}

/// Capabilities as sponts offers them, in `* CAPABILITY` responses and `[CAPABILITY ...]` codes:
/// STARTTLS where the client has no TLS yet (sponts does it), LOGINDISABLED while passwords would
/// go in clear, no COMPRESS (a compressed stream could not be read), SASL mechanisms that name
/// the user in the clear. Other lines pass unchanged.
fn rewrite_capabilities(line: &[u8], plaintext: bool, allow_plaintext_auth: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let upper = text.to_ascii_uppercase();
    let (start, end) = if let Some(s) = upper.strip_prefix("* CAPABILITY ") {
        (text.len() - s.len(), text.trim_end().len())
    } else if let Some(at) = upper.find("[CAPABILITY ") {
        let from = at + "[CAPABILITY ".len();
        match upper[from..].find(']') {
            Some(close) => (from, from + close),
            None => return line.to_vec(),
        }
    } else {
        return line.to_vec();
    };
    let mut caps: Vec<&str> = text[start..end]
        .split(' ')
        .filter(|c| {
            let u = c.to_ascii_uppercase();
            !(u.is_empty() || u == "STARTTLS" || u == "LOGINDISABLED" || u.starts_with("COMPRESS=") || u.starts_with("AUTH=") && !super::readable_mechanism(&u[5..]))
        })
        .collect();
    if plaintext {
        caps.push("STARTTLS");
        if !allow_plaintext_auth {
            caps.push("LOGINDISABLED");
        }
    }
    format!("{}{}{}", &text[..start], caps.join(" "), &text[end..]).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_items_and_logins_are_read() {
        assert_eq!(trailing_literal(b"a APPEND INBOX {310}\r\n"), Some((310, true)));
        assert_eq!(trailing_literal(b"a APPEND INBOX {310+}\r\n"), Some((310, false)));
        assert_eq!(trailing_literal(b"* 1 FETCH (BINARY[] ~{5}\r\n"), Some((5, true)));
        assert_eq!(trailing_literal(b"a LOGIN x {y}\r\n"), None);
        assert_eq!(body_item("* 3 FETCH (UID 7 BODY[] {42}\r\n"), Some("BODY[]".into()));
        assert_eq!(body_item("* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {42}\r\n"), Some("BODY[HEADER.FIELDS (SUBJECT)]".into()));
        assert_eq!(body_item("* 3 FETCH (BODY[]<0> {42}\r\n"), Some("BODY[]<0>".into()));
        assert_eq!(body_item("* 3 FETCH (RFC822 {42}\r\n"), Some("RFC822".into()));
        assert_eq!(body_item("* 3 FETCH (ENVELOPE (NIL {42}\r\n"), None);
        assert_eq!(uid_of("* 3 FETCH (UID 7 BODY[] {42} FLAGS (\\Seen))"), Some(7));
        assert_eq!(login_user(b"a1 LOGIN target \"pass word\"\r\n").as_deref(), Some("target"));
        assert_eq!(login_user(b"a1 LOGIN \"tar\\\"get\" x\r\n").as_deref(), Some("tar\"get"));
        assert_eq!(login_user(b"a1 LOGIN {6}\r\ntarget {4}\r\npass\r\n").as_deref(), Some("target"));
    }

    #[test]
    fn capabilities_are_adjusted() {
        let line = b"* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ STARTTLS AUTH=PLAIN AUTH=SCRAM-SHA-1 LOGINDISABLED COMPRESS=DEFLATE] Dovecot ready.\r\n";
        assert_eq!(String::from_utf8(rewrite_capabilities(line, true, false)).unwrap(), "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN STARTTLS LOGINDISABLED] Dovecot ready.\r\n");
        assert_eq!(String::from_utf8(rewrite_capabilities(b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=LOGIN\r\n", false, false)).unwrap(), "* CAPABILITY IMAP4rev1 AUTH=LOGIN\r\n");
        assert_eq!(rewrite_capabilities(b"* 3 EXISTS\r\n", true, false), b"* 3 EXISTS\r\n");
    }
}
