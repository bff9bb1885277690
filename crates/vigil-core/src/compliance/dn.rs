//! Distinguished names (RFC 4514), as far as compliance needs them: checking
//! the base DNs of an Active Directory scope, finding the container (OU) of a
//! computer, and testing whether one DN lies within another.
//!
//! Accepted: comma-separated RDNs of `attribute=value`, multi-valued RDNs
//! joined with `+`, spaces around separators, escapes `\,` `\+` `\"` `\\`
//! `\<` `\>` `\;` `\=` `\#` `\ ` and `\XX` (hex bytes of UTF-8), and `#hex`
//! values. Refused, because they are almost always typing mistakes: an empty
//! DN or RDN, an empty value, and an unescaped `=` `;` `"` `<` `>` in a value
//! (AD itself escapes `=` when it writes DNs). Comparison ignores case and
//! the spaces around separators, as AD does.

use super::error::ComplianceError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// A validated distinguished name, e.g. `OU=Servers,DC=example,DC=test`.
///
/// Keeps the text as written (trimmed) for display; equality and
/// [`Dn::is_within`] use the normalized form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Dn {
    text: String,
    rdns: Vec<Rdn>,
}

#[derive(Debug, Clone)]
struct Rdn {
    /// The RDN as written, trimmed.
    text: String,
    /// `(attribute, value)` pairs, lower-cased and unescaped, sorted.
    key: Vec<(String, String)>,
}

impl Dn {
    pub fn parse(input: &str) -> Result<Dn, ComplianceError> {
        let err = |reason: String| ComplianceError::InvalidDn {
            dn: input.to_owned(),
            reason,
        };
        let dn = trim_unescaped(input);
        if dn.is_empty() {
            return Err(err("it is empty".into()));
        }
        if dn.chars().any(char::is_control) {
            return Err(err("it contains a control character".into()));
        }
        let mut rdns = Vec::new();
        for rdn_text in split_unescaped(dn, ',') {
            let rdn_text = trim_unescaped(rdn_text);
            if rdn_text.is_empty() {
                return Err(err(
                    "empty RDN (two commas in a row, or a comma at the start or end)".into(),
                ));
            }
            let mut key = Vec::new();
            for ava in split_unescaped(rdn_text, '+') {
                key.push(parse_ava(ava).map_err(err)?);
            }
            key.sort();
            rdns.push(Rdn {
                text: rdn_text.to_owned(),
                key,
            });
        }
        Ok(Dn {
            text: dn.to_owned(),
            rdns,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Number of RDNs (`OU=a,DC=b` has 2).
    pub fn depth(&self) -> usize {
        self.rdns.len()
    }

    /// The DN without its first RDN: the container of an object. `None` for a
    /// single-RDN DN.
    pub fn parent(&self) -> Option<Dn> {
        if self.rdns.len() < 2 {
            return None;
        }
        let rdns = self.rdns[1..].to_vec();
        let text = rdns
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Some(Dn { text, rdns })
    }

    /// Whether this DN is `ancestor` or lies below it (whole RDNs compared,
    /// so `OU=OldServers,…` is not within `OU=Servers,…`).
    pub fn is_within(&self, ancestor: &Dn) -> bool {
        let skip = match self.rdns.len().checked_sub(ancestor.rdns.len()) {
            Some(skip) => skip,
            None => return false,
        };
        self.rdns[skip..]
            .iter()
            .zip(&ancestor.rdns)
            .all(|(a, b)| a.key == b.key)
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Self) -> bool {
        self.rdns.len() == other.rdns.len()
            && self
                .rdns
                .iter()
                .zip(&other.rdns)
                .all(|(a, b)| a.key == b.key)
    }
}

impl Eq for Dn {}

impl Hash for Dn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for rdn in &self.rdns {
            rdn.key.hash(state);
        }
    }
}

impl FromStr for Dn {
    type Err = ComplianceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dn::parse(s)
    }
}

impl TryFrom<String> for Dn {
    type Error = ComplianceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Dn::parse(&s)
    }
}

