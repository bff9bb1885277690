//! The version of this build, read from a stamp in the binary itself, and
//! the reader that finds the stamp in any Vigil binary (a server offering
//! an agent build learns its version from the file, Linux or Windows alike,
//! without running it).
//!
//! The stamp is the text `VIGIL_VERSION_STAMP[<version>]` in the binary's
//! read-only data. [`version`] reads it at run time (through
//! `black_box`, so the compiler cannot fold it into a constant), which
//! makes the stamp the one source of truth: the self-update test bumps a
//! copy's version by rewriting its stamp, which is how it gets a second
//! real build without compiling the workspace twice.

/// What precedes the version in the stamp.
const OPENING: &str = "VIGIL_VERSION_STAMP[";

/// The stamp of this build.
#[used]
static STAMP: &str = concat!("VIGIL_VERSION_STAMP[", env!("CARGO_PKG_VERSION"), "]");

/// The version this binary reports: its stamp's.
pub fn version() -> &'static str {
    let stamp: &'static str = std::hint::black_box(STAMP);
    stamp
        .strip_prefix(OPENING)
        .and_then(|rest| rest.strip_suffix(']'))
        .filter(|v| is_version(v))
        .unwrap_or(env!("CARGO_PKG_VERSION"))
}

/// The version stamped into a binary's bytes, if it is a Vigil binary.
pub fn find_stamp(binary: &[u8]) -> Option<String> {
    let opening = OPENING.as_bytes();
    let mut from = 0;
    while let Some(at) = find(&binary[from..], opening) {
        let start = from + at + opening.len();
        // A version is short; the longest we read is 64 bytes.
        let window = &binary[start..binary.len().min(start + 65)];
        if let Some(end) = window.iter().position(|&b| b == b']') {
            if let Ok(v) = std::str::from_utf8(&window[..end]) {
                if is_version(v) {
                    return Some(v.to_string());
                }
            }
        }
        from = start;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `1.2.3`, `0.2.0-rc.1`, `1.0.0+build.5`: a digit first, then digits,
/// letters, `.`, `-`, `+`.
pub fn is_version(v: &str) -> bool {
    v.len() <= 64
        && v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_build_reports_its_package_version() {
        assert_eq!(version(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn the_stamp_is_found_among_other_bytes() {
        let mut bin = b"\x7fELF\0\0junk VIGIL_VERSION_STAMP[ no ] more".to_vec();
        bin.extend_from_slice(b"\0VIGIL_VERSION_STAMP[0.3.1-rc.2]\0tail");
        assert_eq!(find_stamp(&bin).as_deref(), Some("0.3.1-rc.2"));
        assert_eq!(find_stamp(b"VIGIL_VERSION_STAMP[").as_deref(), None);
        assert_eq!(find_stamp(b"nothing here").as_deref(), None);
        assert_eq!(
            find_stamp(b"VIGIL_VERSION_STAMP[1.0; rm -rf]").as_deref(),
            None
        );
    }

    #[test]
    fn versions_are_plain() {
        for good in ["0.2.0", "10.0.1-rc.1", "1.0.0+b.5"] {
            assert!(is_version(good), "{good}");
        }
        for bad in ["", "v1", "1.0 ", "1/0", "1.0\n"] {
            assert!(!is_version(bad), "{bad}");
        }
    }
}
