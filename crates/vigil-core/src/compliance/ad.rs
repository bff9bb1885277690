//! The Active Directory side of a compliance scope: which directory to
//! read, how to bind, where to look and with which extra filter.
//!
//! The scope holds no secret: the server stores the bind password apart.
//! A simple bind needs ldaps:// or StartTLS so the password never crosses
//! the network in clear (GSSAPI binds are fine over ldap://). The URL names
//! only the server and port; base DNs are listed separately, at least one,
//! each a valid DN and none twice; the optional filter must be one
//! parenthesized LDAP filter and is ANDed with `(objectCategory=computer)`.

use super::dn::Dn;
use super::error::ComplianceError;
use super::filter::validate_filter;
use crate::pin::CertPin;
use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

/// The attributes an assessment reads from each AD computer object.
pub const COMPUTER_ATTRIBUTES: [&str; 6] = [
    "objectGUID",
    "cn",
    "dNSHostName",
    "operatingSystem",
    "lastLogonTimestamp",
    "userAccountControl",
];

/// How the server authenticates to the directory. Serialized as
/// `{"method": "simple", "bind_dn": "…"}` or `{"method": "gssapi"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum AdBind {
    /// Simple bind; the password is stored apart from the scope. AD accepts
    /// a DN, a user principal name (`svc@example.test`) or `DOMAIN\user`.
    Simple { bind_dn: String },
    /// SASL GSSAPI with the Kerberos ticket the server process already has.
    Gssapi,
}

/// The Active Directory side of the scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdScope {
    /// `ldap://host[:port]` or `ldaps://host[:port]`, nothing after the port.
    pub url: String,
    /// Upgrade an ldap:// connection with StartTLS.
    #[serde(default)]
    pub start_tls: bool,
    pub bind: AdBind,
    /// Where to look for computer objects (searched with subtree scope).
    pub base_dns: Vec<Dn>,
    /// An extra LDAP filter ANDed with `(objectCategory=computer)`.
    #[serde(default)]
    pub filter: Option<String>,
    /// PEM certificate(s) of the CA that issued the directory's TLS
    /// certificate, trusted in addition to the system's roots (AD
    /// certificate services are usually a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// The directory's own certificate, pinned by SHA-256 fingerprint: when
    /// set, it alone is trusted (names, issuer and dates unchecked), for a
    /// DC whose certificate has no subjectAltName (see `pin.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_pin: Option<CertPin>,
}

/// Largest CA certificate bundle accepted in a scope.
pub const MAX_CA_CERT_BYTES: usize = 64 * 1024;

impl AdScope {
    pub fn validate(&self) -> Result<(), ComplianceError> {
        let ldaps = check_ldap_url(&self.url)?;
        if ldaps && self.start_tls {
            return Err(ComplianceError::StartTlsWithLdaps);
        }
        if let AdBind::Simple { bind_dn } = &self.bind {
            check_bind_name(bind_dn)?;
            if !ldaps && !self.start_tls {
                return Err(ComplianceError::CleartextBind);
            }
        }
        if self.base_dns.is_empty() {
            return Err(ComplianceError::NoBaseDn);
        }
        for (i, dn) in self.base_dns.iter().enumerate() {
            if self.base_dns[..i].contains(dn) {
                return Err(ComplianceError::DuplicateBaseDn { dn: dn.to_string() });
            }
        }
        if let Some(filter) = &self.filter {
            validate_filter(filter)?;
        }
        if let Some(pem) = &self.ca_cert {
            check_ca_cert(pem)?;
        }
        if self.tls_pin.is_some() && !ldaps && !self.start_tls {
            return Err(ComplianceError::PinWithoutTls);
        }
        Ok(())
    }

    /// Whether the URL asks for LDAP over TLS (`ldaps://`).
    pub fn is_ldaps(&self) -> bool {
        scheme_rest(&self.url).is_some_and(|(ldaps, _)| ldaps)
    }

    /// The filter to search each base DN with.
    pub fn search_filter(&self) -> String {
        match self.filter.as_deref().map(str::trim) {
            Some(extra) if !extra.is_empty() => format!("(&(objectCategory=computer){extra})"),
            _ => "(objectCategory=computer)".to_owned(),
        }
    }
}

