//! The session's other side: the backend — MAIL and RCPT mirrored to it (a dead pooled
//! connection replaced once), the message delivered with sponts' headers on top — or, while it is
//! down, the durable queue and the known-recipient check that stands in for its answers.

use super::*;

impl Session {
    /// Queue mode: a recipient is known if it is an account or alias, the backend accepted it
    /// lately, or the LDAP directory has it. Others wait (450): the backend cannot confirm them, so never a 550.
    pub(super) async fn known_recipient(&self, address: &str) -> Reply {
        let days = self.gw.config.queue.known_recipient_days as i64;
        let since = crate::clock::now_us() - days * 86_400_000_000;
        let known = match self.gw.store.is_user_address(address).await {
            Ok(true) => Ok(true),
            Ok(false) => self.gw.store.backend_knew(address, since).await,
            Err(e) => Err(e),
        };
        // The directory knows every mailbox, also those never signed in or written to lately.
        let known = match known {
            Ok(false) => Ok(crate::directory::knows(&self.gw.config, address).await),
            other => other,
        };
        match known {
            Ok(true) => Reply::new(250, "2.1.5", "Ok"),
            Ok(false) => Reply::new(
                450,
                "4.2.1",
                format!(
                    "<{address}>: Recipient address rejected: mailbox unavailable, try again later"
                ),
            ),
            Err(e) => {
                tracing::error!("queue mode recipient check failed: {e:#}");
                replies::local_error()
            }
        }
    }

