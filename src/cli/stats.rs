//! `sponts stats [--since DUR] [--bucket B] [--json] [--mail [--to ADDR]...]`: the Report's
//! figures — rates by class, load in and out, scanner load, who decided, the top spammers —
//! printed, as JSON (with the series per bucket), or mailed through the backend.

use anyhow::Result;
use std::io::Write;

use crate::config::Config;
use crate::report::figures::{self, Bucket, Range};
use crate::report::tables;
use crate::storage::Store;

pub struct StatsArgs {
    pub since_us: i64,
    pub bucket: Option<Bucket>,
    pub json: bool,
    pub mail: bool,
    pub to: Vec<String>,
}

pub async fn run(
    config: &Config,
    store: &Store,
    args: StatsArgs,
    out: &mut dyn Write,
) -> Result<bool> {
    let range = Range::new(args.since_us, crate::clock::now_us(), args.bucket)
        .checked()
        .map_err(anyhow::Error::msg)?;
    let f = figures::read(store, range).await?;
    if args.mail {
        let to = if args.to.is_empty() {
            crate::report::mail::recipients(config, store).await?
        } else {
            args.to
        };
        if to.is_empty() {
            anyhow::bail!(
                "nobody to mail the report to: no admin users, no report.mail_to, no --to"
            );
        }
        let sent = crate::report::mail::send(
            config,
            &to,
            &f,
            &format!("since {}", f.since),
            crate::clock::now_us(),
        )
        .await;
        let (ok, reply) = match sent {
            crate::report::mail::Sent::Accepted(r) => (true, r),
            crate::report::mail::Sent::Refused(r) | crate::report::mail::Sent::Failed(r) => {
                (false, r)
            }
        };
        writeln!(out, "{}: {reply}", if ok { "mailed" } else { "not mailed" })?;
        return Ok(ok);
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&f)?)?;
        return Ok(true);
    }
    writeln!(
        out,
        "{} to {}: {} transactions\n",
        f.since, f.until, f.transactions
    )?;
    for t in tables::all(&f).iter().filter(|t| t.id != "series") {
        writeln!(out, "{}", t.text().replace("\r\n", "\n"))?;
    }
    Ok(true)
}
