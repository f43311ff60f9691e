//! SPF, DKIM, DMARC and iprev verification (`mail-auth`), with the points each failure adds and
//! an `Authentication-Results:` header for the backend.

use mail_auth::DnsError;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, IprevOutput, IprevResult,
    MessageAuthenticator, SpfResult,
};

use super::score::Score;
use crate::config::AuthConfig;
use crate::net::is_public;
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
    let (dkim, iprev) = tokio::join!(auth.verify_dkim(&am), auth.verify_iprev(ip));
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
    // A private or loopback client (our own network, not in relay_networks) rarely has a
    // public reverse name: only the internet's clients are held to it.
    if let Some(why) = iprev_failure(&iprev).filter(|_| is_public(ip)) {
        score.add(config.iprev_fail, format!("iprev fail ({why})"));
    }
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
        .with_iprev_result(&iprev, ip)
        .to_header();
    Some(header.trim_end().to_string())
}

/// Why the client's address fails iprev: it has no reverse name, or the name does not lead
/// back to it. None when it passes, or when DNS could not tell (a timeout is not the client's
/// fault).
fn iprev_failure(iprev: &IprevOutput) -> Option<String> {
    let answered = |e: &mail_auth::Error| {
        matches!(
            e,
            mail_auth::Error::Dns(DnsError::RecordNotFound(
                ResponseCode::NXDomain | ResponseCode::NoError
            ))
        )
    };
    match iprev.result() {
        // The name's addresses do not include the client's, or there is no such record (an
        // answer, not a server failure).
        IprevResult::Fail(_) => {}
        IprevResult::PermError(e) if answered(e) => {}
        _ => return None,
    }
    Some(match iprev.ptr.as_ref().and_then(|names| names.first()) {
        Some(name) => format!("{} does not resolve back", name.trim_end_matches('.')),
        None => "no reverse name".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::Error;
    use std::sync::Arc;

    fn output(result: IprevResult, ptr: &[&str]) -> IprevOutput {
        IprevOutput {
            result,
            ptr: (!ptr.is_empty()).then(|| ptr.iter().map(|n| Box::from(*n)).collect::<Arc<[_]>>()),
        }
    }

    #[test]
    fn what_fails_iprev_and_what_does_not() {
        let nxdomain = || Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain));
        assert_eq!(
            iprev_failure(&output(IprevResult::Pass, &["mx.example."])),
            None
        );
        assert_eq!(
            iprev_failure(&output(IprevResult::PermError(nxdomain()), &[])).as_deref(),
            Some("no reverse name"),
            "NXDOMAIN for the address's reverse name"
        );
        assert_eq!(
            iprev_failure(&output(
                IprevResult::Fail(Error::NotAligned),
                &["dyn.example."]
            ))
            .as_deref(),
            Some("dyn.example does not resolve back")
        );
        assert_eq!(
            iprev_failure(&output(
                IprevResult::PermError(nxdomain()),
                &["gone.example."]
            ))
            .as_deref(),
            Some("gone.example does not resolve back"),
            "the name itself does not exist"
        );
        // The DNS could not tell: a timeout, a server failure, an answer it could not read.
        let servfail = Error::Dns(DnsError::RecordNotFound(ResponseCode::ServFail));
        let timeout = Error::Dns(DnsError::Resolver("timed out".into()));
        assert_eq!(
            iprev_failure(&output(IprevResult::PermError(servfail), &[])),
            None
        );
        assert_eq!(
            iprev_failure(&output(IprevResult::TempError(timeout), &[])),
            None
        );
        assert_eq!(
            iprev_failure(&output(IprevResult::PermError(Error::ParseError), &[])),
            None
        );
    }
}
