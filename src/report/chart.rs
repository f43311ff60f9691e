//! Charts drawn by sponts itself as inline SVG (no script, no CDN): the same markup serves the
//! dashboard and the report mail. Every bar and point carries its series and value as `data-`
//! attributes and a `<title>` (the hover text), so what a chart shows can be checked.

use std::fmt::Write;

use super::figures::{CLASSES, Figures};
use crate::web::html::esc;

const W: f64 = 900.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;

pub fn class_color(class: &str) -> &'static str {
    match class {
        "clean" => "#2f9e44",
        "tagged" => "#94d82d",
        "spam" => "#e03131",
        "virus" => "#862e9c",
        "discarded" => "#f08c00",
        "refused" => "#c2255c",
        "tempfailed" => "#1c7ed6",
        _ => "#868e96",
    }
}

/// Grid lines above the axis.
const GRID: i64 = 4;

/// An upper bound for an axis whose `GRID` steps are round integers (1, 2, 5, 25 times a
/// power of ten), so every label is exact: 0, 2, 4, 6, 8 rather than 0, 2.5, 5, 7.5, 10.
fn nice_max(v: i64) -> i64 {
    let step = (v.max(1) + GRID - 1) / GRID; // the smallest step that reaches v
    let mag = 10_i64.pow(step.ilog10());
    // 2.5 times the magnitude is an integer from 10 up.
    let quarter = if mag >= 10 { 25 * mag / 10 } else { 2 * mag };
    [mag, 2 * mag, quarter, 5 * mag, 10 * mag]
        .into_iter()
        .find(|s| *s >= step)
        .unwrap_or(10 * mag)
        * GRID
}

fn frame(out: &mut String, id: &str, title: &str, max: i64, labels: &[String]) {
    let _ = write!(
        out,
        r#"<svg class="chart" id="{id}" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11"><title>{t}</title>"#,
        t = esc(title)
    );
    let plot_h = H - BOTTOM - TOP;
    for i in 0..=GRID {
        let y = TOP + plot_h * (1.0 - i as f64 / GRID as f64);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{W}" y1="{y:.1}" y2="{y:.1}" stroke="#e4e7ec"/><text x="{x:.1}" y="{ty:.1}" text-anchor="end" fill="#667085">{v}</text>"##,
            x = LEFT - 6.0,
            ty = y + 4.0,
            v = max / GRID * i
        );
    }
    // At most ~12 labels under the x axis.
    let step = labels.len().div_ceil(12).max(1);
    let slot = (W - LEFT) / labels.len().max(1) as f64;
    for (i, l) in labels.iter().enumerate().filter(|(i, _)| i % step == 0) {
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{y}" text-anchor="middle" fill="#667085">{l}</text>"##,
            x = LEFT + slot * (i as f64 + 0.5),
            y = H - 8.0,
            l = esc(l)
        );
    }
}

/// Messages per bucket, stacked by class.
pub fn classes(f: &Figures) -> String {
    let labels: Vec<String> = f.series.iter().map(|p| p.label.clone()).collect();
    let max = nice_max(
        f.series
            .iter()
            .map(|p| p.classes.values().sum::<i64>())
            .max()
            .unwrap_or(0),
    );
    let mut out = String::new();
    frame(&mut out, "chart-classes", "Messages by class", max, &labels);
    let plot_h = H - BOTTOM - TOP;
    let slot = (W - LEFT) / f.series.len().max(1) as f64;
    let bar_w = (slot * 0.8).max(1.0);
    for (i, p) in f.series.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut y = TOP + plot_h;
        for class in CLASSES {
            let n = p.classes.get(class).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = plot_h * n as f64 / max as f64;
            y -= h;
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{c}" data-bucket="{b}" data-class="{class}" data-count="{n}"><title>{l}: {n} {class}</title></rect>"#,
                c = class_color(class),
                b = esc(&p.start),
                l = esc(&p.label)
            );
        }
    }
    out.push_str("</svg>");
    out.push_str(&legend(
        CLASSES
            .iter()
            .filter(|c| f.classes.contains_key(**c))
            .map(|c| (*c, class_color(c))),
    ));
    out
}