impl From<Dn> for String {
    fn from(dn: Dn) -> String {
        dn.text
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Trims whitespace, but keeps a trailing space escaped as `\ `.
fn trim_unescaped(s: &str) -> &str {
    let s = s.trim_start();
    let t = s.trim_end();
    let backslashes = t.len() - t.trim_end_matches('\\').len();
    match s[t.len()..].chars().next() {
        Some(c) if backslashes % 2 == 1 => &s[..t.len() + c.len_utf8()],
        _ => t,
    }
}

/// Splits at every `sep` not preceded by a backslash escape.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Parses one `attribute=value` into its normalized (lower-case, unescaped) form.
fn parse_ava(ava: &str) -> Result<(String, String), String> {
    let Some((attr, raw)) = ava.split_once('=') else {
        return Err(format!(
            "{:?} is not of the form attribute=value",
            ava.trim()
        ));
    };
    let attr = attr.trim();
    if !is_attribute_type(attr) {
        return Err(format!(
            "{attr:?} is not an attribute type (e.g. CN, OU, DC)"
        ));
    }
    let raw = raw.trim_start_matches(' ');
    if let Some(hex) = raw.strip_prefix('#') {
        let hex = hex.trim_end_matches(' ');
        if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "the value of {attr} starts with '#' but is not an even number of hex digits (write \\# for a literal '#')"
            ));
        }
        return Ok((
            attr.to_ascii_lowercase(),
            raw.trim_end_matches(' ').to_ascii_lowercase(),
        ));
    }
    let mut bytes = Vec::with_capacity(raw.len());
    // Length of `bytes` up to the last character that is not an unescaped space.
    let mut keep = 0;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    return Err("it ends with a lone backslash".into());
                };
                let hi = next.to_digit(16);
                let lo = chars.peek().and_then(|c| c.to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        chars.next();
                        // Two hex digits: always below 256.
                        bytes.push((hi * 16 + lo) as u8);
                    }
                    _ if ",+\"\\<>;=# ".contains(next) => push_char(&mut bytes, next),
                    _ => {
                        return Err(format!(
                            "\\{next} is not an escape; a backslash is followed by one of , + \" \\ < > ; = # space, or two hex digits"
                        ))
                    }
                }
                keep = bytes.len();
            }
            '=' => {
                return Err(format!(
                    "'=' in the value of {attr} must be escaped as \\=; is a comma missing?"
                ))
            }
            '"' | ';' | '<' | '>' => {
                return Err(format!(
                    "'{c}' in the value of {attr} must be escaped as \\{c}"
                ))
            }
            ' ' => push_char(&mut bytes, c),
            _ => {
                push_char(&mut bytes, c);
                keep = bytes.len();
            }
        }
    }
    bytes.truncate(keep);
    if bytes.is_empty() {
        return Err(format!("{attr} has an empty value"));
    }
    let value = String::from_utf8(bytes)
        .map_err(|_| format!("the escaped bytes in the value of {attr} are not UTF-8"))?;
    Ok((attr.to_ascii_lowercase(), value.to_lowercase()))
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// A descriptor (`OU`, `sAMAccountName`) or a numeric OID (`2.5.4.3`).
fn is_attribute_type(attr: &str) -> bool {
    let mut chars = attr.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-'),
        Some(c) if c.is_ascii_digit() => attr
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn accepts_valid_dns() {
        let cases: &[(&str, usize)] = &[
            ("DC=example,DC=test", 2),
            ("OU=Servers,DC=example,DC=test", 3),
            ("  ou=Servers , dc=example,  dc=test ", 3),
            ("CN=Smith\\, John,OU=People,DC=example,DC=test", 4),
            ("CN=a\\+b+UID=7,DC=test", 2),
            ("CN=\\#hash,DC=test", 2),
            ("CN=caf\\c3\\a9,DC=test", 2),
            ("CN=café,DC=test", 2),
            ("CN=trailing\\ ,DC=test", 2),
            ("CN=trailing\\ ", 1),
            ("CN=a\\\\ ,DC=test", 2),
            ("CN=eq\\=sign,DC=test", 2),
            ("2.5.4.3=web01,DC=test", 2),
            ("CN=#04024869,DC=test", 2),
            ("CN=Web Servers (DMZ),DC=test", 2),
        ];
        for (input, depth) in cases {
            assert_eq!(dn(input).depth(), *depth, "{input}");
        }
    }

    #[test]
    fn refuses_malformed_dns_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("OU=Servers,,DC=test", "empty RDN"),
            ("OU=Servers,DC=test,", "empty RDN"),
            (",DC=test", "empty RDN"),
            ("Servers", "is not of the form attribute=value"),
            ("OU=Servers DC=test", "is a comma missing?"),
            ("OU=,DC=test", "OU has an empty value"),
            ("OU=  ,DC=test", "OU has an empty value"),
            ("1OU=x,DC=test", "is not an attribute type"),
            ("O U=x,DC=test", "is not an attribute type"),
            ("=x,DC=test", "is not an attribute type"),
            ("OU=x;DC=test", "must be escaped as \\;"),
            ("CN=\"quoted\",DC=test", "must be escaped as \\\""),
            ("OU=a<b,DC=test", "must be escaped as \\<"),
            ("OU=x\\", "lone backslash"),
            ("OU=x\\q,DC=test", "\\q is not an escape"),
            ("OU=\\ff\\fe,DC=test", "not UTF-8"),
            ("CN=#0g,DC=test", "hex digits"),
            ("CN=#123,DC=test", "hex digits"),
            ("OU=a\nb,DC=test", "control character"),
        ];
        for (input, reason) in cases {
            let e = Dn::parse(input).expect_err(input);
            let msg = e.to_string();
            assert!(msg.contains(reason), "{input:?}: {msg}");
            assert!(msg.contains("is not a valid distinguished name"), "{msg}");
        }
    }

    #[test]
    fn equality_ignores_case_spacing_and_escape_form() {
        let cases: &[(&str, &str, bool)] = &[
            (
                "OU=Servers,DC=example,DC=test",
                "ou=servers, dc=EXAMPLE , dc=test",
                true,
            ),
            ("CN=a\\2cb,DC=test", "CN=a\\,b,DC=test", true),
            ("CN=a+UID=1,DC=test", "UID=1+CN=a,DC=test", true),
            ("CN=ÉCOLE,DC=test", "cn=école,dc=test", true),
            ("CN=trailing\\ ,DC=test", "CN=trailing,DC=test", false),
            ("OU=Servers,DC=test", "OU=Servers,DC=example,DC=test", false),
            ("OU=Servers,DC=test", "CN=Servers,DC=test", false),
        ];
        for (a, b, equal) in cases {
            assert_eq!(dn(a) == dn(b), *equal, "{a} vs {b}");
        }
    }

    #[test]
    fn is_within_compares_whole_rdns_from_the_right() {
        let servers = "OU=Servers,DC=example,DC=test";
        let cases: &[(&str, &str, bool)] = &[
            ("CN=WEB01,OU=Servers,DC=example,DC=test", servers, true),
            ("OU=Web,OU=Servers,DC=example,DC=test", servers, true),
            ("ou=servers,dc=example,dc=test", servers, true),
            ("OU=OldServers,DC=example,DC=test", servers, false),
            ("OU=Servers,DC=example,DC=org", servers, false),
            ("DC=example,DC=test", servers, false),
            ("CN=WEB01,OU=Servers,DC=example,DC=test", "DC=test", true),
        ];
        for (child, ancestor, within) in cases {
            assert_eq!(
                dn(child).is_within(&dn(ancestor)),
                *within,
                "{child} in {ancestor}"
            );
        }
    }

    #[test]
    fn parent_drops_the_first_rdn() {
        let computer = dn("CN=WEB01, OU=Servers,DC=example,DC=test");
        let parent = computer.parent().expect("has a parent");
        assert_eq!(parent.as_str(), "OU=Servers,DC=example,DC=test");
        assert_eq!(parent, dn("OU=Servers,DC=example,DC=test"));
        assert_eq!(dn("DC=test").parent(), None);
    }

    #[test]
    fn serde_uses_the_text_and_validates() {
        let d = dn("OU=Servers,DC=test");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"OU=Servers,DC=test\"");
        let back: Dn = serde_json::from_str("\"OU=Servers,DC=test\"").unwrap();
        assert_eq!(back, d);
        let err = serde_json::from_str::<Dn>("\"OU=\"").unwrap_err();
        assert!(err.to_string().contains("OU has an empty value"), "{err}");
    }
}
