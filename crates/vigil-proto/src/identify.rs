//! The identify protocol an agent answers on its communication port.
//!
//! A compliance sweep connects and sends one request line; the agent
//! answers with one JSON line ([`IdentifyReply`]) and closes the
//! connection. A line protocol rather than HTTP: a sweep asks thousands of
//! endpoints, and the exchange must stay a couple of packets each way.
//! Replies are bounded by [`MAX_REPLY_BYTES`]; anything else on the port
//! (another service) fails to parse and is reported as "no agent".
//!
//! # Version 2: a challenge–response
//!
//! Any host can claim to be an agent: the agent and server ids are not
//! secret (they travel in every reply). So the request carries a fresh
//! random [`Nonce`] and the reply a MAC over it:
//!
//! ```text
//! → VIGIL-IDENTIFY 2 <nonce: 64 hex digits>\n
//! ← {"agent_id":"…","server_id":"…","version":"…","mac":"<64 hex digits>"}\n
//! ```
//!
//! `mac` is HMAC-SHA256 under the agent's [`IdentifyKey`] of
//! [`MAC_LABEL`], the nonce, the agent id and the server id (each
//! length-prefixed, see [`IdentifyKey::mac`]). The key is known to the
//! agent and to the server that enrolled it only, so a valid MAC proves that
//! the agent named in the reply took part in *this* exchange: a reply
//! captured earlier carries the MAC of another nonce and does not verify.
//! What it does not prove is *where* that agent runs: a host that can reach
//! a real agent could pass the challenge on to it while the sweep waits.
//!
//! Only the agent's own server can check the MAC. A reply naming another
//! server is taken at its word (and shown as unverified); one naming the
//! asking server with no MAC or a wrong one is a forgery.
//!
//! Version 1 (`VIGIL-IDENTIFY 1\n`, [`REQUEST_V1`]) had no nonce and its
//! reply no MAC. Agents still answer it (with no MAC), so servers from
//! before version 2 keep working; servers speaking version 2 never send it
//! and treat a reply without a MAC that claims them as forged.

use crate::ProtoError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Default TCP port agents listen on.
pub const DEFAULT_PORT: u16 = 47_760;
/// The request of version 1, without a challenge (see the module docs).
pub const REQUEST_V1: &[u8] = b"VIGIL-IDENTIFY 1\n";
/// A version 2 request is this, the nonce in hex and a newline.
const REQUEST_V2_PREFIX: &str = "VIGIL-IDENTIFY 2 ";
/// Random bytes in a nonce.
pub const NONCE_BYTES: usize = 32;
/// Longest request line (a version 2 request, newline included).
pub const MAX_REQUEST_BYTES: usize = REQUEST_V2_PREFIX.len() + 2 * NONCE_BYTES + 1;
/// Longest reply line accepted.
pub const MAX_REPLY_BYTES: usize = 1024;
/// The first input of every MAC: a MAC made for anything else with the
/// same key can never pass for an identify reply.
pub const MAC_LABEL: &[u8] = b"vigil identify v2 reply";
/// The prefix of agent credentials (`vga_` + base64url of 32 random bytes,
/// as `vigil-store` issues them).
const AGENT_CREDENTIAL_PREFIX: &str = "vga_";

/// A challenge: random bytes the asking side chooses for one exchange.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce([u8; NONCE_BYTES]);

impl Nonce {
    /// A nonce of these bytes; the caller draws them from a CSPRNG, fresh
    /// for every exchange.
    pub fn from_bytes(bytes: [u8; NONCE_BYTES]) -> Self {
        Nonce(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; NONCE_BYTES] {
        &self.0
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", hex(&self.0))
    }
}

/// What the asking side sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Version 1: no challenge (servers before version 2).
    V1,
    /// Version 2: answer with a MAC over this nonce.
    V2(Nonce),
}

impl Request {
    /// The request line, newline-terminated.
    pub fn to_line(&self) -> Vec<u8> {
        match self {
            Request::V1 => REQUEST_V1.to_vec(),
            Request::V2(nonce) => format!("{REQUEST_V2_PREFIX}{}\n", hex(&nonce.0)).into_bytes(),
        }
    }

