//! Fair shares of a limited resource between tenants: which queued
//! notifications to start sending, and how much of the server's scan
//! budget one account may hold.
//!
//! The outbox sends several notifications at once, but a tenant whose
//! webhook never answers (every send waits for its 30 s timeout) must not
//! take every sender. [`allot`] hands free senders out one at a time, each
//! to the queue whose account — and then contact — has the fewest sends
//! in flight, so an account with nothing in flight is served first; an
//! account never holds more than its [`Limits::per_account`] nor, while
//! other accounts wait, more than an even split that leaves one share
//! free for an account that has nothing queued yet. A queue is one
//! contact of one account: a broken webhook also cannot stop the same
//! account's e-mail.
//!
//! Pure: the caller counts what waits and what is in flight (in the
//! database, across replicas) and claims what this returns.

/// Bounds of [`allot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sends in flight at once in all (this replica's senders).
    pub total: usize,
    /// Sends in flight at once for one account.
    pub per_account: usize,
    /// Sends in flight at once to one contact.
    pub per_contact: usize,
}

/// One contact's notifications: how many are due and not claimed, and how
/// many are being sent now (by any replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue<A, C> {
    pub account: A,
    pub contact: C,
    pub waiting: usize,
    pub in_flight: usize,
}

/// How many of each queue's waiting notifications to start now, index for
/// index with `queues`, using at most `free` senders. Queues earlier in
/// the slice win ties (list the longest-waiting first).
pub fn allot<A: PartialEq, C>(queues: &[Queue<A, C>], free: usize, limits: Limits) -> Vec<usize> {
    let mut grants = vec![0; queues.len()];
    // Accounts by first appearance, with their sends in flight.
    let mut accounts: Vec<(&A, usize)> = Vec::new();
    let account_of: Vec<usize> = queues
        .iter()
        .map(
            |q| match accounts.iter().position(|(a, _)| *a == &q.account) {
                Some(i) => {
                    accounts[i].1 += q.in_flight;
                    i
                }
                None => {
                    accounts.push((&q.account, q.in_flight));
                    accounts.len() - 1
                }
            },
        )
        .collect();
    let cap = account_cap(accounts.len(), limits);
    for _ in 0..free {
        let best = (0..queues.len())
            .filter(|&i| {
                let q = &queues[i];
                grants[i] < q.waiting
                    && q.in_flight + grants[i] < limits.per_contact
                    && accounts[account_of[i]].1 < cap
            })
            .min_by_key(|&i| (accounts[account_of[i]].1, queues[i].in_flight + grants[i]));
        let Some(i) = best else { break };
        grants[i] += 1;
        accounts[account_of[i]].1 += 1;
    }
    grants
}

/// Sends one account may have in flight while `busy` accounts have work:
/// an even split of the senders that keeps one share for an account that
/// has none yet, at least one, at most [`Limits::per_account`].
pub fn account_cap(busy: usize, limits: Limits) -> usize {
    even_share(limits.total, busy + 1).min(limits.per_account)
}

/// `total` split evenly between `parties`, rounded down, but at least 1
/// (so every party progresses even when there are more parties than units).
pub fn even_share(total: usize, parties: usize) -> usize {
    (total / parties.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        total: 32,
        per_account: 8,
        per_contact: 4,
    };

    fn q(
        account: &'static str,
        contact: u32,
        waiting: usize,
        in_flight: usize,
    ) -> Queue<&'static str, u32> {
        Queue {
            account,
            contact,
            waiting,
            in_flight,
        }
    }

    #[test]
    fn allotments() {
        // (what, queues, free senders, grants)
        type Case = (
            &'static str,
            Vec<Queue<&'static str, u32>>,
            usize,
            Vec<usize>,
        );
        let cases: Vec<Case> = vec![
            ("nothing waits", vec![], 32, vec![]),
            ("one small queue", vec![q("a", 1, 2, 0)], 32, vec![2]),
            (
                "a contact gets at most per_contact",
                vec![q("a", 1, 1000, 0)],
                32,
                vec![4],
            ),
            (
                "an account gets at most per_account over its contacts",
                vec![q("a", 1, 10, 0), q("a", 2, 10, 0), q("a", 3, 10, 0)],
                32,
                vec![3, 3, 2],
            ),
            (
                "sends already in flight count (other replicas' too)",
                vec![q("a", 1, 10, 3), q("a", 2, 10, 4)],
                32,
                vec![1, 0],
            ),
            (
                "a blackholed account at its cap leaves the others alone",
                vec![q("a", 1, 1000, 4), q("a", 2, 1000, 4), q("b", 9, 1, 0)],
                32,
                vec![0, 0, 1],
            ),
            (
                "one free sender goes to the account with the fewest in flight",
                vec![q("a", 1, 5, 2), q("b", 2, 5, 0), q("c", 3, 5, 1)],
                1,
                vec![0, 1, 0],
            ),
            (
                "equal accounts: earlier queues win ties, then take turns",
                vec![q("a", 1, 5, 0), q("b", 2, 5, 0)],
                3,
                vec![2, 1],
            ),
            (
                "no free sender, nothing starts",
                vec![q("a", 1, 5, 0)],
                0,
                vec![0],
            ),
        ];
        for (name, queues, free, want) in cases {
            assert_eq!(allot(&queues, free, LIMITS), want, "{name}");
        }
    }

    #[test]
    fn many_busy_accounts_leave_room_for_one_more() {
        // 7 accounts, each wanting far more than it can get: the split is
        // 32 / 8 = 4 each, so 4 senders stay free for an eighth account.
        let queues: Vec<_> = ["a", "b", "c", "d", "e", "f", "g"]
            .iter()
            .enumerate()
            .flat_map(|(i, a)| [q(a, i as u32 * 2, 100, 0), q(a, i as u32 * 2 + 1, 100, 0)])
            .collect();
        let grants = allot(&queues, 32, LIMITS);
        assert_eq!(grants.iter().sum::<usize>(), 28);
        for pair in grants.chunks(2) {
            assert_eq!(pair.iter().sum::<usize>(), 4, "{grants:?}");
        }
    }

    #[test]
    fn caps_and_shares() {
        for (busy, want) in [(0, 8), (1, 8), (3, 8), (4, 6), (7, 4), (31, 1), (500, 1)] {
            assert_eq!(account_cap(busy, LIMITS), want, "{busy} busy accounts");
        }
        for (total, parties, want) in [(100, 0, 100), (100, 1, 100), (100, 3, 33), (2, 5, 1)] {
            assert_eq!(even_share(total, parties), want, "{total}/{parties}");
        }
    }
}
