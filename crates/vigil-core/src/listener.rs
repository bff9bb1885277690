//! What listens on an open port: the service name, what the service
//! announces (banner, TLS certificate, HTTP `Server` and `<title>`) and, for
//! the agent's own host, the listening process. The agent fills these in;
//! the server stores them with the result and shows them in alerts.
//!
//! Everything here is pure: bounding and cleaning what arrived from the
//! network ([`PortDetails::sanitized`]), the one-line summaries alerts use,
//! and the process-change decision ([`process_changes`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest text kept in any one field (characters); longer is cut.
pub const MAX_FIELD_CHARS: usize = 256;
/// The longest command line kept (characters).
pub const MAX_CMDLINE_CHARS: usize = 1024;

/// What is known of an open port besides its state. Every field is
/// optional: an older agent sends none, and each probe may fail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortDetails {
    /// The port's usual service (`http-alt`), from nmap-services or /etc/services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What the service said first, unasked (`SSH-2.0-OpenSSH_9.2p1`), as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSummary>,
    /// The listening process (only for the agent's own host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessInfo>,
}

/// The certificate a TLS service presented (read, not verified).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TlsSummary {
    /// RFC 4514 form, `CN=example.org,O=Example`.
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// What an HTTP service answered to `GET /`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HttpSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// The process that holds the listening socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The short name (`python3`; `/proc/PID/comm` or the image's file name).
    pub name: String,
    pub pid: u32,
    /// The account it runs as; `None` where the OS does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The executable's full path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The arguments joined by spaces (an argument holding a space, or an
    /// empty one, is single-quoted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
}

/// Text from the network or another process, made safe to store and show:
/// control characters become spaces, runs of white space one space, and at
/// most `max` characters are kept (an ellipsis marks a cut). Empty → `None`.
pub fn clean_text(text: &str, max: usize) -> Option<String> {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in text.trim().chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if count == max {
            out.pop();
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    let out = out.trim_end().to_string();
    (!out.is_empty()).then_some(out)
}

fn clean_opt(text: &Option<String>, max: usize) -> Option<String> {
    text.as_deref().and_then(|t| clean_text(t, max))
}

impl PortDetails {
    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        *self == PortDetails::default()
    }

    /// A copy with every text cleaned and bounded ([`clean_text`]); `None`
    /// when nothing is left. What the server stores of an upload.
    pub fn sanitized(&self) -> Option<PortDetails> {
        let tls = self.tls.as_ref().map(|t| TlsSummary {
            subject: clean_text(&t.subject, MAX_FIELD_CHARS).unwrap_or_default(),
            issuer: clean_text(&t.issuer, MAX_FIELD_CHARS).unwrap_or_default(),
            not_after: t.not_after,
        });
        let http = self
            .http
            .as_ref()
            .map(|h| HttpSummary {
                server: clean_opt(&h.server, MAX_FIELD_CHARS),
                title: clean_opt(&h.title, MAX_FIELD_CHARS),
            })
            .filter(|h| h.server.is_some() || h.title.is_some());
        let process = self.process.as_ref().map(|p| ProcessInfo {
            name: clean_text(&p.name, MAX_FIELD_CHARS).unwrap_or_default(),
            pid: p.pid,
            user: clean_opt(&p.user, MAX_FIELD_CHARS),
            exe: clean_opt(&p.exe, MAX_FIELD_CHARS),
            cmdline: clean_opt(&p.cmdline, MAX_CMDLINE_CHARS),
        });
        let out = PortDetails {
            service: clean_opt(&self.service, 64),
            banner: clean_opt(&self.banner, MAX_FIELD_CHARS),
            tls,
            http,
            process,
        };
        (!out.is_empty()).then_some(out)
    }

    /// What announces itself on the port, in one line: the banner, the
    /// HTTP server and title, the certificate's subject. `None` when the
    /// service said nothing.
    pub fn announces(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(b) = &self.banner {
            parts.push(format!("banner {b:?}"));
        }
        if let Some(h) = &self.http {
            if let Some(s) = &h.server {
                parts.push(format!("HTTP server {s:?}"));
            }
            if let Some(t) = &h.title {
                parts.push(format!("title {t:?}"));
            }
        }
        if let Some(t) = &self.tls {
            parts.push(format!(
                "TLS certificate {} (issuer {})",
                t.subject, t.issuer
            ));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// Every fact known, labelled, one per line, for alert details, the
    /// console and `vigil ctl`: `("Process", "python3 -m http.server (pid 1234, …)")`.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(p) = &self.process {
            out.push(("Process", p.summary()));
        }
        if let Some(s) = &self.service {
            out.push(("Service", s.clone()));
        }
        if let Some(b) = &self.banner {
            out.push(("Banner", b.clone()));
        }
        if let Some(h) = &self.http {
            if let Some(s) = &h.server {
                out.push(("HTTP server", s.clone()));
            }
            if let Some(t) = &h.title {
                out.push(("HTTP title", t.clone()));
            }
        }
        if let Some(t) = &self.tls {
            out.push((
                "TLS certificate",
                format!(
                    "{} (issuer {}, expires {})",
                    t.subject,
                    t.issuer,
                    utc_date(t.not_after)
                ),
            ));
        }
        out
    }

    /// What listens, in one line, for an alert's title: the process when
    /// known, else the service and what it announces.
    pub fn summary(&self) -> Option<String> {
        if let Some(p) = &self.process {
            return Some(p.summary());
        }
        match (&self.service, self.announces()) {
            (Some(s), Some(a)) => Some(format!("{s}, {a}")),
            (Some(s), None) => Some(s.clone()),
            (None, a) => a,
        }
    }
}

