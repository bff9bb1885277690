//! Reading the computer objects of an Active Directory scope (LDAP IO).
//!
//! One connection per assessment: LDAPS, or ldap:// upgraded with StartTLS,
//! with the certificate checked against the system's roots plus the
//! scope's own CA, or pinned (see [`super::ad_tls`]); a simple bind with the stored password; then, for each
//! base DN, a subtree search for `(objectCategory=computer)` ANDed with the
//! scope's filter, in pages of [`PAGE_SIZE`] (AD returns at most 1,000
//! entries per page and truncates unpaged searches there). Referrals to
//! other partitions or domains are skipped, not chased. Each entry is
//! mapped by the pure [`ad_computer_from_entry`]; an entry without a usable
//! objectGUID is skipped and logged, not fatal.
//!
//! A GSSAPI (Kerberos) bind uses the ticket the server process already
//! has (its credential cache, `KRB5CCNAME`; `kinit` or a keytab-fed cache
//! renewer keep it fresh) and the URL's host name for the service principal
//! `ldap/<host>`, so the URL must name the DC, not its address. Over
//! ldap:// Kerberos also encrypts the connection. It needs the system's
//! GSSAPI library at build time (ldap3's `gssapi` feature), so it is the
//! cargo feature `gssapi` of this crate (and of the `vigil` binary); a
//! build without it refuses GSSAPI scopes with a message that says so.

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, StdStream};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_core::compliance::{
    ad_computer_from_entry, AdBind, AdComputer, AdScope, COMPUTER_ATTRIBUTES,
};
use vigil_core::netpolicy::{Destination, NetPolicy};

use super::ad_tls::{self, Mode, Presented, Trust};

/// Entries per page: AD's own limit (MaxPageSize), so no page is cut short.
const PAGE_SIZE: i32 = 1000;
/// Connecting, TLS and the bind.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Each LDAP operation (one page of a search counts as one).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the directory could not be read. Messages name what to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdError {
    #[error("cancelled")]
    Cancelled,
    #[error("no bind password is stored for the Active Directory scope; save the scope with its password")]
    NoPassword,
    #[error(
        "Kerberos (GSSAPI) binds are not available in this build of Vigil; \
         use a simple bind over LDAPS or StartTLS"
    )]
    GssapiUnavailable,
    #[error(
        "Kerberos (GSSAPI) binds use this server's own Kerberos ticket, and the operator \
         has not allowed them for this account (vigil server --gssapi-account); \
         use a simple bind over LDAPS or StartTLS"
    )]
    GssapiNotAllowed,
    #[error("the CA certificate of the Active Directory scope cannot be used: {0}")]
    CaCert(String),
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the directory refused the bind as {who}: {reason}")]
    Bind { who: String, reason: String },
    #[error("searching {base} failed: {reason}")]
    Search { base: String, reason: String },
    #[error(
        "cannot connect to {url}: its certificate is not trusted ({problem}); it has SHA-256 \
         fingerprint {fingerprint}. If that is your domain controller's certificate, pin it \
         (tls_pin in the scope; the console's scope page and `vigil ctl compliance scope \
         certificate` show it for you to confirm), or give the DC a certificate whose \
         subjectAltName holds the URL's host name"
    )]
    Untrusted {
        url: String,
        problem: String,
        fingerprint: String,
    },
    #[error("the scope's directory URL uses no TLS (ldap:// without StartTLS): there is no certificate to check")]
    NoTls,
}

/// Reads every computer object of the scope, in directory order, base DN
/// after base DN (a computer under two base DNs is listed twice; the join
/// counts it once).
pub(crate) async fn read_computers(
    scope: &AdScope,
    password: Option<&str>,
    policy: &NetPolicy,
    cancel: &CancellationToken,
) -> Result<Vec<AdComputer>, AdError> {
    tokio::select! {
        r = read(scope, password, policy) => r,
        _ = cancel.cancelled() => Err(AdError::Cancelled),
    }
}

