//! Contacts and notification rules as the REST API and the web console
//! change them: checking and saving a contact, adding a rule, queueing a
//! test notification, and how much of a contact's address a user sees.
//! Both front ends call these, so their checks and audit records agree.

use crate::app::App;
use crate::audit::Actor;
use crate::http::error::ApiError;
use vigil_notify::{Destination, DestinationError, EventKind, Notification, Severity};
use vigil_proto::api::ContactBody;
use vigil_store::{
    now_unix, Account, AccountId, AgentId, Channel, Contact, ContactId, NotificationRule,
    TestSends, UnixTime, TEST_KEY_PREFIX,
};

/// A contact's address as a user may see it: in full for those who may
/// change contacts; for viewers a URL without its path and query, which
/// hold the hook's secret (Slack, Teams, Discord and most webhooks
/// authenticate by the URL alone). E-mail addresses are shown to all;
/// secret fields (tokens, keys) to nobody.
pub(crate) fn shown_address(c: &Contact, can_write: bool) -> String {
    c.destination()
        .map(|d| d.shown_address(can_write))
        .unwrap_or_default()
}

fn invalid(e: DestinationError) -> ApiError {
    ApiError::Invalid(e.to_string())
}

/// The destination a contact body describes, unchecked: `address` is the
/// channel's first field, `fields` the others.
fn destination_of(body: &ContactBody) -> Result<Destination, ApiError> {
    let channel: Channel = body.channel.parse().map_err(invalid)?;
    let mut d = Destination::new(channel, &body.fields);
    let primary = channel.spec().primary().name;
    let address = body.address.trim();
    if !address.is_empty() {
        if body
            .fields
            .get(primary)
            .is_some_and(|v| !v.trim().is_empty() && v.trim() != address)
        {
            return Err(ApiError::Invalid(format!(
                "address and fields.{primary} differ: give one of them"
            )));
        }
        d.insert(primary, address);
    }
    Ok(d)
}

/// Checks a contact as typed: a known channel, and fields the sender can
/// use for it ([`save_contact`] does this after taking over kept secrets).
#[cfg(test)]
pub(crate) fn check(body: &ContactBody) -> Result<Destination, ApiError> {
    let d = destination_of(body)?;
    d.validate().map_err(invalid)?;
    Ok(d)
}

/// Creates the contact (`id` `None`) or changes contact `id`, after [`check`].
/// A change that leaves a secret out keeps the stored one (secrets are
/// never shown, so a form cannot send them back).
pub(crate) async fn save_contact(
    app: &App,
    account: AccountId,
    actor: impl Into<Actor>,
    id: Option<ContactId>,
    body: &ContactBody,
) -> Result<Contact, ApiError> {
    let mut dest = destination_of(body)?;
    if let Some(id) = id {
        if let Ok(stored) = app.store.contact(account, id).await?.destination() {
            dest.keep_secrets_of(&stored);
        }
    }
    dest.validate().map_err(invalid)?;
    let channel = dest.channel();
    // Every URL given is one the server will send to.
    for f in channel.fields().iter().filter(|f| f.kind.is_url()) {
        if let Some(url) = dest.fields().get(f.name) {
            crate::netguard::check_url_host(
                &app.cfg.net_policy,
                vigil_core::netpolicy::Destination::Webhook,
                url,
            )
            .await?;
        }
    }
    let address = dest.to_address();
    let saved = match id {
        None => {
            app.store
                .create_contact(account, &body.name, channel, &address)
                .await?
        }
        Some(id) => {
            app.store
                .update_contact(account, id, &body.name, channel, &address)
                .await?
        }
    };
    let action = if id.is_some() {
        "contact.update"
    } else {
        "contact.create"
    };
    // The address may hold a hook's secret: the log names the channel only.
    let detail = serde_json::json!({"id": saved.id.to_string(), "channel": channel.as_str()});
    crate::audit::record(app, account, actor, action, Some(&saved.name), Some(detail)).await;
    Ok(saved)
}

/// Test notifications an account may queue per [`TEST_WINDOW_SECS`]: a
/// few to check a contact and fix it, not a way to make the server send
/// (or hammer a webhook) on a tenant's behalf.
pub(crate) const TEST_SENDS_PER_WINDOW: u64 = 5;
/// The sliding window of [`TEST_SENDS_PER_WINDOW`], in seconds.
pub(crate) const TEST_WINDOW_SECS: i64 = 60;

