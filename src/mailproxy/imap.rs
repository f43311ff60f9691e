//! The IMAP proxy session (RFC 9051/3501, STARTTLS, LITERAL+). Before login, one command at a
//! time: STARTTLS is sponts' own, capabilities are adjusted, LOGIN and AUTHENTICATE are read for
//! the user name. A target's session after login is read in both directions at once: literals
//! of APPEND (client to server) and of FETCH body items (server to client) are copied.
//! The backend hears the client's address in sponts' own `ID` before the client speaks; a
//! client's `ID` before login is answered by sponts, so it cannot claim another address.

use anyhow::{Context, Result};
use tokio::time::timeout;

use super::stream::{MAX_LINE, Reader, Stream, Writer, backend_answer};
use super::{AfterLogin, LoggedIn, Session, Shared, intercept};

/// Literals larger than this are relayed but copied only in part (the record says so).
const MAX_KEPT: usize = 64 << 20;

/// Tells the backend who the client is, with the `ID` fields Dovecot takes from the addresses in
/// its `login_trusted_networks` (RFC 2971; `x-originating-ip` and the like), when the backend
/// offers ID. Returns the greeting unchanged.
pub async fn forward_client(
    backend: &mut Stream,
    greeting: Vec<u8>,
    info: &Session,
) -> Result<Vec<u8>> {
    if !greeting.starts_with(b"* OK") {
        return Ok(greeting); // BYE (or PREAUTH): the client hears it as it is
    }
    let offered = match capability_span(&greeting) {
        Some((start, end)) => has_id(&greeting[start..end]),
        None => {
            backend.write(b"S1 CAPABILITY\r\n").await?;
            let mut id = false;
            loop {
                let line = backend
                    .line(MAX_LINE)
                    .await?
                    .context("the backend closed the connection at CAPABILITY")?;
                if line.starts_with(b"S1 ") {
                    break id;
                }
                if let Some((start, end)) = capability_span(&line) {
                    id |= has_id(&line[start..end]);
                }
            }
        }
    };
    if !offered {
        return Ok(greeting);
    }
    let (peer, local) = (info.peer, info.local);
    let command = format!(
        "S2 ID (\"x-originating-ip\" \"{}\" \"x-originating-port\" \"{}\" \"x-connected-ip\" \"{}\" \"x-connected-port\" \"{}\" \"x-session-ext-id\" \"{}\")\r\n",
        peer.ip().to_canonical(),
        peer.port(),
        local.ip().to_canonical(),
        local.port(),
        info.id
    );
    backend.write(command.as_bytes()).await?;
    loop {
        let line = backend
            .line(MAX_LINE)
            .await?
            .context("the backend closed the connection at ID")?;
        if line.starts_with(b"S2 ") {
            if !line
                .get(3..)
                .is_some_and(|r| r.to_ascii_uppercase().starts_with(b"OK"))
            {
                tracing::warn!(reply = %String::from_utf8_lossy(&line).trim_end(), "imap proxy: the backend refused ID with the client's address");
            }
            return Ok(greeting);
        }
    }
}

fn has_id(capabilities: &[u8]) -> bool {
    capabilities
        .split(|&b| b == b' ')
        .any(|c| c.eq_ignore_ascii_case(b"ID"))
}