async fn read(
    scope: &AdScope,
    password: Option<&str>,
    policy: &NetPolicy,
) -> Result<Vec<AdComputer>, AdError> {
    let password = match &scope.bind {
        AdBind::Simple { .. } => Some(password.ok_or(AdError::NoPassword)?),
        AdBind::Gssapi if !GSSAPI_AVAILABLE => return Err(AdError::GssapiUnavailable),
        AdBind::Gssapi => None,
    };
    let (mut ldap, _) = connect(scope, policy, Mode::Enforce).await?;
    match (&scope.bind, password) {
        (AdBind::Simple { bind_dn }, Some(password)) => ldap
            .with_timeout(CONNECT_TIMEOUT)
            .simple_bind(bind_dn, password)
            .await
            .and_then(|r| r.success())
            .map_err(|e| AdError::Bind {
                who: bind_dn.clone(),
                reason: describe(&e),
            })?,
        _ => gssapi_bind(&mut ldap, &scope.url).await?,
    };

    let mut computers = Vec::new();
    for base in &scope.base_dns {
        let base = base.to_string();
        search_base(&mut ldap, &base, &scope.search_filter(), &mut computers)
            .await
            .map_err(|e| AdError::Search {
                base: base.clone(),
                reason: describe(&e),
            })?;
    }
    // The answer is complete; a failed unbind changes nothing.
    let _ = ldap.unbind().await;
    Ok(computers)
}

/// Connects to the scope's directory, through the network policy (on the
/// address connected to); ldap3 runs LDAP and TLS over that connection,
/// TLS trusting what [`ad_tls`] says. A certificate refused is named by
/// its fingerprint in the error.
async fn connect(
    scope: &AdScope,
    policy: &NetPolicy,
    mode: Mode,
) -> Result<(Ldap, Trust), AdError> {
    let connect_error = |reason: String| AdError::Connect {
        url: scope.url.clone(),
        reason,
    };
    let tcp = crate::netguard::connect(
        policy,
        Destination::Ldap,
        url_host(&scope.url),
        url_port(&scope.url),
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(|e| connect_error(e.to_string()))?
    .into_std()
    .map_err(|e| connect_error(e.to_string()))?;
    let trust = ad_tls::trust(roots(scope.ca_cert.as_deref())?, scope.tls_pin, mode)?;
    let settings = LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_starttls(scope.start_tls)
        .set_config(trust.config.clone())
        .set_std_stream(StdStream::Tcp(tcp));
    let (conn, ldap) = match LdapConnAsync::with_settings(settings, &scope.url).await {
        Ok(connected) => connected,
        Err(e) => {
            return Err(match trust.presented() {
                Some(Presented {
                    pin,
                    problem: Some(problem),
                }) => AdError::Untrusted {
                    url: scope.url.clone(),
                    problem,
                    fingerprint: pin.to_string(),
                },
                _ => connect_error(describe(&e)),
            })
        }
    };
    ldap3::drive!(conn);
    Ok((ldap, trust))
}

/// The certificate the scope's directory presents, and whether this scope
/// trusts it (the handshake completes either way; nothing else is sent).
pub(crate) async fn inspect_certificate(
    scope: &AdScope,
    policy: &NetPolicy,
) -> Result<Presented, AdError> {
    if !scope.is_ldaps() && !scope.start_tls {
        return Err(AdError::NoTls);
    }
    let (mut ldap, trust) = connect(scope, policy, Mode::Inspect).await?;
    let _ = ldap.unbind().await;
    trust.presented().ok_or_else(|| AdError::Connect {
        url: scope.url.clone(),
        reason: "the directory presented no certificate".into(),
    })
}

/// Whether this build can bind with GSSAPI.
pub(crate) const GSSAPI_AVAILABLE: bool = cfg!(feature = "gssapi");

#[cfg(feature = "gssapi")]
async fn gssapi_bind(ldap: &mut Ldap, url: &str) -> Result<ldap3::LdapResult, AdError> {
    let host = url_host(url);
    ldap.with_timeout(CONNECT_TIMEOUT)
        .sasl_gssapi_bind(host)
        .await
        .and_then(|r| r.success())
        .map_err(|e| AdError::Bind {
            who: format!("the server's Kerberos ticket (service ldap/{host})"),
            reason: describe(&e),
        })
}

#[cfg(not(feature = "gssapi"))]
async fn gssapi_bind(_: &mut Ldap, _: &str) -> Result<ldap3::LdapResult, AdError> {
    Err(AdError::GssapiUnavailable)
}

/// The port of a validated `ldap[s]://host[:port]` URL (389 or 636 when
/// none is written).
fn url_port(url: &str) -> u16 {
    let (scheme, rest) = url.split_once("://").unwrap_or(("ldap", url));
    let rest = rest.trim_end_matches('/');
    let after_host = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, p)| p),
        None => rest.split_once(':').map_or("", |(_, p)| p),
    };
    match after_host.trim_start_matches(':').parse() {
        Ok(port) => port,
        Err(_) if scheme.eq_ignore_ascii_case("ldaps") => 636,
        Err(_) => 389,
    }
}