/// Seconds until an account that queued `recent` test notifications in the
/// last [`TEST_WINDOW_SECS`] may queue another; `None`: now.
fn test_send_wait(recent: TestSends, now: UnixTime) -> Option<u64> {
    if recent.count < TEST_SENDS_PER_WINDOW {
        return None;
    }
    let frees_at = recent
        .oldest
        .unwrap_or(now)
        .saturating_add(TEST_WINDOW_SECS);
    Some(
        u64::try_from(frees_at.saturating_sub(now))
            .unwrap_or(0)
            .max(1),
    )
}

/// Queues a test notification to contact `id` of `account`, asked for by
/// `sender` (an email address), through the outbox like a real one: each
/// call queues a new one, at most [`TEST_SENDS_PER_WINDOW`] per account a
/// minute (counted in the database, so across replicas). The console's
/// button and the REST API share it.
pub(crate) async fn send_test(
    app: &App,
    account: &Account,
    sender: &str,
    id: ContactId,
) -> Result<(), ApiError> {
    let contact = app.store.contact(account.id, id).await?;
    let now = now_unix();
    let recent = app
        .store
        .test_sends_since(account.id, now - TEST_WINDOW_SECS)
        .await?;
    if let Some(retry_after) = test_send_wait(recent, now) {
        return Err(ApiError::RateLimited {
            message: format!(
                "too many test notifications: at most {TEST_SENDS_PER_WINDOW} a minute per \
                 account; try again in {retry_after} s"
            ),
            retry_after,
        });
    }
    let notification = Notification {
        event: EventKind::Test,
        severity: Severity::Info,
        account: account.name.clone(),
        agent_name: "-".into(),
        agent_id: "-".into(),
        target: None,
        port: None,
        occurred_at: now.into(),
        title: format!("Test notification for {}", contact.name),
        details: format!("Sent from Vigil by {sender} to check this contact."),
        dedupe_key: format!("test:{}", contact.id),
        console_url: app.cfg.console_url.clone(),
        delivery_id: None,
        ack_url: None,
    };
    let payload = serde_json::to_value(&notification)
        .map_err(|e| ApiError::Internal(format!("cannot encode notification: {e}")))?;
    let key = format!("{TEST_KEY_PREFIX}{}:{}", contact.id, uuid::Uuid::new_v4());
    app.store
        .enqueue(account.id, contact.id, &key, &payload, now)
        .await?;
    app.outbox_wake.notify_one();
    Ok(())
}

/// The event kinds a rule may list: every kind but the test message.
pub(crate) fn rule_event_kinds() -> impl Iterator<Item = EventKind> {
    EventKind::ALL.into_iter().filter(|k| *k != EventKind::Test)
}

/// The event kinds a rule may name; `*` stands for all of them.
pub(crate) fn event_kinds<S: AsRef<str>>(requested: &[S]) -> Result<Vec<String>, ApiError> {
    if requested.is_empty() {
        return Err(ApiError::Invalid(
            "a rule needs at least one event kind (or \"*\" for all)".into(),
        ));
    }
    let mut out = Vec::new();
    for e in requested.iter().map(AsRef::as_ref) {
        if e == "*" {
            out.extend(rule_event_kinds().map(|k| k.as_str().to_string()));
        } else if EventKind::ALL.iter().any(|k| k.as_str() == e) {
            out.push(e.to_string());
        } else {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(ApiError::Invalid(format!(
                "unknown event kind {e:?}: use \"*\" or some of {}",
                known.join(", ")
            )));
        }
    }
    Ok(out)
}

/// What a rule does while an alert stays unacknowledged.
#[derive(Debug, Clone, Default)]
pub(crate) struct Followups {
    pub remind_every_minutes: Option<u32>,
    pub escalation: Vec<vigil_core::followup::EscalationStep>,
}

impl Followups {
    fn is_empty(&self) -> bool {
        self.remind_every_minutes.is_none() && self.escalation.is_empty()
    }

    /// Checks the numbers before anything is stored (the contacts are
    /// checked when they are).
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        vigil_core::followup::validate(self.remind_every_minutes, &self.escalation)
            .map_err(|e| ApiError::Invalid(e.to_string()))
    }
}

/// Gives a rule just made by [`add_rule`] its reminders and escalation; a
/// refused one (an escalation contact not the account's) takes the rule
/// back out, so nothing half-made stays.
pub(crate) async fn set_followups(
    app: &App,
    account: AccountId,
    rule: NotificationRule,
    followups: &Followups,
) -> Result<NotificationRule, ApiError> {
    if followups.is_empty() {
        return Ok(rule);
    }
    match app
        .store
        .set_rule_followups(
            account,
            rule.id,
            followups.remind_every_minutes,
            &followups.escalation,
        )
        .await
    {
        Ok(r) => Ok(r),
        Err(e) => {
            app.store.delete_rule(account, rule.id).await?;
            Err(e.into())
        }
    }
}