/// The dialogue up to a successful login (`None`: the session ended before).
pub async fn until_login(
    mut client: Stream,
    mut backend: Stream,
    greeting: Vec<u8>,
    shared: &Shared,
    info: &Session,
) -> Result<Option<LoggedIn>> {
    let allow = shared.config.allow_plaintext_auth;
    client
        .write(&rewrite_capabilities(
            &greeting,
            client.tls.is_none(),
            allow,
        ))
        .await?;
    let idle = shared.config.idle_timeout.0;
    loop {
        let Some(first) = timeout(idle, client.line(MAX_LINE))
            .await
            .context("idle")??
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&first).trim_end().to_string();
        let (tag, command, rest) = split_command(&text);
        let plaintext = client.tls.is_none();
        if !valid_tag(tag) {
            client.write(b"* BAD Missing or invalid tag\r\n").await?;
            timeout(idle, discard_literals(&first, &mut client))
                .await
                .context("idle")??;
            continue;
        }
        let refusal = match command.as_str() {
            "STARTTLS" if plaintext => {
                client
                    .write(format!("{tag} OK Begin TLS negotiation now\r\n").as_bytes())
                    .await?;
                client = client.accept_tls(&shared.tls).await?;
                continue;
            }
            "STARTTLS" => Some("BAD TLS is already active"),
            "LOGIN" | "AUTHENTICATE" if plaintext && !allow => {
                Some("NO [PRIVACYREQUIRED] Use STARTTLS first: no passwords in clear")
            }
            "AUTHENTICATE" if !super::readable_mechanism(rest.split(' ').next().unwrap_or("")) => {
                Some("NO [CANNOT] Unsupported authentication mechanism")
            }
            "LOGIN" | "AUTHENTICATE" if super::throttled(shared, info) => Some(
                "NO [AUTHENTICATIONFAILED] Too many failed logins from your address, try again later",
            ),
            "ID" => {
                // sponts' ID told the backend the client's address; the client's own is not sent
                // on (from sponts, a backend would believe its x-originating-ip).
                timeout(idle, read_command(first, &mut client))
                    .await
                    .context("idle")??;
                client
                    .write(format!("* ID NIL\r\n{tag} OK ID completed\r\n").as_bytes())
                    .await?;
                continue;
            }
            "CAPABILITY" | "NOOP" | "LOGOUT" | "LOGIN" | "AUTHENTICATE" => None,
            // Nothing else before login: a command sponts does not read must not log anyone in.
            _ => Some("BAD Log in first"),
        };
        if let Some(refusal) = refusal {
            client
                .write(format!("{tag} {refusal}\r\n").as_bytes())
                .await?;
            timeout(idle, discard_literals(&first, &mut client))
                .await
                .context("idle")??;
            continue;
        }
        let (login, done) = match command.as_str() {
            "AUTHENTICATE" => {
                backend.write(&first).await?;
                let mut words = rest.split(' ').filter(|w| !w.is_empty());
                let mechanism = words.next().unwrap_or("").to_string();
                let mut data: Vec<String> = words.next().map(str::to_string).into_iter().collect();
                let done = loop {
                    let reply = backend_answer(&mut client.rd, idle, async {
                        backend
                            .line(MAX_LINE)
                            .await?
                            .context("the backend closed the connection")
                    })
                    .await?;
                    if reply.starts_with(b"+") {
                        client.write(&reply).await?;
                        let response = timeout(idle, client.line(MAX_LINE))
                            .await
                            .context("idle")??
                            .context("the client closed the connection")?;
                        data.push(String::from_utf8_lossy(&response).trim_end().to_string());
                        backend.write(&response).await?;
                    } else if reply.starts_with(format!("{tag} ").as_bytes()) {
                        break reply;
                    } else {
                        client
                            .write(&rewrite_capabilities(&reply, plaintext, allow))
                            .await?;
                    }
                };
                (
                    super::sasl_user(&mechanism, &data).unwrap_or_default(),
                    done,
                )
            }
            "LOGIN" => {
                // Read whole (sponts answers the client's literals itself) and sent on as sponts
                // read it: the backend authenticates exactly the name sponts saw.
                let whole = timeout(idle, read_command(first, &mut client))
                    .await
                    .context("idle")??;
                let Some((user, password)) = login_arguments(&whole) else {
                    client
                        .write(format!("{tag} BAD Invalid LOGIN arguments\r\n").as_bytes())
                        .await?;
                    continue;
                };
                let rebuilt = [
                    format!("{tag} LOGIN ").into_bytes(),
                    astring(&user),
                    b" ".to_vec(),
                    astring(&password),
                    b"\r\n".to_vec(),
                ]
                .concat();
                let sent = async {
                    match send_command(&rebuilt, &mut backend).await? {
                        Some(refused) => Ok(refused),
                        None => {
                            relay_until_tagged(tag, &mut backend, &mut client.wr, plaintext, allow)
                                .await
                        }
                    }
                };
                let done = backend_answer(&mut client.rd, idle, sent).await?;
                (String::from_utf8_lossy(&user).into_owned(), done)
            }
            _ => {
                if !forward_command(first, &mut client, &mut backend, plaintext, allow, idle)
                    .await?
                {
                    continue;
                }
                let done = backend_answer(
                    &mut client.rd,
                    idle,
                    relay_until_tagged(tag, &mut backend, &mut client.wr, plaintext, allow),
                )
                .await?;
                client
                    .write(&rewrite_capabilities(&done, plaintext, allow))
                    .await?;
                if command == "LOGOUT" {
                    return Ok(None);
                }
                continue;
            }
        };
        client
            .write(&rewrite_capabilities(&done, plaintext, allow))
            .await?;
        let success = done
            .get(tag.len() + 1..)
            .is_some_and(|r| r.to_ascii_uppercase().starts_with(b"OK"));
        let details = serde_json::json!({ "login": login, "command": command, "success": success, "reply": String::from_utf8_lossy(&done).trim_end() });
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

/// Tag, command (upper case) and the rest, with runs of spaces between them tolerated.
fn split_command(text: &str) -> (&str, String, &str) {
    let (tag, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim_start_matches(' ');
    let (command, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    (
        tag,
        command.to_ascii_uppercase(),
        rest.trim_start_matches(' '),
    )
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+]".contains(&b))
}

/// A refused command's non-synchronizing literals, read and dropped (the client sends those
/// without waiting; a synchronizing one it never sends once refused).
async fn discard_literals(first: &[u8], client: &mut Stream) -> Result<()> {
    let mut line = first.to_vec();
    while let Some((n, false)) = trailing_literal(&line) {
        client.rd.skip(n).await?;
        line = client
            .line(MAX_LINE)
            .await?
            .context("the client closed the connection")?;
    }
    Ok(())
}

/// A whole command from the client, its synchronizing literals answered by sponts ("+"); at most
/// a few literals of at most `MAX_LINE` each (LOGIN needs two).
async fn read_command(first: Vec<u8>, client: &mut Stream) -> Result<Vec<u8>> {
    let mut whole = Vec::new();
    let mut line = first;
    for _ in 0..4 {
        whole.extend_from_slice(&line);
        let Some((n, sync)) = trailing_literal(&line) else {
            return Ok(whole);
        };
        anyhow::ensure!(n as usize <= MAX_LINE, "literal too long before login");
        if sync {
            client.write(b"+ Ready for literal data\r\n").await?;
        }
        whole.extend_from_slice(&client.rd.exact(n as usize).await?);
        line = client
            .line(MAX_LINE)
            .await?
            .context("the client closed the connection")?;
    }
    anyhow::bail!("too many literals before login")
}

/// Sends a command sponts composed, waiting for the backend's "+" at each synchronizing literal.
/// `Some(reply)`: the backend refused a literal with this tagged reply.
async fn send_command(command: &[u8], backend: &mut Stream) -> Result<Option<Vec<u8>>> {
    let mut rest = command;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let (line, after) = rest.split_at(end + 1);
        backend.write(line).await?;
        rest = after;
        if let Some((n, true)) = trailing_literal(line) {
            let go = backend
                .line(MAX_LINE)
                .await?
                .context("the backend closed the connection")?;
            if !go.starts_with(b"+") {
                return Ok(Some(go));
            }
            let n = (n as usize).min(rest.len());
            backend.write(&rest[..n]).await?;
            rest = &rest[n..];
        }
    }
    Ok(None)
}

/// Forwards one command with its literals, relaying the backend's go-ahead for synchronizing
/// ones. False when the backend refused a literal (its tagged answer was relayed; the command
/// is over).
async fn forward_command(
    first: Vec<u8>,
    client: &mut Stream,
    backend: &mut Stream,
    plaintext: bool,
    allow: bool,
    idle: std::time::Duration,
) -> Result<bool> {
    let mut line = first;
    for _ in 0..16 {
        backend.write(&line).await?;
        let Some((n, sync)) = trailing_literal(&line) else {
            return Ok(true);
        };
        anyhow::ensure!(n as usize <= MAX_LINE, "literal too long before login");
        if sync {
            let go = backend_answer(&mut client.rd, idle, async {
                backend
                    .line(MAX_LINE)
                    .await?
                    .context("the backend closed the connection")
            })
            .await?;
            client
                .write(&rewrite_capabilities(&go, plaintext, allow))
                .await?;
            if !go.starts_with(b"+") {
                return Ok(false);
            }
        }
        timeout(idle, client.rd.relay_exact(&mut backend.wr, n, 0))
            .await
            .context("idle")??;
        line = timeout(idle, client.line(MAX_LINE))
            .await
            .context("idle")??
            .context("the client closed the connection")?;
    }
    anyhow::bail!("too many literals before login")
}

/// Relays responses (and their literals) until the one tagged `tag`, which is returned unsent.
async fn relay_until_tagged(
    tag: &str,
    backend: &mut Stream,
    client: &mut Writer,
    plaintext: bool,
    allow: bool,
) -> Result<Vec<u8>> {
    let tagged = format!("{tag} ");
    loop {
        let line = backend
            .line(MAX_LINE)
            .await?
            .context("the backend closed the connection")?;
        if line.starts_with(tagged.as_bytes()) {
            return Ok(line);
        }
        client
            .write(&rewrite_capabilities(&line, plaintext, allow))
            .await?;
        if let Some((n, _)) = trailing_literal(&line) {
            backend.rd.relay_exact(client, n, 0).await?;
        }
    }
}

/// What the backend said to a synchronizing literal of the client's.
enum Go {
    /// A continuation request ("+"): the literal may follow.
    Continue,
    /// A tagged reply (its tag, and whether it was OK): that command is over.
    Tagged(String, bool),
}

/// A target's session after login, both directions at once. Each copy is recorded in a task of
/// its own, so the session never waits for it and ending the session never cancels it.
pub async fn target_session(
    client: Stream,
    backend: Stream,
    shared: &Shared,
    info: &Session,
    login: &str,
) -> Result<()> {
    let tls = client.tls.clone();
    let (mut from_client, mut to_client) = client.split();
    let (mut from_backend, mut to_backend) = backend.split();
    let (go_tx, mut go_rx) = tokio::sync::mpsc::unbounded_channel();
    let (up_done, up_done_rx) = tokio::sync::oneshot::channel::<()>();
    let who = Who {
        shared,
        info,
        tls: tls.as_deref(),
        login,
    };
    // The tag of a COMPRESS DEFLATE sent on: its OK turns both directions to DEFLATE.
    let compressing = std::sync::Mutex::new(None::<String>);
    let up = async {
        let r = uploads(
            &mut from_client,
            &mut to_backend,
            &mut go_rx,
            shared.config.idle_timeout.0,
            &who,
            &compressing,
        )
        .await;
        to_backend.shutdown().await;
        let _ = up_done.send(());
        r
    };
    let down = async {
        // Owned here: when this direction ends, waits for the backend's answers end too.
        let go_tx = go_tx;
        // Once the client is gone, the backend gets a little time to say goodbye.
        let grace = async {
            let _ = up_done_rx.await;
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        };
        let r = tokio::select! {
            r = downloads(&mut from_backend, &mut to_client, &go_tx, &who, &compressing) => r,
            _ = grace => Ok(()),
        };
        to_client.shutdown().await;
        r
    };
    let (a, b) = tokio::join!(up, down);
    a.and(b)
}

struct Who<'a> {
    shared: &'a Shared,
    info: &'a Session,
    tls: Option<&'a str>,
    login: &'a str,
}

