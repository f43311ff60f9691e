//! The learning filter as people see it: the admins' "Filter" page (what it learned, when, from
//! where, and the recent verdict mix), an admin's "Re-check this message with today's filter"
//! (which changes nothing), and the API's view of the filter (`/api/v1/filter`, admins) and of
//! one person's layer (`/api/v1/filter/layer`: a user their own, an admin anyone's).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

use super::Web;
use super::api::error;
use super::auth::{ApiViewer, PageViewer, Viewer};
use super::extract::ApiQuery;
use super::html::{esc, page, when};
use super::pages::{admin_only, status_page};
use crate::modules::uce::learn;
use crate::modules::uce::score::{Level, Score};
use crate::storage::{LearnedFrom, Mark};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/admin/filter", get(filter_page))
        .route("/messages/{id}/recheck", get(recheck_page))
        .route("/api/v1/filter", get(api_filter))
        .route("/api/v1/filter/layer", get(api_layer))
}

/// How far back the verdict mix looks.
const MIX_DAYS: i64 = 7;

#[derive(Serialize)]
struct Overview {
    spam: i64,
    ham: i64,
    sources: Vec<LearnedFrom>,
    /// People with a layer of their own.
    layers: i64,
    recent_clicks: Vec<Mark>,
    /// Transactions of the last days by class (`clean`, `tagged`, `spam`, `discarded` ...).
    verdicts: BTreeMap<String, i64>,
}

async fn overview(web: &Web) -> anyhow::Result<Overview> {
    let (spam, ham) = web.store.learned_totals().await?;
    let now = crate::clock::now_us();
    let mut verdicts = BTreeMap::new();
    for (_, metric, key, sum, _) in web
        .store
        .stats_rows(
            now - MIX_DAYS * crate::storage::stats::DAY_US,
            now + crate::storage::stats::HOUR_US,
            false,
        )
        .await?
    {
        if metric == "class" {
            *verdicts.entry(key).or_default() += sum;
        }
    }
    Ok(Overview {
        spam,
        ham,
        sources: web.store.learned_by_source().await?,
        layers: web.store.user_layers().await?,
        recent_clicks: web.store.marks(None, 20).await?,
        verdicts,
    })
}

async fn api_filter(State(web): State<Web>, ApiViewer(v): ApiViewer) -> Response {
    if !v.is_admin() {
        return error(StatusCode::FORBIDDEN, "for administrators only");
    }
    match overview(&web).await {
        Ok(o) => Json(o).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct LayerQuery {
    owner: Option<String>,
}

/// Whose layer a request reads: the viewer's own account by default; a user may name only one
/// of their own addresses, an admin anyone's.
fn layer_owner(v: &Viewer, requested: Option<&str>) -> Result<String, (StatusCode, &'static str)> {
    match requested.map(str::trim).filter(|o| !o.is_empty()) {
        None => Ok(v.user.address.to_lowercase()),
        // (PostgreSQL refuses a NUL in a query; no address has a control character.)
        Some(o) if o.chars().any(char::is_control) || !o.contains('@') => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "owner: not a mail address",
        )),
        Some(o) if v.is_admin() || v.addresses.iter().any(|a| a.eq_ignore_ascii_case(o)) => {
            Ok(o.to_lowercase())
        }
        Some(_) => Err((
            StatusCode::FORBIDDEN,
            "you see only your own layer of the filter",
        )),
    }
}

