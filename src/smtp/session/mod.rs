//! One client connection: the RFC 5321 state machine. It reads commands, asks the module
//! pipeline, mirrors the transaction to the backend and hands the backend's answers back. It is
//! the only code that writes replies to the client.
//!
//! Flow of one message: MAIL (modules, then the backend's answer) → RCPT (relay check, modules,
//! backend) → DATA (354 from sponts, the message is read whole and checked for smuggling, modules
//! judge it, then the backend gets it with our Received: header) → the transaction record is
//! committed by the modules (journal) → the final reply, carrying the transaction id.

use std::sync::Arc;
use tokio::time::Instant;

use super::address::Address;
use super::client::Backend;
use super::command::{self, Command, MailParams};
use super::conn::{Conn, Line};
use super::data::{self, Data, DataProblem};
use super::received::received_header;
use super::reply::{Reply, replies};
use super::tarpit::Tarpit;
use crate::pipeline::{Outcome, RcptRecord, SessionInfo, TransactionRecord, TxInfo, Verdict};
use crate::server::Gateway;

mod auth;
mod backend;
mod outbound;
use backend::hide_owner;

/// RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF.
pub const MAX_COMMAND_LINE: usize = 512;

/// The transaction between a successful MAIL and its end.
struct Tx {
    id: String,
    time_us: i64,
    sender: Option<Address>,
    params: MailParams,
    rcpts: Vec<RcptRecord>,
    accepted: Vec<Address>,
    /// The backend failed mid-transaction: every further command of it gets this reply.
    broken: Option<Reply>,
    /// Queue mode: the backend was down at MAIL, the message goes to the durable queue.
    queued: bool,
    /// A module took a recipient for itself (a spam trap): the message is kept, never delivered.
    discarded_by: Option<&'static str>,
    /// Who refused a recipient last (a module, `backend` or `smtp`), and how: a transaction that
    /// ends without an accepted recipient was refused by them, not abandoned.
    refused_by: Option<(&'static str, Reply)>,
    /// Our own client's mail with a recipient outside our domains: queued whole for MX delivery.
    outbound: bool,
}

impl Tx {
    fn info(&self) -> TxInfo {
        TxInfo {
            id: self.id.clone(),
            sender: self.sender.clone(),
            recipients: self.accepted.clone(),
            outbound: self.outbound,
        }
    }
}

enum Flow {
    Continue,
    Close,
}

pub struct Session {
    conn: Conn,
    gw: Arc<Gateway>,
    info: SessionInfo,
    tx: Option<Tx>,
    backend: Option<Backend>,
    /// The backend still holds a transaction that must be reset before the next MAIL.
    backend_dirty: bool,
    errors: usize,
    /// Recipients the backend (or a module) called unknown in this session.
    unknown_recipients: usize,
    /// Present when the `uce` module runs; slows replies once the client is marked.
    tarpit: Option<Tarpit>,
    deadline: Instant,
    /// The account signed in with SMTP AUTH.
    submitter: Option<crate::outbound::accept::Submitter>,
}

impl Session {
    pub fn new(mut conn: Conn, gw: Arc<Gateway>, mut info: SessionInfo) -> Session {
        info.own_client = crate::outbound::accept::in_relay_networks(&gw.config, info.peer.ip());
        let deadline = Instant::now() + gw.config.smtp.session_timeout.0;
        // A client that stops reading our replies is cut off like one that stops writing.
        conn.set_deadline(deadline);
        conn.set_write_timeout(gw.config.smtp.command_timeout.0);
        let tarpit = gw.uce.then(|| Tarpit::new(&gw.config.uce));
        Session {
            conn,
            gw,
            info,
            tx: None,
            backend: None,
            backend_dirty: false,
            errors: 0,
            unknown_recipients: 0,
            tarpit,
            deadline,
            submitter: None,
        }
    }

