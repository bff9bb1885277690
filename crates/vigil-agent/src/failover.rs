//! Failover between the replicas of the agent's server.
//!
//! An installation may run several `vigil server` replicas on one database
//! (behind a load balancer or not). They present one TLS identity (the
//! same `tls/` files in every data directory), so the pin the agent stored
//! at enrollment holds for all of them, and a URL that answers with another
//! certificate is refused like any impostor: the list of URLs only says
//! where to look, the pin still says whom to trust.
//!
//! The agent keeps the URLs in order of preference (see
//! [`Identity::server_urls`]) and talks to one at a time. [`Failover`] is
//! the pure decision part:
//!
//! * it sticks to the URL that answered last;
//! * when that one fails (unreachable, timed out, 5xx, wrong certificate),
//!   the next URL is tried at once, round robin;
//! * when every URL failed in a row it backs off (doubling, capped at four
//!   heartbeat intervals) and starts the next round where it left off;
//! * a refusal (credential, version) would be the same from every replica,
//!   which share the database: it backs off on the same URL;
//! * on a fallback URL, every [`PREFERRED_RETRY`]th heartbeat goes to the
//!   preferred (first) URL; if that fails the agent returns to the one that
//!   answers at once, without counting an outage.
//!
//! [`Servers`] holds a client per URL and applies those decisions.

use crate::client::{ClientError, ServerClient};
use crate::identity::Identity;
use std::time::Duration;
use vigil_proto::pin::CertPin;

/// On a fallback URL, every this many answered heartbeats the preferred URL
/// is tried again (about five minutes at the default 30 s interval).
pub const PREFERRED_RETRY: u32 = 10;
/// Server URLs taken from one announcement; more are ignored.
pub const MAX_ANNOUNCED: usize = 16;
/// The first back-off step; it doubles with every round that failed.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

/// How a call failed, as far as the choice of server goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// This server failed (unreachable, timed out, 5xx, another
    /// certificate than the pinned one): another replica may answer.
    Replica,
    /// The request was refused (credential, version): every replica shares
    /// the database and would refuse it too.
    Refused,
}

impl Failure {
    pub fn of(e: &ClientError) -> Failure {
        if e.fails_over() {
            Failure::Replica
        } else {
            Failure::Refused
        }
    }
}

/// What to do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Call [`Failover::target`] at once (another server).
    Now,
    /// Wait this long, then call [`Failover::target`].
    After(Duration),
}

/// Which of `len` URLs to call next. Index 0 is the preferred URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    len: usize,
    /// The URL that answered last (the first one before any answer).
    current: usize,
    /// The URL to call next.
    target: usize,
    /// The next call tries the preferred URL while `current` answers.
    probing: bool,
    /// URLs that failed in a row in this round.
    failed: usize,
    /// Rounds (or refusals) in a row without an answer.
    outages: u32,
    /// Answers on a fallback URL since the preferred one was last tried.
    on_fallback: u32,
}

impl Failover {
    /// Starts with the preferred URL.
    pub fn new(len: usize) -> Self {
        Self::starting_at(len, 0)
    }

    /// Starts with URL `current` (kept when the list changes).
    pub fn starting_at(len: usize, current: usize) -> Self {
        let len = len.max(1);
        let current = if current < len { current } else { 0 };
        Failover {
            len,
            current,
            target: current,
            probing: false,
            failed: 0,
            outages: 0,
            on_fallback: 0,
        }
    }

    /// The URL to call next.
    pub fn target(&self) -> usize {
        self.target
    }

    /// The URL that answered last.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The call to [`Failover::target`] was answered.
    pub fn answered(&mut self) {
        self.current = self.target;
        self.probing = false;
        self.failed = 0;
        self.outages = 0;
        if self.current == 0 {
            self.on_fallback = 0;
            return;
        }
        self.on_fallback += 1;
        if self.on_fallback >= PREFERRED_RETRY {
            self.on_fallback = 0;
            self.probing = true;
            self.target = 0;
        }
    }

