//! One IMAP session: not authenticated (CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE PLAIN) →
//! authenticated (LIST, STATUS, SELECT/EXAMINE) → selected (FETCH, SEARCH, CLOSE, IDLE), always
//! read-only: anything that would change the archive gets `NO [CANNOT]`. \Seen set by reading
//! lives for the session only. The only code that writes responses; one log line per session.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

use super::Imap;
use super::command::{self, Command, FetchItem};
use super::fetch;
use super::mailbox::{self, Folder};
use super::response::mailbox as quoted_mailbox;
use super::search::{Candidate, SearchKey};
use super::sequence::SequenceSet;
use crate::smtp::conn::{Conn, Line};

/// One line of a command (RFC 7162 recommends at least 8192 octets).
const MAX_LINE: usize = 8192;
/// One literal (a password, a search string): far more than any needs.
const MAX_LITERAL: usize = 16 * 1024;
/// A whole command, its literals included.
const MAX_COMMAND: usize = 64 * 1024;
/// Malformed or refused commands after which the session is closed.
const MAX_ERRORS: usize = 20;
/// Before sign-in a client has this long per command; after it, the 30 minutes RFC 3501 5.4 asks.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(120);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Output queued beyond this is written out between messages of a FETCH.
const FLUSH_AT: usize = 256 * 1024;

pub async fn run(stream: TcpStream, peer: SocketAddr, p: Arc<Imap>, implicit_tls: bool) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let started = std::time::Instant::now();
    let mut conn = Conn::new(Box::new(stream));
    conn.set_read_timeout(Some(LOGIN_TIMEOUT));
    conn.set_write_timeout(LOGIN_TIMEOUT);
    let mut s = Session {
        conn,
        p,
        peer,
        local,
        id: crate::id::new_transaction_id(),
        tls: None,
        account: None,
        selected: None,
        errors: 0,
        failed_logins: 0,
        fetched: 0,
        bytes_out: 0,
    };
    let end = s.serve(implicit_tls).await;
    s.conn.shutdown().await;
    tracing::info!(
        session = %s.id,
        client = %peer,
        login = ?s.account.as_ref().map(|a| a.login.clone()), // quoted: a name may hold anything
        tls = s.tls.is_some(),
        failed_logins = s.failed_logins,
        messages_fetched = s.fetched,
        bytes_to_client = s.bytes_out,
        seconds = started.elapsed().as_secs(),
        end,
        "IMAP archive session"
    );
}

struct Account {
    login: String,
    /// Their address and aliases, lowercase: whose mail they see.
    addresses: Vec<String>,
    /// The login and the addresses: what an interception order may name.
    names: Vec<String>,
    folders: Vec<Folder>,
    /// \Seen per folder, for this session only (the archive is read-only).
    seen: HashMap<String, HashSet<u32>>,
}

struct Selected {
    folder: Folder,
}

struct Session {
    conn: Conn,
    p: Arc<Imap>,
    peer: SocketAddr,
    local: SocketAddr,
    /// Groups this session's events in interception copies and names it in the log.
    id: String,
    tls: Option<String>,
    account: Option<Account>,
    selected: Option<Selected>,
    errors: usize,
    failed_logins: usize,
    fetched: usize,
    bytes_out: usize,
}

/// What reading a command gave.
enum Read {
    Command(Vec<u8>),
    /// Too long: to be answered, the session goes on.
    Refused(String),
    /// Answered already (a literal refused before it was sent).
    Answered,
    Closed,
}

