//! The Report for admins: the dashboard (`/admin/report`, charts and tables for a chosen range),
//! CSV export of every table (`/admin/report.csv?table=`), and the figures as JSON
//! (`/api/v1/stats`). Everything here reads the hourly buckets only, never the journal.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::fmt::Write;

use super::Web;
use super::auth::{ApiViewer, PageViewer};
use super::extract::ApiQuery;
use super::html::{esc, page, url};
use super::pages::{admin_only, status_page};
use crate::report::figures::{self, Bucket, Range};
use crate::report::tables;
use crate::storage::stats::DAY_US;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/admin/report", get(dashboard))
        .route("/admin/report.csv", get(csv))
        .route("/api/v1/stats", get(api))
}

/// The ranges the picker offers.
const RANGES: [(&str, &str); 5] = [
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("365d", "Last 12 months"),
];

#[derive(Deserialize, Default)]
pub struct RangeQuery {
    /// `24h`, `7d` ... (any duration).
    range: Option<String>,
    /// `YYYY-MM-DD` (UTC), instead of `range`; `to` is inclusive.
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
    table: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl RangeQuery {
    fn range(&self) -> Result<Range, String> {
        let bucket = match nonempty(&self.bucket) {
            Some(b) => Some(
                Bucket::parse(b).ok_or(format!("bucket: `{b}` is not hour, day, week or month"))?,
            ),
            None => None,
        };
        // Every parameter given is checked, also one that `from` makes moot.
        let span = nonempty(&self.range).unwrap_or("24h");
        let d = crate::config::Duration::parse(span)
            .ok_or(format!("range: `{span}` is not a duration (e.g. 24h, 7d)"))?;
        if nonempty(&self.to).is_some() && nonempty(&self.from).is_none() {
            return Err("to: needs from (the first day)".into());
        }
        if let Some(from) = nonempty(&self.from) {
            let since = crate::clock::parse_date(from)
                .ok_or(format!("from: `{from}` is not a date (YYYY-MM-DD)"))?;
            let until = match nonempty(&self.to) {
                Some(to) => {
                    crate::clock::parse_date(to)
                        .ok_or(format!("to: `{to}` is not a date (YYYY-MM-DD)"))?
                        + DAY_US
                }
                None => crate::clock::now_us(),
            };
            if until <= since {
                return Err("to: must not be before from".into());
            }
            if until - since > 3660 * DAY_US {
                return Err("the range is longer than ten years".into());
            }
            return Range::new(since, until, bucket).checked();
        }
        let span_us = d.0.as_micros() as i64;
        if span_us <= 0 || span_us > 3660 * DAY_US {
            return Err(format!("range: `{span}` must be between 1h and ten years"));
        }
        Range::last(span_us, bucket).checked()
    }

    /// The same range as a query string, for links.
    fn query(&self) -> String {
        [
            ("range", &self.range),
            ("from", &self.from),
            ("to", &self.to),
            ("bucket", &self.bucket),
        ]
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", url(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// The dashboard's content for a range: summary, charts and tables.
pub fn render_body(f: &figures::Figures) -> String {
    let mut out = String::from(r#"<div class="cards">"#);
    let _ = write!(
        out,
        r#"<div class="card stat" id="stat-total"><div class="figure">{}</div><div class="muted">transactions</div></div>"#,
        f.transactions
    );
    for class in ["clean", "spam", "virus", "discarded", "tempfailed"] {
        let _ = write!(
            out,
            r#"<div class="card stat" id="stat-{class}"><div class="figure">{:.1} %</div><div class="muted">{class} ({})</div></div>"#,
            f.percent(class),
            f.classes.get(class).copied().unwrap_or(0)
        );
    }
    out.push_str("</div>");
    out.push_str(&crate::report::html(f));
    out
}

/// The archive's capacity (`sponts archive stats`): what it holds now and will need.
async fn archive_section(web: &Web) -> String {
    let s =
        match crate::archive::stats::stats(&web.store, &web.config, crate::clock::now_us()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("archive figures: {e:#}");
                return String::new();
            }
        };
    let mib = |b: i64| format!("{:.1} MiB", b as f64 / 1_048_576.0);
    let classes: String = s
        .per_class
        .iter()
        .map(|(c, f)| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(c),
                f.messages,
                mib(f.stored_bytes)
            )
        })
        .collect();
    format!(
        r#"<h2>Archive</h2><div class="card" id="archive"><p>{} messages kept, {} stored ({} as received); growing {} a day (last 30 days): about {} at {} days of retention.</p><table><tr><th>Class</th><th>Messages</th><th>Stored</th></tr>{classes}</table></div>"#,
        s.messages,
        mib(s.stored_bytes),
        mib(s.bytes),
        mib(s.growth_per_day),
        mib(s.projected_bytes),
        s.retention_days
    )
}

/// The range asked for and its figures; the error is the status and what to tell the client
/// (a bad parameter named, or a storage failure, which is logged).
async fn read_figures(
    web: &Web,
    q: &RangeQuery,
) -> Result<(Range, figures::Figures), (StatusCode, String)> {
    let range = q.range().map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    match figures::read(&web.store, range).await {
        Ok(f) => Ok((range, f)),
        Err(e) => {
            tracing::error!("report failed: {e:#}");
            Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "the report could not be read; the log says why".into(),
            ))
        }
    }
}