async fn api_layer(
    State(web): State<Web>,
    ApiViewer(v): ApiViewer,
    ApiQuery(q): ApiQuery<LayerQuery>,
) -> Response {
    let owner = match layer_owner(&v, q.owner.as_deref()) {
        Ok(o) => o,
        Err((s, text)) => return error(s, text),
    };
    let result = async {
        let owner = web.store.account_of(&owner).await?;
        let tokens = web.store.user_layer_size(&owner).await?;
        let marks = web.store.marks(Some(&owner), 100).await?;
        anyhow::Ok(json!({ "owner": owner, "tokens": tokens, "marks": marks }))
    };
    match result.await {
        Ok(j) => Json(j).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn filter_page(State(web): State<Web>, PageViewer(v): PageViewer) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    let o = match overview(&web).await {
        Ok(o) => o,
        Err(_) => {
            return status_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&v),
                "The filter's figures cannot be read.",
            );
        }
    };
    let source_name = |s: &str| match s {
        "" => "before sources were recorded".to_string(),
        "cli" => "sponts learn (mail folders)".into(),
        "click" => "people's clicks".into(),
        "trap" => "trap hits".into(),
        "replay" => "replayed refusals".into(),
        "journal" => "sponts learn --from-journal".into(),
        other => other.to_string(),
    };
    let sources: String = o
        .sources
        .iter()
        .map(|s| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"small\">{}</td></tr>",
                esc(&source_name(&s.source)),
                s.spam,
                s.ham,
                when(s.last_us)
            )
        })
        .collect();
    let total: i64 = o.verdicts.values().sum();
    let mix: String = o
        .verdicts
        .iter()
        .map(|(k, n)| {
            format!(
                "<tr><td>{}</td><td>{n}</td><td>{:.1}%</td></tr>",
                esc(k),
                100.0 * *n as f64 / total.max(1) as f64
            )
        })
        .collect();
    let clicks: String = o
        .recent_clicks
        .iter()
        .map(|m| {
            format!(
                r#"<tr><td class="small">{}</td><td>{}</td><td>{}</td><td><a href="/messages/{id}">{id}</a></td><td>{}</td></tr>"#,
                when(m.time_us),
                esc(&m.owner),
                if m.kind == "spam" { "spam" } else { "not spam" },
                if m.personal { "yes" } else { "no (the filter agreed)" },
                id = esc(&m.message)
            )
        })
        .collect();
    let body = format!(
        r#"<h1>Filter</h1><p class="muted">The learning filter scores every message from what it has learned; people's clicks teach it, and teach their own layer where it judged their mail wrongly (docs/uce.md).</p>
<div class="card" id="learned">The filter knows <strong>{spam}</strong> spam and <strong>{ham}</strong> ham messages; <strong>{layers}</strong> people have a layer of their own.</div>
<h2>Learned from</h2><table id="sources"><thead><tr><th>Where</th><th>Spam</th><th>Ham</th><th>Last</th></tr></thead><tbody>{sources}</tbody></table>
<h2>Verdicts, last {MIX_DAYS} days</h2><table id="verdicts"><thead><tr><th>Class</th><th>Messages</th><th>Share</th></tr></thead><tbody>{mix}</tbody></table>
<h2>Recent clicks</h2><table id="clicks"><thead><tr><th>When</th><th>Whose</th><th>Marked</th><th>Message</th><th>Into their layer</th></tr></thead><tbody>{clicks}</tbody></table>"#,
        spam = o.spam,
        ham = o.ham,
        layers = o.layers,
    );
    Html(page("Filter", Some(&v), &body)).into_response()
}

/// The learning filter's verdict on a kept message today: shared, and with the recipient's
/// layer when the message was for one person. Changes nothing.
async fn recheck_page(
    State(web): State<Web>,
    PageViewer(v): PageViewer,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admin_only(&v) {
        return r;
    }
    let e = match super::policy::find(&web, &v, &id).await {
        Ok(e) => e,
        Err(s) => return status_page(s, Some(&v), "No such message."),
    };
    let Ok(Some(message)) = super::api::raw_message(&web, e.kept_as()).await else {
        return status_page(StatusCode::NOT_FOUND, Some(&v), "The message was not kept.");
    };
    let owners = crate::feedback::recipient_accounts(&web.store, &e)
        .await
        .unwrap_or_default();
    let min = web.config.uce.learning.min_messages;
    let shared = learn::classify(&web.store, &message, min).await;
    let personal = match owners.as_slice() {
        [one] => Some((
            one.clone(),
            learn::classify_for(&web.store, &message, min, Some(one)).await,
        )),
        _ => None,
    };
    let line = |who: &str, c: &anyhow::Result<Option<learn::Classified>>| match c {
        Ok(Some(c)) => {
            let points = learn::points(&web.config.uce.learning, c.probability);
            let level = match (Score {
                points,
                ..Default::default()
            })
            .level(&web.config.uce)
            {
                Level::Clean => "clean",
                Level::Tag => "tagged (suspect)",
                Level::Spam => "spam",
            };
            format!(
                r#"<tr><td>{}</td><td class="probability">{:.3}</td><td>{points:+.1}</td><td class="level">{level}</td></tr>"#,
                esc(who),
                c.probability
            )
        }
        Ok(None) => format!(
            r#"<tr><td>{}</td><td colspan="3" class="muted">no verdict: the filter has not learned {min} spam and {min} ham messages yet</td></tr>"#,
            esc(who)
        ),
        Err(err) => format!(
            r#"<tr><td>{}</td><td colspan="3">cannot be read: {}</td></tr>"#,
            esc(who),
            esc(&err.to_string())
        ),
    };
    let mut rows = line("everyone (shared filter)", &shared);
    if let Some((owner, c)) = &personal {
        rows.push_str(&line(&format!("{owner} (with their layer)"), c));
    }
    let subject = e
        .subject
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("(no subject)");
    let body = format!(
        r#"<h1>Re-check: {}</h1><p class="muted">The learning filter as it is now, on the kept message. Nothing changes: the message stays where it is. DNS lists, SPF/DKIM/DMARC and the engines are not asked again — their answers belonged to the moment the mail came.</p>
<div class="card"><dl class="headers"><dt>Verdict then</dt><dd>{} by {}</dd>{}</dl></div>
<table id="recheck"><thead><tr><th>For</th><th>Spam probability</th><th>Points</th><th>The filter alone gives</th></tr></thead><tbody>{rows}</tbody></table>
<p><a href="/messages/{id}">Back to the message</a></p>"#,
        esc(subject),
        esc(&e.outcome),
        esc(&e.decided_by),
        e.notes
            .as_deref()
            .map(|n| format!(r#"<dt>Checks then</dt><dd class="small">{}</dd>"#, esc(n)))
            .unwrap_or_default(),
        id = esc(&e.id),
    );
    Html(page("Re-check", Some(&v), &body)).into_response()
}