/// What handling a command decided.
enum Next {
    Continue,
    End(&'static str),
}

impl Session {
    async fn serve(&mut self, implicit_tls: bool) -> &'static str {
        if implicit_tls && !self.start_tls().await {
            return "TLS handshake failed";
        }
        let caps = self.capabilities();
        self.untagged(&format!(
            "OK [CAPABILITY {caps}] sponts archive IMAP ready (read-only)"
        ));
        loop {
            if self.conn.flush().await.is_err() {
                return "write failed";
            }
            let raw = match self.read_command().await {
                Read::Command(raw) => raw,
                Read::Refused(why) => {
                    self.untagged(&format!("BAD {why}"));
                    if self.count_error() {
                        return "too many errors";
                    }
                    continue;
                }
                Read::Answered => continue,
                Read::Closed => return "closed by the client",
            };
            let Some(parsed) = command::parse(&raw) else {
                self.untagged("BAD a tag and a command are expected");
                if self.count_error() {
                    return "too many errors";
                }
                continue;
            };
            let tag = parsed.tag;
            let next = match parsed.command {
                Ok(cmd) => self.command(&tag, cmd).await,
                Err(why) => {
                    self.tagged(&tag, &format!("BAD {why}"));
                    if self.count_error() {
                        Next::End("too many errors")
                    } else {
                        Next::Continue
                    }
                }
            };
            if let Next::End(why) = next {
                let _ = self.conn.flush().await;
                return why;
            }
        }
    }

    fn queue(&mut self, bytes: &[u8]) {
        self.bytes_out += bytes.len();
        self.conn.queue_bytes(bytes);
    }

    fn untagged(&mut self, text: &str) {
        self.queue(format!("* {text}\r\n").as_bytes());
    }

    fn tagged(&mut self, tag: &str, text: &str) {
        self.queue(format!("{tag} {text}\r\n").as_bytes());
    }

