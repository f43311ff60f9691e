//! The POP3 proxy session (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034). Commands and
//! replies go one at a time (PIPELINING is not offered), so each reply is read knowing its command.
//! Before login only the commands of the AUTHORIZATION state pass, so a client's own `XCLIENT`
//! never reaches a backend that trusts sponts.

use anyhow::{Context, Result};
use tokio::time::timeout;

use super::stream::{MAX_LINE, Stream, Writer, backend_answer};
use super::{AfterLogin, LoggedIn, Session, Shared, intercept};

/// RFC 2449: a command line is at most 255 octets; some room for long SASL responses.
const MAX_COMMAND: usize = 8 * 1024;
/// A retrieved message is copied up to this size (the rest is relayed; the record says so).
const MAX_KEPT: usize = 64 << 20;

/// Tells the backend who the client is with `XCLIENT ADDR= PORT= SESSION=`, when its greeting
/// offers it (`+OK [XCLIENT] ...`: Dovecot does to the addresses in its `login_trusted_networks`);
/// returns the greeting as the client sees it, without that offer.
pub async fn forward_client(
    backend: &mut Stream,
    greeting: Vec<u8>,
    info: &Session,
) -> Result<Vec<u8>> {
    const OFFER: &[u8] = b"+OK [XCLIENT]";
    if !greeting
        .get(..OFFER.len())
        .is_some_and(|g| g.eq_ignore_ascii_case(OFFER))
    {
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "pop3 proxy: the backend does not offer XCLIENT, so it sees every client at sponts' address (Dovecot: add sponts' address to login_trusted_networks)"
            );
        }
        return Ok(greeting);
    }
    let ip = info.peer.ip().to_canonical();
    backend
        .write(
            format!(
                "XCLIENT ADDR={ip} PORT={} SESSION={}\r\n",
                info.peer.port(),
                info.id
            )
            .as_bytes(),
        )
        .await?;
    let reply = backend
        .line(MAX_LINE)
        .await?
        .context("the backend closed the connection at XCLIENT")?;
    if !reply.starts_with(b"+OK") {
        tracing::warn!(reply = %String::from_utf8_lossy(&reply).trim_end(), "pop3 proxy: the backend refused XCLIENT");
    }
    Ok([b"+OK".as_slice(), &greeting[OFFER.len()..]].concat())
}

/// The dialogue up to a successful login (`None`: the session ended before).
pub async fn until_login(
    mut client: Stream,
    mut backend: Stream,
    greeting: Vec<u8>,
    shared: &Shared,
    info: &Session,
) -> Result<Option<LoggedIn>> {
    client.write(&greeting).await?;
    let idle = shared.config.idle_timeout.0;
    let mut user = String::new();
    loop {
        let Some(line) = timeout(idle, client.line(MAX_COMMAND))
            .await
            .context("idle")??
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let (verb, arg) = text
            .split_once(' ')
            .map(|(v, a)| (v.to_ascii_uppercase(), a.trim().to_string()))
            .unwrap_or((text.to_ascii_uppercase(), String::new()));
        let plaintext = client.tls.is_none();
        let allow = shared.config.allow_plaintext_auth;
        match verb.as_str() {
            "STLS" if plaintext => {
                client.write(b"+OK Begin TLS negotiation\r\n").await?;
                client = client.accept_tls(&shared.tls).await?;
                continue;
            }
            "STLS" => {
                client.write(b"-ERR TLS is already active\r\n").await?;
                continue;
            }
            "AUTH"
                if !arg.is_empty()
                    && !super::readable_mechanism(arg.split(' ').next().unwrap_or("")) =>
            {
                // sponts must read who logs in: other mechanisms are neither offered nor let through.
                client
                    .write(b"-ERR [AUTH] Unsupported authentication mechanism\r\n")
                    .await?;
                continue;
            }
            "USER" | "PASS" | "APOP" | "AUTH" if plaintext && !allow => {
                client
                    .write(b"-ERR [AUTH] Use STLS first: no passwords in clear\r\n")
                    .await?;
                continue;
            }
            "PASS" | "APOP" | "AUTH"
                if (verb != "AUTH" || !arg.is_empty()) && super::throttled(shared, info) =>
            {
                client.write(b"-ERR [AUTH] Too many failed logins from your address, try again later\r\n").await?;
                continue;
            }
            "CAPA" | "USER" | "PASS" | "APOP" | "AUTH" | "QUIT" => {}
            // Nothing else before login: neither a command sponts does not read nor XCLIENT.
            _ => {
                client
                    .write(b"-ERR Unknown command, or log in first\r\n")
                    .await?;
                continue;
            }
        }
        // Every wait for the backend (and for the client mid-SASL) is bounded: see `backend_answer`.
        backend_answer(&mut client.rd, idle, async {
            Ok(backend.write(&line).await?)
        })
        .await?;
        let (login, reply) = match verb.as_str() {
            "CAPA" => {
                let capa =
                    backend_answer(&mut client.rd, idle, read_multiline(&mut backend)).await?;
                client
                    .write(&rewrite_capa(&capa, plaintext && !allow, plaintext))
                    .await?;
                continue;
            }
            "AUTH" if arg.is_empty() => {
                backend_answer(
                    &mut client.rd,
                    idle,
                    relay_multiline(&mut backend, &mut client.wr, false),
                )
                .await?;
                continue;
            }
            "USER" => {
                user = arg.clone();
                backend_answer(
                    &mut client.rd,
                    idle,
                    relay_line(&mut backend, &mut client.wr),
                )
                .await?;
                continue;
            }
            "PASS" => (
                user.clone(),
                backend_answer(
                    &mut client.rd,
                    idle,
                    relay_line(&mut backend, &mut client.wr),
                )
                .await?,
            ),
            "APOP" => (
                arg.split(' ').next().unwrap_or("").to_string(),
                backend_answer(
                    &mut client.rd,
                    idle,
                    relay_line(&mut backend, &mut client.wr),
                )
                .await?,
            ),
            "QUIT" => {
                backend_answer(
                    &mut client.rd,
                    idle,
                    relay_line(&mut backend, &mut client.wr),
                )
                .await?;
                return Ok(None);
            }
            _ => sasl(&arg, &mut client, &mut backend, idle).await?, // AUTH with a mechanism
        };
        let success = reply.starts_with(b"+OK");
        let details = serde_json::json!({ "login": login, "command": verb, "success": success, "reply": String::from_utf8_lossy(&reply).trim_end() });
        match super::after_login(shared, info, client.tls.clone(), &login, success, details) {
            AfterLogin::Continue => {}
            AfterLogin::Close => return Ok(None),
            AfterLogin::LoggedIn => {
                return Ok(Some(LoggedIn {
                    client,
                    backend,
                    login,
                }));
            }
        }
    }
}

