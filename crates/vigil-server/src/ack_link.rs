//! Acknowledge links: a notification about an open alert carries a link
//! that acknowledges it without logging in — that one action, for that
//! alert, named after the contact it was sent to, until it expires.
//!
//! The token is `<account>.<alert>.<contact>.<expires>.<mac>`: the ids and
//! the expiry in the clear (nothing secret), and `HMAC-SHA256(console key,
//! purpose, account, alert, contact, expires)` in hex, so only this server (or a replica
//! sharing its database) makes them and none can be altered. A link works
//! once: acknowledging is a one-time change of the alert, and a second use
//! answers that it was acknowledged already. Opening the link (GET) only
//! shows a confirmation page — mail scanners and chat previews fetch links
//! — and the button on it (POST) acknowledges.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use vigil_store::{AccountId, AlertId, ContactId, UnixTime};

/// How long a link works after the notification is queued: a day, enough
/// for an escalation chain, short enough that an old e-mail is harmless.
pub(crate) const VALID_SECS: i64 = 24 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// What a valid link acknowledges, and for whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckClaim {
    pub account: AccountId,
    pub alert: AlertId,
    pub contact: ContactId,
    pub expires: UnixTime,
}

/// Why a link does not work; the text is shown to whoever opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AckLinkError {
    #[error("this acknowledge link is not valid (it was cut or changed); acknowledge the alert in the console")]
    Invalid,
    #[error("this acknowledge link has expired; acknowledge the alert in the console")]
    Expired,
}

fn mac(key: &[u8], parts: [&str; 4]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in std::iter::once("vigil ack link v1").chain(parts) {
        mac.update(part.as_bytes());
        mac.update(b"\0");
    }
    mac
}

/// The token of a link acknowledging `alert` (of `account`) for `contact` until `expires`.
pub(crate) fn token(
    key: &[u8],
    account: AccountId,
    alert: AlertId,
    contact: ContactId,
    expires: UnixTime,
) -> String {
    let parts = [
        account.to_string(),
        alert.to_string(),
        contact.to_string(),
        expires.to_string(),
    ];
    let tag = mac(key, parts.each_ref().map(String::as_str))
        .finalize()
        .into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}.{hex}", parts.join("."))
}

/// The claim of a token made by [`token`] with `key`, if it still holds at `now`.
pub(crate) fn verify(key: &[u8], token: &str, now: UnixTime) -> Result<AckClaim, AckLinkError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [acc, a, c, e, tag] = parts[..] else {
        return Err(AckLinkError::Invalid);
    };
    let bytes = crate::console::csrf::decode_hex(tag).ok_or(AckLinkError::Invalid)?;
    // Constant-time comparison.
    mac(key, [acc, a, c, e])
        .verify_slice(&bytes)
        .map_err(|_| AckLinkError::Invalid)?;
    let claim = AckClaim {
        account: acc.parse().map_err(|_| AckLinkError::Invalid)?,
        alert: a.parse().map_err(|_| AckLinkError::Invalid)?,
        contact: c.parse().map_err(|_| AckLinkError::Invalid)?,
        expires: e.parse().map_err(|_| AckLinkError::Invalid)?,
    };
    if now >= claim.expires {
        return Err(AckLinkError::Expired);
    }
    Ok(claim)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_holds_until_it_expires() {
        let account = AccountId::random();
        let (alert, contact) = (AlertId::random(), ContactId::random());
        let t = token(KEY, account, alert, contact, 1_000);
        let claim = verify(KEY, &t, 999).expect("valid");
        assert_eq!(
            (claim.account, claim.alert, claim.contact, claim.expires),
            (account, alert, contact, 1_000)
        );
        assert_eq!(verify(KEY, &t, 1_000), Err(AckLinkError::Expired));
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let (alert, contact) = (AlertId::random(), ContactId::random());
        let t = token(KEY, AccountId::random(), alert, contact, 1_000);
        // Another alert, a later expiry, another key, cut, garbage.
        let other = t.replacen(&alert.to_string(), &AlertId::random().to_string(), 1);
        let later = t.replacen(".1000.", ".2000.", 1);
        for bad in [
            other.as_str(),
            later.as_str(),
            &t[..t.len() - 2],
            "",
            "a.b.c.d",
            "a.b.c.d.e",
            "a.b.c.d.e.f",
            "v.w.x.y.ZZ",
        ] {
            assert_eq!(verify(KEY, bad, 0), Err(AckLinkError::Invalid), "{bad}");
        }
        assert_eq!(
            verify(b"another key of thirty-two bytes!", &t, 0),
            Err(AckLinkError::Invalid)
        );
    }
}