/// Lines of load figures per bucket (`metric`, name shown, colour).
pub fn lines(f: &Figures, id: &str, title: &str, metrics: &[(&str, &str, &str)]) -> String {
    let labels: Vec<String> = f.series.iter().map(|p| p.label.clone()).collect();
    let value = |p: &super::figures::Point, m: &str| p.load.get(m).copied().unwrap_or(0);
    let max = nice_max(
        f.series
            .iter()
            .flat_map(|p| metrics.iter().map(move |(m, _, _)| value(p, m)))
            .max()
            .unwrap_or(0),
    );
    let mut out = String::new();
    frame(&mut out, id, title, max, &labels);
    let plot_h = H - BOTTOM - TOP;
    let slot = (W - LEFT) / f.series.len().max(1) as f64;
    for (n, (metric, name, color)) in metrics.iter().enumerate() {
        let points: Vec<(f64, f64, i64, &str)> = f
            .series
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let v = value(p, metric);
                (
                    LEFT + slot * (i as f64 + 0.5),
                    TOP + plot_h * (1.0 - v as f64 / max as f64),
                    v,
                    p.start.as_str(),
                )
            })
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(x, y, _, _)| format!("{x:.1},{y:.1}"))
            .collect();
        // Each line is drawn narrower than the one before, which shows around it where they
        // meet (peak sessions and queue length are often both 0).
        let width = 2.0 + 2.0 * (metrics.len() - 1 - n) as f64;
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" stroke-linejoin="round" points="{}"/>"#,
            path.join(" ")
        );
        for (x, y, v, start) in points {
            let _ = write!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{color}" data-bucket="{s}" data-series="{metric}" data-value="{v}"><title>{name}: {v}</title></circle>"#,
                s = esc(start),
                name = esc(name),
                r = width / 2.0 + 1.0
            );
        }
    }
    out.push_str("</svg>");
    out.push_str(&legend(
        metrics.iter().map(|(_, name, color)| (*name, *color)),
    ));
    out
}

fn legend<'a>(items: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from(r#"<div class="legend">"#);
    for (name, color) in items {
        let _ = write!(
            out,
            r#"<span><svg width="10" height="10" xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10" fill="{color}"/></svg> {}</span>"#,
            esc(name)
        );
    }
    out.push_str("</div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_are_round_integers() {
        assert_eq!(nice_max(0), 4);
        assert_eq!(nice_max(7), 8, "0 2 4 6 8, not 0 2.5 5 7.5 10 rounded down");
        assert_eq!(nice_max(13), 20);
        assert_eq!(nice_max(90), 100);
        assert_eq!(nice_max(480), 800);
        for v in (0..2000).chain([9_999, 123_456, 10_000_000]) {
            let max = nice_max(v);
            let step = max / GRID;
            assert!(max >= v && max % GRID == 0, "{v}: {max}");
            let lead = step / 10_i64.pow(step.ilog10());
            assert!(
                [1, 2, 5].contains(&lead)
                    || step % 25 == 0 && [25, 250].iter().any(|q| step % q == 0),
                "{v}: step {step}"
            );
            assert!(max < 4 * v.max(2), "{v}: {max} wastes most of the chart");
        }
    }

    #[test]
    fn every_line_stays_visible_where_lines_meet() {
        let series = (0..3)
            .map(|i| super::super::figures::Point {
                start: i.to_string(),
                label: i.to_string(),
                ..Default::default()
            })
            .collect();
        let f = Figures {
            since: String::new(),
            until: String::new(),
            bucket: super::super::figures::Bucket::Hour,
            transactions: 0,
            classes: Default::default(),
            load: Default::default(),
            decided_by: Default::default(),
            reasons: Default::default(),
            scanners: vec![],
            top: Default::default(),
            top_since: String::new(),
            series,
        };
        let svg = lines(
            &f,
            "c",
            "t",
            &[("a", "a", "#111"), ("b", "b", "#222"), ("c", "c", "#333")],
        );
        let widths: Vec<f64> = svg
            .split("<polyline")
            .skip(1)
            .map(|p| {
                p.split("stroke-width=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(widths.len(), 3);
        assert!(
            widths.windows(2).all(|w| w[0] > w[1]),
            "each line drawn over the previous is narrower: {widths:?}"
        );
    }
}