    /// The call to [`Failover::target`] failed. `interval` is the normal
    /// heartbeat interval, which bounds the back-off.
    pub fn failed(&mut self, failure: Failure, interval: Duration) -> Retry {
        if self.probing {
            // The preferred URL is still away: back to the one that answers.
            self.probing = false;
            self.target = self.current;
            return Retry::Now;
        }
        if failure == Failure::Replica {
            self.failed += 1;
            self.target = (self.target + 1) % self.len;
            if self.failed < self.len {
                return Retry::Now;
            }
        }
        self.failed = 0;
        self.outages = self.outages.saturating_add(1);
        Retry::After(backoff(self.outages, interval))
    }
}

/// The wait after `outages` failed rounds in a row: doubling from 2 s, but
/// never beyond four heartbeat intervals, so a recovery is noticed soon.
pub fn backoff(outages: u32, interval: Duration) -> Duration {
    let doubled = FIRST_BACKOFF * 2u32.saturating_pow(outages.saturating_sub(1).min(10));
    doubled.min(interval * 4)
}

/// The agent's servers: a client per URL, all trusting only the pinned
/// certificate, and the [`Failover`] choosing among them.
pub struct Servers {
    identity: Identity,
    pin: CertPin,
    urls: Vec<String>,
    clients: Vec<ServerClient>,
    failover: Failover,
}

impl Servers {
    /// Clients for the URLs of `identity`. The first URL must be valid; a
    /// later one that is not (an edited file) is left out with a warning.
    pub fn new(identity: Identity) -> Result<Self, ClientError> {
        let pin: CertPin = identity
            .pin
            .parse()
            .map_err(|e| ClientError::Tls(format!("the stored pin: {e}")))?;
        let (urls, clients) = clients(&identity, pin)?;
        Ok(Servers {
            failover: Failover::new(urls.len()),
            identity,
            pin,
            urls,
            clients,
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Every URL, preferred first.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The URL of the next call.
    pub fn url(&self) -> &str {
        &self.urls[self.failover.target()]
    }

    /// The client for the next call.
    pub fn client(&self) -> &ServerClient {
        &self.clients[self.failover.target()]
    }

    /// See [`Failover::answered`].
    pub fn answered(&mut self) {
        self.failover.answered();
    }

    /// See [`Failover::failed`].
    pub fn failed(&mut self, failure: Failure, interval: Duration) -> Retry {
        self.failover.failed(failure, interval)
    }

    /// Takes the replica URLs a server announced (over the pinned,
    /// authenticated channel): `https` URLs only, at most
    /// [`MAX_ANNOUNCED`]. Returns whether the identity changed (and should
    /// be stored). An empty announcement changes nothing: older servers
    /// and single servers send none.
    pub fn announce(&mut self, urls: &[String]) -> bool {
        let announced = announced(urls);
        if announced.is_empty() || announced == self.identity.announced_urls {
            return false;
        }
        let mut identity = self.identity.clone();
        identity.announced_urls = announced;
        let (urls, clients) = match clients(&identity, self.pin) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "announced server URLs ignored");
                return false;
            }
        };
        let current = urls.iter().position(|u| u == self.url()).unwrap_or(0);
        self.failover = Failover::starting_at(urls.len(), current);
        self.identity = identity;
        self.urls = urls;
        self.clients = clients;
        true
    }
}

/// A client per URL of `identity`, authenticated as the agent. Only the
/// first URL must be valid; a later one that is not (an edited file) is
/// left out with a warning.
fn clients(
    identity: &Identity,
    pin: CertPin,
) -> Result<(Vec<String>, Vec<ServerClient>), ClientError> {
    let (mut urls, mut clients) = (Vec::new(), Vec::new());
    for (i, url) in identity.server_urls().into_iter().enumerate() {
        match ServerClient::new(&url, pin) {
            Ok(c) => {
                clients.push(c.authenticated(&identity.agent_id, &identity.credential));
                urls.push(url);
            }
            Err(e) if i == 0 => return Err(e),
            Err(e) => tracing::warn!(%url, error = %e, "server URL left out"),
        }
    }
    Ok((urls, clients))
}

