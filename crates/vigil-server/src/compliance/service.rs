//! Compliance as the REST API and the web console change it: the checks
//! of a scope before it is saved, starting an assessment, and the audit
//! records of both. Both front ends call these, so they answer alike.

use crate::app::App;
use crate::audit::Actor;
use crate::compliance::ad::AdError;
use crate::compliance::StartError;
use crate::http::error::ApiError;
use std::sync::Arc;
use vigil_core::compliance::ComplianceScope;
use vigil_core::netpolicy::Destination;
use vigil_proto::api::AdCertificateView;
use vigil_store::{AccountId, AssessmentId, AssessmentTrigger};

/// The checks of a scope before it is saved: the domain's rules, GSSAPI
/// support in this build and the operator's leave for this account, the AD
/// CA certificate, and the operator's network policy for the ranges and
/// the directory's host.
pub(crate) async fn check_scope(
    app: &App,
    account: AccountId,
    scope: &ComplianceScope,
) -> Result<(), ApiError> {
    scope
        .validate()
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let gssapi = scope
        .ad
        .as_ref()
        .is_some_and(|ad| ad.bind == vigil_core::compliance::AdBind::Gssapi);
    if gssapi && !app.cfg.gssapi_allowed(account) {
        return Err(ApiError::Forbidden(
            crate::compliance::ad::AdError::GssapiNotAllowed.to_string(),
        ));
    }
    if gssapi && !crate::compliance::ad::GSSAPI_AVAILABLE {
        return Err(ApiError::Invalid(
            crate::compliance::ad::AdError::GssapiUnavailable.to_string(),
        ));
    }
    if let Some(pem) = scope.ad.as_ref().and_then(|ad| ad.ca_cert.as_deref()) {
        crate::compliance::ad::parse_ca_pem(pem).map_err(|e| ApiError::Invalid(e.to_string()))?;
    }
    let policy = &app.cfg.net_policy;
    for range in scope.ip.ranges.iter().map(|r| r.addr_range()) {
        policy.check_range(Destination::Compliance, range.start(), range.end())?;
    }
    if let Some(ad) = &scope.ad {
        crate::netguard::check_url_host(policy, Destination::Ldap, &ad.url).await?;
    }
    Ok(())
}

/// The TLS certificate the directory of the account's saved AD scope
/// presents, and whether the scope trusts it (a handshake, no bind).
pub(crate) async fn check_certificate(
    app: &App,
    account: AccountId,
) -> Result<AdCertificateView, ApiError> {
    let (scope, _) = app
        .store
        .compliance_scope(account)
        .await?
        .ok_or_else(|| ApiError::Conflict("no compliance scope saved yet".into()))?;
    let ad = scope
        .ad
        .ok_or_else(|| ApiError::Conflict("the saved scope has no Active Directory part".into()))?;
    // A refusal by the network policy is named (403) before connecting;
    // the connection checks again on the address it connects to.
    crate::netguard::check_url_host(&app.cfg.net_policy, Destination::Ldap, &ad.url).await?;
    let presented = crate::compliance::ad::inspect_certificate(&ad, &app.cfg.net_policy)
        .await
        .map_err(|e| match e {
            AdError::NoTls => ApiError::Invalid(e.to_string()),
            e => ApiError::Upstream(e.to_string()),
        })?;
    Ok(AdCertificateView {
        url: ad.url,
        fingerprint: presented.pin.to_string(),
        trusted: presented.problem.is_none(),
        pinned: ad.tls_pin == Some(presented.pin),
        problem: presented.problem,
    })
}

/// Starts an assessment of the account's saved scope in the background
/// (cancelling the one that runs) and records who started it.
pub(crate) async fn start(
    app: &Arc<App>,
    account: AccountId,
    actor: impl Into<Actor>,
    trigger: AssessmentTrigger,
) -> Result<AssessmentId, ApiError> {
    let id = app
        .start_assessment(account, trigger)
        .await
        .map_err(|e| match e {
            StartError::NoScope => ApiError::Conflict(e.to_string()),
            StartError::Empty => ApiError::Invalid(e.to_string()),
            StartError::Store(e) => e.into(),
        })?;
    let target = id.to_string();
    crate::audit::record(app, account, actor, "assessment.start", Some(&target), None).await;
    Ok(id)
}

/// Records a saved scope (never the password, only whether one was given).
pub(crate) async fn audit_scope(
    app: &App,
    account: AccountId,
    actor: impl Into<Actor>,
    scope: &ComplianceScope,
    password_given: bool,
) {
    let mut detail = serde_json::to_value(scope).unwrap_or_default();
    if let Some(map) = detail.as_object_mut() {
        map.insert("ad_password_given".into(), password_given.into());
    }
    crate::audit::record(app, account, actor, "scope.update", None, Some(detail)).await;
}
