//! Who may see and replay which message. Users see mail sent to or from one of their addresses
//! (their own and their aliases, and their disposable addresses); admins see all. A message a user may not see does not exist for
//! them: 404, the same answer as for an id that was never used, so guessing ids reveals nothing.
//! Sender allow and block lists: a user's own, any for an admin.

use axum::http::StatusCode;

use super::Web;
use super::auth::Viewer;
use crate::storage::{JournalEntry, JournalFilter};

pub fn can_see(v: &Viewer, e: &JournalEntry) -> bool {
    v.is_admin()
        || v.addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&e.sender) || e.recipients.iter().any(|r| r.is(a)))
}

/// A message flagged `virus` (or with a `blocked` attachment) is the admins' to download or
/// deliver: a user sees its record only.
pub fn may_have_content(v: &Viewer, e: &JournalEntry) -> bool {
    v.is_admin() || !e.is_malware()
}

/// Narrows a search to what the viewer may see.
pub fn scope(v: &Viewer, f: &mut JournalFilter) {
    if !v.is_admin() {
        f.visible_to = Some(v.addresses.clone());
    }
}

/// The record of `id` if the viewer may see it.
pub async fn find(web: &Web, v: &Viewer, id: &str) -> Result<JournalEntry, StatusCode> {
    let f = JournalFilter {
        id: Some(id.to_string()),
        limit: Some(1),
        ..Default::default()
    };
    let e = web
        .store
        .query_journal(&f)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .pop()
        .ok_or(StatusCode::NOT_FOUND)?;
    if can_see(v, &e) {
        Ok(e)
    } else {
        Err(StatusCode::NOT_FOUND)
    }
}

/// Where a replay may go. Admins: any local address (checked by the replay itself), or the
/// original recipients. Users: only their own address among the original recipients.
pub fn replay_target(
    v: &Viewer,
    e: &JournalEntry,
    requested: Option<&str>,
) -> Result<Option<String>, (StatusCode, &'static str)> {
    let requested = requested.map(str::trim).filter(|s| !s.is_empty());
    if !may_have_content(v, e) {
        return Err((
            StatusCode::FORBIDDEN,
            "a message with a virus is delivered by an administrator only",
        ));
    }
    if v.is_admin() {
        return Ok(requested.map(str::to_string));
    }
    // Their own mail: addressed to them, or sent by them out (their sent mail, replayed to themselves).
    let sent_by = |a: &String| e.outbound && e.sender.eq_ignore_ascii_case(a);
    let mine: Vec<&String> = v
        .addresses
        .iter()
        .filter(|a| e.recipients.iter().any(|r| r.accepted && r.is(a)) || sent_by(a))
        .collect();
    match requested {
        Some(to) if mine.iter().any(|a| a.eq_ignore_ascii_case(to)) => Ok(Some(to.to_lowercase())),
        Some(_) => Err((
            StatusCode::FORBIDDEN,
            "you can replay only to your own address",
        )),
        None => mine.first().map(|a| Some(a.to_string())).ok_or((
            StatusCode::FORBIDDEN,
            "this message was not addressed to you",
        )),
    }
}

/// Whose sender list a request reads or changes: by default the viewer's account, whose list
/// counts for mail to their aliases too; a user may name one of their aliases (a list for mail to
/// that alias only), and only an admin another owner (any address or `@domain` of ours).
pub fn sender_list_owner(
    v: &Viewer,
    requested: Option<&str>,
    local_domains: &[String],
) -> Result<String, (StatusCode, String)> {
    if !v.is_admin() && v.addresses.is_empty() {
        return Err((
            StatusCode::FORBIDDEN,
            "this account receives no mail, so it has no sender lists".into(),
        ));
    }
    let requested = requested.map(str::trim).filter(|s| !s.is_empty());
    match requested {
        None => Ok(v.user.address.to_lowercase()),
        Some(o) if v.is_admin() => crate::modules::uce::senders::check_owner(o, local_domains)
            .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
        Some(o) if v.addresses.iter().any(|a| a.eq_ignore_ascii_case(o)) => Ok(o.to_lowercase()),
        Some(_) => Err((
            StatusCode::FORBIDDEN,
            "you see and change only your own sender lists".into(),
        )),
    }
}
