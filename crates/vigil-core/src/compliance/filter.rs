//! A structural check of the optional LDAP filter of an Active Directory
//! scope (RFC 4515), so a typo is reported when the scope is saved rather
//! than when the directory refuses the search.
//!
//! The filter must be one parenthesized filter: `(attr=value)`, `(&…)`,
//! `(|…)` or `(!…)`, nested at most [`MAX_DEPTH`] levels, at most
//! [`MAX_FILTER_LEN`] bytes. Parentheses inside values must be escaped as
//! `\28` / `\29`, so every raw parenthesis is structure. Attribute names and
//! matching rules are left to the directory.

use super::error::ComplianceError;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of `(…)` accepted.
pub const MAX_DEPTH: usize = 32;

/// Checks that `filter` is a single, well-formed parenthesized LDAP filter.
pub fn validate_filter(filter: &str) -> Result<(), ComplianceError> {
    let err = |reason| ComplianceError::InvalidFilter {
        filter: filter.to_owned(),
        reason,
    };
    let f = filter.trim();
    if f.is_empty() {
        return Err(err(
            "it is empty; leave the filter out to read every computer",
        ));
    }
    if f.len() > MAX_FILTER_LEN {
        return Err(err("it is longer than 4096 characters"));
    }
    if f.chars().any(char::is_control) {
        return Err(err("it contains a control character"));
    }
    if !f.starts_with('(') || !f.ends_with(')') {
        return Err(err(
            "it must be enclosed in parentheses, e.g. (operatingSystem=Windows*)",
        ));
    }
    let mut depth: usize = 0;
    for c in f.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| err("its parentheses are unbalanced"))?;
            }
            _ => {}
        }
        if depth > MAX_DEPTH {
            return Err(err("it is nested more than 32 levels deep"));
        }
    }
    if depth != 0 {
        return Err(err("its parentheses are unbalanced"));
    }
    let rest = parse_filter(f).map_err(err)?;
    if !rest.is_empty() {
        return Err(err(
            "it holds several filters side by side; combine them with (&(…)(…)) or (|(…)(…))",
        ));
    }
    Ok(())
}

/// Parses one `(…)` at the start of `s` and returns what follows it.
/// Parentheses are known to be balanced and the depth bounded.
fn parse_filter(s: &str) -> Result<&str, &'static str> {
    let Some(inner) = s.strip_prefix('(') else {
        return Err("expected '(' where a filter starts (no spaces between filters)");
    };
    let rest = match inner.chars().next() {
        Some('&') | Some('|') => {
            let mut rest = parse_filter(&inner[1..]).map_err(|e| {
                if inner[1..].starts_with(')') {
                    "& and | need at least one filter after them, e.g. (&(a=1)(b=2))"
                } else {
                    e
                }
            })?;
            while rest.starts_with('(') {
                rest = parse_filter(rest)?;
            }
            rest
        }
        Some('!') => {
            if inner[1..].starts_with(')') {
                return Err("! needs one filter after it, e.g. (!(a=1))");
            }
            let rest = parse_filter(&inner[1..])?;
            if rest.starts_with('(') {
                return Err("! takes exactly one filter");
            }
            rest
        }
        Some(')') => return Err("it contains empty parentheses ()"),
        _ => {
            let end = inner.find(['(', ')']).unwrap_or(inner.len());
            check_item(&inner[..end])?;
            &inner[end..]
        }
    };
    rest.strip_prefix(')')
        .ok_or("a filter item contains a raw parenthesis; escape it in values as \\28 or \\29")
}

/// `attr=value`, `attr~=value`, `attr>=value`, `attr<=value`, `attr=*`,
/// substrings and extensible matches (`attr:1.2.840.113556.1.4.803:=2`).
fn check_item(item: &str) -> Result<(), &'static str> {
    let Some((attr, value)) = item.split_once('=') else {
        return Err("a filter item has no '=' (expected attribute=value)");
    };
    let attr = attr.trim_end_matches(['~', '>', '<']);
    if attr.is_empty() {
        return Err("a filter item has no attribute before '='");
    }
    if !attr
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ';' | ':'))
    {
        return Err(
            "a filter attribute may hold only letters, digits, '-', '.', ';' and ':' (no spaces)",
        );
    }
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
            if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(
                    "a backslash in a value must be followed by two hex digits (e.g. \\28 for '(')",
                );
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_filters() {
        let cases = [
            "(cn=web*)",
            "(operatingSystem=Windows Server*)",
            "(&(operatingSystem=Windows*)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
            "(|(cn=a)(cn=b)(cn=c))",
            "(!(cn=legacy*))",
            "(dNSHostName=*)",
            "(description=Web server \\28DMZ\\29)",
            "(lastLogonTimestamp>=133000000000000000)",
            "(cn~=web)",
            "(cn;lang-en=x)",
            "(cn=)",
            " (cn=web01) ",
        ];
        for f in cases {
            assert_eq!(validate_filter(f), Ok(()), "{f}");
        }
    }

    #[test]
    fn refuses_malformed_filters_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            ("cn=web*", "enclosed in parentheses"),
            ("(cn=web*", "enclosed in parentheses"),
            ("((cn=web)", "unbalanced"),
            ("(cn=web))(x=1)", "unbalanced"),
            ("(&(cn=a)(cn=b)", "unbalanced"),
            ("(cn=a)(cn=b)", "several filters side by side"),
            ("()", "empty parentheses"),
            ("(&)", "at least one filter"),
            ("(|)", "at least one filter"),
            ("(!)", "! needs one filter"),
            ("(!(a=1)(b=2))", "exactly one filter"),
            ("(cn)", "has no '='"),
            ("(=web)", "no attribute"),
            ("(c n=web)", "no spaces"),
            ("(cn=a\\2)", "two hex digits"),
            ("(cn=a\\zz)", "two hex digits"),
            ("(cn=a(b)", "unbalanced"),
            ("(cn=Web (DMZ))", "raw parenthesis"),
            ("(& (cn=a))", "no spaces between filters"),
            ("(cn=a\u{7})", "control character"),
        ];
        for (f, reason) in cases {
            let msg = validate_filter(f).expect_err(f).to_string();
            assert!(msg.contains(reason), "{f:?}: {msg}");
            assert!(msg.starts_with("LDAP filter"), "{msg}");
        }
    }

    #[test]
    fn limits_length_and_depth() {
        let deep = format!("{}(cn=x){}", "(!".repeat(32), ")".repeat(32));
        let msg = validate_filter(&deep).unwrap_err().to_string();
        assert!(msg.contains("32 levels"), "{msg}");
        let ok = format!("{}(cn=x){}", "(!".repeat(31), ")".repeat(31));
        assert_eq!(validate_filter(&ok), Ok(()));
        let long = format!("(cn={})", "x".repeat(MAX_FILTER_LEN));
        assert!(validate_filter(&long)
            .unwrap_err()
            .to_string()
            .contains("4096"));
    }
}