/// The usable URLs of an announcement, normalized, sorted and once each:
/// replicas list themselves in different orders, which must not look like
/// a change.
pub(crate) fn announced(urls: &[String]) -> Vec<String> {
    let mut out: Vec<String> = urls
        .iter()
        .filter(|u| reqwest::Url::parse(u).is_ok_and(|p| p.scheme() == "https"))
        .map(|u| u.trim_end_matches('/').to_string())
        .take(MAX_ANNOUNCED)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HB: Duration = Duration::from_secs(30);

    /// An event of a failover table test.
    #[derive(Debug, Clone, Copy)]
    enum Ev {
        Ok,
        Down,
        Refused,
    }

    /// What an event leads to: the retry (`None` after an answer) and the
    /// URL called next.
    type Want = (Option<Retry>, usize);

    fn run(len: usize, events: &[Ev]) -> Vec<Want> {
        let mut f = Failover::new(len);
        events
            .iter()
            .map(|ev| {
                let retry = match ev {
                    Ev::Ok => {
                        f.answered();
                        None
                    }
                    Ev::Down => Some(f.failed(Failure::Replica, HB)),
                    Ev::Refused => Some(f.failed(Failure::Refused, HB)),
                };
                (retry, f.target())
            })
            .collect()
    }

    fn after(secs: u64) -> Option<Retry> {
        Some(Retry::After(Duration::from_secs(secs)))
    }

    const NOW: Option<Retry> = Some(Retry::Now);

    #[test]
    fn which_url_next_and_when() {
        use Ev::*;
        let cases: &[(&str, usize, &[Ev], &[Want])] = &[
            (
                "one URL: every failure backs off, doubling",
                1,
                &[Down, Down, Down, Ok, Down],
                &[
                    (after(2), 0),
                    (after(4), 0),
                    (after(8), 0),
                    (None, 0),
                    (after(2), 0),
                ],
            ),
            (
                "a failure moves on at once; the one that answers is kept",
                3,
                &[Ok, Down, Ok, Ok],
                &[(None, 0), (NOW, 1), (None, 1), (None, 1)],
            ),
            (
                "all down: one round, then back off and go round again",
                3,
                &[Down, Down, Down, Down, Down, Down, Ok],
                &[
                    (NOW, 1),
                    (NOW, 2),
                    (after(2), 0),
                    (NOW, 1),
                    (NOW, 2),
                    (after(4), 0),
                    (None, 0),
                ],
            ),
            (
                "a round starts at the URL that answered last",
                3,
                &[Down, Ok, Down, Down, Down],
                &[(NOW, 1), (None, 1), (NOW, 2), (NOW, 0), (after(2), 1)],
            ),
            (
                "a refusal stays on the same URL and backs off",
                2,
                &[Refused, Refused, Ok],
                &[(after(2), 0), (after(4), 0), (None, 0)],
            ),
        ];
        for (name, len, events, want) in cases {
            assert_eq!(run(*len, events), *want, "{name}");
        }
    }

    #[test]
    fn the_preferred_url_is_tried_again_every_few_heartbeats() {
        let mut f = Failover::new(2);
        assert_eq!(f.failed(Failure::Replica, HB), Retry::Now);
        for _ in 0..PREFERRED_RETRY - 1 {
            f.answered();
            assert_eq!((f.current(), f.target()), (1, 1));
        }
        f.answered();
        assert_eq!((f.current(), f.target()), (1, 0), "the probe");
        // Still away: straight back, no outage counted.
        assert_eq!(f.failed(Failure::Replica, HB), Retry::Now);
        assert_eq!(f.target(), 1);
        f.answered();
        assert_eq!(f.target(), 1, "the next probe waits its turn");
        for _ in 0..PREFERRED_RETRY - 1 {
            f.answered();
        }
        assert_eq!(f.target(), 0);
        // Back: stays there.
        f.answered();
        assert_eq!((f.current(), f.target()), (0, 0));
        for _ in 0..2 * PREFERRED_RETRY {
            f.answered();
        }
        assert_eq!(f.target(), 0);
    }

    #[test]
    fn back_off_is_bounded_by_the_heartbeat_interval() {
        let cases: &[(u32, u64, u64)] = &[
            (1, 30, 2),
            (2, 30, 4),
            (6, 30, 64),
            (7, 30, 120),
            (1000, 30, 120),
            (1, 1, 2),
            (3, 1, 4),
            (1000, 3600, 2048),
        ];
        for (outages, interval, want) in cases {
            assert_eq!(
                backoff(*outages, Duration::from_secs(*interval)),
                Duration::from_secs(*want),
                "{outages} outages at {interval} s"
            );
        }
    }

    #[test]
    fn a_list_change_keeps_the_url_in_use() {
        assert_eq!(Failover::starting_at(3, 2).target(), 2);
        assert_eq!(Failover::starting_at(3, 7).target(), 0);
        assert_eq!(Failover::starting_at(0, 0).target(), 0);
    }

    fn identity(urls: &[&str]) -> Identity {
        Identity {
            server_url: urls[0].into(),
            fallback_urls: urls[1..].iter().map(|u| u.to_string()).collect(),
            announced_urls: Vec::new(),
            pin: format!("sha256:{}", "ab".repeat(32)),
            agent_id: "a".into(),
            credential: "c".into(),
            server_id: "s".into(),
        }
    }

    #[test]
    fn announcements_are_checked_sorted_and_keep_the_url_in_use() {
        let mut s = Servers::new(identity(&["https://a:1", "https://b:1"])).expect("servers");
        assert_eq!(s.failed(Failure::Replica, HB), Retry::Now);
        s.answered();
        assert_eq!(s.url(), "https://b:1");
        let said = |urls: &[&str]| -> Vec<String> { urls.iter().map(|u| u.to_string()).collect() };
        let cases: &[(&[&str], bool, &[&str])] = &[
            (&[], false, &["https://a:1", "https://b:1"]),
            (
                &["http://x:1", "not a url"],
                false,
                &["https://a:1", "https://b:1"],
            ),
            (
                &["https://c:1/", "https://b:1", "ftp://d"],
                true,
                &["https://a:1", "https://b:1", "https://c:1"],
            ),
            (
                &["https://b:1", "https://c:1"],
                false,
                &["https://a:1", "https://b:1", "https://c:1"],
            ),
            (
                &["https://d:1"],
                true,
                &["https://a:1", "https://b:1", "https://d:1"],
            ),
        ];
        for (announced, changed, urls) in cases {
            assert_eq!(s.announce(&said(announced)), *changed, "{announced:?}");
            assert_eq!(s.urls(), &said(urls)[..], "{announced:?}");
            assert_eq!(s.url(), "https://b:1", "{announced:?}");
        }
        let many: Vec<String> = (0..100).map(|i| format!("https://r{i:03}:1")).collect();
        assert!(s.announce(&many));
        assert_eq!(s.identity().announced_urls.len(), MAX_ANNOUNCED);
    }

    #[test]
    fn a_bad_first_url_or_pin_is_an_error() {
        assert!(Servers::new(identity(&["http://a:1"])).is_err());
        let mut bad_pin = identity(&["https://a:1"]);
        bad_pin.pin = "sha256:00".into();
        assert!(Servers::new(bad_pin).is_err());
        let s = Servers::new(identity(&["https://a:1", "http://b:1"])).expect("servers");
        assert_eq!(s.urls(), ["https://a:1"]);
    }
}