    /// Parses a request line (with or without its newline); anything else
    /// on the port is an error (and gets no answer).
    pub fn parse(line: &[u8]) -> Result<Request, ProtoError> {
        let bad = |why: &str| ProtoError::Identify(format!("not an identify request: {why}"));
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.len() + 1 > MAX_REQUEST_BYTES {
            return Err(bad("too long"));
        }
        if line == &REQUEST_V1[..REQUEST_V1.len() - 1] {
            return Ok(Request::V1);
        }
        let text = std::str::from_utf8(line).map_err(|_| bad("not text"))?;
        let nonce = text
            .strip_prefix(REQUEST_V2_PREFIX)
            .ok_or_else(|| bad("unknown version"))?;
        let bytes =
            unhex::<NONCE_BYTES>(nonce).ok_or_else(|| bad("the nonce is not 64 hex digits"))?;
        Ok(Request::V2(Nonce(bytes)))
    }
}

/// The secret an agent and its server share for identify MACs: SHA-256 of
/// the 32 random bytes of the agent's credential.
///
/// Why this: the server keeps exactly this digest (as hex) to authenticate
/// the agent's API calls, and never the credential itself; the agent holds
/// the credential and can compute it. No new secret to issue, store or
/// rotate — a re-enrolled or moved agent gets a new credential and with it a
/// new key — and the credential itself never leaves the agent. The key is
/// as secret as the agent table: whoever can read that can forge identify
/// replies (and already sees every result).
#[derive(Clone, PartialEq, Eq)]
pub struct IdentifyKey([u8; 32]);

impl IdentifyKey {
    /// The agent's side: the key of its credential (`vga_…`); `None` if
    /// the credential is not in the format the server issues (no reply of
    /// this agent then verifies).
    pub fn from_credential(credential: &str) -> Option<Self> {
        let body = credential.strip_prefix(AGENT_CREDENTIAL_PREFIX)?;
        let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
        (raw.len() == 32).then(|| IdentifyKey(Sha256::digest(&raw).into()))
    }

    /// The server's side: the key from the stored credential digest.
    pub fn from_credential_digest(digest: [u8; 32]) -> Self {
        IdentifyKey(digest)
    }

    /// The same, from the digest as the store keeps it (64 hex digits).
    pub fn from_credential_digest_hex(digest: &str) -> Option<Self> {
        unhex::<32>(digest).map(IdentifyKey)
    }

    /// HMAC-SHA256 of [`MAC_LABEL`], `nonce`, `agent_id` and `server_id`,
    /// each after its length (4 bytes, big-endian), so that no two
    /// different replies feed the MAC the same bytes.
    pub fn mac(&self, nonce: &Nonce, agent_id: &str, server_id: &str) -> [u8; 32] {
        self.hmac(nonce, agent_id, server_id)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `reply` carries the valid MAC of its agent and server ids for
    /// `nonce` (compared in constant time). A reply without a MAC never
    /// verifies.
    pub fn verify(&self, nonce: &Nonce, reply: &IdentifyReply) -> bool {
        let Some(mac) = reply.mac.as_deref().and_then(unhex::<32>) else {
            return false;
        };
        self.hmac(nonce, &reply.agent_id, &reply.server_id)
            .verify_slice(&mac)
            .is_ok()
    }

    fn hmac(&self, nonce: &Nonce, agent_id: &str, server_id: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [
            MAC_LABEL,
            &nonce.0[..],
            agent_id.as_bytes(),
            server_id.as_bytes(),
        ] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            mac.update(&len.to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

impl fmt::Debug for IdentifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentifyKey(…)")
    }
}

/// Who this agent is and which server manages it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyReply {
    pub agent_id: String,
    /// The managing server's ID; empty if the agent is not enrolled.
    pub server_id: String,
    pub version: String,
    /// Hex HMAC-SHA256 over the request's nonce (version 2, see
    /// [`IdentifyKey::mac`]); absent in answers to version 1 and in
    /// replies of agents without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The machine's host name, so that a compliance sweep can name the
    /// endpoint (not covered by the MAC: a name is shown, never trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl IdentifyReply {
    /// The reply line, newline-terminated.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Parses what an endpoint answered (one line, at most
    /// [`MAX_REPLY_BYTES`]). A MAC, if any, is not checked here: see
    /// [`IdentifyKey::verify`].
    pub fn parse(reply: &[u8]) -> Result<Self, ProtoError> {
        if reply.len() > MAX_REPLY_BYTES {
            return Err(ProtoError::Identify(format!(
                "{} bytes, more than {MAX_REPLY_BYTES}",
                reply.len()
            )));
        }
        let line = reply.split(|&b| b == b'\n').next().unwrap_or_default();
        let parsed: IdentifyReply = serde_json::from_slice(line)
            .map_err(|e| ProtoError::Identify(format!("not an agent reply: {e}")))?;
        if parsed.agent_id.is_empty() {
            return Err(ProtoError::Identify("empty agent id".into()));
        }
        Ok(parsed)
    }
}

/// What an agent answers with: its ids, its version and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responder {
    pub agent_id: String,
    pub server_id: String,
    pub version: String,
    /// `None` when the credential is not one the server issued: the agent
    /// answers, but nothing it says can be verified.
    pub key: Option<IdentifyKey>,
    /// The host name to report, if any.
    pub hostname: Option<String>,
}