/// The host part of a validated `ldap[s]://host[:port]` URL.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.trim_end_matches('/');
    match rest.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
        None => rest.split_once(':').map_or(rest, |(h, _)| h),
    }
}

async fn search_base(
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    out: &mut Vec<AdComputer>,
) -> Result<(), LdapError> {
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(PAGE_SIZE)),
    ];
    let mut search = ldap
        .with_timeout(OPERATION_TIMEOUT)
        .streaming_search_with(
            adapters,
            base,
            Scope::Subtree,
            filter,
            COMPUTER_ATTRIBUTES.to_vec(),
        )
        .await?;
    let mut skipped = 0usize;
    while let Some(entry) = search.next().await? {
        let entry = SearchEntry::construct(entry);
        match ad_computer_from_entry(&entry.dn, &entry.attrs, &entry.bin_attrs) {
            Ok(c) => out.push(c),
            Err(e) => {
                skipped += 1;
                tracing::warn!(error = %e, "skipping a computer object");
            }
        }
    }
    search.finish().await.success()?;
    if skipped > 0 {
        tracing::warn!(
            base,
            skipped,
            "computer objects without a usable objectGUID"
        );
    }
    Ok(())
}

/// The system's roots plus the scope's CA certificate(s).
fn roots(ca_pem: Option<&str>) -> Result<rustls::RootCertStore, AdError> {
    let mut roots = rustls::RootCertStore::empty();
    // A system without a CA bundle is fine when the scope brings its CA.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = ca_pem {
        let certs = parse_ca_pem(pem)?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| AdError::CaCert(e.to_string()))?;
        }
    }
    Ok(roots)
}

/// The certificates of a PEM bundle; an error unless there is at least one
/// and each parses.
pub(crate) fn parse_ca_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, AdError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| AdError::CaCert(format!("not a PEM certificate ({e})")))?;
    if certs.is_empty() {
        return Err(AdError::CaCert("no certificate found in the PEM".into()));
    }
    for cert in &certs {
        webpki_check(cert)?;
    }
    Ok(certs)
}

/// Rejects DER that is not a certificate before it reaches the root store
/// (which would otherwise fail only at the first connection).
fn webpki_check(cert: &CertificateDer<'_>) -> Result<(), AdError> {
    let mut store = rustls::RootCertStore::empty();
    store
        .add(cert.clone())
        .map_err(|e| AdError::CaCert(format!("not a usable CA certificate ({e})")))
}

