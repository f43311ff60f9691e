//! The Report's tables, built once from [`Figures`] and rendered three ways: HTML (dashboard and
//! mail), CSV (the dashboard's export) and plain text (the mail's text part).

use std::fmt::Write;

use super::figures::{CLASSES, Figures};
use crate::web::html::esc;

pub struct Table {
    /// The CSV export's name (`/admin/report.csv?table=ID`).
    pub id: &'static str,
    pub title: &'static str,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Load figures in the order shown, with their names.
pub const LOAD: [(&str, &str); 9] = [
    ("connections", "Connections accepted"),
    ("connections_refused", "Connections refused (limits)"),
    ("sessions_peak", "Peak concurrent sessions"),
    ("messages_in", "Messages received"),
    ("bytes_in", "Bytes received"),
    (
        "messages_out",
        "Messages delivered (to the backend, or sent out)",
    ),
    ("bytes_out", "Bytes delivered (to the backend, or sent out)"),
    ("queued", "Messages queued (backend down)"),
    ("queue_length", "Peak queue length"),
];

fn seconds(s: Option<f64>, calls: i64) -> String {
    match s {
        Some(s) if s < 1.0 => format!("≤ {} ms", (s * 1000.0).round()),
        Some(s) => format!("≤ {s} s"),
        None if calls > 0 => "> 10 s".into(),
        None => "-".into(),
    }
}

fn strings<const N: usize>(a: [&str; N]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

pub fn all(f: &Figures) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut rows: Vec<Vec<String>> = CLASSES
        .iter()
        .map(|c| {
            vec![
                c.to_string(),
                f.classes.get(*c).copied().unwrap_or(0).to_string(),
                format!("{:.1}", f.percent(c)),
            ]
        })
        .collect();
    rows.push(vec![
        "total".into(),
        f.transactions.to_string(),
        if f.transactions > 0 {
            "100.0".into()
        } else {
            "0.0".into()
        },
    ]);
    tables.push(Table {
        id: "classes",
        title: "Rates",
        header: strings(["class", "messages", "percent"]),
        rows,
    });
    let rows = LOAD
        .iter()
        .map(|(k, name)| {
            vec![
                name.to_string(),
                f.load.get(*k).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    tables.push(Table {
        id: "load",
        title: "Load in and out",
        header: strings(["figure", "value"]),
        rows,
    });
    let rows = f
        .scanners
        .iter()
        .map(|s| {
            vec![
                s.scanner.clone(),
                s.calls.to_string(),
                s.clean.to_string(),
                s.found.to_string(),
                s.errors.to_string(),
                s.timeouts.to_string(),
                seconds(s.median_s, s.calls),
                seconds(s.p95_s, s.calls),
            ]
        })
        .collect();
    tables.push(Table {
        id: "scanners",
        title: "Scanner load",
        header: strings([
            "scanner",
            "calls",
            "clean",
            "found",
            "errors",
            "timeouts",
            "median",
            "95th percentile",
        ]),
        rows,
    });
    for (id, title, list, what) in [
        ("top_ip", "Top spam client IPs", "ip", "client IP"),
        (
            "top_sender_domain",
            "Top spam sender domains",
            "sender_domain",
            "sender domain",
        ),
        ("top_helo", "Top spam HELO names", "helo", "HELO name"),
    ] {
        let rows = f
            .top
            .get(list)
            .into_iter()
            .flatten()
            .map(|e| {
                vec![
                    e.key.clone(),
                    e.count.to_string(),
                    e.reasons
                        .iter()
                        .map(|(r, n)| format!("{r}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect();
        tables.push(Table {
            id,
            title,
            header: strings([what, "refused", "reasons"]),
            rows,
        });
    }
    let mut decided: Vec<(&String, &i64)> = f.decided_by.iter().collect();
    decided.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let rows = decided
        .into_iter()
        .map(|(k, n)| vec![k.clone(), n.to_string()])
        .collect();
    tables.push(Table {
        id: "decided_by",
        title: "Who decided",
        header: strings(["module", "transactions"]),
        rows,
    });
    let mut header = vec!["bucket".to_string()];
    header.extend(CLASSES.iter().map(|c| c.to_string()));
    header.extend(LOAD.iter().map(|(k, _)| k.to_string()));
    let rows = f
        .series
        .iter()
        .map(|p| {
            let mut row = vec![p.start.clone()];
            row.extend(
                CLASSES
                    .iter()
                    .map(|c| p.classes.get(*c).copied().unwrap_or(0).to_string()),
            );
            row.extend(
                LOAD.iter()
                    .map(|(k, _)| p.load.get(*k).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    tables.push(Table {
        id: "series",
        title: "Per bucket",
        header,
        rows,
    });
    tables
}

impl Table {
    pub fn html(&self) -> String {
        let mut out = format!(
            r#"<table class="report" id="table-{}"><thead><tr>"#,
            self.id
        );
        for h in &self.header {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr></thead><tbody>");
        if self.rows.is_empty() {
            let _ = write!(
                out,
                r#"<tr><td colspan="{}" class="muted">none</td></tr>"#,
                self.header.len()
            );
        }
        for r in &self.rows {
            out.push_str("<tr>");
            for c in r {
                let _ = write!(out, "<td>{}</td>", esc(c));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        out
    }

    /// RFC 4180: CRLF lines, fields with commas, quotes or line breaks quoted. A leading `=`,
    /// `+`, `-`, `@`, tab or CR gets a `'` so a spreadsheet does not run a HELO name as a formula.
    pub fn csv(&self) -> String {
        let field = |s: &str| {
            let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{s}")
            } else {
                s.to_string()
            };
            if s.contains([',', '"', '\r', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s
            }
        };
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            out.push_str(&r.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// Aligned columns, for the mail's text part.
    pub fn text(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
                    .min(40)
            })
            .collect();
        let mut out = format!("{}\r\n", self.title);
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = write!(out, "  {}\r\n", line.join("  ").trim_end());
        }
        if self.rows.is_empty() {
            out.push_str("  none\r\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let t = Table {
            id: "x",
            title: "X",
            header: vec!["a".into(), "b".into()],
            rows: vec![vec!["=cmd()".into(), "x,\"y\"".into()]],
        };
        assert_eq!(t.csv(), "a,b\r\n'=cmd(),\"x,\"\"y\"\"\"\r\n");
    }
}
