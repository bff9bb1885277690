//! What a notification rule does after an alert's first notice while
//! nobody acknowledges it: **reminders** (the notice again every N minutes,
//! at least [`MIN_REMIND_MINUTES`]) and **escalation** (after N minutes,
//! the next contacts too; several steps). Both stop when the alert is
//! acknowledged or over. Pure: the server asks what is due at an instant.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Shortest reminder interval: more often is noise, not urgency.
pub const MIN_REMIND_MINUTES: u32 = 5;
/// Longest reminder interval or escalation delay: a week.
pub const MAX_MINUTES: u32 = 7 * 24 * 60;
/// Most escalation steps of a rule.
pub const MAX_STEPS: usize = 5;
/// Most contacts one step notifies.
pub const MAX_STEP_CONTACTS: usize = 10;

/// One escalation step: when the alert is still unacknowledged
/// `after_minutes` after it was raised, notify `contacts` (their ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    pub after_minutes: u32,
    pub contacts: Vec<String>,
}

/// Why reminders or escalation steps were refused; the message says what to write.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FollowupError {
    #[error(
        "remind_every_minutes {0} is out of range: remind every {MIN_REMIND_MINUTES} to {MAX_MINUTES} minutes"
    )]
    RemindEvery(u32),
    #[error(
        "escalation step {step}: after_minutes {minutes} is out of range: use 1 to {MAX_MINUTES}"
    )]
    After { step: usize, minutes: u32 },
    #[error(
        "escalation step {step} comes after {minutes} min, not later than the step before it: \
         list the steps from the first to the last"
    )]
    NotLater { step: usize, minutes: u32 },
    #[error("escalation step {step} needs 1 to {MAX_STEP_CONTACTS} contacts")]
    Contacts { step: usize },
    #[error("a rule escalates in at most {MAX_STEPS} steps")]
    TooManySteps,
}

/// Checks a rule's reminder interval and escalation steps.
pub fn validate(
    remind_every_minutes: Option<u32>,
    steps: &[EscalationStep],
) -> Result<(), FollowupError> {
    if let Some(m) = remind_every_minutes {
        if !(MIN_REMIND_MINUTES..=MAX_MINUTES).contains(&m) {
            return Err(FollowupError::RemindEvery(m));
        }
    }
    if steps.len() > MAX_STEPS {
        return Err(FollowupError::TooManySteps);
    }
    let mut before = 0;
    for (i, s) in steps.iter().enumerate() {
        let step = i + 1;
        if !(1..=MAX_MINUTES).contains(&s.after_minutes) {
            return Err(FollowupError::After {
                step,
                minutes: s.after_minutes,
            });
        }
        if s.after_minutes <= before {
            return Err(FollowupError::NotLater {
                step,
                minutes: s.after_minutes,
            });
        }
        if s.contacts.is_empty() || s.contacts.len() > MAX_STEP_CONTACTS {
            return Err(FollowupError::Contacts { step });
        }
        before = s.after_minutes;
    }
    Ok(())
}

/// The number of the reminder due at `now` for an alert raised at
/// `raised` (1 for the first, `every` minutes after it was raised), if any.
/// Only the latest counts: a server that was down does not send the
/// reminders it missed.
pub fn reminder_due(raised: i64, now: i64, every_minutes: u32) -> Option<u64> {
    let every = i64::from(every_minutes.max(1)) * 60;
    let n = (now - raised).div_euclid(every);
    u64::try_from(n).ok().filter(|n| *n >= 1)
}

/// The escalation steps (their index) due at `now` for an alert raised at `raised`.
pub fn steps_due(raised: i64, now: i64, steps: &[EscalationStep]) -> Vec<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| now - raised >= i64::from(s.after_minutes) * 60)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(after: u32, contacts: &[&str]) -> EscalationStep {
        EscalationStep {
            after_minutes: after,
            contacts: contacts.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn reminders_count_whole_intervals_since_the_alert() {
        assert_eq!(reminder_due(0, 299, 5), None);
        assert_eq!(reminder_due(0, 300, 5), Some(1));
        assert_eq!(reminder_due(0, 599, 5), Some(1));
        assert_eq!(reminder_due(0, 3_000, 5), Some(10));
        // A clock before the alert (another replica's skew): nothing.
        assert_eq!(reminder_due(100, 0, 5), None);
    }

    #[test]
    fn escalation_steps_fall_due_in_turn() {
        let steps = [step(10, &["b"]), step(30, &["c", "d"])];
        assert!(steps_due(0, 599, &steps).is_empty());
        assert_eq!(steps_due(0, 600, &steps), [0]);
        assert_eq!(steps_due(0, 1_800, &steps), [0, 1]);
    }

    #[test]
    fn bad_rules_say_what_to_write() {
        assert_eq!(validate(Some(4), &[]), Err(FollowupError::RemindEvery(4)));
        assert!(validate(Some(5), &[step(10, &["b"])]).is_ok());
        assert_eq!(
            validate(None, &[step(10, &["b"]), step(10, &["c"])]),
            Err(FollowupError::NotLater {
                step: 2,
                minutes: 10
            })
        );
        assert_eq!(
            validate(None, &[step(0, &["b"])]),
            Err(FollowupError::After {
                step: 1,
                minutes: 0
            })
        );
        assert_eq!(
            validate(None, &[step(5, &[])]),
            Err(FollowupError::Contacts { step: 1 })
        );
        let many: Vec<EscalationStep> = (1..=6).map(|i| step(i, &["x"])).collect();
        assert_eq!(validate(None, &many), Err(FollowupError::TooManySteps));
    }
}
