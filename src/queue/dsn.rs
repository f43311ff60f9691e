//! Delivery status notifications (RFC 3464): when the backend refuses a queued message for good,
//! the sender learns it — unless the sender is the null path. The DSN is queued itself and goes
//! out through the backend (which must relay for sponts), from the null sender so it never loops.

use crate::config::Config;

/// A recipient that failed for good, with the backend's reply (e.g. `550 5.1.1 User unknown`).
pub struct Failure {
    pub address: String,
    pub reply: String,
}

/// What a notice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The backend refused mail queued while it was down.
    BackendRefused,
    /// Outbound mail the destination refused, or that could not be delivered in its lifetime.
    Undeliverable,
    /// Outbound mail still being retried (sent once per recipient).
    Delayed,
}

/// The DSN message for `sender` about queued message `id` (CRLF text).
pub fn compose(
    config: &Config,
    id: &str,
    arrival_us: i64,
    sender: &str,
    failures: &[Failure],
    original: &[u8],
) -> Vec<u8> {
    compose_notice(
        config,
        Notice::BackendRefused,
        id,
        arrival_us,
        sender,
        failures,
        original,
    )
}

/// The DSN of one kind.
pub fn compose_notice(
    config: &Config,
    notice: Notice,
    id: &str,
    arrival_us: i64,
    sender: &str,
    failures: &[Failure],
    original: &[u8],
) -> Vec<u8> {
    let host = &config.smtp.hostname;
    let now = crate::clock::now_us();
    let boundary = format!("dsn-{id}");
    let headers_end = original
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(original.len());
    let headers = String::from_utf8_lossy(&original[..headers_end]);
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\nTo: <{sender}>\r\n"
    ));
    let (subject, action, default_status) = match notice {
        Notice::Delayed => ("Delayed Mail (still being retried)", "delayed", "4.0.0"),
        _ => ("Undelivered Mail Returned to Sender", "failed", "5.0.0"),
    };
    m.push_str(&format!("Subject: {subject}\r\n"));
    // Several notices may be about one message (a delay, then failures per destination).
    let mid = if notice == Notice::BackendRefused {
        format!("dsn.{id}")
    } else {
        format!("dsn.{id}.{now}")
    };
    m.push_str(&format!("Date: {}\r\nMessage-ID: <{mid}@{host}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n", crate::clock::rfc5322(now)));
    m.push_str(&format!("Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n"));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ));
    let why = match notice {
        Notice::BackendRefused => {
            "Your message was accepted while the mail server was unavailable, but the\r\nmail server has now refused it for these recipients:"
        }
        Notice::Undeliverable => "Your message could not be delivered to these recipients:",
        Notice::Delayed => {
            "Your message has not been delivered yet to these recipients. It is being\r\nretried; you will be told if it finally fails. You need not send it again."
        }
    };
    m.push_str(&format!(
        "This is the mail gateway at {host}.\r\n\r\n{why}\r\n\r\n"
    ));
    for f in failures {
        m.push_str(&format!("  <{}>: {}\r\n", f.address, f.reply));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
    ));
    m.push_str(&format!(
        "Reporting-MTA: dns; {host}\r\nX-Sponts-Queue-ID: {id}\r\nArrival-Date: {}\r\n",
        crate::clock::rfc5322(arrival_us)
    ));
    for f in failures {
        let class = &default_status[..2];
        let status = f
            .reply
            .split(' ')
            .nth(1)
            .filter(|s| s.starts_with(class) && s.split('.').count() == 3)
            .unwrap_or(default_status);
        m.push_str(&format!("\r\nFinal-Recipient: rfc822; {}\r\nAction: {action}\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {}\r\n", f.address, f.reply));
    }
    m.push_str(&format!("\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n--{boundary}--\r\n"));
    m.into_bytes()
}

/// Queues the DSN for a queued message, from the null sender: it is delivered (and retried) like
/// any queued mail, so a backend blip cannot lose it, and it can never cause another DSN.
pub async fn queue(
    config: &Config,
    store: &crate::storage::Store,
    id: &str,
    arrival_us: i64,
    sender: &str,
    failures: &[Failure],
    original: &[u8],
) -> anyhow::Result<()> {
    queue_notice(
        config,
        store,
        Notice::BackendRefused,
        id,
        arrival_us,
        sender,
        failures,
        original,
    )
    .await
}

/// Queues a DSN of one kind (to the sender through the backend: our own senders' mail server).
#[allow(clippy::too_many_arguments)]
pub async fn queue_notice(
    config: &Config,
    store: &crate::storage::Store,
    notice: Notice,
    id: &str,
    arrival_us: i64,
    sender: &str,
    failures: &[Failure],
    original: &[u8],
) -> anyhow::Result<()> {
    if sender.is_empty() || failures.is_empty() {
        return Ok(());
    }
    let dsn = compose_notice(config, notice, id, arrival_us, sender, failures, original);
    let dsn_id = crate::id::new_transaction_id();
    let z = crate::modules::backup::compress(&dsn, config.backup.compression_level)?;
    // Due at once (its arrival time is in the past, past the runner's settling wait).
    store
        .enqueue(
            &dsn_id,
            crate::clock::now_us() - 10_000_000,
            "",
            dsn.len() as i64,
            &z,
            &[sender.to_string()],
        )
        .await?;
    tracing::info!(%id, %sender, dsn = %dsn_id, "DSN queued");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_the_rfc3464_parts() {
        let c = crate::config::Config::parse("[smtp]\nhostname = \"gw.example.org\"\n").unwrap();
        let f = [Failure {
            address: "gone@example.org".into(),
            reply: "550 5.1.1 <gone@example.org>: User unknown".into(),
        }];
        let m = String::from_utf8(compose(
            &c,
            "Q1",
            0,
            "a@partner.example",
            &f,
            b"Subject: hi\r\nFrom: a@partner.example\r\n\r\nbody\r\n",
        ))
        .unwrap();
        assert!(m.contains(
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"dsn-Q1\""
        ));
        assert!(m.contains(
            "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; gw.example.org\r\n"
        ));
        assert!(m.contains("Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1"));
        assert!(m.contains(
            "Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\nFrom: a@partner.example\r\n"
        ));
        assert!(
            !m.contains("body\r\n--"),
            "the original body is not returned"
        );
        assert!(m.lines().all(|l| l.len() <= 998));
        let f = [Failure {
            address: "far@remote.example".into(),
            reply: "451 4.4.1 mx.remote.example[192.0.2.1]: connection refused".into(),
        }];
        let m = String::from_utf8(compose_notice(
            &c,
            Notice::Delayed,
            "Q2",
            0,
            "a@example.org",
            &f,
            b"Subject: hi\r\n\r\nbody\r\n",
        ))
        .unwrap();
        assert!(m.contains("Subject: Delayed Mail (still being retried)\r\n"));
        assert!(m.contains(
            "Final-Recipient: rfc822; far@remote.example\r\nAction: delayed\r\nStatus: 4.4.1\r\n"
        ));
    }
}