    /// MAIL at the backend. A pooled connection that turns out dead is replaced once.
    pub(super) async fn backend_mail(
        &mut self,
        sender: &str,
        params: &MailParams,
    ) -> Result<Reply, String> {
        let mut fresh = false;
        loop {
            let reused = self.backend_ready(fresh).await?;
            let b = self.backend.as_mut().expect("backend_ready connected it");
            match b.mail(sender, params.size, params.eight_bit).await {
                // A 421 on a reused connection is the backend's idle timeout, not an answer.
                Ok(r) if !(reused && !fresh && r.code == 421) => return Ok(r),
                Ok(_) if reused && !fresh => {
                    self.backend = None;
                    fresh = true;
                }
                Ok(r) => return Ok(r),
                Err(e) if reused && !fresh => {
                    tracing::debug!("pooled backend connection was dead ({e}); opening a new one");
                    self.backend = None;
                    fresh = true;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// The backend session, connected and reset, ready for a new transaction. `true` when it is
    /// a connection that was already open (from this session or the pool).
    pub(super) async fn backend_ready(&mut self, fresh: bool) -> Result<bool, String> {
        if self.backend_dirty {
            self.backend_dirty = false;
            let reset_ok = match self.backend.as_mut() {
                Some(b) => b.rset().await.map(|r| r.code == 250).unwrap_or(false),
                None => true,
            };
            if !reset_ok {
                self.backend = None;
            }
        }
        if self.backend.is_some() {
            return Ok(true);
        }
        let (b, reused) = if fresh {
            (
                self.gw.backend.fresh().await.map_err(|e| e.to_string())?,
                false,
            )
        } else {
            self.gw.backend.get().await.map_err(|e| e.to_string())?
        };
        self.backend = Some(b);
        Ok(reused)
    }

    /// At the end of the session the backend connection goes back to the pool, reset if needed.
    pub(super) async fn release_backend(&mut self) {
        let Some(mut b) = self.backend.take() else {
            return;
        };
        if self.backend_dirty && !b.rset().await.is_ok_and(|r| r.code == 250) {
            b.quit().await;
            return;
        }
        self.gw.backend.put(b);
    }

    /// RCPT at the backend (or, in queue mode, the known-recipient check), timed for the
    /// uniform refusals.
    pub(super) async fn backend_rcpt(
        &mut self,
        address: &str,
        queued: bool,
    ) -> Result<Reply, String> {
        if queued {
            return Ok(self.known_recipient(address).await);
        }
        let started = Instant::now();
        let answer = match self.backend.as_mut() {
            Some(b) => b.rcpt(address).await.map_err(|e| e.to_string()),
            None => Err("no backend session".into()),
        };
        if answer.is_ok() {
            self.gw.note_rcpt_time(started.elapsed());
        }
        answer
    }

    /// Hands the message to the backend; the answer is the client's final reply.
    pub(super) async fn deliver(
        &mut self,
        tx: &Tx,
        message: &[u8],
    ) -> (Outcome, &'static str, Reply) {
        let single = (tx.accepted.len() == 1).then(|| tx.accepted[0].to_string());
        let mut header = received_header(
            &self.gw.config.smtp.hostname,
            &self.info,
            &tx.id,
            single.as_deref(),
            tx.time_us,
        );
        header.extend_from_slice(&self.module_headers());
        let message = crate::smtp::strip::strip(message, &self.info.marks.tx().strip);
        self.backend_dirty = false;
        let answer = match self.backend.as_mut() {
            Some(b) => b
                .data(&[&header, &message])
                .await
                .map_err(|e| e.to_string()),
            None => Err("no backend session".into()),
        };
        match answer {
            Ok(r) if r.is_positive() => {
                // The backend's own words ("Ok: queued as 4Fxyz"), with the transaction id.
                let said = r.text();
                let text = format!(
                    "{} id={}",
                    if said.trim().is_empty() {
                        "Ok"
                    } else {
                        said.trim()
                    },
                    tx.id
                );
                let enhanced = if r.enhanced.is_empty() {
                    "2.0.0".to_string()
                } else {
                    r.enhanced.clone()
                };
                tracing::info!(id = %tx.id, rcpts = tx.accepted.len(), size = message.len(), "delivered: {r}");
                (
                    Outcome::Delivered,
                    "backend",
                    Reply {
                        code: 250,
                        enhanced,
                        lines: vec![text],
                    },
                )
            }
            Ok(r) => {
                tracing::info!(id = %tx.id, "backend refused the message: {r}");
                (outcome_of(&r), "backend", with_id(&r, &tx.id))
            }
            Err(e) => {
                tracing::warn!(id = %tx.id, "backend failed during DATA: {e}");
                self.backend = None;
                (
                    Outcome::TempFailed,
                    "backend",
                    with_id(&replies::backend_unavailable(), &tx.id),
                )
            }
        }
    }

    /// Queue mode: the message is committed to the durable queue before the 250.
    pub(super) async fn enqueue(
        &mut self,
        tx: &Tx,
        message: &[u8],
    ) -> (Outcome, &'static str, Reply) {
        let single = (tx.accepted.len() == 1).then(|| tx.accepted[0].to_string());
        let mut full = received_header(
            &self.gw.config.smtp.hostname,
            &self.info,
            &tx.id,
            single.as_deref(),
            tx.time_us,
        );
        full.extend_from_slice(&self.module_headers());
        full.extend_from_slice(&crate::smtp::strip::strip(
            message,
            &self.info.marks.tx().strip,
        ));
        let sender = tx
            .sender
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let rcpts: Vec<String> = tx.accepted.iter().map(|a| a.to_string()).collect();
        let stored = match crate::modules::backup::compress(
            &full,
            self.gw.config.backup.compression_level,
        ) {
            Ok(z) => {
                self.gw
                    .store
                    .enqueue(&tx.id, tx.time_us, &sender, full.len() as i64, &z, &rcpts)
                    .await
            }
            Err(e) => Err(e.into()),
        };
        match stored {
            Ok(()) => {
                tracing::info!(id = %tx.id, rcpts = rcpts.len(), "queued: the backend is down");
                (
                    Outcome::Queued,
                    "queue",
                    Reply::new(
                        250,
                        "2.0.0",
                        format!("Ok: queued, delivery deferred id={}", tx.id),
                    ),
                )
            }
            Err(e) => {
                tracing::error!(id = %tx.id, "cannot queue the message: {e:#}");
                (
                    Outcome::TempFailed,
                    "queue",
                    with_id(&replies::local_error(), &tx.id),
                )
            }
        }
    }

    /// Header lines the modules want on the delivered message, each ending in CRLF.
    pub(super) fn module_headers(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for h in self.info.marks.tx().headers {
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// A disposable address's owner is never named to the client: the backend's answer about the
/// owner is given about the address the client wrote.
pub(super) fn hide_owner(mut r: Reply, owner: &str, given: &str) -> Reply {
    for line in &mut r.lines {
        let lower = line.to_ascii_lowercase();
        if let Some(i) = lower.find(&owner.to_ascii_lowercase()) {
            line.replace_range(i..i + owner.len(), given);
        }
    }
    r
}