    /// Runs the session to its end; never panics on input.
    pub async fn run(mut self) {
        let mut shutdown = self.gw.shutdown.clone();
        if let Flow::Continue = self.greet().await {
            loop {
                if !self.conn.has_buffered_input() && self.flush().await.is_err() {
                    break;
                }
                let line = tokio::select! {
                    r = tokio::time::timeout_at(self.deadline, self.conn.read_line(MAX_COMMAND_LINE)) => r,
                    _ = shutdown.wait_for(|stop| *stop), if self.tx.is_none() => {
                        self.reply(&replies::shutting_down());
                        break;
                    }
                };
                let flow = match line {
                    Err(_) => {
                        self.reply(&replies::session_too_long());
                        break;
                    }
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                        self.reply(&self.timed_out());
                        break;
                    }
                    Ok(Err(_)) | Ok(Ok(Line::Eof)) => break,
                    Ok(Ok(Line::TooLong)) => self.error(replies::line_too_long()),
                    Ok(Ok(Line::Text(bytes))) => match command::parse(&bytes) {
                        // Boxed: the biggest state (DATA, delivery) exists only while a command
                        // runs, not for every waiting connection.
                        Ok(cmd) => Box::pin(self.handle(cmd)).await,
                        Err(reply) => self.error(reply),
                    },
                };
                if let Flow::Close = flow {
                    break;
                }
            }
        }
        // The record is committed before the client hears the last reply.
        self.end_transaction_abandoned().await;
        let _ = self.conn.flush().await;
        self.conn.shutdown().await;
        self.release_backend().await;
    }

    /// Sends the queued replies: at once, or through the tarpit for a marked client.
    async fn flush(&mut self) -> std::io::Result<()> {
        match self.tarpit.as_mut() {
            // Never past the session's deadline: a held reply is still sent (a 250 for a
            // delivered message must reach the client, or it would send the message again).
            Some(t) if self.info.marks.is_tarpitted() => {
                t.flush(&mut self.conn, self.deadline).await
            }
            _ => self.conn.flush().await,
        }
    }

    /// Which limit a timed-out read hit: the session's total, or the wait for the next line.
    fn timed_out(&self) -> Reply {
        if Instant::now() >= self.deadline {
            replies::session_too_long()
        } else {
            replies::timeout()
        }
    }

    fn reply(&mut self, r: &Reply) {
        tracing::debug!(peer = %self.info.peer, "> {r}");
        self.conn.queue_reply(r);
    }

    /// A protocol error: counted, and too many end the session.
    fn error(&mut self, r: Reply) -> Flow {
        self.reply(&r);
        self.errors += 1;
        let tarpit_after = self.gw.config.uce.tarpit_errors;
        if self.tarpit.is_some() && tarpit_after > 0 && self.errors >= tarpit_after {
            self.info.marks.tarpit();
        }
        if self.errors >= self.gw.config.smtp.max_errors {
            self.reply(&replies::too_many_errors());
            return Flow::Close;
        }
        Flow::Continue
    }

