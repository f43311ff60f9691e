//! What outbound delivery keeps besides the queue's own rows: cached MTA-STS policies (RFC 8461
//! §5, until their max_age), per-day TLS results for TLS-RPT (RFC 8460), and which recipients'
//! senders have had their delay notice.

use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

use super::{Store, with_pool};

/// Outbound mail waiting for one destination domain, for the queue page and `sponts queue`.
#[derive(Debug, Clone, Serialize)]
pub struct MxDestination {
    pub domain: String,
    pub messages: i64,
    pub recipients: i64,
    pub oldest_us: i64,
    pub next_attempt_us: i64,
    pub attempts: i32,
    /// The latest answer or error of an attempt (empty: not tried yet).
    pub last_reply: String,
}

/// A cached MTA-STS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsCached {
    pub id: String,
    /// The policy text as fetched.
    pub policy: String,
    pub expires_us: i64,
}

impl Store {
    pub async fn mta_sts_get(&self, domain: &str) -> Result<Option<StsCached>> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT id, policy, expires_us FROM mta_sts_policy WHERE domain = $1").bind(domain).fetch_optional(pool).await?;
            row.map(|r| Ok(StsCached { id: r.try_get("id")?, policy: r.try_get("policy")?, expires_us: r.try_get("expires_us")? })).transpose()
        })
    }

    pub async fn mta_sts_put(&self, domain: &str, cached: &StsCached) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO mta_sts_policy (domain, id, policy, fetched_us, expires_us) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (domain) DO UPDATE SET id = excluded.id, policy = excluded.policy, fetched_us = excluded.fetched_us, expires_us = excluded.expires_us")
                .bind(domain).bind(&cached.id).bind(&cached.policy).bind(crate::clock::now_us()).bind(cached.expires_us)
                .execute(pool).await?;
            Ok(())
        })
    }

    /// Counts one session's TLS result for the day's TLS report: `policy` is `sts`, `tlsa` or
    /// `no-policy-found`; `result` is `success` or an RFC 8460 result type.
    pub async fn tls_result_add(
        &self,
        day: &str,
        domain: &str,
        policy: &str,
        mx: &str,
        result: &str,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO tls_results (day, domain, policy, mx, result, sessions) VALUES ($1, $2, $3, $4, $5, 1) \
                         ON CONFLICT (day, domain, policy, mx, result) DO UPDATE SET sessions = tls_results.sessions + 1")
                .bind(day).bind(domain).bind(policy).bind(mx).bind(result).execute(pool).await?;
            Ok(())
        })
    }

    /// The day's results of one domain: (policy, mx, result, sessions).
    pub async fn tls_results(
        &self,
        day: &str,
        domain: &str,
    ) -> Result<Vec<(String, String, String, i64)>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT policy, mx, result, sessions FROM tls_results WHERE day = $1 AND domain = $2 ORDER BY policy, mx, result").bind(day).bind(domain).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("policy")?, r.try_get("mx")?, r.try_get("result")?, r.try_get("sessions")?))).collect()
        })
    }

    /// The destination domains with TLS results on `day` whose report is not claimed yet.
    pub async fn tls_report_due(&self, day: &str) -> Result<Vec<String>> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT DISTINCT domain FROM tls_results WHERE day = $1 AND domain NOT IN (SELECT domain FROM tls_reports_sent WHERE day = $1) ORDER BY domain")
                .bind(day).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(r.try_get("domain")?)).collect()
        })
    }

    /// Claims the sending of `domain`'s report for `day`: true for the one caller (on any node)
    /// that gets it.
    pub async fn tls_report_claim(&self, day: &str, domain: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("INSERT INTO tls_reports_sent (day, domain, sent_us) VALUES ($1, $2, $3) ON CONFLICT (day, domain) DO NOTHING")
                .bind(day).bind(domain).bind(crate::clock::now_us()).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Forgets TLS results and report claims of days before `day` (ISO dates sort as text).
    pub async fn tls_results_purge(&self, before_day: &str) -> Result<u64> {
        with_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM tls_results WHERE day < $1").bind(before_day).execute(pool).await?;
            sqlx::query("DELETE FROM tls_reports_sent WHERE day < $1").bind(before_day).execute(pool).await?;
            Ok(r.rows_affected())
        })
    }

    /// Marks a recipient's delay notice as sent; true only the first time (so one notice per
    /// recipient, whichever node asks).
    pub async fn mx_delay_noticed(&self, queue_id: &str, address: &str) -> Result<bool> {
        with_pool!(self, pool => {
            let r = sqlx::query("UPDATE queue_rcpt SET delay_notified = $1 WHERE queue_id = $2 AND address = $3 AND delay_notified = $4")
                .bind(true).bind(queue_id).bind(address).bind(false).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Outbound mail by destination: what waits, since when, and the last error.
    pub async fn mx_destinations(&self) -> Result<Vec<MxDestination>> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT r.domain, COUNT(DISTINCT r.queue_id) AS messages, COUNT(*) AS recipients, MIN(q.time_us) AS oldest_us, \
                 MIN(r.next_attempt_us) AS next_attempt_us, MAX(r.attempts) AS attempts, \
                 (SELECT r2.last_reply FROM queue_rcpt r2 WHERE r2.domain = r.domain AND r2.route = 'mx' AND r2.done = $1 AND r2.last_reply <> '' \
                  ORDER BY r2.next_attempt_us DESC LIMIT 1) AS last_reply \
                 FROM queue_rcpt r JOIN queue q ON q.id = r.queue_id WHERE r.route = 'mx' AND r.done = $1 GROUP BY r.domain ORDER BY r.domain",
            )
            .bind(false)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(MxDestination {
                        domain: r.try_get("domain")?,
                        messages: r.try_get("messages")?,
                        recipients: r.try_get("recipients")?,
                        oldest_us: r.try_get("oldest_us")?,
                        next_attempt_us: r.try_get("next_attempt_us")?,
                        attempts: r.try_get("attempts")?,
                        last_reply: r.try_get::<Option<String>, _>("last_reply")?.unwrap_or_default(),
                    })
                })
                .collect()
        })
    }

    /// Makes waiting MX recipients due now (of one message, or all); how many.
    pub async fn mx_retry_now(&self, id: Option<&str>) -> Result<u64> {
        let now = crate::clock::now_us();
        let n: u64 = with_pool!(self, pool => {
            let r = match id {
                Some(id) => sqlx::query("UPDATE queue_rcpt SET next_attempt_us = $1 WHERE queue_id = $2 AND route = 'mx' AND done = $3").bind(now).bind(id).bind(false).execute(pool).await?,
                None => sqlx::query("UPDATE queue_rcpt SET next_attempt_us = $1 WHERE route = 'mx' AND done = $2").bind(now).bind(false).execute(pool).await?,
            };
            anyhow::Ok(r.rows_affected())
        })?;
        // Every node's MX delivery sees it and tries destinations it had suspended at once.
        self.add_event("", "mx_retry", id.unwrap_or("all")).await?;
        Ok(n)
    }
}