impl ProcessInfo {
    /// `python3 -m http.server (pid 1234, user www-data, /usr/bin/python3.11)`.
    pub fn summary(&self) -> String {
        let what = self
            .cmdline
            .as_deref()
            .filter(|c| !c.is_empty())
            .unwrap_or(&self.name);
        let mut facts = vec![format!("pid {}", self.pid)];
        if let Some(u) = &self.user {
            facts.push(format!("user {u}"));
        }
        if let Some(e) = &self.exe {
            facts.push(e.clone());
        }
        format!("{what} ({})", facts.join(", "))
    }

    /// What identifies the program (not this run of it): the executable's
    /// path, or the name where the path is unknown.
    pub fn program(&self) -> &str {
        self.exe.as_deref().unwrap_or(&self.name)
    }
}

/// `2027-03-01` for Unix seconds (UTC; the proleptic Gregorian calendar).
pub fn utc_date(unix: i64) -> String {
    // Howard Hinnant's days → civil date.
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A `/proc/PID/cmdline` (NUL-separated arguments, usually NUL-terminated)
/// as one line: arguments joined by spaces, an argument that is empty or
/// holds white space single-quoted. `None` for an empty command line
/// (kernel threads, zombies).
pub fn join_cmdline(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return None;
    }
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| {
            let a = String::from_utf8_lossy(a);
            if a.is_empty() || a.chars().any(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a.into_owned()
            }
        })
        .collect();
    Some(args.join(" "))
}

/// An authorized port now served by another program than in the previous result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessChange {
    pub port: u16,
    /// The program before and now ([`ProcessInfo::program`]).
    pub before: String,
    pub after: String,
}