async fn dashboard(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Query(q): Query<RangeQuery>,
) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    let (range, f) = match read_figures(&web, &q).await {
        Ok(rf) => rf,
        Err((status, e)) => return status_page(status, Some(&v), &e),
    };
    let current = q
        .range
        .as_deref()
        .unwrap_or(if q.from.is_some() { "" } else { "24h" });
    let options: String = RANGES
        .iter()
        .map(|(k, name)| {
            format!(
                r#"<option value="{k}"{}>{name}</option>"#,
                if *k == current { " selected" } else { "" }
            )
        })
        .collect();
    let bucket = q.bucket.as_deref().unwrap_or("");
    let buckets: String = ["", "hour", "day", "week", "month"]
        .iter()
        .map(|b| {
            format!(
                r#"<option value="{b}"{}>{}</option>"#,
                if *b == bucket { " selected" } else { "" },
                if b.is_empty() { "automatic" } else { b }
            )
        })
        .collect();
    let query = q.query();
    let body = render_body(&f) + &archive_section(&web).await;
    let exports: String = tables::all(&f)
        .iter()
        .map(|t| {
            format!(
                r#"<a class="button secondary" href="/admin/report.csv?table={}&amp;{}">{}</a> "#,
                t.id,
                esc(&query),
                esc(t.title)
            )
        })
        .collect();
    let html = format!(
        r#"<h1>Report</h1>
<form class="card row" method="get" action="/admin/report" id="range-picker">
<div><label for="range">Range</label><select id="range" name="range">{options}</select></div>
<div><label for="from">or from (UTC)</label><input id="from" name="from" type="date" value="{from}"></div>
<div><label for="to">to</label><input id="to" name="to" type="date" value="{to}"></div>
<div><label for="bucket">Bars per</label><select id="bucket" name="bucket">{buckets}</select></div>
<div><button>Show</button></div>
</form>
<p class="muted small" id="range-shown">{since} to {until}, per {b}</p>
{body}
<h2>Export (CSV)</h2><div class="row" id="exports">{exports}</div>"#,
        from = esc(q.from.as_deref().unwrap_or("")),
        to = esc(q.to.as_deref().unwrap_or("")),
        since = esc(&crate::clock::rfc3339(range.since_us)),
        until = esc(&crate::clock::rfc3339(range.until_us)),
        b = range.bucket.name(),
    );
    Html(page("Report", Some(&v), &html)).into_response()
}

async fn csv(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Query(q): Query<RangeQuery>,
) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    let (range, f) = match read_figures(&web, &q).await {
        Ok(rf) => rf,
        Err(e) => return e.into_response(),
    };
    let wanted = q.table.as_deref().unwrap_or("");
    let all = tables::all(&f);
    let Some(t) = all.iter().find(|t| t.id == wanted) else {
        let ids: Vec<&str> = all.iter().map(|t| t.id).collect();
        return (
            StatusCode::BAD_REQUEST,
            format!("table: `{wanted}` is not one of {}", ids.join(", ")),
        )
            .into_response();
    };
    let name = format!(
        "sponts-{}-{}.csv",
        t.id,
        &crate::clock::rfc3339(range.since_us)[..10]
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        t.csv(),
    )
        .into_response()
}

async fn api(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Response {
    if !v.is_admin() {
        return super::api::error(StatusCode::FORBIDDEN, "the report is for administrators");
    }
    match read_figures(&web, &q).await {
        Ok((_, f)) => Json(f).into_response(),
        Err((status, e)) => super::api::error(status, &e),
    }
}