    /// Counts a protocol error; true when the session must end.
    fn count_error(&mut self) -> bool {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.untagged("BYE too many errors, closing");
            return true;
        }
        false
    }

    fn capabilities(&self) -> String {
        let mut caps =
            String::from("IMAP4rev1 LITERAL- SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN");
        if self.account.is_none() {
            if self.tls.is_none() {
                caps.push_str(" STARTTLS LOGINDISABLED");
            } else {
                caps.push_str(" AUTH=PLAIN");
            }
        }
        caps
    }

    /// Reads one command with its literals (`{n}` is answered with a continuation; `{n+}`,
    /// LITERAL-, up to 4096 octets is not).
    async fn read_command(&mut self) -> Read {
        let mut raw = Vec::new();
        loop {
            let line = match self.conn.read_line(MAX_LINE).await {
                Ok(Line::Text(t)) => t,
                Ok(Line::TooLong) => return Read::Refused("line too long".into()),
                Ok(Line::Eof) | Err(_) => return Read::Closed,
            };
            raw.extend_from_slice(&line);
            let Some((n, sync)) = literal_at_end(&line) else {
                return Read::Command(raw);
            };
            // APPEND is refused before its message is sent.
            let mut words = raw.split(|&b| b == b' ');
            let (tag, verb) = (
                String::from_utf8_lossy(words.next().unwrap_or(b"*")).into_owned(),
                words.next().unwrap_or(b""),
            );
            if sync && verb.eq_ignore_ascii_case(b"APPEND") {
                self.tagged(&tag, "NO [CANNOT] APPEND: the archive is read-only");
                return Read::Answered;
            }
            if n > MAX_LITERAL || raw.len() + n > MAX_COMMAND || (!sync && n > 4096) {
                if sync {
                    self.tagged(&tag, "BAD [TOOBIG] literal too big");
                    return Read::Answered;
                }
                // A non-synchronising literal cannot be refused: its octets are on the way.
                self.untagged("BYE [TOOBIG] literal too big");
                let _ = self.conn.flush().await;
                return Read::Closed;
            }
            if sync {
                self.queue(b"+ go ahead\r\n");
                if self.conn.flush().await.is_err() {
                    return Read::Closed;
                }
            }
            raw.extend_from_slice(b"\r\n");
            let mut need = n;
            while need > 0 {
                if !self.conn.has_buffered_input()
                    && !matches!(self.conn.fill().await, Ok(k) if k > 0)
                {
                    return Read::Closed;
                }
                let take = need.min(self.conn.buffered().len());
                raw.extend_from_slice(&self.conn.buffered()[..take]);
                self.conn.consume(take);
                need -= take;
            }
        }
    }

    async fn command(&mut self, tag: &str, cmd: Command) -> Next {
        let signed_in = self.account.is_some();
        match cmd {
            Command::Capability => {
                let caps = self.capabilities();
                self.untagged(&format!("CAPABILITY {caps}"));
                self.tagged(tag, "OK CAPABILITY completed");
            }
            Command::Noop | Command::Check => {
                self.refresh().await;
                self.tagged(tag, "OK NOOP completed");
            }
            Command::Logout => {
                self.untagged("BYE sponts archive IMAP signing off");
                self.tagged(tag, "OK LOGOUT completed");
                return Next::End("logout");
            }
            Command::Id => {
                self.untagged("ID (\"name\" \"sponts\")");
                self.tagged(tag, "OK ID completed");
            }
            Command::StartTls if self.tls.is_some() || signed_in => {
                self.tagged(
                    tag,
                    "BAD TLS is active already, or not possible after sign-in",
                );
                return self.error_next();
            }
            Command::StartTls => {
                self.tagged(tag, "OK begin TLS negotiation now");
                if self.conn.flush().await.is_err() || !self.start_tls().await {
                    return Next::End("TLS handshake failed");
                }
            }
            Command::Login { .. } | Command::Authenticate { .. } if signed_in => {
                self.tagged(tag, "BAD signed in already");
                return self.error_next();
            }
            Command::Login { user, password } => return self.sign_in(tag, &user, &password).await,
            Command::Authenticate { mechanism, initial } => {
                return self.authenticate(tag, &mechanism, initial).await;
            }
            _ if !signed_in => {
                self.tagged(
                    tag,
                    "BAD sign in first (LOGIN or AUTHENTICATE PLAIN, after STARTTLS)",
                );
                return self.error_next();
            }
            Command::Namespace => {
                self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
                self.tagged(tag, "OK NAMESPACE completed");
            }
            Command::Enable(_) => {
                // Nothing this server offers needs enabling.
                self.untagged("ENABLED");
                self.tagged(tag, "OK ENABLE completed");
            }
            Command::List {
                reference,
                pattern,
                lsub,
            } => self.list(tag, &reference, &pattern, lsub),
            Command::Status { mailbox, items } => self.status(tag, &mailbox, &items).await,
            Command::Select { mailbox, read_only } => self.select(tag, &mailbox, read_only).await,
            Command::Writes(name) => {
                self.tagged(
                    tag,
                    &format!("NO [CANNOT] {name}: the archive is read-only"),
                );
            }
            _ if self.selected.is_none() => {
                self.tagged(tag, "BAD no folder selected (SELECT or EXAMINE first)");
                return self.error_next();
            }
            Command::Fetch { set, items, uid } => return self.fetch(tag, &set, items, uid).await,
            Command::Search { key, uid, charset } => {
                self.search(tag, &key, uid, charset.as_deref()).await
            }
            Command::Store {
                set,
                uid,
                mode,
                silent,
                flags,
            } => self.store(tag, &set, uid, mode, silent, &flags),
            Command::Close | Command::Unselect => {
                self.selected = None;
                self.tagged(tag, "OK folder closed");
            }
            Command::Idle => return self.idle(tag).await,
        }
        Next::Continue
    }

    fn error_next(&mut self) -> Next {
        if self.count_error() {
            Next::End("too many errors")
        } else {
            Next::Continue
        }
    }

    async fn start_tls(&mut self) -> bool {
        let Some(io) = self.conn.take_io() else {
            return false;
        };
        match tokio::time::timeout(Duration::from_secs(30), self.p.tls.accept(io)).await {
            Ok(Ok(s)) => {
                self.tls = Some(crate::smtp::tls::describe(s.get_ref().1));
                self.conn.set_io(Box::new(s));
                true
            }
            _ => false,
        }
    }

    async fn authenticate(&mut self, tag: &str, mechanism: &str, initial: Option<String>) -> Next {
        if mechanism != "PLAIN" {
            self.tagged(tag, "NO [CANNOT] only AUTHENTICATE PLAIN is offered");
            return self.error_next();
        }
        if self.tls.is_none() {
            self.tagged(
                tag,
                "NO [PRIVACYREQUIRED] sign-in needs TLS: STARTTLS first",
            );
            return self.error_next();
        }
        let response = match initial {
            // "=" is an empty initial response (RFC 4959).
            Some(i) if i == "=" => String::new(),
            Some(i) => i,
            None => {
                self.queue(b"+ \r\n");
                if self.conn.flush().await.is_err() {
                    return Next::End("write failed");
                }
                match self.conn.read_line(MAX_LINE).await {
                    Ok(Line::Text(t)) => String::from_utf8_lossy(&t).into_owned(),
                    _ => return Next::End("closed by the client"),
                }
            }
        };
        if response.trim() == "*" {
            self.tagged(tag, "BAD authentication cancelled");
            return Next::Continue;
        }
        match crate::outbound::sasl::plain(&response) {
            Some((user, password)) => self.sign_in(tag, &user, &password).await,
            None => {
                self.tagged(tag, "BAD malformed AUTHENTICATE PLAIN response");
                self.error_next()
            }
        }
    }

    async fn sign_in(&mut self, tag: &str, user: &str, password: &str) -> Next {
        if self.tls.is_none() {
            self.tagged(
                tag,
                "NO [PRIVACYREQUIRED] sign-in needs TLS: STARTTLS first",
            );
            return self.error_next();
        }
        let user = user.trim().to_lowercase();
        let ip = self.peer.ip();
        let account = match crate::pop3::sign_in(
            &self.p.store,
            &self.p.config,
            &self.p.throttle,
            ip,
            &user,
            password,
        )
        .await
        {
            crate::pop3::SignIn::Account(a) => a,
            crate::pop3::SignIn::Blocked => {
                self.failed_logins += 1;
                self.tagged(
                    tag,
                    "NO [UNAVAILABLE] too many failed sign-ins; try again later",
                );
                return Next::End("throttled");
            }
            crate::pop3::SignIn::Refused => {
                self.failed_logins += 1;
                tracing::info!(%ip, %user, "failed IMAP archive sign-in");
                self.intercept(
                    std::slice::from_ref(&user),
                    "login",
                    serde_json::json!({ "login": user, "success": false }),
                    None,
                );
                self.tagged(tag, "NO [AUTHENTICATIONFAILED] wrong user name or password");
                return self.error_next();
            }
        };
        let mut addresses = vec![account.address.to_lowercase()];
        addresses.extend(account.aliases.iter().map(|a| a.to_lowercase()));
        let mut names = addresses.clone();
        names.push(user.clone());
        self.intercept(
            &names,
            "login",
            serde_json::json!({ "login": user, "success": true }),
            None,
        );
        let folders =
            match mailbox::folders(&self.p.store, &addresses, self.p.config.pop3.recent_days).await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!("IMAP archive folders failed: {e:#}");
                    self.tagged(
                        tag,
                        "NO [UNAVAILABLE] the archive cannot be read right now, try again later",
                    );
                    return Next::Continue;
                }
            };
        self.account = Some(Account {
            login: user,
            addresses,
            names,
            folders,
            seen: HashMap::new(),
        });
        self.conn.set_read_timeout(Some(IDLE_TIMEOUT));
        self.conn.set_write_timeout(IDLE_TIMEOUT);
        let caps = self.capabilities();
        self.tagged(tag, &format!("OK [CAPABILITY {caps}] signed in, read-only"));
        Next::Continue
    }

    fn account(&self) -> &Account {
        self.account.as_ref().expect("signed in")
    }

    fn list(&mut self, tag: &str, reference: &str, pattern: &str, lsub: bool) {
        let verb = if lsub { "LSUB" } else { "LIST" };
        if pattern.is_empty() && !lsub {
            self.untagged("LIST (\\Noselect) \"/\" \"\"");
        } else {
            let full = format!("{reference}{pattern}");
            let lines: Vec<String> = self
                .account()
                .folders
                .iter()
                .filter(|f| mailbox::pattern_matches(&full, &f.name))
                .map(|f| {
                    let mut attrs = vec![if f.has_children {
                        "\\HasChildren"
                    } else {
                        "\\HasNoChildren"
                    }];
                    if !f.selectable {
                        attrs.insert(0, "\\Noselect");
                    }
                    format!(
                        "{verb} ({}) \"/\" {}",
                        attrs.join(" "),
                        quoted_mailbox(&f.name)
                    )
                })
                .collect();
            for l in lines {
                self.untagged(&l);
            }
        }
        self.tagged(tag, &format!("OK {verb} completed"));
    }

    /// The folder called `name` (INBOX in any case), read again if it is INBOX.
    async fn folder(&mut self, name: &str) -> Result<Option<Folder>, ()> {
        let name = if name.eq_ignore_ascii_case(mailbox::INBOX) {
            mailbox::INBOX
        } else {
            name
        };
        if name == mailbox::INBOX {
            let inbox = mailbox::inbox(
                &self.p.store,
                &self.account().addresses,
                self.p.config.pop3.recent_days,
            )
            .await
            .map_err(|e| tracing::error!("IMAP INBOX failed: {e:#}"))?;
            let account = self.account.as_mut().expect("signed in");
            account.folders[0] = inbox;
        }
        Ok(self
            .account()
            .folders
            .iter()
            .find(|f| f.name == name && f.selectable)
            .cloned())
    }

    async fn status(&mut self, tag: &str, name: &str, items: &[String]) {
        let folder = match self.folder(name).await {
            Ok(Some(f)) => f,
            Ok(None) => return self.tagged(tag, "NO [NONEXISTENT] no such folder"),
            Err(()) => {
                return self.tagged(tag, "NO [UNAVAILABLE] the archive cannot be read right now");
            }
        };
        let seen = self
            .account()
            .seen
            .get(&folder.name)
            .map(|s| s.len())
            .unwrap_or(0);
        let mut parts = Vec::new();
        for item in items {
            match item.as_str() {
                "MESSAGES" => parts.push(format!("MESSAGES {}", folder.messages.len())),
                "RECENT" => parts.push("RECENT 0".into()),
                "UIDNEXT" => parts.push(format!("UIDNEXT {}", folder.uid_next())),
                "UIDVALIDITY" => parts.push(format!("UIDVALIDITY {}", self.p.uidvalidity)),
                "UNSEEN" => parts.push(format!(
                    "UNSEEN {}",
                    folder.messages.len().saturating_sub(seen)
                )),
                "SIZE" => parts.push(format!(
                    "SIZE {}",
                    folder.messages.iter().map(|m| m.size.max(0)).sum::<i64>()
                )),
                other => return self.tagged(tag, &format!("BAD {other} is not a status item")),
            }
        }
        self.untagged(&format!(
            "STATUS {} ({})",
            quoted_mailbox(&folder.name),
            parts.join(" ")
        ));
        self.tagged(tag, "OK STATUS completed");
    }

    async fn select(&mut self, tag: &str, name: &str, read_only: bool) {
        // A failed SELECT leaves no folder selected (RFC 3501 6.3.1).
        self.selected = None;
        let folder = match self.folder(name).await {
            Ok(Some(f)) => f,
            Ok(None) => return self.tagged(tag, "NO [NONEXISTENT] no such folder"),
            Err(()) => {
                return self.tagged(tag, "NO [UNAVAILABLE] the archive cannot be read right now");
            }
        };
        self.untagged("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
        self.untagged("OK [PERMANENTFLAGS ()] the archive is read-only");
        self.untagged(&format!("{} EXISTS", folder.messages.len()));
        self.untagged("0 RECENT");
        self.untagged(&format!(
            "OK [UIDVALIDITY {}] UIDs valid",
            self.p.uidvalidity
        ));
        self.untagged(&format!(
            "OK [UIDNEXT {}] predicted next UID",
            folder.uid_next()
        ));
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.selected = Some(Selected { folder });
        self.tagged(tag, &format!("OK [READ-ONLY] {verb} completed"));
    }

    /// NOOP and IDLE: new mail in INBOX (during an outage) is announced with EXISTS.
    async fn refresh(&mut self) {
        let Some(sel) = &self.selected else { return };
        if sel.folder.name != mailbox::INBOX {
            return;
        }
        let Ok(fresh) = mailbox::inbox(
            &self.p.store,
            &self.account().addresses,
            self.p.config.pop3.recent_days,
        )
        .await
        else {
            return;
        };
        let sel = self.selected.as_mut().expect("selected");
        let last = sel.folder.messages.last().map(|m| m.uid).unwrap_or(0);
        let new: Vec<_> = fresh
            .messages
            .iter()
            .filter(|m| m.uid > last)
            .cloned()
            .collect();
        if !new.is_empty() {
            std::sync::Arc::make_mut(&mut sel.folder.messages).extend(new);
            let n = sel.folder.messages.len();
            self.untagged(&format!("{n} EXISTS"));
        }
    }

    async fn idle(&mut self, tag: &str) -> Next {
        self.queue(b"+ idling\r\n");
        if self.conn.flush().await.is_err() {
            return Next::End("write failed");
        }
        match self.conn.read_line(MAX_LINE).await {
            Ok(Line::Text(t)) if t.eq_ignore_ascii_case(b"DONE") => {
                self.refresh().await;
                self.tagged(tag, "OK IDLE terminated");
                Next::Continue
            }
            Ok(Line::Text(_)) | Ok(Line::TooLong) => {
                self.tagged(tag, "BAD DONE expected");
                self.error_next()
            }
            _ => Next::End("closed while idle"),
        }
    }

    /// The selected folder's messages a set names: (sequence number, index).
    fn targets(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        let messages = &self.selected.as_ref().expect("selected").folder.messages;
        let largest_uid = messages.last().map(|m| m.uid).unwrap_or(0);
        let n = messages.len() as u32;
        (0..messages.len())
            .filter(|&i| {
                if uid {
                    set.contains(messages[i].uid, largest_uid)
                } else {
                    set.contains(i as u32 + 1, n)
                }
            })
            .collect()
    }

    async fn fetch(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        mut items: Vec<FetchItem>,
        uid: bool,
    ) -> Next {
        if uid && !items.contains(&FetchItem::Uid) {
            items.insert(0, FetchItem::Uid);
        }
        let targets = self.targets(set, uid);
        let needs_body = fetch::needs_body(&items);
        let reads = fetch::reads(&items);
        let folder_name = self
            .selected
            .as_ref()
            .expect("selected")
            .folder
            .name
            .clone();
        let mut unreadable = 0;
        let mut flushed = self.bytes_out;
        for i in targets {
            let m = self.selected.as_ref().expect("selected").folder.messages[i].clone();
            let body = if needs_body {
                let b = crate::pop3::message_bytes(&self.p.store, &m.entry()).await;
                if b.is_none() {
                    unreadable += 1;
                    continue;
                }
                b
            } else {
                None
            };
            let account = self.account.as_mut().expect("signed in");
            let seen_set = account.seen.entry(folder_name.clone()).or_default();
            let was_seen = seen_set.contains(&m.uid);
            if reads {
                seen_set.insert(m.uid);
            }
            let mut items_now = items.clone();
            if reads && !was_seen && !items_now.contains(&FetchItem::Flags) {
                items_now.push(FetchItem::Flags);
            }
            let meta = fetch::Meta {
                uid: m.uid,
                time_us: m.time_us,
                size: m.size,
                seen: was_seen || reads,
            };
            let mut out = format!("* {} FETCH (", i + 1).into_bytes();
            fetch::write_items(&mut out, &items_now, &meta, body.as_deref());
            out.extend_from_slice(b")\r\n");
            self.queue(&out);
            if let Some(b) = &body {
                self.fetched += 1;
                if items.iter().any(|it| matches!(it, FetchItem::Section(_))) {
                    let names = self.account().names.clone();
                    let details = serde_json::json!({ "command": if uid { "UID FETCH" } else { "FETCH" }, "folder": folder_name, "message": i + 1, "uid": m.uid, "id": m.id, "complete": true });
                    self.intercept(&names, "retrieve", details, Some(b));
                }
            }
            if self.bytes_out - flushed > FLUSH_AT {
                if self.conn.flush().await.is_err() {
                    return Next::End("write failed");
                }
                flushed = self.bytes_out;
            }
        }
        if unreadable > 0 {
            self.tagged(
                tag,
                "NO [UNAVAILABLE] some messages cannot be read right now",
            );
        } else {
            self.tagged(
                tag,
                &format!("OK {}FETCH completed", if uid { "UID " } else { "" }),
            );
        }
        Next::Continue
    }

    /// STORE of \Seen changes this session's flags only (mail programs mark what they have
    /// read; fetchmail stops at a refusal); any other flag would need a writable archive.
    fn store(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        uid: bool,
        mode: char,
        silent: bool,
        flags: &[String],
    ) {
        if flags.iter().any(|f| !f.eq_ignore_ascii_case("\\Seen")) {
            return self.tagged(tag, "NO [CANNOT] STORE: the archive is read-only (only \\Seen is kept, for this session)");
        }
        let seen = !flags.is_empty();
        let targets = self.targets(set, uid);
        let folder = &self.selected.as_ref().expect("selected").folder;
        let uids: Vec<(usize, u32)> = targets
            .iter()
            .map(|&i| (i, folder.messages[i].uid))
            .collect();
        let name = folder.name.clone();
        let set_of = self
            .account
            .as_mut()
            .expect("signed in")
            .seen
            .entry(name)
            .or_default();
        let mut lines = Vec::new();
        for (i, u) in uids {
            match (mode, seen) {
                ('+', true) | ('=', true) => set_of.insert(u),
                ('-', true) | ('=', false) => set_of.remove(&u),
                _ => false,
            };
            let flags = if set_of.contains(&u) {
                "(\\Seen)"
            } else {
                "()"
            };
            let uid_item = if uid {
                format!(" UID {u}")
            } else {
                String::new()
            };
            lines.push(format!("{} FETCH (FLAGS {flags}{uid_item})", i + 1));
        }
        if !silent {
            for l in lines {
                self.untagged(&l);
            }
        }
        self.tagged(tag, "OK STORE completed (for this session)");
    }

    async fn search(&mut self, tag: &str, key: &SearchKey, uid: bool, charset: Option<&str>) {
        if charset.is_some_and(|c| c != "US-ASCII" && c != "UTF-8") {
            return self.tagged(
                tag,
                "NO [BADCHARSET (US-ASCII UTF-8)] charset not supported",
            );
        }
        let mut texts = Vec::new();
        key.texts(&mut texts);
        let folder = &self.selected.as_ref().expect("selected").folder;
        let answers = if texts.is_empty() {
            Default::default()
        } else {
            match super::find::answer(
                &self.p.store,
                &self.account().addresses,
                &folder.messages,
                &texts,
            )
            .await
            {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!("IMAP search failed: {e:#}");
                    return self
                        .tagged(tag, "NO [UNAVAILABLE] the search cannot be done right now");
                }
            }
        };
        let text = |f: &super::search::TextField, v: &str, id: &str| {
            answers
                .get(&(f.clone(), v.to_string()))
                .is_some_and(|ids| ids.contains(id))
        };
        let seen = self.account().seen.get(&folder.name);
        let largest = (
            folder.messages.len() as u32,
            folder.messages.last().map(|m| m.uid).unwrap_or(0),
        );
        let mut hits = String::new();
        for (i, m) in folder.messages.iter().enumerate() {
            let c = Candidate {
                seq: i as u32 + 1,
                uid: m.uid,
                time_us: m.time_us,
                size: m.size,
                seen: seen.is_some_and(|s| s.contains(&m.uid)),
                id: &m.id,
            };
            if key.matches(&c, largest, &text) {
                hits.push(' ');
                hits.push_str(&if uid { m.uid } else { c.seq }.to_string());
            }
        }
        self.untagged(&format!("SEARCH{hits}"));
        self.tagged(
            tag,
            &format!("OK {}SEARCH completed", if uid { "UID " } else { "" }),
        );
    }

    /// Hands a sign-in or a retrieval to interception when one of `names` is the target of an
    /// order in effect; nothing happens for anyone else.
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
        details["access"] = serde_json::json!("sponts archive IMAP");
        let event = crate::intercept::Event {
            time_us: crate::clock::now_us(),
            service: "imap",
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

/// `{n}` or `{n+}` at the end of a line: the literal's size and whether it is synchronising.
fn literal_at_end(line: &[u8]) -> Option<(usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let (digits, sync) = match digits.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (digits, true),
    };
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((std::str::from_utf8(digits).ok()?.parse().ok()?, sync))
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_at_line_end() {
        assert_eq!(super::literal_at_end(b"a LOGIN {5}"), Some((5, true)));
        assert_eq!(super::literal_at_end(b"a LOGIN {5+}"), Some((5, false)));
        assert_eq!(super::literal_at_end(b"a LOGIN {}"), None);
        assert_eq!(super::literal_at_end(b"a LOGIN {99999999999}"), None);
    }
}