impl Responder {
    /// An agent's responder; the key comes from its credential.
    pub fn new(agent_id: &str, server_id: &str, version: &str, credential: &str) -> Self {
        Responder {
            agent_id: agent_id.to_string(),
            server_id: server_id.to_string(),
            version: version.to_string(),
            key: IdentifyKey::from_credential(credential),
            hostname: None,
        }
    }

    /// This responder, reporting `hostname` (an empty one is left out).
    pub fn with_hostname(self, hostname: &str) -> Self {
        let hostname = hostname.trim();
        Responder {
            hostname: (!hostname.is_empty()).then(|| hostname.to_string()),
            ..self
        }
    }

    /// The reply to `request`: with the MAC of its nonce for version 2.
    pub fn answer(&self, request: &Request) -> IdentifyReply {
        let mac = match (request, &self.key) {
            (Request::V2(nonce), Some(key)) => {
                Some(hex(&key.mac(nonce, &self.agent_id, &self.server_id)))
            }
            _ => None,
        };
        IdentifyReply {
            agent_id: self.agent_id.clone(),
            server_id: self.server_id.clone(),
            version: self.version.clone(),
            mac,
            hostname: self.hostname.clone(),
        }
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `2 * N` hex digits (either case) as bytes.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credential as the server issues them, and its key.
    const CREDENTIAL: &str = "vga_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn key() -> IdentifyKey {
        IdentifyKey::from_credential(CREDENTIAL).expect("a well-formed credential")
    }

    fn nonce(n: u8) -> Nonce {
        Nonce::from_bytes([n; NONCE_BYTES])
    }

    fn agent() -> Responder {
        Responder::new("agent-1", "server-1", "0.1.0", CREDENTIAL)
    }

