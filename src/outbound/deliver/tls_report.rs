//! TLS-RPT (RFC 8460): once a day, each destination domain that publishes a `_smtp._tls` TXT
//! record (`v=TLSRPTv1; rua=...`) gets the previous UTC day's results of sponts' sessions to its
//! MX hosts — successes and, per MX and failure type, the failures — as a gzipped JSON report,
//! by mail (`mailto:`, queued and DKIM-signed like the organisation's own mail) or by HTTPS POST
//! (`https:`). Each domain's report for a day is claimed in the database, so of several nodes
//! one sends it, once; a domain whose record could not be looked up is tried again next round.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::json;

use super::Delivery;
use super::dns::Lookup;
use crate::storage::{NewQueued, Route};

/// How often the job looks for a finished day with reports still to send.
const ROUND: Duration = Duration::from_secs(3600);
/// Days of results kept (for `sponts queue` and a late report), then forgotten.
const KEEP_DAYS: i64 = 30;
/// The largest answer read from a report's HTTPS endpoint.
const MAX_ANSWER: usize = 16 * 1024;

/// Where a domain wants its reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rua {
    Mailto(String),
    Https(String),
}

/// The `rua=` destinations of a `v=TLSRPTv1` record; `None` for any other record.
pub fn parse_record(txt: &str) -> Option<Vec<Rua>> {
    let mut fields = txt.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next()?.replace(' ', "") != "v=TLSRPTv1" {
        return None;
    }
    let rua = fields
        .filter_map(|f| f.split_once('='))
        .find(|(k, _)| k.trim() == "rua")?
        .1;
    let out: Vec<Rua> = rua
        .split(',')
        .map(str::trim)
        .filter_map(|uri| {
            if let Some(address) = uri.strip_prefix("mailto:") {
                let address = address.split('?').next().unwrap_or("");
                matches!(
                    crate::address::parse_path(address, crate::address::Side::Recipient),
                    Ok(Some(_))
                )
                .then(|| Rua::Mailto(address.to_string()))
            } else {
                uri.starts_with("https://")
                    .then(|| Rua::Https(uri.to_string()))
            }
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// `YYYY-MM-DD` of day number `day` (days since 1970-01-01).
pub fn day_name(day: i64) -> String {
    let (y, m, d) = crate::clock::date(day * 86_400_000_000);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The report's JSON: `rows` are the day's (policy, mx, result, sessions) of `domain`.
pub fn report_json(
    organization: &str,
    contact: &str,
    report_id: &str,
    day: i64,
    domain: &str,
    rows: &[(String, String, String, i64)],
    sts_policy: Option<&str>,
) -> serde_json::Value {
    let mut by_policy: BTreeMap<&str, Vec<&(String, String, String, i64)>> = BTreeMap::new();
    for row in rows {
        by_policy.entry(row.0.as_str()).or_default().push(row);
    }
    let policies: Vec<serde_json::Value> = by_policy
        .into_iter()
        .map(|(policy_type, rows)| {
            let ok: i64 = rows.iter().filter(|r| r.2 == "success").map(|r| r.3).sum();
            let failed: i64 = rows.iter().filter(|r| r.2 != "success").map(|r| r.3).sum();
            let mut policy = json!({ "policy-type": policy_type, "policy-domain": domain });
            if policy_type == "sts"
                && let Some(text) = sts_policy
            {
                policy["policy-string"] = json!(text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>());
                policy["mx-host"] = json!(text.lines().filter_map(|l| l.trim().strip_prefix("mx:")).map(str::trim).collect::<Vec<_>>());
            }
            let details: Vec<serde_json::Value> = rows
                .iter()
                .filter(|r| r.2 != "success")
                .map(|r| json!({ "result-type": r.2, "receiving-mx-hostname": r.1, "failed-session-count": r.3 }))
                .collect();
            let mut entry = json!({
                "policy": policy,
                "summary": { "total-successful-session-count": ok, "total-failure-session-count": failed },
            });
            if !details.is_empty() {
                entry["failure-details"] = json!(details);
            }
            entry
        })
        .collect();
    json!({
        "organization-name": organization,
        "date-range": { "start-datetime": format!("{}T00:00:00Z", day_name(day)), "end-datetime": format!("{}T23:59:59Z", day_name(day)) },
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    })
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data)?;
    z.finish()
}

/// The report mail (RFC 8460 §5.3): a multipart/report of type tlsrpt with the gzipped JSON.
pub fn report_mail(
    submitter: &str,
    from: &str,
    to: &str,
    domain: &str,
    day: i64,
    report_id: &str,
    gz: &[u8],
) -> Vec<u8> {
    let now = crate::clock::now_us();
    let start = day * 86_400;
    let file = format!(
        "{submitter}!{domain}!{start}!{}!{}.json.gz",
        start + 86_399,
        report_id.replace(['@', '!', '/'], "-")
    );
    let boundary = format!("tlsrpt-{}", crate::id::new_transaction_id());
    let mut m = String::new();
    m.push_str(&format!("From: TLS reporting <{from}>\r\nTo: <{to}>\r\n"));
    m.push_str(&format!(
        "Subject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>\r\n"
    ));
    m.push_str(&format!(
        "Date: {}\r\nMessage-ID: <{report_id}>\r\n",
        crate::clock::rfc5322(now)
    ));
    m.push_str(&format!("TLS-Report-Domain: {domain}\r\nTLS-Report-Submitter: {submitter}\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"));
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ));
    m.push_str(&format!(
        "This is the SMTP TLS report of {submitter} for {domain} on {} (UTC).\r\n\r\n",
        day_name(day)
    ));
    m.push_str(&format!("--{boundary}\r\nContent-Type: application/tlsrpt+gzip; name=\"{file}\"\r\nContent-Transfer-Encoding: base64\r\n"));
    m.push_str(&format!(
        "Content-Disposition: attachment; filename=\"{file}\"\r\n\r\n"
    ));
    let b64 = crate::base64::encode(gz);
    for line in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(line).unwrap_or_default());
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// Where one report went, or why not.
#[derive(Debug, Clone)]
pub struct Sent {
    pub domain: String,
    pub rua: Rua,
    pub result: Result<(), String>,
}

/// Sends the reports of `day` that are due: each domain with results and a TLS-RPT record,
/// once (claimed before it is sent).
pub async fn send_day(delivery: &Delivery, day: i64) -> anyhow::Result<Vec<Sent>> {
    let config = &delivery.config;
    let day_text = day_name(day);
    let submitter = config.smtp.hostname.clone();
    let from = config
        .outbound_delivery
        .tls_report_from
        .clone()
        .unwrap_or_else(|| match config.domains.local.first() {
            Some(d) => format!("postmaster@{d}"),
            None => format!("postmaster@{submitter}"),
        });
    let mut sent = Vec::new();
    for domain in delivery.store.tls_report_due(&day_text).await? {
        let ruas = match delivery.dns.txt(&format!("_smtp._tls.{domain}")).await {
            Ok(Lookup::Found { records, .. }) => records.iter().find_map(|t| parse_record(t)),
            Ok(_) => None,
            Err(e) => {
                tracing::info!(%domain, "TLS report postponed, its record was not looked up: {e:#}");
                continue;
            }
        };
        if !delivery.store.tls_report_claim(&day_text, &domain).await? {
            continue;
        }
        let Some(ruas) = ruas else { continue };
        let rows = delivery.store.tls_results(&day_text, &domain).await?;
        let sts = delivery
            .store
            .mta_sts_get(&domain)
            .await
            .ok()
            .flatten()
            .map(|c| c.policy);
        let report_id = format!("{day_text}.{}@{submitter}", crate::id::new_transaction_id());
        let json = report_json(
            &submitter,
            &from,
            &report_id,
            day,
            &domain,
            &rows,
            sts.as_deref(),
        );
        let gz = gzip(json.to_string().as_bytes())?;
        for rua in ruas {
            let result = match &rua {
                Rua::Mailto(to) => {
                    queue_mail(delivery, &from, to, &domain, day, &report_id, &gz).await
                }
                Rua::Https(url) => post(delivery, url, &gz).await,
            };
            match &result {
                Ok(()) => tracing::info!(%domain, ?rua, day = %day_text, "TLS report sent"),
                Err(e) => {
                    tracing::warn!(%domain, ?rua, day = %day_text, "TLS report not sent: {e}")
                }
            }
            sent.push(Sent {
                domain: domain.clone(),
                rua,
                result,
            });
        }
    }
    Ok(sent)
}

/// Queues the report mail (DKIM-signed when the sender's domain has a key) for delivery.
async fn queue_mail(
    delivery: &Delivery,
    from: &str,
    to: &str,
    domain: &str,
    day: i64,
    report_id: &str,
    gz: &[u8],
) -> Result<(), String> {
    let config = &delivery.config;
    let mut message = report_mail(&config.smtp.hostname, from, to, domain, day, report_id, gz);
    match crate::dkim::sign(&delivery.store, &config.dkim, &message).await {
        Ok(Some(signature)) => message.splice(0..0, signature.into_bytes()).for_each(drop),
        Ok(None) => {}
        Err(e) => tracing::warn!(%domain, "TLS report not DKIM-signed: {e:#}"),
    }
    let route = match crate::address::parse_path(to, crate::address::Side::Recipient) {
        Ok(Some(a)) if config.is_local_domain(&a.domain) => Route::Backend,
        _ => Route::Mx,
    };
    let z = crate::modules::backup::compress(&message, config.backup.compression_level)
        .map_err(|e| e.to_string())?;
    let id = crate::id::new_transaction_id();
    let rcpts = [(to.to_string(), route)];
    // Due at once: its arrival is put past the runners' settling wait.
    let queued = NewQueued {
        id: &id,
        time_us: crate::clock::now_us() - 10_000_000,
        sender: from,
        size: message.len() as i64,
        compressed: &z,
        rcpts: &rcpts,
        outbound: false,
        held: "",
    };
    delivery
        .store
        .enqueue_routed(&queued)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// POSTs the report to an `https:` rua; any 2xx is success.
async fn post(delivery: &Delivery, url: &str, gz: &[u8]) -> Result<(), String> {
    let rest = url.strip_prefix("https://").ok_or("not an https URL")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>().map_err(|_| format!("bad port in {url}"))?,
        ),
        None => (authority, 443),
    };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: sponts\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    request.extend_from_slice(gz);
    let answer = super::mta_sts::https_exchange(
        &delivery.dns,
        &delivery.roots,
        host,
        port,
        &request,
        MAX_ANSWER,
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    let status = String::from_utf8_lossy(
        &answer[..answer
            .iter()
            .position(|&b| b == b'\r')
            .unwrap_or(answer.len())],
    )
    .to_string();
    match status.split(' ').nth(1) {
        Some(code) if code.starts_with('2') && code.len() == 3 => Ok(()),
        _ => Err(format!("HTTP answer `{status}`")),
    }
}

/// Runs forever: each round, the reports of yesterday still due; old results forgotten.
pub async fn job(config: crate::config::Config, store: crate::storage::Store) {
    let delivery = match Delivery::new(std::sync::Arc::new(config), store) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("TLS reports are not sent: {e:#}");
            return;
        }
    };
    tokio::time::sleep(Duration::from_secs(60)).await;
    loop {
        let today = crate::clock::now_us().div_euclid(86_400_000_000);
        if let Err(e) = send_day(&delivery, today - 1).await {
            tracing::warn!("TLS reports: {e:#}");
        }
        let _ = delivery
            .store
            .tls_results_purge(&day_name(today - KEEP_DAYS))
            .await;
        tokio::time::sleep(ROUND).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_mail_and_https_destinations() {
        assert_eq!(
            parse_record(
                "v=TLSRPTv1; rua=mailto:tlsrpt@example.net,https://reports.example.net/v1"
            ),
            Some(vec![
                Rua::Mailto("tlsrpt@example.net".into()),
                Rua::Https("https://reports.example.net/v1".into())
            ])
        );
        assert_eq!(
            parse_record("v=TLSRPTv1;rua=mailto:a@example.net?subject=x"),
            Some(vec![Rua::Mailto("a@example.net".into())])
        );
        assert_eq!(parse_record("v=STSv1; id=1"), None);
        assert_eq!(
            parse_record("v=TLSRPTv1; rua=http://plain.example.net/"),
            None,
            "only mailto and https"
        );
        assert_eq!(parse_record("v=TLSRPTv1; rua=mailto:not-an-address"), None);
    }

    #[test]
    fn the_report_counts_successes_and_failures_per_policy() {
        let rows = vec![
            (
                "sts".to_string(),
                "mx1.example.net".to_string(),
                "success".to_string(),
                5,
            ),
            (
                "sts".to_string(),
                "mx2.example.net".to_string(),
                "validation-failure".to_string(),
                2,
            ),
            (
                "no-policy-found".to_string(),
                "mx1.example.net".to_string(),
                "success".to_string(),
                1,
            ),
        ];
        let j = report_json(
            "gw.example.org",
            "postmaster@example.org",
            "r1",
            20_000,
            "example.net",
            &rows,
            Some("version: STSv1\r\nmode: enforce\r\nmx: *.example.net\r\nmax_age: 86400\r\n"),
        );
        assert_eq!(j["date-range"]["start-datetime"], "2024-10-04T00:00:00Z");
        let sts = j["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["policy"]["policy-type"] == "sts")
            .unwrap();
        assert_eq!(sts["summary"]["total-successful-session-count"], 5);
        assert_eq!(sts["summary"]["total-failure-session-count"], 2);
        assert_eq!(
            sts["failure-details"][0]["result-type"],
            "validation-failure"
        );
        assert_eq!(sts["policy"]["mx-host"][0], "*.example.net");
        let none = j["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["policy"]["policy-type"] == "no-policy-found")
            .unwrap();
        assert!(none.get("failure-details").is_none());
    }
}
