//! A location's inventory as the REST API and the console show it: every
//! device reviewed ([`Reviewer`]) under the agent's policy and how it
//! arrived (the location's first sweep, its open *new device* alerts) by
//! [`super::review_of`], the rule the sweep's alerts use too; filtered by
//! a [`DeviceFilter`], with the count each filter would list
//! ([`Location`]).

use crate::app::App;
use std::collections::HashSet;
use vigil_core::lan::{device_target, Arrival, Device, DeviceFilter, Review};
use vigil_core::{Condition, SecurityPolicy};
use vigil_store::{AccountId, AgentId, StoreError, UnixTime};

/// What reviewing a location's devices takes: its policy, and what says
/// which devices are new.
pub(crate) struct Reviewer {
    /// `None`: the agent has no security-scan policy yet.
    pub policy: Option<SecurityPolicy>,
    /// When the first sweep was stored: devices seen then are not new.
    baseline: Option<UnixTime>,
    /// The alert targets of devices with an open *new device* alert.
    alerted: HashSet<String>,
}

impl Reviewer {
    /// The agent's (of `account`; another's is not found).
    pub(crate) async fn load(
        app: &App,
        account: AccountId,
        agent: AgentId,
    ) -> Result<Reviewer, StoreError> {
        let policy = app.store.policy(account, agent).await?;
        let baseline = app.store.network_baseline(account, agent).await?;
        let alerted = app
            .store
            .open_alert_targets(account, agent, Condition::new_device())
            .await?
            .into_iter()
            .collect();
        Ok(Reviewer {
            policy,
            baseline,
            alerted,
        })
    }

    /// How `device` arrived.
    fn arrival(&self, device: &Device) -> Arrival {
        Arrival {
            baseline: self.baseline,
            alerted: device_target(device).is_some_and(|t| self.alerted.contains(&t)),
        }
    }

    /// `device` under the location's policy.
    pub(crate) fn review(&self, device: &Device) -> Review {
        super::review_of(device, self.policy.as_ref(), self.arrival(device))
    }
}

/// An agent's devices and their [`Reviewer`].
pub(crate) struct Location {
    pub devices: Vec<Device>,
    pub reviewer: Reviewer,
}

/// How many devices each filter of a list would show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub all: usize,
    pub present: usize,
    pub gone: usize,
    pub new: usize,
    pub unreviewed: usize,
    pub unauthorized: usize,
}

impl Location {
    /// The agent's (of `account`; another's is not found).
    pub(crate) async fn load(
        app: &App,
        account: AccountId,
        agent: AgentId,
    ) -> Result<Location, StoreError> {
        let devices = app.store.devices(account, agent).await?;
        let reviewer = Reviewer::load(app, account, agent).await?;
        Ok(Location { devices, reviewer })
    }

    /// The devices `filter` lists, by address, each with its review.
    pub(crate) fn shown(&self, filter: &DeviceFilter) -> Vec<(&Device, Review)> {
        self.devices
            .iter()
            .map(|d| (d, self.reviewer.review(d)))
            .filter(|(d, r)| filter.matches(d, r))
            .collect()
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut c = Counts {
            all: self.devices.len(),
            ..Counts::default()
        };
        for d in &self.devices {
            let r = self.reviewer.review(d);
            if d.present {
                c.present += 1;
            } else {
                c.gone += 1;
            }
            c.new += usize::from(r.new);
            c.unreviewed += usize::from(!d.approved);
            c.unauthorized += usize::from(d.present && !r.unauthorized.is_empty());
        }
        c
    }
}
