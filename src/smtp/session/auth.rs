//! SMTP AUTH (RFC 4954), PLAIN and LOGIN, on every SMTP listener but only inside TLS: the
//! password check is the one of the web sign-in (`directory::sign_in`), failures are throttled
//! per client address, and the signed-in account makes the client one of our own (outbound).

use super::*;
use crate::outbound::accept::Submitter;
use crate::outbound::sasl;

impl Session {
    /// Is AUTH offered on this connection now (advertised in EHLO, accepted)?
    pub(super) fn auth_offered(&self) -> bool {
        self.gw.config.outbound.auth && self.info.tls.is_some() && self.info.user.is_none()
    }

    pub(super) async fn auth(&mut self, mechanism: String, initial: Option<String>) -> Flow {
        if !self.gw.config.outbound.auth {
            return self.error(replies::not_implemented("AUTH"));
        }
        if self.info.tls.is_none() {
            return self.error(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ));
        }
        if self.info.helo.is_none() {
            return self.error(replies::need_helo());
        }
        if self.info.user.is_some() {
            return self.error(replies::bad_sequence("Already authenticated"));
        }
        if self.tx.is_some() {
            return self.error(replies::bad_sequence("AUTH inside a transaction"));
        }
        let ip = self.info.peer.ip();
        if self.gw.auth_throttle.blocked(ip) {
            tracing::info!(peer = %self.info.peer, "AUTH refused: too many failures from this address");
            return self.error(Reply::new(
                454,
                "4.7.0",
                "Too many failed authentications, try again later",
            ));
        }
        let credentials = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(r) => Some(r),
                    None => self.sasl_challenge("").await,
                };
                match response {
                    None => return self.auth_cancelled(),
                    Some(r) => sasl::plain(&r),
                }
            }
            "LOGIN" => {
                let user = match initial {
                    Some(r) => Some(r),
                    None => self.sasl_challenge(sasl::LOGIN_USER).await,
                };
                let Some(user) = user else {
                    return self.auth_cancelled();
                };
                let Some(password) = self.sasl_challenge(sasl::LOGIN_PASSWORD).await else {
                    return self.auth_cancelled();
                };
                sasl::login_step(&user).zip(sasl::login_step(&password))
            }
            _ => return self.error(Reply::new(504, "5.5.4", "Unrecognized authentication type")),
        };
        let Some((user, password)) = credentials else {
            return self.error(Reply::new(
                501,
                "5.5.2",
                "Cannot decode the authentication response",
            ));
        };
        let signed_in =
            crate::directory::sign_in(&self.gw.store, &self.gw.config, &user, &password).await;
        match signed_in {
            Ok(Some(u)) if u.role != crate::storage::Role::Interception => {
                tracing::info!(peer = %self.info.peer, user = %u.address, "SMTP AUTH succeeded");
                self.info.user = Some(u.address.clone());
                self.info.own_client = true;
                self.submitter = Some(Submitter {
                    address: u.address,
                    admin: u.role == crate::storage::Role::Admin,
                    aliases: u.aliases,
                });
                self.reply(&Reply::new(235, "2.7.0", "Authentication successful"));
                Flow::Continue
            }
            Ok(_) => {
                self.gw.auth_throttle.failed(ip);
                tracing::info!(peer = %self.info.peer, "SMTP AUTH failed for {user:?}");
                self.error(Reply::new(
                    535,
                    "5.7.8",
                    "Authentication credentials invalid",
                ))
            }
            Err(e) => {
                tracing::error!("SMTP AUTH sign-in check failed: {e:#}");
                self.reply(&Reply::new(
                    454,
                    "4.7.0",
                    "Temporary authentication failure",
                ));
                Flow::Continue
            }
        }
    }

    /// One `334` challenge and the client's answer; `None` when it cancels (`*`) or is gone.
    async fn sasl_challenge(&mut self, challenge: &str) -> Option<String> {
        self.conn
            .queue_bytes(format!("334 {challenge}\r\n").as_bytes());
        self.flush().await.ok()?;
        let line = tokio::time::timeout_at(self.deadline, self.conn.read_line(MAX_SASL_LINE))
            .await
            .ok()?
            .ok()?;
        match line {
            Line::Text(bytes) => {
                let text = String::from_utf8(bytes).ok()?;
                (text.trim() != "*").then_some(text)
            }
            _ => None,
        }
    }

    fn auth_cancelled(&mut self) -> Flow {
        self.error(Reply::new(501, "5.0.0", "Authentication cancelled"))
    }
}

/// RFC 4954 4: a SASL response line may be up to 12288 octets.
const MAX_SASL_LINE: usize = 12_288;