/// A target's session after its login: every retrieved message is copied.
pub async fn target_session(
    mut client: Stream,
    mut backend: Stream,
    shared: &Shared,
    info: &Session,
    login: &str,
) -> Result<()> {
    let idle = shared.config.idle_timeout.0;
    loop {
        let Some(line) = timeout(idle, client.line(MAX_COMMAND))
            .await
            .context("idle")??
        else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let (verb, arg) = text
            .split_once(' ')
            .map(|(v, a)| (v.to_ascii_uppercase(), a.trim().to_string()))
            .unwrap_or((text.to_ascii_uppercase(), String::new()));
        backend.write(&line).await?;
        let first = relay_line(&mut backend, &mut client.wr).await?;
        if verb == "QUIT" {
            return Ok(());
        }
        if !(first.starts_with(b"+OK") && multiline(&verb, &arg)) {
            continue;
        }
        let keep = verb == "RETR" || verb == "TOP";
        let (body, whole) = relay_multiline(&mut backend, &mut client.wr, keep).await?;
        // Read again for each message: an order's end may have moved, or it may have begun.
        let active = shared.intercept.orders_now(&[login]);
        if keep && !active.is_empty() {
            let details = serde_json::json!({ "command": format!("{verb} {arg}"), "message": arg.split(' ').next().unwrap_or(""), "complete": whole });
            intercept(
                shared,
                info,
                client.tls.clone(),
                active,
                "retrieve",
                details,
                Some(body),
            );
        }
    }
}

/// Commands whose positive reply is multi-line.
fn multiline(verb: &str, arg: &str) -> bool {
    matches!(verb, "RETR" | "TOP" | "CAPA") || (matches!(verb, "LIST" | "UIDL") && arg.is_empty())
}

async fn relay_line(from: &mut Stream, to: &mut Writer) -> Result<Vec<u8>> {
    let line = from
        .line(MAX_LINE)
        .await?
        .context("the backend closed the connection")?;
    to.write(&line).await?;
    Ok(line)
}

/// Relays a multi-line reply up to and including its "." line; when `keep`, returns its content
/// with the dot-stuffing undone (at most `MAX_KEPT`: `false` when cut). Lines of any length pass.
async fn relay_multiline(
    from: &mut Stream,
    to: &mut Writer,
    keep: bool,
) -> Result<(Vec<u8>, bool)> {
    let (mut content, mut whole, mut out) = (Vec::new(), true, Vec::with_capacity(64 * 1024));
    let mut at_line_start = true;
    loop {
        let part = from
            .rd
            .line_part(MAX_LINE)
            .await?
            .context("the backend closed the connection")?;
        out.extend_from_slice(&part);
        let end = at_line_start && (part == b".\r\n" || part == b".\n");
        if keep && !end {
            let data = if at_line_start {
                part.strip_prefix(b".").unwrap_or(&part)
            } else {
                &part[..]
            };
            if whole && content.len() + data.len() <= MAX_KEPT {
                content.extend_from_slice(data);
            } else {
                whole = false;
            }
        }
        at_line_start = part.ends_with(b"\n");
        if end || out.len() >= 64 * 1024 {
            to.write(&out).await?;
            out.clear();
        }
        if end {
            return Ok((content, whole));
        }
    }
}

