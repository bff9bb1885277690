//! Spreadsheet-safe CSV cells (CSV / formula injection).
//!
//! Exported values such as endpoint names come from Active Directory and
//! from the identify replies of any scanned host: a cell like
//! `=HYPERLINK(…)` or `+cmd|…` would be run as a formula by the
//! spreadsheet that opens the file. OWASP's rule: a cell that starts with
//! `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading single
//! quote, which spreadsheets show as text. The CSV writer still does the
//! quoting of commas, quotes and line breaks.

use std::borrow::Cow;

/// The first characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell`, prefixed with `'` when it starts like a formula.
///
/// Applied to every cell of an export, numeric ones included: a negative
/// number (say, a last-seen time before 1970) also gets the quote, which
/// is harmless (it reads as text) and keeps the rule column-blind.
pub fn csv_cell(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_get_a_quote_and_the_rest_is_untouched() {
        let cases = [
            ("=1+1", "'=1+1"),
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2", "'-2"),
            ("-", "'-"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("=", "'="),
            // Not at the start: left alone.
            ("pc-01", "pc-01"),
            ("a=1", "a=1"),
            (" =1", " =1"),
            ("x\t", "x\t"),
            ("\nx", "\nx"),
            ("'=1", "'=1"),
            ("", ""),
            ("192.0.2.1 2001:db8::1", "192.0.2.1 2001:db8::1"),
            ("::1", "::1"),
            ("12", "12"),
            ("école", "école"),
        ];
        for (cell, want) in cases {
            assert_eq!(csv_cell(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn safe_cells_are_borrowed() {
        assert!(matches!(csv_cell("web-01"), Cow::Borrowed(_)));
        assert!(matches!(csv_cell("=x"), Cow::Owned(_)));
    }
}