/// An LDAP failure in words: result codes get their name and the server's
/// diagnostic text (AD puts the real reason there, e.g. `data 52e` for a
/// wrong password).
fn describe(e: &LdapError) -> String {
    match e {
        LdapError::LdapResult { result } => {
            let name = match result.rc {
                32 => "no such object (check the base DN)",
                49 => "invalid credentials (check the bind name and password)",
                50 => "insufficient access rights",
                8 => "stronger authentication required",
                10 => "referral (the base DN belongs to another domain or partition)",
                53 => "the server is unwilling to perform the operation",
                _ => "LDAP error",
            };
            let text = result.text.trim();
            if text.is_empty() {
                format!("{name} (result code {})", result.rc)
            } else {
                format!("{name} (result code {}): {text}", result.rc)
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_pem_must_hold_a_certificate() {
        let generated = rcgen::generate_simple_self_signed(vec!["dc1.example.test".into()])
            .expect("certificate");
        let pem = generated.cert.pem();
        assert_eq!(parse_ca_pem(&pem).expect("valid PEM").len(), 1);
        let two = format!("{pem}\n{pem}");
        assert_eq!(parse_ca_pem(&two).expect("bundle").len(), 2);
        for bad in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert!(
                matches!(parse_ca_pem(bad), Err(AdError::CaCert(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ldap_failures_are_described() {
        let result = |rc, text: &str| LdapError::LdapResult {
            result: ldap3::LdapResult {
                rc,
                matched: String::new(),
                text: text.into(),
                refs: vec![],
                ctrls: vec![],
            },
        };
        assert_eq!(
            describe(&result(49, "80090308: LdapErr: DSID-0C09042A, data 52e")),
            "invalid credentials (check the bind name and password) (result code 49): \
             80090308: LdapErr: DSID-0C09042A, data 52e"
        );
        assert_eq!(
            describe(&result(32, "")),
            "no such object (check the base DN) (result code 32)"
        );
    }

    #[test]
    fn the_spn_host_comes_from_the_url() {
        for (url, host) in [
            ("ldap://dc1.example.test", "dc1.example.test"),
            ("LDAPS://dc1.example.test:636/", "dc1.example.test"),
            ("ldap://[2001:db8::10]:389", "2001:db8::10"),
            ("ldap://dc1", "dc1"),
        ] {
            assert_eq!(url_host(url), host, "{url}");
        }
        for (url, port) in [
            ("ldap://dc1.example.test", 389),
            ("LDAPS://dc1.example.test/", 636),
            ("ldaps://dc1.example.test:3269", 3269),
            ("ldap://[2001:db8::10]:3268", 3268),
            ("ldaps://[2001:db8::10]", 636),
        ] {
            assert_eq!(url_port(url), port, "{url}");
        }
    }

    #[tokio::test]
    async fn gssapi_and_missing_passwords_fail_with_a_reason() {
        let mut scope = AdScope {
            url: "ldaps://127.0.0.1:1".into(),
            start_tls: false,
            bind: AdBind::Gssapi,
            base_dns: vec!["DC=example,DC=test".parse().expect("dn")],
            filter: None,
            ca_cert: None,
            tls_pin: None,
        };
        let cancel = CancellationToken::new();
        let mut loopback = NetPolicy::default();
        loopback
            .add(vigil_core::netpolicy::Verdict::Allow, "ldap=loopback")
            .expect("rule");
        if !GSSAPI_AVAILABLE {
            assert!(matches!(
                read_computers(&scope, Some("pw"), &loopback, &cancel).await,
                Err(AdError::GssapiUnavailable)
            ));
        }
        scope.bind = AdBind::Simple {
            bind_dn: "svc@example.test".into(),
        };
        assert!(matches!(
            read_computers(&scope, None, &loopback, &cancel).await,
            Err(AdError::NoPassword)
        ));
        // Nothing listens on port 1 of the loopback: a connection error
        // naming the URL, not a hang.
        let err = read_computers(&scope, Some("pw"), &loopback, &cancel)
            .await
            .expect_err("no directory there");
        assert!(
            err.to_string()
                .starts_with("cannot connect to ldaps://127.0.0.1:1"),
            "{err}"
        );
    }
}