    #[test]
    fn round_trip_and_garbage() {
        let r = IdentifyReply {
            agent_id: "a".into(),
            server_id: "s".into(),
            version: "0.1.0".into(),
            mac: Some("00".repeat(32)),
            hostname: Some("web01".into()),
        };
        assert_eq!(IdentifyReply::parse(&r.to_line()), Ok(r));
        for bad in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"",
            b"{\"agent_id\":\"\",\"server_id\":\"\",\"version\":\"\"}\n",
            &[b'{'; 2000][..],
        ] {
            assert!(IdentifyReply::parse(bad).is_err());
        }
    }

    #[test]
    fn requests_round_trip_and_others_are_refused() {
        let v2 = Request::V2(nonce(0xab));
        let line = v2.to_line();
        assert_eq!(line.len(), MAX_REQUEST_BYTES);
        assert!(line.starts_with(b"VIGIL-IDENTIFY 2 abab"), "{line:?}");
        assert_eq!(Request::parse(&line), Ok(v2));
        assert_eq!(Request::parse(&line[..line.len() - 1]), Ok(v2));
        assert_eq!(Request::parse(REQUEST_V1), Ok(Request::V1));
        assert_eq!(Request::V1.to_line(), REQUEST_V1);
        let upper = format!("VIGIL-IDENTIFY 2 {}\n", "AB".repeat(32));
        assert_eq!(Request::parse(upper.as_bytes()), Ok(v2));
        for bad in [
            &b"GET / HTTP/1.0\r\n"[..],
            b"",
            b"VIGIL-IDENTIFY 3\n",
            b"VIGIL-IDENTIFY 2\n",
            b"VIGIL-IDENTIFY 2 abcd\n",
            format!("VIGIL-IDENTIFY 2 {}\n", "zz".repeat(32)).as_bytes(),
            format!("VIGIL-IDENTIFY 2 +{}\n", "a".repeat(63)).as_bytes(),
            format!("VIGIL-IDENTIFY 2 {}\n", "ab".repeat(33)).as_bytes(),
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_key_is_the_digest_the_server_stores() {
        // The store keeps hex SHA-256 of the credential's 32 random bytes.
        let raw: Vec<u8> = (0u8..32).collect();
        let stored: String = hex(&Sha256::digest(&raw));
        assert_eq!(
            IdentifyKey::from_credential_digest_hex(&stored),
            Some(key())
        );
        assert_eq!(
            IdentifyKey::from_credential_digest_hex(&stored.to_uppercase()),
            Some(key())
        );
        for bad in [
            "",
            "vga_unused",
            "vga_AAEC",
            "vgl_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        ] {
            assert_eq!(IdentifyKey::from_credential(bad), None, "{bad}");
        }
        assert_eq!(IdentifyKey::from_credential_digest_hex("abc"), None);
        assert_eq!(format!("{:?}", key()), "IdentifyKey(…)");
    }

    #[test]
    fn macs_verify_only_for_their_nonce_key_and_ids() {
        let right = agent().answer(&Request::V2(nonce(1)));
        assert!(key().verify(&nonce(1), &right));
        let ours = key();
        let other_key = IdentifyKey::from_credential_digest([7; 32]);
        let reply = |f: &dyn Fn(&mut IdentifyReply)| {
            let mut r = right.clone();
            f(&mut r);
            r
        };
        // (case, key, nonce of the exchange, reply, verifies)
        let cases: Vec<(&str, &IdentifyKey, Nonce, IdentifyReply, bool)> = vec![
            ("the exchange itself", &ours, nonce(1), right.clone(), true),
            (
                "a newer version string changes nothing",
                &ours,
                nonce(1),
                reply(&|r| r.version = "9.9.9".into()),
                true,
            ),
            (
                "MAC in upper case",
                &ours,
                nonce(1),
                reply(&|r| r.mac = r.mac.as_ref().map(|m| m.to_uppercase())),
                true,
            ),
            (
                "replayed for another nonce",
                &ours,
                nonce(2),
                right.clone(),
                false,
            ),
            (
                "another agent's key",
                &other_key,
                nonce(1),
                right.clone(),
                false,
            ),
            (
                "another agent id",
                &ours,
                nonce(1),
                reply(&|r| r.agent_id = "agent-2".into()),
                false,
            ),
            (
                "another server id",
                &ours,
                nonce(1),
                reply(&|r| r.server_id = "server-2".into()),
                false,
            ),
            (
                "ids shifted between fields",
                &ours,
                nonce(1),
                reply(&|r| {
                    r.agent_id = "agent-1server-1".into();
                    r.server_id = String::new();
                }),
                false,
            ),
            (
                "old format: no MAC",
                &ours,
                nonce(1),
                reply(&|r| r.mac = None),
                false,
            ),
            (
                "MAC cut short",
                &ours,
                nonce(1),
                reply(&|r| r.mac = r.mac.as_ref().map(|m| m[..62].to_string())),
                false,
            ),
            (
                "MAC not hex",
                &ours,
                nonce(1),
                reply(&|r| r.mac = Some("zz".repeat(32))),
                false,
            ),
            (
                "MAC of zeros",
                &ours,
                nonce(1),
                reply(&|r| r.mac = Some("00".repeat(32))),
                false,
            ),
        ];
        for (case, key, nonce, reply, want) in cases {
            assert_eq!(key.verify(&nonce, &reply), want, "{case}");
        }
    }

    #[test]
    fn responders_answer_each_version() {
        let v1 = agent().answer(&Request::V1);
        assert_eq!(v1.mac, None);
        assert_eq!(
            (v1.agent_id.as_str(), v1.server_id.as_str()),
            ("agent-1", "server-1")
        );
        // Through the wire and back, the reply still verifies.
        let wire = agent().answer(&Request::V2(nonce(3))).to_line();
        let parsed = IdentifyReply::parse(&wire).expect("reply");
        assert!(key().verify(&nonce(3), &parsed));
        // An old-format line (no `mac` key) parses, and proves nothing.
        let old = br#"{"agent_id":"agent-1","server_id":"server-1","version":"0.1.0"}"#;
        let parsed = IdentifyReply::parse(old).expect("old reply");
        assert_eq!(parsed.mac, None);
        assert!(!key().verify(&nonce(3), &parsed));
        // No key, no MAC.
        let keyless = Responder::new("agent-1", "server-1", "0.1.0", "vga_unused");
        assert_eq!(keyless.answer(&Request::V2(nonce(3))).mac, None);
    }
}
