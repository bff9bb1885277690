//! Bad input is `StoreError::Invalid`, never a panic, and stores nothing.

use crate::fixtures::*;
use serde_json::json;
use std::time::Duration;
use vigil_core::{AccountKind, Condition, Plan, TargetState};
use vigil_store::{limits, AlertFilter, Channel, Heartbeat, NewScanResult, PortResult, Role};
use vigil_testdb::TestDb;

backend_tests!(bad_input_is_invalid);

async fn bad_input_is_invalid(db: &TestDb) {
    let s = &db.store;
    let t = now();
    let long_name = "n".repeat(limits::MAX_NAME_CHARS + 1);
    let org = account(s, "Acme").await;
    let (ag, _) = agent(s, &org, "web").await;
    let user = s
        .create_user(org.id, "ok@acme.example", "password1", Role::Owner)
        .await
        .unwrap();
    let contact = s
        .create_contact(org.id, "Ops", Channel::Email, "ops@acme.example")
        .await
        .unwrap();

    // Names.
    for name in ["", "   ", "\t\n", "bell\u{7}", long_name.as_str()] {
        assert_invalid(s.create_account(name, AccountKind::Member).await);
        assert_invalid(s.create_api_token(org.id, user.id, name).await);
        assert_invalid(
            s.create_enrollment(org.id, name, Plan::Community, Duration::from_secs(60))
                .await,
        );
        assert_invalid(
            s.create_contact(org.id, name, Channel::Email, "x@acme.example")
                .await,
        );
        assert_invalid(
            s.update_contact(org.id, contact.id, name, Channel::Email, "x@acme.example")
                .await,
        );
    }
    // Non-ASCII names at the limit are fine.
    s.create_account(&"é".repeat(limits::MAX_NAME_CHARS), AccountKind::Member)
        .await
        .unwrap();

    // Emails and passwords.
    let long_email = format!("{}@acme.example", "a".repeat(250));
    for email in [
        "",
        "plain",
        "a@b",
        "a b@acme.example",
        "@acme.example",
        "a@acme..example",
        long_email.as_str(),
    ] {
        assert_invalid(
            s.create_user(org.id, email, "password1", Role::Viewer)
                .await,
        );
        assert_invalid(s.create_contact(org.id, "x", Channel::Email, email).await);
    }
    let long_password = "p".repeat(limits::MAX_PASSWORD_LEN + 1);
    for password in ["", "short", long_password.as_str()] {
        assert_invalid(
            s.create_user(org.id, "new@acme.example", password, Role::Viewer)
                .await,
        );
        assert_invalid(s.set_password(org.id, user.id, password).await);
    }
    assert_eq!(s.users(org.id).await.unwrap(), vec![user.clone()]);

    // URLs.
    let long_url = format!("https://hooks.example/{}", "x".repeat(limits::MAX_URL_LEN));
    for url in [
        "",
        "hooks.example",
        "ftp://hooks.example",
        "https://",
        "https://a b",
        long_url.as_str(),
    ] {
        assert_invalid(
            s.create_contact(org.id, "hook", Channel::Webhook, url)
                .await,
        );
    }
    assert_eq!(s.contacts(org.id).await.unwrap(), vec![contact.clone()]);

    // Enrollment lifetime.
    assert_invalid(
        s.create_enrollment(org.id, "x", Plan::Community, Duration::ZERO)
            .await,
    );
    assert_invalid(
        s.create_enrollment(
            org.id,
            "x",
            Plan::Community,
            limits::MAX_ENROLLMENT_TTL + Duration::from_secs(1),
        )
        .await,
    );

    // Heartbeat fields.
    let long_field = "v".repeat(limits::MAX_AGENT_FIELD_LEN + 1);
    for bad in [
        Heartbeat {
            now: t,
            version: Some(&long_field),
            ..Heartbeat::default()
        },
        Heartbeat {
            now: t,
            hostname: Some(""),
            ..Heartbeat::default()
        },
        Heartbeat {
            now: t,
            os: Some("linux\n"),
            ..Heartbeat::default()
        },
        Heartbeat {
            now: t,
            public_addr: Some("1.2.3.4\u{0}"),
            ..Heartbeat::default()
        },
    ] {
        assert_invalid(s.record_heartbeat(org.id, ag.id, &bad).await);
    }
    assert_eq!(s.agent(org.id, ag.id).await.unwrap(), ag);

    // Scan results.
    let ports = [PortResult {
        port: 22,
        state: vigil_core::PortState::Open,
        details: None,
    }];
    let good = NewScanResult {
        upload_id: "u",
        target: "nas.example",
        started_at: t - 1,
        finished_at: t,
        ports: &ports,
        addr: None,
        task_id: None,
        probed: None,
    };
    let long_upload = "u".repeat(limits::MAX_UPLOAD_ID_LEN + 1);
    let long_target = "t".repeat(limits::MAX_TARGET_LEN + 1);
    let long_addr = "1".repeat(limits::MAX_ADDR_LEN + 1);
    let long_task_id = "t".repeat(limits::MAX_TASK_ID_LEN + 1);
    for bad in [
        NewScanResult {
            upload_id: "",
            ..good
        },
        NewScanResult {
            upload_id: "has space",
            ..good
        },
        NewScanResult {
            upload_id: &long_upload,
            ..good
        },
        NewScanResult { target: "", ..good },
        NewScanResult {
            target: "two words",
            ..good
        },
        NewScanResult {
            target: &long_target,
            ..good
        },
        NewScanResult {
            started_at: t + 1,
            ..good
        },
        NewScanResult {
            started_at: -5,
            finished_at: -1,
            ..good
        },
        NewScanResult {
            addr: Some(""),
            ..good
        },
        NewScanResult {
            addr: Some("192.0.2.1 "),
            ..good
        },
        NewScanResult {
            addr: Some(&long_addr),
            ..good
        },
        NewScanResult {
            task_id: Some(""),
            ..good
        },
        NewScanResult {
            task_id: Some("task\n1"),
            ..good
        },
        NewScanResult {
            task_id: Some("tâche"),
            ..good
        },
        NewScanResult {
            task_id: Some(&long_task_id),
            ..good
        },
    ] {
        assert_invalid(s.ingest_result(org.id, ag.id, &bad).await);
    }
    let too_many: Vec<PortResult> = (0..=limits::MAX_PORTS_PER_RESULT)
        .map(|i| PortResult {
            port: (i % 65_536) as u16,
            state: vigil_core::PortState::Closed,
            details: None,
        })
        .collect();
    assert_invalid(
        s.ingest_result(
            org.id,
            ag.id,
            &NewScanResult {
                ports: &too_many,
                ..good
            },
        )
        .await,
    );
    assert_invalid(s.results(org.id, ag.id, 0).await);
    assert_invalid(s.results(org.id, ag.id, limits::MAX_LIST_LIMIT + 1).await);
    assert!(s.results(org.id, ag.id, 10).await.unwrap().is_empty());

    // Targets of states and alerts.
    for target in ["", " x", &long_target] {
        assert_invalid(s.target_state(org.id, ag.id, target).await);
        assert_invalid(
            s.put_target_state(org.id, ag.id, target, &TargetState::default())
                .await,
        );
        assert_invalid(
            s.open_alert(
                org.id,
                ag.id,
                target,
                Condition::target_unreachable(),
                false,
                t,
            )
            .await,
        );
        assert_invalid(
            s.open_alert_for(org.id, ag.id, target, Condition::target_unreachable())
                .await,
        );
    }
    assert!(s
        .alerts(org.id, &AlertFilter::default())
        .await
        .unwrap()
        .is_empty());

    // Rules.
    let many: Vec<String> = (0..=limits::MAX_EVENTS_PER_RULE)
        .map(|i| format!("e{i}"))
        .collect();
    let long_event = "e".repeat(limits::MAX_EVENT_KIND_LEN + 1);
    assert_invalid(s.create_rule::<&str>(org.id, contact.id, None, &[]).await);
    assert_invalid(s.create_rule(org.id, contact.id, None, &many).await);
    for event in ["", "Alert", "a b", long_event.as_str()] {
        assert_invalid(s.create_rule(org.id, contact.id, None, &[event]).await);
        assert_invalid(s.rules_for(org.id, ag.id, event).await);
    }
    assert!(s.rules(org.id).await.unwrap().is_empty());

    // Outbox.
    let long_key = "k".repeat(limits::MAX_DEDUPE_KEY_LEN + 1);
    for key in ["", "tab\tkey", long_key.as_str()] {
        assert_invalid(s.enqueue(org.id, contact.id, key, &json!({}), t).await);
    }
    let big = json!({ "blob": "x".repeat(limits::MAX_PAYLOAD_LEN) });
    assert_invalid(s.enqueue(org.id, contact.id, "big", &big, t).await);
    assert_invalid(s.claim_due(t, 0, Duration::from_secs(1)).await);
    assert_invalid(
        s.claim_due(t, limits::MAX_LIST_LIMIT + 1, Duration::from_secs(1))
            .await,
    );
    assert_eq!(s.pending_count().await.unwrap(), 0);

    // Policies rejected by vigil-core's rules.
    let mut no_targets = policy();
    no_targets.targets.clear();
    assert_invalid(s.put_policy(org.id, ag.id, &no_targets).await);
    let mut bad_host = policy();
    bad_host.targets = vec![vigil_core::PolicyTarget::Host("Not A Host".into())];
    assert_invalid(s.put_policy(org.id, ag.id, &bad_host).await);
    assert_eq!(s.policy(org.id, ag.id).await.unwrap(), None);

    // Oversized and odd text never reaches the database as an error.
    let huge = "x".repeat(1 << 20);
    assert_invalid(s.create_account(&huge, AccountKind::Member).await);
    assert_eq!(s.verify_login(&huge, &huge).await.unwrap(), None);
    assert_eq!(s.authenticate_token(&huge).await.unwrap(), None);
    assert_eq!(s.authenticate_agent(ag.id, &huge).await.unwrap(), None);
    assert_not_found(s.redeem_enrollment(&huge, t).await);
    // Error messages of failed deliveries are cleaned and cut, not rejected.
    assert!(s
        .enqueue(org.id, contact.id, "e", &json!({}), t)
        .await
        .unwrap());
    let item = s
        .claim_due(t, 1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    s.mark_failed(item.id, &format!("{}\u{0}", "é".repeat(5000)), Some(t))
        .await
        .unwrap();
    let again = s
        .claim_due(t, 1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    let err = again.last_error.unwrap();
    assert_eq!(err.chars().count(), limits::MAX_ERROR_CHARS);
    assert!(!err.contains('\0'));
}
