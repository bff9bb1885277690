//! Small SVG charts of counts over time (the exposure trend of the
//! dashboard and an agent's page, the compliance statuses over the last
//! assessments), drawn on the server like the reachability timeline: no
//! script, a text summary for screen readers and the numbers in a table
//! below.

use maud::{html, Markup};

/// Width and height of the drawing, in user units (it scales to the page).
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 160.0;
/// Room above the highest value.
const HEADROOM: f64 = 1.1;

/// One line of a chart.
pub(crate) struct Series<'a> {
    pub label: &'a str,
    /// A CSS colour.
    pub color: &'a str,
    /// One value per column; `None` leaves a gap.
    pub values: Vec<Option<u64>>,
}

/// Lines over `columns` (their labels, oldest first), titled `summary`
/// for screen readers, with the numbers in a table under a disclosure.
pub(crate) fn lines(summary: &str, columns: &[String], series: &[Series<'_>]) -> Markup {
    let n = columns.len();
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let x = |i: usize| {
        if n <= 1 {
            WIDTH / 2.0
        } else {
            i as f64 * WIDTH / (n - 1) as f64
        }
    };
    let y = |v: u64| HEIGHT - (v as f64) * HEIGHT / (top as f64 * HEADROOM);
    html! {
        figure.trend {
            svg.trend xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(summary)
                viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } preserveAspectRatio="none"
                width="100%" height=(HEIGHT) {
                line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#8a949e" stroke-width="1" {}
                @for s in series {
                    @for run in runs(&s.values) {
                        @let points = run.iter().map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(*v))).collect::<Vec<_>>().join(" ");
                        @if run.len() == 1 {
                            circle data-series=(s.label) cx=(format!("{:.1}", x(run[0].0))) cy=(format!("{:.1}", y(run[0].1))) r="3" fill=(s.color) {}
                        } @else {
                            polyline data-series=(s.label) points=(points) fill="none" stroke=(s.color)
                                stroke-width="2" vector-effect="non-scaling-stroke" {}
                        }
                    }
                }
            }
            figcaption.hint {
                @for (i, s) in series.iter().enumerate() {
                    @if i > 0 { " · " }
                    span style={ "color:" (s.color) } { "■ " } (s.label)
                }
                " · highest " (top)
                @if let (Some(first), Some(last)) = (columns.first(), columns.last()) {
                    " · " (first) " – " (last)
                }
            }
            details {
                summary { "The numbers" }
                (super::layout::table_wrap(summary, html! {
                    table {
                        thead { tr { th scope="col" { "Day" } @for s in series { th scope="col" { (s.label) } } } }
                        tbody {
                            @for (i, c) in columns.iter().enumerate() {
                                tr {
                                    td { (c) }
                                    @for s in series {
                                        td { @match s.values.get(i).copied().flatten() { Some(v) => (v), None => "—" } }
                                    }
                                }
                            }
                        }
                    }
                }))
            }
        }
    }
}

/// The runs of consecutive known values, with their column.
fn runs(values: &[Option<u64>]) -> Vec<Vec<(usize, u64)>> {
    let mut out: Vec<Vec<(usize, u64)>> = Vec::new();
    let mut current = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => current.push((i, *v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A day's start as `2026-12-06`.
pub(crate) fn day_label(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// The exposure trend of an account or agent as a chart.
pub(crate) fn exposure(what: &str, days: &[vigil_core::trend::TrendPoint]) -> Markup {
    let columns: Vec<String> = days.iter().map(|p| day_label(p.day)).collect();
    let open = Series {
        label: "Open ports",
        color: "#1f5fa8",
        values: days.iter().map(|p| p.open_ports).collect(),
    };
    let unauthorized = Series {
        label: "Unauthorized-port alerts",
        color: "#b3261e",
        values: days.iter().map(|p| Some(p.unauthorized)).collect(),
    };
    let last = days.last();
    let summary = format!(
        "{what} over the last {} days: today {} open ports, {} unauthorized-port alerts",
        days.len(),
        last.and_then(|p| p.open_ports)
            .map_or("no scan".to_string(), |n| n.to_string()),
        last.map_or(0, |p| p.unauthorized)
    );
    lines(&summary, &columns, &[open, unauthorized])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_lines_and_lone_points_are_dots() {
        assert_eq!(
            runs(&[None, Some(1), Some(2), None, Some(5), None]),
            vec![vec![(1, 1), (2, 2)], vec![(4, 5)]]
        );
        let svg = lines(
            "test chart",
            &["a".into(), "b".into(), "c".into(), "d".into()],
            &[Series {
                label: "x",
                color: "red",
                values: vec![Some(0), Some(4), None, Some(2)],
            }],
        )
        .into_string();
        assert!(svg.contains(r#"aria-label="test chart""#), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        // The highest value sits below the top, 0 on the base line.
        assert!(svg.contains(r#"points="0.0,160.0 333.3,14.5""#), "{svg}");
        assert!(svg.contains("<td>—</td>"), "a gap in the numbers: {svg}");
    }
}
