//! SPF, DKIM and DMARC verification (`mail-auth`), with the points each failure adds and an
//! `Authentication-Results:` header for the backend.

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfResult,
};

use super::score::Score;
use crate::config::AuthConfig;
use crate::pipeline::{SessionInfo, TxInfo};

/// Verifies the message; adds the failures' points to `score` and returns the header line.
pub async fn verify(
    auth: &MessageAuthenticator,
    config: &AuthConfig,
    hostname: &str,
    s: &SessionInfo,
    tx: &TxInfo,
    message: &[u8],
    score: &mut Score,
) -> Option<String> {
    let am = AuthenticatedMessage::parse(message)?;
    let ip = s.peer.ip().to_canonical();
    let helo = s.helo.clone().unwrap_or_default();
    let sender = tx
        .sender
        .as_ref()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let dkim = auth.verify_dkim(&am).await;
    let spf = auth
        .verify_spf(SpfParameters::verify_mail_from(
            ip, &helo, hostname, &sender,
        ))
        .await;
    let mail_from_domain = sender
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(&helo)
        .to_string();
    let dmarc = auth
        .verify_dmarc(DmarcParameters::new(&am, &dkim, &mail_from_domain, &spf))
        .await;
    if spf.result() == SpfResult::Fail {
        score.add(config.spf_fail, "spf fail".into());
    }
    if dkim
        .iter()
        .any(|d| matches!(d.result(), DkimResult::Fail(_)))
        && !dkim.iter().any(|d| matches!(d.result(), DkimResult::Pass))
    {
        score.add(config.dkim_fail, "dkim fail".into());
    }
    if matches!(dmarc.result(), DmarcResult::Fail(_)) {
        match dmarc.policy() {
            Policy::Reject => score.add(
                config.dmarc_reject,
                format!("dmarc fail p=reject {}", dmarc.domain()),
            ),
            Policy::Quarantine => score.add(
                config.dmarc_quarantine,
                format!("dmarc fail p=quarantine {}", dmarc.domain()),
            ),
            _ => {}
        }
    }
    let header = AuthenticationResults::new(hostname)
        .with_dkim_results(&dkim, am.from())
        .with_spf_mailfrom_result(&spf, ip, &sender, &helo)
        .with_dmarc_result(&dmarc)
        .to_header();
    Some(header.trim_end().to_string())
}