/// Sends `events` ([`event_kinds`]) of `agent` (`None`: every agent) to
/// `contact`; both must be the account's.
pub(crate) async fn add_rule<S: AsRef<str>>(
    app: &App,
    account: AccountId,
    actor: impl Into<Actor>,
    contact: ContactId,
    agent: Option<AgentId>,
    events: &[S],
) -> Result<NotificationRule, ApiError> {
    let events = event_kinds(events)?;
    // Foreign or missing contact/agent: NotFound.
    app.store.contact(account, contact).await?;
    if let Some(agent) = agent {
        app.store.agent(account, agent).await?;
    }
    let rule = app
        .store
        .create_rule(account, contact, agent, &events)
        .await?;
    let detail = serde_json::json!({"contact_id": contact.to_string(),
        "agent_id": agent.map(|a| a.to_string()), "events": events});
    crate::audit::record(
        app,
        account,
        actor,
        "rule.create",
        Some(&rule.id.to_string()),
        Some(detail),
    )
    .await;
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_expands_to_every_real_event() {
        let all = event_kinds(&["*"]).unwrap();
        assert_eq!(all.len(), EventKind::ALL.len() - 1);
        assert_eq!(all.len(), rule_event_kinds().count());
        assert!(!all.contains(&"test".to_string()));
        assert!(event_kinds::<&str>(&[]).is_err());
        let err = event_kinds(&["port_open"]).unwrap_err();
        assert!(err.to_string().contains("unknown event kind \"port_open\""));
    }

    #[test]
    fn contacts_are_checked_as_the_sender_uses_them() {
        let body = |channel: &str, address: &str| ContactBody {
            name: "Ops".into(),
            channel: channel.into(),
            address: address.into(),
            fields: Default::default(),
        };
        for (channel, address, expected) in [
            ("email", "ops@acme.example", Ok(Channel::Email)),
            ("email", " ops@acme.example ", Ok(Channel::Email)),
            ("webhook", "https://hooks.example/x", Ok(Channel::Webhook)),
            ("ntfy", "https://ntfy.example/topic", Ok(Channel::Ntfy)),
            ("email", "ops-at-acme", Err("invalid email address")),
            ("slack", "ftp://hooks.example/x", Err("invalid slack URL")),
            ("ntfy", "https://ntfy.example/", Err("no topic")),
            (
                "pager",
                "ops@acme.example",
                Err("unknown channel \"pager\""),
            ),
        ] {
            match (
                check(&body(channel, address)).map(|d| d.channel()),
                expected,
            ) {
                (Ok(c), Ok(e)) => assert_eq!(c, e, "{channel} {address}"),
                (Err(err), Err(e)) => {
                    assert!(err.to_string().contains(e), "{channel} {address}: {err}")
                }
                (got, e) => panic!("{channel} {address}: got {got:?}, expected {e:?}"),
            }
        }
    }

    #[test]
    fn contacts_with_several_fields() {
        let mut body = ContactBody {
            name: "Chat".into(),
            channel: "telegram".into(),
            address: "-1001234".into(),
            fields: [("bot_token".to_string(), "123:abc".to_string())].into(),
        };
        let d = check(&body).unwrap();
        assert_eq!(d.get("chat_id"), Some("-1001234"));
        assert_eq!(d.get("bot_token"), Some("123:abc"));
        body.fields.insert("chat_id".into(), "-1009999".into());
        assert!(check(&body).unwrap_err().to_string().contains("differ"));
        body.address.clear();
        assert_eq!(check(&body).unwrap().get("chat_id"), Some("-1009999"));
        body.fields.remove("bot_token");
        let err = check(&body).unwrap_err().to_string();
        assert!(
            err.contains("telegram needs Bot token (bot_token)"),
            "{err}"
        );
        body.fields.insert("colour".into(), "red".into());
        let err = check(&body).unwrap_err().to_string();
        assert!(err.contains("no field \"colour\""), "{err}");
    }

    #[test]
    fn test_sends_wait_for_the_oldest_to_leave_the_window() {
        let now = 1_000;
        for (count, oldest, want) in [
            (0, None, None),
            (4, Some(now - 10), None),
            (5, Some(now - 10), Some(50)),
            (5, Some(now - 60), Some(1)),
            (9, Some(now), Some(60)),
            (5, None, Some(60)),
        ] {
            assert_eq!(
                test_send_wait(TestSends { count, oldest }, now),
                want,
                "{count} since {oldest:?}"
            );
        }
    }
}