impl Who<'_> {
    /// Copies `content` for the orders in effect now (read again for each event: an order's end
    /// may have moved, or it may have begun since the login).
    fn record(&self, kind: &'static str, details: serde_json::Value, content: Vec<u8>) {
        let active = self.shared.intercept.orders_now(&[self.login]);
        if !active.is_empty() {
            intercept(
                self.shared,
                self.info,
                self.tls.map(str::to_string),
                active,
                kind,
                details,
                Some(content),
            );
        }
    }
}

/// Client to backend: commands relayed; each APPENDed message copied as it passes.
async fn uploads(
    from: &mut Reader,
    to: &mut Writer,
    go: &mut tokio::sync::mpsc::UnboundedReceiver<Go>,
    idle: std::time::Duration,
    who: &Who<'_>,
    compressing: &std::sync::Mutex<Option<String>>,
) -> Result<()> {
    loop {
        let Some(mut line) = timeout(idle, from.line(MAX_LINE)).await.context("idle")?? else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let (tag, command, arg) = split_command(&text);
        let tag = tag.to_string();
        // Go-aheads for earlier commands are stale now.
        while go.try_recv().is_ok() {}
        if command == "COMPRESS" && arg.eq_ignore_ascii_case("DEFLATE") {
            // The client sends nothing more until the answer (RFC 4978); after an OK both
            // sides speak DEFLATE, which sponts takes off and puts on again.
            *compressing.lock().expect("compress lock") = Some(tag.clone());
            to.write(&line).await?;
            let ok = tokio::select! {
                ok = timeout(idle, wait_for_tagged(go, &tag)) => ok.context("no answer to COMPRESS")?,
                // The client is gone: its end goes on to the backend, whose end ends the session.
                () = from.closed() => return Ok(()),
            };
            if ok {
                to.deflate();
                from.inflate();
            }
            continue;
        }
        if command == "COMPRESS" {
            // Any other form (a mechanism sponts cannot read, a quoted or literal argument): the
            // backend is asked for a mechanism that does not exist, and refuses it.
            line = format!("{tag} COMPRESS X-NONE\r\n").into_bytes();
        }
        let append = command == "APPEND";
        loop {
            to.write(&line).await?;
            let Some((n, sync)) = trailing_literal(&line) else {
                break;
            };
            if sync {
                let go_ahead = tokio::select! {
                    go_ahead = timeout(idle, wait_for_go(go, &tag)) => go_ahead.context("no answer to a literal")?,
                    // The client is gone before its literal: as above.
                    () = from.closed() => return Ok(()),
                };
                if !go_ahead {
                    // The backend refused the literal: the client does not send it.
                    break;
                }
            }
            let (literal, whole) = from
                .relay_exact(to, n, if append { MAX_KEPT } else { 0 })
                .await?;
            if append {
                who.record(
                    "append",
                    serde_json::json!({ "command": text, "size": n, "complete": whole }),
                    literal,
                );
            }
            line = from
                .line(MAX_LINE)
                .await?
                .context("the client closed the connection")?;
        }
    }
}

