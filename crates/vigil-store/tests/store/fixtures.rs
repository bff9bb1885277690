//! Shared setup for the scenarios.

use std::time::Duration;
use vigil_core::{AccountKind, Plan, PolicyTarget, PortList, ScanInterval, SecurityPolicy};
use vigil_store::{Account, Agent, Store, StoreError};

pub fn now() -> i64 {
    vigil_store::now_unix()
}

pub async fn account(store: &Store, name: &str) -> Account {
    store
        .create_account(name, AccountKind::Organization)
        .await
        .expect("create account")
}

/// Enrolls an agent on the Extended plan; returns it with its credential.
pub async fn agent(store: &Store, account: &Account, name: &str) -> (Agent, String) {
    let token = store
        .create_enrollment(account.id, name, Plan::Extended, Duration::from_secs(3600))
        .await
        .expect("create enrollment");
    store
        .redeem_enrollment(&token, now())
        .await
        .expect("redeem enrollment")
}

/// A valid policy (authorized 22,443; monitored 443; agent host; hourly).
pub fn policy() -> SecurityPolicy {
    SecurityPolicy {
        enabled: true,
        authorized: PortList::parse("22,443").expect("ports"),
        monitored: PortList::parse("443").expect("ports"),
        targets: vec![PolicyTarget::AgentHost],
        interval: ScanInterval::default(),
        include_interfaces: Vec::new(),
        unreviewed_devices: Default::default(),
        device_kinds: Vec::new(),
        process_change_alerts: false,
    }
}

#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    match r {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Invalid(msg)) => msg,
        other => panic!("expected Invalid, got {other:?}"),
    }
}
