//! The session's outbound side: our own clients (relay networks, SMTP AUTH) sending to other
//! domains. MAIL checks the sender; the message is size-checked and DKIM-signed before it is
//! kept; then it is queued whole, each recipient with its route, committed before the 250.

use super::*;
use crate::outbound::accept;
use crate::storage::NewQueued;

impl Session {
    /// MAIL: a submission listener takes only our own clients; a signed-in user sends only as
    /// themselves, from our sender domains. `Some`: the refusal.
    pub(super) async fn outbound_mail_check(&self, tx: &Tx) -> Option<Reply> {
        if self.info.submission && !self.info.own_client {
            return Some(Reply::new(530, "5.7.0", "Authentication required"));
        }
        match &self.submitter {
            Some(user) if self.gw.config.outbound.enabled => {
                match accept::check_sender(&self.gw.config, tx.sender.as_ref(), Some(user)) {
                    Some(r) => Some(r),
                    None => {
                        self.locked(&[
                            &user.address,
                            &tx.sender
                                .as_ref()
                                .map(|a| a.to_string())
                                .unwrap_or_default(),
                        ])
                        .await
                    }
                }
            }
            _ => None,
        }
    }

    /// A sender (or account) an admin locked out of outbound mail is refused until unlocked.
    async fn locked(&self, who: &[&str]) -> Option<Reply> {
        for w in who.iter().filter(|w| !w.is_empty()) {
            match self.gw.store.sender_lock(w).await {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    return Some(Reply::new(
                        550,
                        "5.7.1",
                        format!(
                            "<{w}>: Sender address rejected: locked for outbound mail ({reason}); ask the administrator"
                        ),
                    ));
                }
                Err(e) => {
                    tracing::error!("outbound lock check failed: {e:#}");
                    return Some(replies::local_error());
                }
            }
        }
        None
    }

    /// RCPT outside our domains from our own client: accepted by sponts (it delivers by MX). The
    /// first such recipient makes the transaction outbound: only then must a relay client's sender
    /// be of our sender domains (the mail server may well hand us a stranger's mail for a local
    /// mailbox); a signed-in user's was checked at MAIL.
    pub(super) async fn accept_outbound_rcpt(&mut self, address: String, to: Address) -> Flow {
        let tx = self
            .tx
            .as_ref()
            .expect("the session checked the transaction");
        let sender = tx
            .sender
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let refusal = match tx.outbound || self.submitter.is_some() {
            true => None,
            false => match accept::check_sender(&self.gw.config, tx.sender.as_ref(), None) {
                Some(r) => Some(r),
                None => self.locked(&[&sender]).await,
            },
        };
        let tx = self
            .tx
            .as_mut()
            .expect("the session checked the transaction");
        let r = refusal
            .clone()
            .unwrap_or_else(|| Reply::new(250, "2.1.5", "Ok"));
        tx.rcpts.push(RcptRecord {
            address,
            accepted: refusal.is_none(),
            reply: r.summary(),
            delivered_to: None,
        });
        match refusal {
            Some(_) => {
                tracing::info!(id = %tx.id, peer = %self.info.peer, "outbound sender refused: {r}");
                tx.refused_by = Some(("outbound", r.clone()));
            }
            None => {
                tx.outbound = true;
                tx.accepted.push(to);
            }
        }
        self.reply(&r);
        Flow::Continue
    }

    /// After DATA, for outbound mail: the size limit, and the DKIM signature on top — so the
    /// kept, journaled and queued copies are the signed one. `Err`: the reply refusing it.
    pub(super) async fn outbound_message(
        &self,
        tx: &Tx,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, Reply> {
        if !tx.outbound {
            return Ok(message);
        }
        if message.len() as u64 > accept::max_message_size(&self.gw.config) {
            return Err(with_id(
                &Reply::new(552, "5.3.4", "Message too big for outbound mail"),
                &tx.id,
            ));
        }
        match accept::dkim_signature(&self.gw.store, &self.gw.config, &message).await {
            Ok(Some(signature)) => {
                let mut signed = signature.into_bytes();
                signed.extend_from_slice(&message);
                Ok(signed)
            }
            Ok(None) => Ok(message),
            Err(e) => {
                tracing::error!(id = %tx.id, "DKIM signing failed, refusing for now: {e:#}");
                Err(with_id(&replies::local_error(), &tx.id))
            }
        }
    }

    /// Outbound mail goes to the durable queue whole: its MX recipients for MX delivery, its
    /// local ones for the queue runner (to the backend). Committed (fsync) before the 250.
    pub(super) async fn enqueue_outbound(
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
        let rcpts: Vec<(String, crate::storage::Route)> = tx
            .accepted
            .iter()
            .map(|a| (a.to_string(), accept::route(&self.gw.config, a)))
            .collect();
        // Spam from our own client is a compromised account's mark: held, not sent.
        let mut held = if self.info.marks.tx().flag.as_deref() == Some("spam") {
            format!(
                "outbound spam from {}",
                self.info.user.as_deref().unwrap_or(&sender)
            )
        } else {
            String::new()
        };
        let addresses: Vec<String> = rcpts.iter().map(|(a, _)| a.clone()).collect();
        if held.is_empty() {
            // A burst past the hourly limits: held too.
            match crate::outbound::guard::burst(
                &self.gw.config,
                &self.gw.store,
                &sender,
                self.info.user.as_deref(),
                &addresses,
            )
            .await
            {
                Ok(Some(reason)) => held = reason,
                Ok(None) => {}
                Err(e) => tracing::error!(id = %tx.id, "outbound limits not checked: {e:#}"),
            }
        }
        let stored = match crate::modules::backup::compress(
            &full,
            self.gw.config.backup.compression_level,
        ) {
            Ok(z) => {
                let m = NewQueued {
                    id: &tx.id,
                    time_us: tx.time_us,
                    sender: &sender,
                    size: full.len() as i64,
                    compressed: &z,
                    rcpts: &rcpts,
                    outbound: true,
                    held: &held,
                };
                self.gw.store.enqueue_routed(&m).await
            }
            Err(e) => Err(e.into()),
        };
        match stored {
            Ok(()) => {
                if held.is_empty() {
                    tracing::info!(id = %tx.id, rcpts = rcpts.len(), user = ?self.info.user, "outbound mail queued");
                } else {
                    tracing::warn!(id = %tx.id, rcpts = rcpts.len(), "outbound mail HELD: {held}");
                    let _ = self
                        .gw
                        .store
                        .add_event(
                            &self.gw.node,
                            "outbound_held",
                            &format!("{}: {held}", tx.id),
                        )
                        .await;
                    if let Err(e) = crate::outbound::guard::alert_admins(
                        &self.gw.config,
                        &self.gw.store,
                        &sender,
                        &tx.id,
                        &held,
                    )
                    .await
                    {
                        tracing::error!(id = %tx.id, "admins not alerted of held outbound mail: {e:#}");
                    }
                }
                (
                    Outcome::Queued,
                    "outbound",
                    Reply::new(
                        250,
                        "2.0.0",
                        format!("Ok: queued for delivery id={}", tx.id),
                    ),
                )
            }
            Err(e) => {
                tracing::error!(id = %tx.id, "cannot queue outbound mail: {e:#}");
                (
                    Outcome::TempFailed,
                    "outbound",
                    with_id(&replies::local_error(), &tx.id),
                )
            }
        }
    }
}