    /// The connect hooks, then the greeting. With `uce.greet_delay`, postscreen's test for bots:
    /// the greeting's first line at once and its last after the pause; a client that talks
    /// before the last line is a bot (tarpitted, and refused at RCPT per the domain's policy).
    /// A real client waits for the last line and loses only the pause, once per `GREET_PASS`.
    async fn greet(&mut self) -> Flow {
        self.conn
            .set_read_timeout(Some(self.gw.config.smtp.command_timeout.0));
        let info = self.info.clone();
        let d = self.gw.pipeline.run(|m| m.connect(&info)).await;
        tarpit(d.delay).await;
        if let Verdict::Reject(r) | Verdict::TempFail(r) = d.verdict {
            tracing::info!(peer = %self.info.peer, module = d.module, "connection refused: {r}");
            self.reply(&r);
            return Flow::Close;
        }
        let banner = format!("{} ESMTP sponts", self.gw.config.smtp.hostname);
        let pause = self.greet_pause();
        if !pause.is_zero() {
            self.conn
                .queue_bytes(format!("220-{banner}\r\n").as_bytes());
            if self.conn.flush().await.is_err() {
                return Flow::Close;
            }
            match tokio::time::timeout(pause, self.conn.fill()).await {
                // Silent for the whole pause: a real client.
                Err(_) => self.gw.greet_passes.passed(self.info.peer.ip()),
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(peer = %self.info.peer, "client talked before the greeting ended: a bot");
                    self.info.talked_early = true;
                    self.info.marks.tarpit();
                }
                // Gone, or an error: nothing passed, the session ends at its next read.
                Ok(_) => {}
            }
        }
        self.reply(&Reply::new(220, "", banner));
        Flow::Continue
    }

    /// How long the greeting's last line waits: not at all without `uce`, for our own networks,
    /// or for a client that passed the test lately.
    fn greet_pause(&self) -> std::time::Duration {
        let ip = self.info.peer.ip();
        let ours = self
            .gw
            .config
            .smtp
            .relay_networks
            .iter()
            .any(|n| n.contains(ip));
        if self.tarpit.is_none() || ours || self.gw.greet_passes.recently_passed(ip) {
            return std::time::Duration::ZERO;
        }
        self.gw.config.uce.greet_delay.0
    }

    async fn handle(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Ehlo(name) => self.helo(name, true).await,
            Command::Helo(name) => self.helo(name, false).await,
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to } => self.rcpt(to).await,
            Command::Data => self.data().await,
            Command::Rset => {
                self.end_transaction_abandoned().await;
                self.reply(&replies::ok());
                Flow::Continue
            }
            Command::Noop => {
                self.reply(&replies::ok());
                Flow::Continue
            }
            Command::Quit => {
                // The record is committed before the client hears 221.
                self.end_transaction_abandoned().await;
                self.reply(&replies::bye());
                Flow::Close
            }
            Command::Vrfy => {
                self.reply(&replies::vrfy());
                Flow::Continue
            }
            Command::Expn => self.error(replies::not_implemented("EXPN")),
            Command::Help => {
                self.reply(&Reply::new(214, "2.0.0", "See RFC 5321"));
                Flow::Continue
            }
            Command::StartTls => self.starttls().await,
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial).await,
            Command::NotImplemented(verb) => self.error(replies::not_implemented(&verb)),
        }
    }

    async fn helo(&mut self, name: String, extended: bool) -> Flow {
        let mut info = self.info.clone();
        info.helo = Some(name.clone());
        let d = self.gw.pipeline.run(|m| m.helo(&info)).await;
        tarpit(d.delay).await;
        if let Verdict::Reject(r) | Verdict::TempFail(r) = d.verdict {
            self.reply(&r);
            return Flow::Continue;
        }
        self.end_transaction_abandoned().await;
        self.info.helo = Some(name.clone());
        let host = &self.gw.config.smtp.hostname;
        if !extended {
            self.reply(&Reply::new(250, "", host.clone()));
            return Flow::Continue;
        }
        let mut lines = vec![
            format!("{host} greets {name}"),
            "PIPELINING".into(),
            format!("SIZE {}", self.gw.config.smtp.max_message_size.0),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.gw.tls.is_some() && self.info.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        self.reply(&Reply {
            code: 250,
            enhanced: String::new(),
            lines,
        });
        Flow::Continue
    }

    async fn mail(&mut self, from: Option<Address>, params: MailParams) -> Flow {
        if self.info.helo.is_none() {
            return self.error(replies::need_helo());
        }
        if self.tx.is_some() {
            return self.error(replies::bad_sequence("Nested MAIL command"));
        }
        if params
            .size
            .is_some_and(|s| s > self.gw.config.smtp.max_message_size.0)
        {
            self.reply(&replies::size_exceeded());
            return Flow::Continue;
        }
        let tx = Tx {
            id: crate::id::new_transaction_id(),
            time_us: crate::clock::now_us(),
            sender: from,
            params,
            rcpts: Vec::new(),
            accepted: Vec::new(),
            broken: None,
            queued: false,
            discarded_by: None,
            refused_by: None,
            outbound: false,
        };
        if let Some(r) = self.outbound_mail_check(&tx).await {
            tracing::info!(id = %tx.id, peer = %self.info.peer, "sender refused: {r}");
            self.finish(&tx, None, outcome_of(&r), "outbound", &r).await;
            self.reply(&r);
            return Flow::Continue;
        }
        let (info, txi) = (self.info.clone(), tx.info());
        let d = self.gw.pipeline.run(|m| m.mail(&info, &txi)).await;
        tarpit(d.delay).await;
        if let Verdict::Reject(r) | Verdict::TempFail(r) = d.verdict {
            self.finish(&tx, None, outcome_of(&r), d.module.unwrap_or("smtp"), &r)
                .await;
            self.reply(&r);
            return Flow::Continue;
        }
        let sender = tx
            .sender
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let answer = self.backend_mail(&sender, &tx.params).await;
        match &answer {
            Ok(_) => self.gw.backend_ok().await,
            Err(e) if self.gw.config.queue.enabled => self.gw.backend_failed(e).await,
            Err(_) => {}
        }
        match answer {
            Ok(r) if r.is_positive() => {
                self.backend_dirty = true;
                self.tx = Some(tx);
                self.reply(&r);
            }
            Ok(r) => {
                self.finish(&tx, None, outcome_of(&r), "backend", &r).await;
                self.reply(&r);
            }
            Err(e) if self.gw.config.queue.enabled => {
                tracing::warn!(id = %tx.id, "backend unavailable at MAIL, queue mode: {e}");
                self.backend = None;
                self.backend_dirty = false;
                let mut tx = tx;
                tx.queued = true;
                self.tx = Some(tx);
                self.reply(&Reply::new(250, "2.1.0", "Ok"));
            }
            Err(e) => {
                tracing::warn!(id = %tx.id, "backend unavailable at MAIL: {e}");
                self.backend = None;
                let r = replies::backend_unavailable();
                self.finish(&tx, None, Outcome::TempFailed, "backend", &r)
                    .await;
                self.reply(&r);
            }
        }
        Flow::Continue
    }

    async fn rcpt(&mut self, mut to: Address) -> Flow {
        let Some(tx) = self.tx.as_mut() else {
            return self.error(replies::bad_sequence("Need MAIL command"));
        };
        if let Some(r) = tx.broken.clone() {
            self.reply(&r);
            return Flow::Continue;
        }
        if tx.rcpts.len() >= self.gw.config.smtp.max_recipients {
            self.reply(&replies::too_many_recipients());
            return Flow::Continue;
        }
        if to.domain.is_empty() {
            // <Postmaster>: ours, at our first domain.
            match self.gw.config.domains.local.first() {
                Some(d) => to.domain = d.clone(),
                None => return self.error(replies::bad_address("postmaster")),
            }
        }
        let address = to.to_string();
        let remote = !self.gw.config.is_local_domain(&to.domain);
        let relay_ok = !remote || self.info.own_client;
        // Our own client's mail to another domain: sponts' to deliver (outbound), not the backend's.
        let outbound = remote && relay_ok && self.gw.config.outbound.enabled;
        if outbound && tx.accepted.len() >= self.gw.config.outbound.max_recipients {
            self.reply(&replies::too_many_recipients());
            return Flow::Continue;
        }
        if !relay_ok {
            let r = replies::relay_denied(&address);
            tx.refused_by = Some(("smtp", r.clone()));
            tx.rcpts.push(RcptRecord {
                address,
                accepted: false,
                reply: r.summary(),
                delivered_to: None,
            });
            tracing::info!(id = %tx.id, peer = %self.info.peer, "relay attempt refused: {r}");
            return self.error(r);
        }
        let (info, mut txi) = (self.info.clone(), tx.info());
        txi.outbound |= outbound;
        let d = self.gw.pipeline.run(|m| m.rcpt(&info, &txi, &to)).await;
        tarpit(d.delay).await;
        match d.verdict {
            Verdict::Reject(r) | Verdict::TempFail(r) => {
                if self.gw.uce {
                    // As long as the backend would have taken to say the same.
                    tarpit(self.gw.rcpt_time()).await;
                }
                self.count_unknown(&r);
                let tx = self.tx.as_mut().expect("transaction checked above");
                tx.refused_by = Some((d.module.unwrap_or("smtp"), r.clone()));
                tx.rcpts.push(RcptRecord {
                    address,
                    accepted: false,
                    reply: r.summary(),
                    delivered_to: None,
                });
                self.reply(&r);
                return Flow::Continue;
            }
            Verdict::Discard => {
                // Taken by a module (a trap): accepted as any address would be — after as long
                // as the backend takes — and never delivered.
                tarpit(self.gw.rcpt_time()).await;
                let r = Reply::new(250, "2.1.5", "Ok");
                let tx = self.tx.as_mut().expect("transaction checked above");
                tx.discarded_by = tx.discarded_by.or(d.module);
                tx.rcpts.push(RcptRecord {
                    address,
                    accepted: true,
                    reply: r.summary(),
                    delivered_to: None,
                });
                tx.accepted.push(to);
                self.reply(&r);
                return Flow::Continue;
            }
            _ => {}
        }
        if outbound {
            return self.accept_outbound_rcpt(address, to).await;
        }
        let queued = self.tx.as_ref().is_some_and(|t| t.queued);
        let mut answer = self.backend_rcpt(&address, queued).await;
        let mut delivered_to = None;
        if let Some(owner) = d.rewrite.map(|a| a.to_string()) {
            // A disposable address — unless the backend knows it as a mailbox of its own
            // (`maria.2.garcia` may be a real person): then it is delivered as it is.
            if !answer.as_ref().is_ok_and(|r| r.is_positive()) {
                answer = self
                    .backend_rcpt(&owner, queued)
                    .await
                    .map(|r| hide_owner(r, &owner, &address));
                delivered_to = Some(owner);
            }
        }
        let answer = answer.map(|r| self.uniform_unknown(r, &address));
        if let Ok(r) = &answer {
            self.count_unknown(r);
        }
        let tx = self.tx.as_mut().expect("transaction checked above");
        let r = match answer {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(id = %tx.id, "backend failed at RCPT: {e}");
                self.backend = None;
                self.backend_dirty = false;
                let r = replies::backend_unavailable();
                tx.broken = Some(r.clone());
                r
            }
        };
        tx.rcpts.push(RcptRecord {
            address,
            accepted: r.is_positive(),
            reply: r.summary(),
            delivered_to: delivered_to.clone(),
        });
        if !r.is_positive() {
            tx.refused_by = Some(("backend", r.clone()));
        }
        if r.is_positive() {
            // The backend got the owner of a disposable address; so will the message.
            let backend_rcpt = delivered_to.and_then(|a| {
                crate::smtp::address::parse_path(&a, crate::smtp::address::Side::Recipient)
                    .ok()
                    .flatten()
            });
            tx.accepted.push(backend_rcpt.unwrap_or(to));
        }
        self.reply(&r);
        Flow::Continue
    }

    /// With `uce`, the backend's "no such user" becomes the one uniform answer, naming the
    /// address the client gave: the same text as for a refused spammer.
    fn uniform_unknown(&self, r: Reply, address: &str) -> Reply {
        if self.gw.uce && replies::is_user_unknown(&r) {
            replies::user_unknown(address)
        } else {
            r
        }
    }

    /// Many unknown recipients in a session look like a dictionary attack: tarpit it.
    fn count_unknown(&mut self, r: &Reply) {
        if r.code == 550 && r.enhanced.starts_with("5.1.") {
            self.unknown_recipients += 1;
            let limit = self.gw.config.uce.tarpit_unknown_recipients;
            if self.tarpit.is_some() && limit > 0 && self.unknown_recipients >= limit {
                self.info.marks.tarpit();
            }
        }
    }

    async fn data(&mut self) -> Flow {
        let Some(tx) = self.tx.as_ref() else {
            return self.error(replies::bad_sequence("Need MAIL command"));
        };
        if let Some(r) = tx.broken.clone() {
            self.reply(&r);
            return Flow::Continue;
        }
        if tx.accepted.is_empty() {
            return self.error(replies::no_valid_recipients());
        }
        let max = self.gw.config.smtp.max_message_size.0 as usize;
        let hint = tx.params.size.unwrap_or(0).min(max as u64) as usize;
        // RFC 2920: DATA ends a pipelined group. Anything already sent after it — message
        // content or more commands — was sent without waiting for the 354: a spambot's shortcut
        // (and a smuggling vector). It never becomes content; the session ends, as Postfix does.
        if !self.conn.has_buffered_input() {
            self.conn.take_pending();
        }
        if self.conn.has_buffered_input() {
            let r = replies::improper_pipelining();
            let tx = self.tx.take().expect("transaction checked above");
            tracing::info!(id = %tx.id, peer = %self.info.peer, bytes = self.conn.buffered().len(), "improper pipelining: data before the 354");
            self.finish(&tx, None, Outcome::Refused, "smtp", &r).await;
            self.reply(&r);
            return Flow::Close;
        }
        self.reply(&replies::start_data());
        if self.flush().await.is_err() {
            return Flow::Close;
        }
        self.conn
            .set_read_timeout(Some(self.gw.config.smtp.data_timeout.0));
        self.conn.grow();
        let read =
            tokio::time::timeout_at(self.deadline, data::read_data(&mut self.conn, max, hint))
                .await;
        self.conn
            .set_read_timeout(Some(self.gw.config.smtp.command_timeout.0));
        let message = match read {
            Err(_) => {
                self.reply(&replies::session_too_long());
                return Flow::Close;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                self.reply(&self.timed_out());
                return Flow::Close;
            }
            Ok(Err(_)) | Ok(Ok(Data::Eof)) => return Flow::Close,
            Ok(Ok(Data::Refused(problem))) => {
                let r = match problem {
                    DataProblem::TooBig => replies::size_exceeded(),
                    DataProblem::BadLineEnding => replies::bad_line_ending(),
                    DataProblem::LineTooLong => replies::data_line_too_long(),
                };
                let tx = self.tx.take().expect("transaction checked above");
                tracing::info!(id = %tx.id, "message refused: {r}");
                self.finish(&tx, None, Outcome::Refused, "smtp", &r).await;
                self.reply(&r);
                return Flow::Continue;
            }
            Ok(Ok(Data::Message(m))) => m,
        };
        let tx = self.tx.take().expect("transaction checked above");
        let message = match self.outbound_message(&tx, message).await {
            Ok(m) => Arc::new(m),
            Err(r) => {
                self.backend_dirty = self.backend.is_some();
                self.finish(&tx, None, outcome_of(&r), "outbound", &r).await;
                self.reply(&r);
                return Flow::Continue;
            }
        };
        let (info, txi) = (self.info.clone(), tx.info());
        if let Err((module, e)) = self.gw.pipeline.store(&info, &txi, &message).await {
            tracing::error!(id = %tx.id, module, "cannot keep the message, refusing it for now: {e:#}");
            let r = with_id(&replies::local_error(), &tx.id);
            self.backend_dirty = self.backend.is_some();
            self.finish(&tx, Some(message), Outcome::TempFailed, module, &r)
                .await;
            self.reply(&r);
            return Flow::Continue;
        }
        if let Some(module) = tx.discarded_by {
            let r = Reply::new(250, "2.0.0", format!("Ok id={}", tx.id));
            tracing::info!(id = %tx.id, module, "message kept, not delivered");
            self.finish(&tx, Some(message), Outcome::Discarded, module, &r)
                .await;
            self.reply(&r);
            return Flow::Continue;
        }
        let d = self
            .gw
            .pipeline
            .run(|m| m.message(&info, &txi, &message))
            .await;
        tarpit(d.delay).await;
        let (outcome, decided_by, reply) = match d.verdict {
            // Refused as "user unknown" (spam, by policy), the reply has the backend's words and
            // nothing more: an `id=` tail would tell a list cleaner the address exists. The id is
            // in the journal and in this log line.
            Verdict::Reject(r) if replies::is_user_unknown(&r) => {
                tracing::info!(id = %tx.id, module = d.module, "refused as an unknown user: {r}");
                (outcome_of(&r), d.module.unwrap_or("smtp"), r)
            }
            Verdict::Reject(r) | Verdict::TempFail(r) => (
                outcome_of(&r),
                d.module.unwrap_or("smtp"),
                with_id(&r, &tx.id),
            ),
            Verdict::Discard => (
                Outcome::Discarded,
                d.module.unwrap_or("smtp"),
                Reply::new(250, "2.0.0", format!("Ok id={}", tx.id)),
            ),
            Verdict::Continue | Verdict::Accept | Verdict::Delay(_) | Verdict::Rewrite(_)
                if tx.outbound =>
            {
                self.enqueue_outbound(&tx, &message).await
            }
            Verdict::Continue | Verdict::Accept | Verdict::Delay(_) | Verdict::Rewrite(_)
                if tx.queued =>
            {
                self.enqueue(&tx, &message).await
            }
            Verdict::Continue | Verdict::Accept | Verdict::Delay(_) | Verdict::Rewrite(_) => {
                self.deliver(&tx, &message).await
            }
        };
        self.finish(&tx, Some(message), outcome, decided_by, &reply)
            .await;
        self.reply(&reply);
        Flow::Continue
    }

    async fn starttls(&mut self) -> Flow {
        let Some(acceptor) = self.gw.tls.clone() else {
            self.reply(&replies::tls_unavailable());
            return Flow::Continue;
        };
        if self.info.tls.is_some() {
            return self.error(replies::bad_sequence("TLS already active"));
        }
        if self.tx.is_some() {
            return self.error(replies::bad_sequence("STARTTLS inside a transaction"));
        }
        self.reply(&replies::ready_tls());
        if self.conn.flush().await.is_err() {
            return Flow::Close;
        }
        // CVE-2011-0411: anything pipelined after STARTTLS was sent in the clear; drop it.
        let stale = self.conn.buffered().len();
        if stale > 0 {
            tracing::info!(peer = %self.info.peer, bytes = stale, "discarded plaintext pipelined after STARTTLS");
        }
        let Some(io) = self.conn.take_io() else {
            return Flow::Close;
        };
        let handshake =
            tokio::time::timeout(self.gw.config.smtp.command_timeout.0, acceptor.accept(io)).await;
        match handshake {
            Ok(Ok(stream)) => {
                self.info.tls = Some(super::tls::describe(stream.get_ref().1));
                self.conn.set_io(Box::new(stream));
                self.info.helo = None;
                Flow::Continue
            }
            Ok(Err(e)) => {
                tracing::info!(peer = %self.info.peer, "TLS handshake failed: {e}");
                Flow::Close
            }
            Err(_) => Flow::Close,
        }
    }

    /// Ends an open transaction that never got to a message (RSET, new EHLO, QUIT, lost client).
    /// One whose every recipient was refused was not abandoned but refused (or deferred), by whoever
    /// refused the last one, with that answer.
    async fn end_transaction_abandoned(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.backend_dirty = self.backend.is_some();
            match &tx.refused_by {
                Some((by, r)) if tx.accepted.is_empty() => {
                    let permanent = tx.rcpts.iter().any(|rc| rc.reply.starts_with('5'));
                    let outcome = if permanent {
                        Outcome::Refused
                    } else {
                        Outcome::TempFailed
                    };
                    self.finish(&tx, None, outcome, by, r).await;
                }
                _ => {
                    let r = Reply::new(0, "", "transaction abandoned by the client");
                    self.finish(&tx, None, Outcome::Abandoned, "client", &r)
                        .await;
                }
            }
        }
    }

    async fn finish(
        &self,
        tx: &Tx,
        message: Option<Arc<Vec<u8>>>,
        outcome: Outcome,
        decided_by: &str,
        reply: &Reply,
    ) {
        let record = TransactionRecord {
            id: tx.id.clone(),
            time_us: tx.time_us,
            peer: self.info.peer,
            helo: self.info.helo.clone().unwrap_or_default(),
            tls: self.info.tls.clone(),
            sender: tx
                .sender
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            recipients: tx.rcpts.clone(),
            message,
            outcome,
            decided_by: decided_by.to_string(),
            final_reply: if reply.code == 0 {
                String::new()
            } else {
                reply.summary()
            },
            flag: None,
            notes: Vec::new(),
            outbound: tx.outbound,
            account: self.info.user.clone(),
        };
        let marks = self.info.marks.take_tx();
        let record = TransactionRecord {
            flag: marks.flag,
            notes: marks.notes,
            ..record
        };
        self.gw.pipeline.finish(&record).await;
        self.gw.intercept.smtp(&record, self.info.local);
    }
}

fn outcome_of(r: &Reply) -> Outcome {
    if r.is_transient() {
        Outcome::TempFailed
    } else if r.is_positive() {
        Outcome::Delivered
    } else {
        Outcome::Refused
    }
}

/// The reply with the transaction id appended, so the client's log leads to the journal.
fn with_id(r: &Reply, id: &str) -> Reply {
    let mut r = r.clone();
    if let Some(last) = r.lines.last_mut() {
        last.push_str(&format!(" id={id}"));
    }
    r
}

/// Sleeps the delay the modules asked for; no timer at all when there is none (a zero sleep
/// would still wait for the next timer tick, about a millisecond, on every reply).
async fn tarpit(delay: std::time::Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}
