//! Aligned plain-text tables and timestamps for people.

use chrono::{DateTime, Local};

/// Columns separated by two spaces, padded to the widest cell; the last
/// column is not padded.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |i: usize| {
            std::iter::once(&self.header)
                .chain(&self.rows)
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `label:  value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{:<w$}  {v}\n", format!("{k}:")))
        .collect()
}

/// Unix seconds as local time, `2024-05-01 14:03`.
pub fn time(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0)
        .map(|t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// How long ago, roughly: `just now`, `5 min ago`, `3 h ago`, `2 d ago`.
pub fn ago(unix: i64, now: i64) -> String {
    let secs = (now - unix).max(0);
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86400),
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `-` for a missing value.
pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_space() {
        let mut t = Table::new(&["ID", "NAME", "NOTE"]);
        t.row(vec!["1".into(), "alpha".into(), "".into()]);
        t.row(vec!["22".into(), "b".into(), "ünïcode".into()]);
        assert_eq!(
            t.render(),
            "ID  NAME   NOTE\n1   alpha\n22  b      ünïcode\n"
        );
    }

    #[test]
    fn fields_align_values() {
        let text = fields(&[("id", "1".into()), ("health", "ok".into())]);
        assert_eq!(text, "id:      1\nhealth:  ok\n");
    }

    #[test]
    fn ago_rounds_down() {
        let cases = [
            (0, "just now"),
            (59, "just now"),
            (61, "1 min ago"),
            (7300, "2 h ago"),
            (200_000, "2 d ago"),
            (-5, "just now"),
        ];
        for (secs, want) in cases {
            assert_eq!(ago(1000, 1000 + secs), want, "{secs}");
        }
    }
}
