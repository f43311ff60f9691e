//! The one header sponts adds to a message: `Received:` (RFC 5321 4.4), with the client's HELO
//! and address, the TLS parameters, and the transaction id.

use crate::pipeline::SessionInfo;

pub fn received_header(
    hostname: &str,
    s: &SessionInfo,
    id: &str,
    single_rcpt: Option<&str>,
    time_us: i64,
) -> Vec<u8> {
    let helo = s.helo.as_deref().unwrap_or("unknown");
    let ip = match s.peer.ip() {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("IPv6:{v6}"),
        },
        v4 => v4.to_string(),
    };
    let proto = if s.tls.is_some() { "ESMTPS" } else { "ESMTP" };
    let mut h =
        format!("Received: from {helo} ([{ip}])\r\n\tby {hostname} (sponts) with {proto} id {id}");
    if let Some(tls) = &s.tls {
        let (version, cipher) = tls.split_once(' ').unwrap_or((tls, ""));
        h.push_str(&format!("\r\n\t(version={version} cipher={cipher})"));
    }
    if let Some(r) = single_rcpt {
        h.push_str(&format!("\r\n\tfor <{r}>"));
    }
    h.push_str(&format!(";\r\n\t{}\r\n", crate::clock::rfc5322(time_us)));
    h.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let mut s = SessionInfo::new(
            "192.0.2.7:40000".parse().unwrap(),
            "192.0.2.1:25".parse().unwrap(),
        );
        s.helo = Some("client.example".into());
        s.tls = Some("TLSv1.3 TLS13_AES_256_GCM_SHA384".into());
        let h = String::from_utf8(received_header(
            "mx.example.org",
            &s,
            "ABC",
            Some("u@example.org"),
            0,
        ))
        .unwrap();
        assert_eq!(
            h,
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.example.org (sponts) with ESMTPS id ABC\r\n\t(version=TLSv1.3 cipher=TLS13_AES_256_GCM_SHA384)\r\n\tfor <u@example.org>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
    }
}