/// A part of an AD scope that says where and as whom the server binds. A
/// stored bind password is kept across a scope update only while none of
/// these changed: otherwise the update must carry the password again, so a
/// stored password is never sent to a directory it was not entered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdConnectionField {
    /// The directory URL.
    Url,
    /// The bind method or the bind DN.
    Bind,
    /// The CA certificate trusted for the directory's TLS certificate.
    CaCert,
    /// The pinned directory certificate.
    TlsPin,
}

impl AdConnectionField {
    /// The field's name in the scope (`url`, `bind`, `ca_cert`, `tls_pin`).
    pub fn as_str(self) -> &'static str {
        match self {
            AdConnectionField::Url => "url",
            AdConnectionField::Bind => "bind",
            AdConnectionField::CaCert => "ca_cert",
            AdConnectionField::TlsPin => "tls_pin",
        }
    }
}

/// The connection fields that differ between the stored AD scope `old` and
/// the updated `new`, in scope order; empty when the stored bind password
/// may be kept. Values compare exactly (a URL written differently counts as
/// changed).
pub fn ad_connection_changes(old: &AdScope, new: &AdScope) -> Vec<AdConnectionField> {
    let mut changed = Vec::new();
    if old.url != new.url {
        changed.push(AdConnectionField::Url);
    }
    if old.bind != new.bind {
        changed.push(AdConnectionField::Bind);
    }
    if old.ca_cert != new.ca_cert {
        changed.push(AdConnectionField::CaCert);
    }
    if old.tls_pin != new.tls_pin {
        changed.push(AdConnectionField::TlsPin);
    }
    changed
}

/// Whether an update from the stored `old` to `new` may keep the stored
/// bind password (it carries none): refused, naming the changed fields,
/// when [`ad_connection_changes`] finds any.
pub fn check_keep_bind_password(old: &AdScope, new: &AdScope) -> Result<(), ComplianceError> {
    let changed = ad_connection_changes(old, new);
    if changed.is_empty() {
        return Ok(());
    }
    let fields: Vec<&str> = changed.iter().map(|f| f.as_str()).collect();
    Err(ComplianceError::AdConnectionChanged {
        fields: fields.join(", "),
    })
}

/// Splits off `ldap://` / `ldaps://` (any case): `(is_ldaps, rest)`.
fn scheme_rest(url: &str) -> Option<(bool, &str)> {
    for (scheme, ldaps) in [("ldaps://", true), ("ldap://", false)] {
        if url
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        {
            return Some((ldaps, &url[scheme.len()..]));
        }
    }
    None
}

/// Checks `ldap[s]://host[:port][/]`; returns whether it is ldaps.
fn check_ldap_url(url: &str) -> Result<bool, ComplianceError> {
    let err = |reason| ComplianceError::AdUrl {
        url: url.to_owned(),
        reason,
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("it contains whitespace"));
    }
    let (ldaps, rest) = scheme_rest(url).ok_or_else(|| {
        err("it must start with ldap:// or ldaps:// (e.g. ldaps://dc1.example.test)")
    })?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(err(
            "credentials do not belong in the URL; set the bind name separately",
        ));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(err(
            "give only the server and port; put base DNs in the base DN list",
        ));
    }
    let port = if let Some(bracketed) = rest.strip_prefix('[') {
        let (addr, after) = bracketed
            .split_once(']')
            .ok_or_else(|| err("an IPv6 address in brackets lacks its closing ']'"))?;
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(err("the address in brackets is not an IPv6 address"));
        }
        match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(err("expected ':port' after the IPv6 address")),
            },
        }
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(err(
                "write an IPv6 address in brackets, e.g. ldaps://[2001:db8::10]",
            ));
        }
        if host.is_empty() {
            return Err(err("it names no server"));
        }
        let ok = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !ok || host.starts_with(['-', '.']) {
            return Err(err(
                "the server name may hold only letters, digits, '-', '_' and '.'",
            ));
        }
        port
    };
    if let Some(port) = port {
        let valid =
            port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err(err("the port must be a number from 1 to 65535"));
        }
    }
    Ok(ldaps)
}