async fn wait_for_go(go: &mut tokio::sync::mpsc::UnboundedReceiver<Go>, tag: &str) -> bool {
    while let Some(g) = go.recv().await {
        match g {
            Go::Continue => return true,
            Go::Tagged(t, _) if t == tag => return false,
            Go::Tagged(..) => {}
        }
    }
    false
}

/// Waits for the tagged reply to `tag`; true if it was OK.
async fn wait_for_tagged(go: &mut tokio::sync::mpsc::UnboundedReceiver<Go>, tag: &str) -> bool {
    while let Some(g) = go.recv().await {
        if let Go::Tagged(t, ok) = g
            && t == tag
        {
            return ok;
        }
    }
    false
}

/// Backend to client: responses relayed; the literals of FETCH body items copied.
async fn downloads(
    from: &mut Reader,
    to: &mut Writer,
    go: &tokio::sync::mpsc::UnboundedSender<Go>,
    who: &Who<'_>,
    compressing: &std::sync::Mutex<Option<String>>,
) -> Result<()> {
    loop {
        let Some(mut line) = from.line(MAX_LINE).await? else {
            return Ok(());
        };
        if line.starts_with(b"+") {
            let _ = go.send(Go::Continue);
        } else if !line.starts_with(b"*") {
            let text = String::from_utf8_lossy(&line).into_owned();
            let mut words = text.split(' ');
            let (tag, ok) = (
                words.next().unwrap_or_default().to_string(),
                words.next().is_some_and(|w| w.eq_ignore_ascii_case("OK")),
            );
            let answers_compress = {
                let mut pending = compressing.lock().expect("compress lock");
                let mine = pending.as_deref() == Some(tag.as_str());
                if mine {
                    *pending = None;
                }
                mine
            };
            if answers_compress {
                // The answer goes out as it came; after an OK, DEFLATE both ways.
                to.write(&line).await?;
                if ok {
                    from.inflate();
                    to.deflate();
                }
                let _ = go.send(Go::Tagged(tag, ok));
                continue;
            }
            let _ = go.send(Go::Tagged(tag, ok));
        }
        let mut response = String::new();
        let mut bodies = Vec::new();
        let mut budget = MAX_KEPT;
        loop {
            to.write(&rewrite_capabilities(
                &line,
                false,
                who.shared.config.allow_plaintext_auth,
            ))
            .await?;
            response.push_str(String::from_utf8_lossy(&line).trim_end());
            let Some((n, _)) = trailing_literal(&line) else {
                break;
            };
            let item = body_item(&String::from_utf8_lossy(&line));
            let (literal, whole) = from
                .relay_exact(to, n, if item.is_some() { budget } else { 0 })
                .await?;
            if let Some(item) = item {
                budget -= literal.len();
                bodies.push((item, literal, whole, n));
            }
            line = from
                .line(MAX_LINE)
                .await?
                .context("the backend closed the connection")?;
        }
        if bodies.is_empty() {
            continue;
        }
        let sequence = response.split(' ').nth(1).unwrap_or("").to_string();
        let uid = uid_of(&response);
        for (item, body, whole, size) in bodies {
            who.record("retrieve", serde_json::json!({ "item": item, "message": sequence, "uid": uid, "size": size, "complete": whole }), body);
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
    let (digits, sync) = match digits
        .strip_suffix(b"+")
        .or_else(|| digits.strip_suffix(b"-"))
    {
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
    let before = upper
        .rsplit_once('{')?
        .0
        .trim_end()
        .trim_end_matches('~')
        .trim_end();
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
    upper[at + 5..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// User and password of `tag LOGIN user password` (each an atom, a quoted string or a literal,
/// runs of spaces tolerated).
fn login_arguments(command: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut rest = command;
    for _ in 0..2 {
        let space = rest.iter().position(|&b| b == b' ')?;
        rest = &rest[space..];
        rest = &rest[rest.iter().position(|&b| b != b' ')?..];
    }
    let (user, rest) = astring_at(rest)?;
    let rest = &rest[rest.iter().position(|&b| b != b' ')?..];
    let (password, rest) = astring_at(rest)?;
    matches!(rest, b"\r\n" | b"\n").then_some((user, password))
}

/// One astring at the start of `input`, and what follows it.
fn astring_at(input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if let Some(quoted) = input.strip_prefix(b"\"") {
        let mut out = Vec::new();
        let mut escaped = false;
        for (i, &b) in quoted.iter().enumerate() {
            match (escaped, b) {
                (false, b'\\') => escaped = true,
                (false, b'"') => return Some((out, &quoted[i + 1..])),
                (_, b'\r' | b'\n') => return None,
                _ => {
                    out.push(b);
                    escaped = false;
                }
            }
        }
        return None;
    }
    if input.starts_with(b"{") {
        let end = input.iter().position(|&b| b == b'\n')?;
        let (n, _) = trailing_literal(&input[..=end])?;
        let body = input.get(end + 1..end + 1 + n as usize)?;
        return Some((body.to_vec(), &input[end + 1 + n as usize..]));
    }
    let len = input
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
    (len > 0).then(|| (input[..len].to_vec(), &input[len..]))
}

/// An astring as sponts sends it: a quoted string, or a synchronizing literal when the value
/// holds what a quoted string cannot.
fn astring(value: &[u8]) -> Vec<u8> {
    if value.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        let mut out = vec![b'"'];
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    } else {
        [
            format!("{{{}}}\r\n", value.len()).into_bytes(),
            value.to_vec(),
        ]
        .concat()
    }
}

/// Capabilities as sponts offers them, in `* CAPABILITY` responses and `[CAPABILITY ...]` codes:
/// STARTTLS where the client has no TLS yet (sponts does it), LOGINDISABLED while passwords would
/// go in clear, COMPRESS=DEFLATE only (sponts reads through it; other mechanisms it could not),
/// SASL mechanisms that name the user in the clear. Other lines pass unchanged.
fn rewrite_capabilities(line: &[u8], plaintext: bool, allow_plaintext_auth: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let Some((start, end)) = capability_span(text.as_bytes()) else {
        return line.to_vec();
    };
    // Before TLS no way to log in is offered at all (RFC 9051 7.2.1, RFC 2595 3.2): a client that
    // saw SASL-IR and AUTH=PLAIN might send its password with its first command.
    let no_logins = plaintext && !allow_plaintext_auth;
    let mut caps: Vec<&str> = text[start..end]
        .split(' ')
        .filter(|c| {
            let u = c.to_ascii_uppercase();
            let login = u == "SASL-IR" || u.starts_with("AUTH=");
            !(u.is_empty()
                || u == "STARTTLS"
                || u == "LOGINDISABLED"
                || u.starts_with("XCLIENT")
                || u.starts_with("COMPRESS=") && u != "COMPRESS=DEFLATE"
                || u.starts_with("AUTH=") && !super::readable_mechanism(&u[5..])
                || login && no_logins)
        })
        .collect();
    if plaintext {
        caps.push("STARTTLS");
        if no_logins {
            caps.push("LOGINDISABLED");
        }
    }
    format!("{}{}{}", &text[..start], caps.join(" "), &text[end..]).into_bytes()
}

/// Where the capability names are in a `* CAPABILITY ...` response or a `[CAPABILITY ...]`
/// response code right after the status word (`* OK [CAPABILITY ...]`, `a1 OK [...]`); byte
/// offsets into `line`.
fn capability_span(line: &[u8]) -> Option<(usize, usize)> {
    let upper = line.to_ascii_uppercase();
    if let Some(s) = upper.strip_prefix(b"* CAPABILITY ") {
        let from = upper.len() - s.len();
        return Some((from, upper.trim_ascii_end().len().max(from)));
    }
    let mut words = upper.splitn(3, |&b| b == b' ');
    let (_, status, rest) = (
        words.next(),
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    if !matches!(status, b"OK" | b"NO" | b"BAD" | b"PREAUTH" | b"BYE")
        || !rest.starts_with(b"[CAPABILITY ")
    {
        return None;
    }
    let from = upper.len() - rest.len() + b"[CAPABILITY ".len();
    let close = upper[from..].iter().position(|&b| b == b']')?;
    Some((from, from + close))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_items_and_logins_are_read() {
        assert_eq!(
            trailing_literal(b"a APPEND INBOX {310}\r\n"),
            Some((310, true))
        );
        assert_eq!(
            trailing_literal(b"a APPEND INBOX {310+}\r\n"),
            Some((310, false))
        );
        assert_eq!(
            trailing_literal(b"* 1 FETCH (BINARY[] ~{5}\r\n"),
            Some((5, true))
        );
        assert_eq!(trailing_literal(b"a LOGIN x {y}\r\n"), None);
        assert_eq!(
            body_item("* 3 FETCH (UID 7 BODY[] {42}\r\n"),
            Some("BODY[]".into())
        );
        assert_eq!(
            body_item("* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {42}\r\n"),
            Some("BODY[HEADER.FIELDS (SUBJECT)]".into())
        );
        assert_eq!(
            body_item("* 3 FETCH (BODY[]<0> {42}\r\n"),
            Some("BODY[]<0>".into())
        );
        assert_eq!(
            body_item("* 3 FETCH (RFC822 {42}\r\n"),
            Some("RFC822".into())
        );
        assert_eq!(body_item("* 3 FETCH (ENVELOPE (NIL {42}\r\n"), None);
        assert_eq!(
            uid_of("* 3 FETCH (UID 7 BODY[] {42} FLAGS (\\Seen))"),
            Some(7)
        );
        let user = |c: &[u8]| login_arguments(c).map(|(u, _)| String::from_utf8(u).unwrap());
        assert_eq!(
            user(b"a1 LOGIN target \"pass word\"\r\n").as_deref(),
            Some("target")
        );
        assert_eq!(
            user(b"a1  LOGIN   target  pw\r\n").as_deref(),
            Some("target"),
            "runs of spaces"
        );
        assert_eq!(
            user(b"a1 LOGIN \"tar\\\"get\" x\r\n").as_deref(),
            Some("tar\"get")
        );
        assert_eq!(
            user(b"a1 LOGIN {6}\r\ntarget {4}\r\npass\r\n").as_deref(),
            Some("target")
        );
        assert_eq!(user(b"a1 LOGIN target\r\n"), None, "no password");
        assert_eq!(
            login_arguments(b"a1 LOGIN t {2}\r\n\xc3\xa4\r\n").map(|(_, p)| astring(&p)),
            Some(b"{2}\r\n\xc3\xa4".to_vec())
        );
        assert_eq!(astring(b"pa\"ss"), b"\"pa\\\"ss\"".to_vec());
        assert_eq!(
            split_command("a1   LOGIN  x y"),
            ("a1", "LOGIN".to_string(), "x y")
        );
        assert!(!valid_tag("") && !valid_tag("*") && !valid_tag("+") && valid_tag("A001"));
    }

    /// The backend's side of `forward_client`: what it is sent, given its greeting and answers.
    async fn forwarded(greeting: &[u8], answers: &'static [u8]) -> String {
        let (ours, theirs) = tokio::io::duplex(4096);
        let mut backend = Stream::new(Box::new(ours), None);
        let peer = "[::ffff:192.0.2.7]:51234".parse().unwrap();
        let info = Session {
            id: "01KTEST".into(),
            peer,
            local: "198.51.100.1:143".parse().unwrap(),
            outcome: Default::default(),
        };
        let (mut rd, mut wr) = tokio::io::split(theirs);
        let script = async move {
            use tokio::io::AsyncWriteExt;
            wr.write_all(answers).await.unwrap();
            wr
        };
        let (out, _wr) = tokio::join!(
            forward_client(&mut backend, greeting.to_vec(), &info),
            script
        );
        assert_eq!(
            out.unwrap(),
            greeting,
            "the greeting goes to the client unchanged"
        );
        drop(backend);
        let mut sent = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut rd, &mut sent)
            .await
            .unwrap();
        sent
    }

    #[tokio::test]
    async fn the_backend_hears_the_clients_address_when_it_offers_id() {
        let id = "S2 ID (\"x-originating-ip\" \"192.0.2.7\" \"x-originating-port\" \"51234\" \"x-connected-ip\" \"198.51.100.1\" \"x-connected-port\" \"143\" \"x-session-ext-id\" \"01KTEST\")\r\n";
        assert_eq!(
            forwarded(
                b"* OK [CAPABILITY IMAP4rev1 ID AUTH=PLAIN] ready\r\n",
                b"* ID NIL\r\nS2 OK done\r\n"
            )
            .await,
            id
        );
        let asked = forwarded(
            b"* OK ready\r\n",
            b"* CAPABILITY IMAP4rev1 ID\r\nS1 OK\r\n* ID NIL\r\nS2 OK done\r\n",
        )
        .await;
        assert_eq!(
            asked,
            format!("S1 CAPABILITY\r\n{id}"),
            "no capabilities in the greeting: asked for"
        );
        assert_eq!(
            forwarded(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n", b"").await,
            "",
            "no ID offered"
        );
        assert_eq!(
            forwarded(b"* BYE too busy\r\n", b"").await,
            "",
            "nothing after BYE"
        );
    }

    #[test]
    fn capabilities_are_adjusted() {
        let line = b"* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ STARTTLS AUTH=PLAIN AUTH=SCRAM-SHA-1 LOGINDISABLED COMPRESS=X-FUTURE] Dovecot ready.\r\n";
        assert_eq!(
            String::from_utf8(rewrite_capabilities(line, true, false)).unwrap(),
            "* OK [CAPABILITY IMAP4rev1 LITERAL+ STARTTLS LOGINDISABLED] Dovecot ready.\r\n",
            "no way to log in before TLS"
        );
        assert_eq!(
            String::from_utf8(rewrite_capabilities(line, true, true)).unwrap(),
            "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN STARTTLS] Dovecot ready.\r\n",
            "plaintext logins allowed"
        );
        assert_eq!(
            String::from_utf8(rewrite_capabilities(line, false, false)).unwrap(),
            "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n",
            "over TLS"
        );
        assert_eq!(
            String::from_utf8(rewrite_capabilities(
                b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=LOGIN\r\n",
                false,
                false
            ))
            .unwrap(),
            "* CAPABILITY IMAP4rev1 AUTH=LOGIN\r\n"
        );
        assert_eq!(
            rewrite_capabilities(b"* 3 EXISTS\r\n", true, false),
            b"* 3 EXISTS\r\n"
        );
        let subject = b"* 1 FETCH (ENVELOPE (NIL \"[CAPABILITY STARTTLS x]\"))\r\n";
        assert_eq!(
            rewrite_capabilities(subject, false, false),
            subject.to_vec(),
            "message data is never changed"
        );
        assert_eq!(
            rewrite_capabilities(
                b"a1 OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE COMPRESS=X-FUTURE] Logged in\r\n",
                false,
                false
            ),
            b"a1 OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] Logged in\r\n".to_vec()
        );
        let _ = rewrite_capabilities(b"* CAPABILITY \r\n", true, false);
    }
}