/// The authorized ports whose listening program changed between two results
/// of one target (port → process). A port with no known process in either
/// result is no change (attribution may fail, the port may close); a new
/// run of the same program (another pid) is none either.
pub fn process_changes(
    previous: &BTreeMap<u16, ProcessInfo>,
    current: &BTreeMap<u16, ProcessInfo>,
    authorized: impl Fn(u16) -> bool,
) -> Vec<ProcessChange> {
    current
        .iter()
        .filter(|(port, _)| authorized(**port))
        .filter_map(|(port, now)| {
            let before = previous.get(port)?;
            (before.program() != now.program()).then(|| ProcessChange {
                port: *port,
                before: before.program().to_string(),
                after: now.program().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, exe: &str) -> ProcessInfo {
        ProcessInfo {
            name: exe.rsplit('/').next().unwrap_or(exe).to_string(),
            pid,
            user: Some("root".into()),
            exe: Some(exe.into()),
            cmdline: None,
        }
    }

    #[test]
    fn cmdlines_join_nul_separated_arguments() {
        let cases: [(&[u8], Option<&str>); 6] = [
            (
                b"python3\0-m\0http.server\0",
                Some("python3 -m http.server"),
            ),
            (b"python3\0-m\0http.server", Some("python3 -m http.server")),
            (b"sh\0-c\0echo hi\0", Some("sh -c 'echo hi'")),
            (b"a\0\0b\0", Some("a '' b")),
            (b"", None),
            (b"\0", None),
        ];
        for (raw, want) in cases {
            assert_eq!(join_cmdline(raw).as_deref(), want, "{raw:?}");
        }
        // Not UTF-8: replaced, not refused.
        assert_eq!(join_cmdline(b"x\xff\0").as_deref(), Some("x\u{fffd}"));
    }

    #[test]
    fn process_summary_names_command_pid_user_and_exe() {
        let p = ProcessInfo {
            name: "python3".into(),
            pid: 1234,
            user: Some("www-data".into()),
            exe: Some("/usr/bin/python3.11".into()),
            cmdline: Some("python3 -m http.server".into()),
        };
        assert_eq!(
            p.summary(),
            "python3 -m http.server (pid 1234, user www-data, /usr/bin/python3.11)"
        );
        let bare = ProcessInfo {
            name: "svc.exe".into(),
            pid: 7,
            ..ProcessInfo::default()
        };
        assert_eq!(bare.summary(), "svc.exe (pid 7)");
    }

    #[test]
    fn details_summaries_fall_back_to_what_the_service_says() {
        let d = PortDetails {
            service: Some("https".into()),
            http: Some(HttpSummary {
                server: Some("nginx".into()),
                title: Some("Welcome".into()),
            }),
            tls: Some(TlsSummary {
                subject: "CN=a".into(),
                issuer: "CN=b".into(),
                not_after: 0,
            }),
            ..PortDetails::default()
        };
        assert_eq!(
            d.summary().as_deref(),
            Some(
                "https, HTTP server \"nginx\", title \"Welcome\", TLS certificate CN=a (issuer CN=b)"
            )
        );
        assert_eq!(PortDetails::default().summary(), None);
    }

    #[test]
    fn sanitizing_cleans_and_bounds_text() {
        assert_eq!(clean_text("  a\r\n\tb\0c  ", 10).as_deref(), Some("a b c"));
        assert_eq!(clean_text(" \n ", 10), None);
        let long = "x".repeat(300);
        let cut = clean_text(&long, MAX_FIELD_CHARS).expect("text");
        assert_eq!(cut.chars().count(), MAX_FIELD_CHARS);
        assert!(cut.ends_with('…'));
        let d = PortDetails {
            banner: Some("SSH-2.0-x\r\n".into()),
            http: Some(HttpSummary {
                server: Some(" ".into()),
                title: None,
            }),
            ..PortDetails::default()
        };
        let clean = d.sanitized().expect("something");
        assert_eq!(clean.banner.as_deref(), Some("SSH-2.0-x"));
        assert_eq!(clean.http, None);
        assert_eq!(PortDetails::default().sanitized(), None);
    }

    #[test]
    fn dates_and_facts() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_709_251_200), "2024-03-01");
        assert_eq!(utc_date(1_709_164_800), "2024-02-29");
        assert_eq!(utc_date(-86_400), "1969-12-31");
        let d = PortDetails {
            service: Some("https".into()),
            tls: Some(TlsSummary {
                subject: "CN=a".into(),
                issuer: "CN=b".into(),
                not_after: 1_709_251_200,
            }),
            ..PortDetails::default()
        };
        assert_eq!(
            d.facts(),
            [
                ("Service", "https".to_string()),
                (
                    "TLS certificate",
                    "CN=a (issuer CN=b, expires 2024-03-01)".to_string()
                )
            ]
        );
    }

    #[test]
    fn old_uploads_without_details_parse() {
        let d: PortDetails = serde_json::from_str("{}").expect("parse");
        assert!(d.is_empty());
        assert_eq!(serde_json::to_string(&d).expect("json"), "{}");
    }

    #[test]
    fn process_changes_on_authorized_ports_only() {
        let prev = BTreeMap::from([
            (443, proc(10, "/usr/sbin/nginx")),
            (8080, proc(11, "/usr/bin/python3")),
            (22, proc(12, "/usr/sbin/sshd")),
        ]);
        let now = BTreeMap::from([
            (443, proc(20, "/usr/sbin/apache2")), // another program
            (8080, proc(21, "/usr/bin/node")),    // changed, but not authorized
            (22, proc(99, "/usr/sbin/sshd")),     // restarted: same program
            (25, proc(30, "/usr/sbin/exim4")),    // new port: not a change
        ]);
        let authorized = |p: u16| matches!(p, 22 | 25 | 443);
        assert_eq!(
            process_changes(&prev, &now, authorized),
            [ProcessChange {
                port: 443,
                before: "/usr/sbin/nginx".into(),
                after: "/usr/sbin/apache2".into(),
            }]
        );
        assert!(process_changes(&BTreeMap::new(), &now, |_| true).is_empty());
        assert!(process_changes(&prev, &BTreeMap::new(), |_| true).is_empty());
    }
}