/// A PEM bundle of at least one certificate, of a sane size. (Whether the
/// certificates parse is checked where TLS is set up.)
fn check_ca_cert(pem: &str) -> Result<(), ComplianceError> {
    let err = |reason| ComplianceError::CaCert { reason };
    if pem.len() > MAX_CA_CERT_BYTES {
        return Err(err("it is larger than 64 KiB"));
    }
    if !pem.contains("-----BEGIN CERTIFICATE-----") || !pem.contains("-----END CERTIFICATE-----") {
        return Err(err(
            "paste the CA certificate in PEM form (-----BEGIN CERTIFICATE----- ...)",
        ));
    }
    Ok(())
}

/// A DN, a user principal name or `DOMAIN\user`.
fn check_bind_name(name: &str) -> Result<(), ComplianceError> {
    let err = |reason| ComplianceError::BindName {
        name: name.to_owned(),
        reason,
    };
    if name.trim().is_empty() {
        return Err(err("it is empty; give the account to bind as"));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(err("it has surrounding spaces or control characters"));
    }
    if name.contains('=') {
        return Dn::parse(name).map(|_| ());
    }
    let halves = name.split_once('@').or_else(|| name.split_once('\\'));
    match halves {
        Some((user, domain))
            if !user.is_empty()
                && !domain.is_empty()
                && !domain.contains(['@', '\\'])
                && !name.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err(err(
            "write a DN (CN=svc-vigil,OU=Service,DC=example,DC=test), a user principal name \
             (svc-vigil@example.test) or DOMAIN\\user",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn ad(url: &str, start_tls: bool, bind: AdBind) -> AdScope {
        AdScope {
            url: url.into(),
            start_tls,
            bind,
            base_dns: vec![dn("OU=Computers,DC=example,DC=test")],
            filter: None,
            ca_cert: None,
            tls_pin: None,
        }
    }

    fn simple(name: &str) -> AdBind {
        AdBind::Simple {
            bind_dn: name.into(),
        }
    }

    #[test]
    fn ad_scope_validation() {
        let svc = "CN=svc-vigil,OU=Service,DC=example,DC=test";
        let with_filter = |f: &str| AdScope {
            filter: Some(f.into()),
            ..ad("ldaps://dc1.example.test", false, simple(svc))
        };
        let with_bases = |bases: &[&str]| AdScope {
            base_dns: bases.iter().map(|s| dn(s)).collect(),
            ..ad("ldaps://dc1.example.test", false, simple(svc))
        };
        let cases: Vec<(AdScope, Result<(), &str>)> = vec![
            (ad("ldaps://dc1.example.test", false, simple(svc)), Ok(())),
            (ad("LDAPS://dc1.example.test:636/", false, simple(svc)), Ok(())),
            (ad("ldap://dc1.example.test", true, simple("svc-vigil@example.test")), Ok(())),
            (ad("ldap://10.0.0.5:389", true, simple("EXAMPLE\\svc-vigil")), Ok(())),
            (ad("ldaps://[2001:db8::10]:636", false, simple(svc)), Ok(())),
            (ad("ldap://dc1.example.test", false, AdBind::Gssapi), Ok(())),
            (with_filter("(operatingSystem=Windows*)"), Ok(())),
            (
                AdScope {
                    tls_pin: Some(crate::pin::CertPin::of_der(b"dc cert")),
                    ..ad("ldap://dc1.example.test", true, simple(svc))
                },
                Ok(()),
            ),
            (
                AdScope {
                    tls_pin: Some(crate::pin::CertPin::of_der(b"dc cert")),
                    ..ad("ldap://dc1.example.test", false, AdBind::Gssapi)
                },
                Err("a pinned certificate needs TLS: use ldaps:// or StartTLS"),
            ),
            (with_bases(&["OU=Servers,DC=example,DC=test", "OU=Laptops,DC=example,DC=test"]), Ok(())),
            (
                ad("ldap://dc1.example.test", false, simple(svc)),
                Err("a simple bind over plain ldap:// would send the password unencrypted; use ldaps://, turn on StartTLS, or bind with Kerberos (GSSAPI)"),
            ),
            (
                ad("ldaps://dc1.example.test", true, simple(svc)),
                Err("StartTLS applies to ldap:// URLs only; ldaps:// is already encrypted: turn StartTLS off or use ldap://"),
            ),
            (
                ad("http://dc1.example.test", false, AdBind::Gssapi),
                Err("LDAP URL \"http://dc1.example.test\" is not valid: it must start with ldap:// or ldaps:// (e.g. ldaps://dc1.example.test)"),
            ),
            (
                ad("ldaps://dc1.example.test/DC=example,DC=test", false, AdBind::Gssapi),
                Err("LDAP URL \"ldaps://dc1.example.test/DC=example,DC=test\" is not valid: give only the server and port; put base DNs in the base DN list"),
            ),
            (
                ad("ldaps://admin:pw@dc1", false, AdBind::Gssapi),
                Err("LDAP URL \"ldaps://admin:pw@dc1\" is not valid: credentials do not belong in the URL; set the bind name separately"),
            ),
            (
                ad("ldaps://", false, AdBind::Gssapi),
                Err("LDAP URL \"ldaps://\" is not valid: it names no server"),
            ),
            (
                ad("ldaps://dc1:0", false, AdBind::Gssapi),
                Err("LDAP URL \"ldaps://dc1:0\" is not valid: the port must be a number from 1 to 65535"),
            ),
            (
                ad("ldaps://dc1:70000", false, AdBind::Gssapi),
                Err("LDAP URL \"ldaps://dc1:70000\" is not valid: the port must be a number from 1 to 65535"),
            ),
            (
                ad("ldaps://2001:db8::10", false, AdBind::Gssapi),
                Err("LDAP URL \"ldaps://2001:db8::10\" is not valid: write an IPv6 address in brackets, e.g. ldaps://[2001:db8::10]"),
            ),
            (
                ad("ldaps://[2001:db8::zz]", false, AdBind::Gssapi),
                Err("LDAP URL \"ldaps://[2001:db8::zz]\" is not valid: the address in brackets is not an IPv6 address"),
            ),
            (
                ad("ldaps://dc 1", false, AdBind::Gssapi),
                Err("LDAP URL \"ldaps://dc 1\" is not valid: it contains whitespace"),
            ),
            (
                ad("ldaps://dc1", false, simple("")),
                Err("bind name \"\" is not valid: it is empty; give the account to bind as"),
            ),
            (
                ad("ldaps://dc1", false, simple("svc-vigil")),
                Err("bind name \"svc-vigil\" is not valid: write a DN (CN=svc-vigil,OU=Service,DC=example,DC=test), a user principal name (svc-vigil@example.test) or DOMAIN\\user"),
            ),
            (
                ad("ldaps://dc1", false, simple("CN=svc,,DC=test")),
                Err("\"CN=svc,,DC=test\" is not a valid distinguished name: empty RDN (two commas in a row, or a comma at the start or end)"),
            ),
            (
                with_bases(&[]),
                Err("add at least one base DN or OU to search (e.g. OU=Computers,DC=example,DC=test)"),
            ),
            (
                with_bases(&["OU=Servers,DC=example,DC=test", "ou=servers, dc=example,dc=test"]),
                Err("base DN \"ou=servers, dc=example,dc=test\" is listed more than once"),
            ),
            (
                AdScope {
                    ca_cert: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
                    tls_pin: None,
                    ..ad("ldaps://dc1", false, simple(svc))
                },
                Ok(()),
            ),
            (
                AdScope {
                    ca_cert: Some("MIIB".into()),
                    tls_pin: None,
                    ..ad("ldaps://dc1", false, simple(svc))
                },
                Err("the CA certificate is not valid: paste the CA certificate in PEM form (-----BEGIN CERTIFICATE----- ...)"),
            ),
            (
                with_filter("operatingSystem=Windows*"),
                Err("LDAP filter \"operatingSystem=Windows*\" is not valid: it must be enclosed in parentheses, e.g. (operatingSystem=Windows*)"),
            ),
        ];
        for (i, (scope, want)) in cases.iter().enumerate() {
            let got = scope.validate().map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "case {i}: {scope:?}");
        }
    }

    #[test]
    fn ad_connection_changes_table() {
        use AdConnectionField::{Bind, CaCert, TlsPin, Url};
        let svc = "CN=svc-vigil,OU=Service,DC=example,DC=test";
        let base = AdScope {
            ca_cert: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
            tls_pin: None,
            ..ad("ldaps://dc1.example.test", false, simple(svc))
        };
        let with = |f: &dyn Fn(&mut AdScope)| {
            let mut s = base.clone();
            f(&mut s);
            s
        };
        let cases: Vec<(&str, AdScope, Vec<AdConnectionField>)> = vec![
            ("unchanged", base.clone(), vec![]),
            (
                "base DNs, filter and StartTLS are not connection fields",
                with(&|s| {
                    s.base_dns = vec![dn("OU=Servers,DC=example,DC=test")];
                    s.filter = Some("(operatingSystem=Windows*)".into());
                    s.start_tls = true;
                }),
                vec![],
            ),
            (
                "url",
                with(&|s| s.url = "ldaps://evil.example.test".into()),
                vec![Url],
            ),
            (
                "port only",
                with(&|s| s.url = "ldaps://dc1.example.test:1636".into()),
                vec![Url],
            ),
            (
                "url spelling",
                with(&|s| s.url = "LDAPS://dc1.example.test".into()),
                vec![Url],
            ),
            (
                "bind DN",
                with(&|s| s.bind = simple("admin@example.test")),
                vec![Bind],
            ),
            (
                "bind method",
                with(&|s| s.bind = AdBind::Gssapi),
                vec![Bind],
            ),
            (
                "CA certificate removed",
                with(&|s| s.ca_cert = None),
                vec![CaCert],
            ),
            (
                "CA certificate replaced",
                with(&|s| {
                    s.ca_cert = Some(
                        "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into(),
                    )
                }),
                vec![CaCert],
            ),
            (
                "certificate pinned",
                with(&|s| s.tls_pin = Some(crate::pin::CertPin::of_der(b"dc cert"))),
                vec![TlsPin],
            ),
            (
                "all three",
                with(&|s| {
                    s.url = "ldap://10.0.0.66".into();
                    s.bind = simple("EXAMPLE\\admin");
                    s.ca_cert = None;
                }),
                vec![Url, Bind, CaCert],
            ),
        ];
        for (name, new, want) in cases {
            assert_eq!(ad_connection_changes(&base, &new), want, "{name}");
            // The relation is symmetric.
            assert_eq!(
                ad_connection_changes(&new, &base),
                want,
                "{name} (reversed)"
            );
        }
        assert_eq!(check_keep_bind_password(&base, &base.clone()), Ok(()));
        assert_eq!(
            check_keep_bind_password(&base, &with(&|s| s.url = "ldaps://evil".into()))
                .map_err(|e| e.to_string()),
            Err("the AD connection changed (url): enter the bind password again".to_owned())
        );
        assert_eq!(
            check_keep_bind_password(
                &base,
                &with(&|s| {
                    s.url = "ldaps://evil".into();
                    s.ca_cert = None;
                })
            )
            .map_err(|e| e.to_string()),
            Err(
                "the AD connection changed (url, ca_cert): enter the bind password again"
                    .to_owned()
            )
        );
        assert_eq!(
            [Url, Bind, CaCert].map(AdConnectionField::as_str),
            ["url", "bind", "ca_cert"]
        );
    }

    #[test]
    fn ad_search_filter_and_tls() {
        let mut scope = ad("LDAPS://dc1", false, AdBind::Gssapi);
        assert!(scope.is_ldaps());
        assert_eq!(scope.search_filter(), "(objectCategory=computer)");
        scope.filter = Some("(operatingSystem=Windows*)".into());
        assert_eq!(
            scope.search_filter(),
            "(&(objectCategory=computer)(operatingSystem=Windows*))"
        );
        assert!(!ad("ldap://dc1", true, AdBind::Gssapi).is_ldaps());
    }
}