async fn read_multiline(from: &mut Stream) -> Result<Vec<u8>> {
    let mut all = Vec::new();
    loop {
        let line = from
            .line(MAX_LINE)
            .await?
            .context("the backend closed the connection")?;
        all.extend_from_slice(&line);
        if line == b".\r\n" || !all.starts_with(b"+OK") {
            return Ok(all);
        }
    }
}

/// The backend's capabilities as sponts offers them: STLS where the client has no TLS yet (sponts
/// does it), no PIPELINING (one command at a time), no XCLIENT (sponts' alone), SASL mechanisms
/// that name the user in the clear — and no way to log in at all (USER, SASL) while `no_logins`:
/// passwords would go in clear (RFC 2595 4).
fn rewrite_capa(capa: &[u8], no_logins: bool, plaintext: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(capa);
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match word.as_str() {
            "STLS" | "PIPELINING" | "XCLIENT" => {}
            "USER" | "SASL" if no_logins => {}
            "SASL" => {
                let mechs: Vec<&str> = line
                    .split_whitespace()
                    .skip(1)
                    .filter(|m| super::readable_mechanism(m))
                    .collect();
                if !mechs.is_empty() {
                    out.push_str(&format!("SASL {}\r\n", mechs.join(" ")));
                }
            }
            "." if plaintext => out.push_str("STLS\r\n.\r\n"),
            _ => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// AUTH with a mechanism: the SASL exchange relayed, the user name read from it. Each wait for
/// either side is bounded (`idle`; the backend's as in `backend_answer`).
async fn sasl(
    arg: &str,
    client: &mut Stream,
    backend: &mut Stream,
    idle: std::time::Duration,
) -> Result<(String, Vec<u8>)> {
    let mut words = arg.split_whitespace();
    let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
    let mut data: Vec<String> = words.next().map(str::to_string).into_iter().collect();
    loop {
        let reply =
            backend_answer(&mut client.rd, idle, relay_line(backend, &mut client.wr)).await?;
        if !reply.starts_with(b"+ ") && reply != b"+\r\n" {
            return Ok((
                super::sasl_user(&mechanism, &data).unwrap_or_default(),
                reply,
            ));
        }
        let response = timeout(idle, client.line(MAX_COMMAND))
            .await
            .context("idle")??
            .context("the client closed the connection")?;
        data.push(String::from_utf8_lossy(&response).trim_end().to_string());
        backend_answer(&mut client.rd, idle, async {
            Ok(backend.write(&response).await?)
        })
        .await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_backend_hears_the_clients_address_when_it_offers_xclient() {
        for (greeting, answers, sent, shown) in [
            (
                &b"+OK [XCLIENT] Dovecot ready. <1.2@host>\r\n"[..],
                &b"+OK Updated\r\n"[..],
                "XCLIENT ADDR=192.0.2.7 PORT=51234 SESSION=01KTEST\r\n",
                &b"+OK Dovecot ready. <1.2@host>\r\n"[..],
            ),
            (
                b"+OK Dovecot ready.\r\n",
                b"",
                "",
                b"+OK Dovecot ready.\r\n",
            ),
        ] {
            let (ours, theirs) = tokio::io::duplex(4096);
            let mut backend = Stream::new(Box::new(ours), None);
            let info = Session {
                id: "01KTEST".into(),
                peer: "[::ffff:192.0.2.7]:51234".parse().unwrap(),
                local: "198.51.100.1:110".parse().unwrap(),
                outcome: Default::default(),
            };
            let (mut rd, mut wr) = tokio::io::split(theirs);
            tokio::io::AsyncWriteExt::write_all(&mut wr, answers)
                .await
                .unwrap();
            let out = forward_client(&mut backend, greeting.to_vec(), &info)
                .await
                .unwrap();
            assert_eq!(out, shown, "the client is not offered XCLIENT");
            drop(backend);
            let mut got = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut rd, &mut got)
                .await
                .unwrap();
            assert_eq!(got, sent);
        }
    }

    #[test]
    fn capabilities_offer_stls_without_pipelining_and_readable_mechanisms() {
        let capa = b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nSTLS\r\nSASL PLAIN LOGIN CRAM-MD5\r\nUSER\r\nXCLIENT\r\n.\r\n";
        let plain = String::from_utf8(rewrite_capa(capa, false, true)).unwrap();
        assert_eq!(
            plain,
            "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nSASL PLAIN LOGIN\r\nUSER\r\nSTLS\r\n.\r\n",
            "plaintext logins allowed"
        );
        let before_tls = String::from_utf8(rewrite_capa(capa, true, true)).unwrap();
        assert_eq!(
            before_tls, "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nSTLS\r\n.\r\n",
            "no way to log in before TLS"
        );
        let tls = String::from_utf8(rewrite_capa(capa, false, false)).unwrap();
        assert!(!tls.contains("STLS") && tls.ends_with("SASL PLAIN LOGIN\r\nUSER\r\n.\r\n"));
    }
}
