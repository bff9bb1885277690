//! Contacts and notification rules as the REST API and the web console
//! change them: checking and saving a contact, adding a rule, queueing a
//! test notification, and how much of a contact's address a user sees.
//! Both front ends call these, so their checks and audit records agree.

use crate::app::App;
use crate::audit::Actor;
use crate::http::error::ApiError;
use crate::outbox::destination;
use vigil_notify::{EventKind, Notification, Severity};
use vigil_proto::api::ContactBody;
use vigil_store::{
    now_unix, Account, AccountId, AgentId, Channel, Contact, ContactId, NotificationRule,
    TestSends, UnixTime, TEST_KEY_PREFIX,
};

/// A contact's address as a user may see it: in full for those who may
/// change contacts; for viewers a URL without its path and query, which
/// hold the hook's secret (Slack, Teams, Discord and most webhooks
/// authenticate by the URL alone). E-mail addresses are shown to all.
pub(crate) fn shown_address(c: &Contact, can_write: bool) -> String {
    if can_write || c.channel == Channel::Email {
        c.address.clone()
    } else {
        vigil_notify::destination::redact_url(&c.address)
    }
}

fn channel(text: &str) -> Result<Channel, ApiError> {
    text.parse().map_err(|_| {
        ApiError::Invalid(format!(
            "unknown channel {text:?}: use email, webhook, slack, teams, discord or ntfy"
        ))
    })
}

/// Checks a contact as typed: a known channel, and an address the sender
/// can use for it (the console and the REST API check through here).
pub(crate) fn check(body: &ContactBody) -> Result<Channel, ApiError> {
    let channel = channel(&body.channel)?;
    let probe = Contact {
        id: ContactId::random(),
        account_id: AccountId::random(),
        name: body.name.clone(),
        channel,
        address: body.address.trim().to_string(),
        created_at: 0,
    };
    destination(&probe)
        .validate()
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(channel)
}

/// Creates the contact (`id` `None`) or changes contact `id`, after [`check`].
pub(crate) async fn save_contact(
    app: &App,
    account: AccountId,
    actor: impl Into<Actor>,
    id: Option<ContactId>,
    body: &ContactBody,
) -> Result<Contact, ApiError> {
    let channel = check(body)?;
    let address = body.address.trim();
    if channel != Channel::Email {
        // Every channel but email is a URL the server will POST to.
        crate::netguard::check_url_host(
            &app.cfg.net_policy,
            vigil_core::netpolicy::Destination::Webhook,
            address,
        )
        .await?;
    }
    let saved = match id {
        None => {
            app.store
                .create_contact(account, &body.name, channel, address)
                .await?
        }
        Some(id) => {
            app.store
                .update_contact(account, id, &body.name, channel, address)
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
            match (check(&body(channel, address)), expected) {
                (Ok(c), Ok(e)) => assert_eq!(c, e, "{channel} {address}"),
                (Err(err), Err(e)) => {
                    assert!(err.to_string().contains(e), "{channel} {address}: {err}")
                }
                (got, e) => panic!("{channel} {address}: got {got:?}, expected {e:?}"),
            }
        }
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
