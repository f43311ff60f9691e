//! The pages' frame: escaping, the layout with its navigation, and the stylesheet (embedded,
//! served from /static/style.css so the Content-Security-Policy needs no inline style).

use super::auth::Viewer;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a URL query.
pub fn url(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A point in time for a table or a page: `2026-12-04 16:59:34 UTC`, on one line, with the
/// exact RFC 3339 time in `datetime`.
pub fn when(us: i64) -> String {
    let t = crate::clock::rfc3339(us);
    let shown = format!("{} UTC", t.replace('T', " ").trim_end_matches('Z'));
    format!(
        r#"<time class="when" datetime="{}">{}</time>"#,
        esc(&t),
        esc(&shown)
    )
}

/// `1 message`, `2 messages`.
pub fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The paper clip of a message with attachments, drawn (an emoji needs a font that has it).
pub const CLIP: &str = r##"<svg class="clip" role="img" aria-label="attachments" width="12" height="14" viewBox="0 0 12 14" xmlns="http://www.w3.org/2000/svg"><title>attachments</title><path d="M8.5 4v6a2.5 2.5 0 0 1-5 0V3a1.7 1.7 0 0 1 3.4 0v6.5a.8.8 0 0 1-1.6 0V4" fill="none" stroke="#667085" stroke-width="1.2" stroke-linecap="round"/></svg>"##;

/// The `?msg=` / `?error=` a form's redirect carries, shown on the page it leads to.
#[derive(serde::Deserialize, Default)]
pub struct Notice {
    pub msg: Option<String>,
    pub error: Option<String>,
}

impl Notice {
    pub fn html(&self) -> String {
        match (&self.msg, &self.error) {
            (Some(m), _) => format!(r#"<div class="notice ok" id="notice">{}</div>"#, esc(m)),
            (_, Some(e)) => format!(r#"<div class="notice bad" id="notice">{}</div>"#, esc(e)),
            _ => String::new(),
        }
    }
}

/// A whole page: title, navigation for the viewer (if signed in), and the body.
pub fn page(title: &str, viewer: Option<&Viewer>, body: &str) -> String {
    let nav = match viewer {
        Some(v) => {
            let links = match v.user.role {
                // Officers see their pages only: no mail, no settings.
                crate::storage::Role::Interception => {
                    r#"<a class="brand" href="/intercept">sponts</a><a href="/intercept">Orders</a><a href="/intercept/audit">Audit log</a><a href="/account/2fa">Second factor</a>"#
                }
                crate::storage::Role::Admin => {
                    r#"<a class="brand" href="/">sponts</a><a href="/">Messages</a><a href="/disposable">Disposable</a><a href="/senders">Senders</a><a href="/admin/report">Report</a><a href="/admin/queue">Queue</a><a href="/admin/users">Users</a><a href="/admin/bulk">Bulk replay</a><a href="/admin/traps">Traps</a><a href="/admin/filter">Filter</a><a href="/admin/tokens">Tokens</a><a href="/account/2fa">Second factor</a>"#
                }
                _ => {
                    r#"<a class="brand" href="/">sponts</a><a href="/">Messages</a><a href="/disposable">Disposable</a><a href="/senders">Senders</a><a href="/account/2fa">Second factor</a>"#
                }
            };
            format!(
                r#"<nav>{links}<span class="who">{who} · {role}</span><form method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}"><button class="link">Sign out</button></form></nav>"#,
                who = esc(&v.user.address),
                role = v.user.role.as_str(),
                csrf = esc(v.csrf.as_deref().unwrap_or(""))
            )
        }
        None => r#"<nav><span class="brand">sponts</span></nav>"#.to_string(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · sponts</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body>{nav}<main>{body}</main></body></html>\n",
        esc(title)
    )
}

pub const STYLE: &str = r#"
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f6f7f9; --card:#fff; --accent:#2557d6; --ok:#137a3f; --bad:#b42318; --warn:#b54708; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
nav { display:flex; flex-wrap:wrap; gap:1rem; align-items:center; padding:.7rem 1.2rem; background:#1d2330; color:#fff; }
nav a { color:#dfe6f5; text-decoration:none; } nav a:hover { color:#fff; }
nav .brand { font-weight:700; letter-spacing:.04em; color:#fff; margin-right:.5rem; }
nav .who { margin-left:auto; color:#aab4c8; font-size:.9em; }
nav form { margin:0; }
main { max-width:1100px; margin:1.2rem auto; padding:0 1rem; }
h1 { font-size:1.35rem; margin:.2rem 0 1rem; } h2 { font-size:1.1rem; margin:1.4rem 0 .6rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:1rem 1.2rem; margin-bottom:1rem; }
table { width:100%; border-collapse:collapse; background:var(--card); }
th, td { text-align:left; padding:.5rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:.8rem; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
tr:hover td { background:#f9fafb; }
td a { color:var(--accent); text-decoration:none; } td a:hover { text-decoration:underline; }
.muted { color:var(--muted); } .small { font-size:.85em; }
.when, .nowrap { white-space:nowrap; } svg.clip { vertical-align:-2px; margin-left:.3rem; }
.badge { display:inline-block; padding:.05rem .5rem; border-radius:999px; font-size:.8rem; font-weight:600; background:#eef2f6; }
.badge.delivered { background:#e7f6ec; color:var(--ok); } .badge.refused { background:#fdecea; color:var(--bad); }
.badge.tempfailed { background:#fff4e5; color:var(--warn); } .badge.discarded, .badge.abandoned { background:#eef2f6; color:var(--muted); }
form.search { display:grid; grid-template-columns: 2fr repeat(4, 1fr) auto; gap:.5rem; align-items:end; }
label { display:block; font-size:.8rem; color:var(--muted); margin-bottom:.2rem; }
input, select { width:100%; padding:.45rem .55rem; border:1px solid #cfd5dd; border-radius:7px; font:inherit; background:#fff; }
button, .button { display:inline-block; padding:.5rem .9rem; border:0; border-radius:7px; background:var(--accent); color:#fff; font:inherit; font-weight:600; cursor:pointer; text-decoration:none; }
button.secondary, .button.secondary { background:#eef2f6; color:var(--fg); }
button.link { background:none; color:#dfe6f5; padding:0; font-weight:400; }
.row { display:flex; gap:.6rem; flex-wrap:wrap; align-items:end; }
.notice { padding:.7rem 1rem; border-radius:8px; margin-bottom:1rem; background:#eef4ff; border:1px solid #c9d8fb; }
.notice.bad { background:#fdecea; border-color:#f5c2bd; } .notice.ok { background:#e7f6ec; border-color:#b7e2c5; }
dl.headers { display:grid; grid-template-columns: max-content 1fr; gap:.25rem 1rem; margin:0; } dl.headers dt { color:var(--muted); } dl.headers dd { margin:0; word-break:break-word; }
pre.body { white-space:pre-wrap; word-break:break-word; background:#fbfbfc; border:1px solid var(--line); border-radius:8px; padding:.8rem; max-height:60vh; overflow:auto; font-size:.9em; }
iframe.html { width:100%; height:60vh; border:1px solid var(--line); border-radius:8px; background:#fff; }
.login { max-width:380px; margin:10vh auto; }
svg.qr { display:block; max-width:100%; height:auto; margin:.6rem 0; } ol#recovery code { font-size:1.05em; }
progress { width:100%; height:14px; }
.pager { display:flex; gap:.6rem; margin-top:.8rem; }
svg.chart { width:100%; height:auto; background:var(--card); border:1px solid var(--line); border-radius:10px; }
.legend { display:flex; flex-wrap:wrap; gap:.9rem; margin:.4rem 0 1rem; font-size:.85em; color:var(--muted); }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap:.6rem; }
.card.stat { margin:0; } .card.stat .figure { font-size:1.4rem; font-weight:700; }
table.report td:nth-child(n+2) { font-variant-numeric: tabular-nums; }
@media (max-width: 760px) {
  main { padding:0 .6rem; }
  form.search { grid-template-columns: 1fr 1fr; }
  form.search > div:first-child { grid-column: 1 / -1; }
  table.messages thead, table.messages .hide-narrow { display:none; }
  table.messages tr { display:block; padding:.55rem .7rem; border-bottom:1px solid var(--line); }
  table.messages td { display:block; border:0; padding:.05rem 0; word-break:break-word; }
  table.messages td:nth-child(4) { font-size:1.05em; font-weight:600; }
  th, td { padding:.45rem .35rem; }
  nav .who { margin-left:0; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(url("a b&c=ü"), "a%20b%26c%3D%C3%BC");
    }
}
