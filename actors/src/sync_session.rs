//! One sync with each mesh peer, as data: the PeerManager asks a peer for its log after our
//! cursor, page by page, and hands each page to the router. The decisions (when to ask for the
//! next page, which page to store, when the sync ends) live here; the PeerManager carries them
//! out ([`Step`]).
//!
//! The next page is asked for while the current one is checked and stored, and a page that
//! arrives before the previous one is stored waits (one at most), so memory stays at two pages
//! per peer. A sync ends when the peer has nothing more, when a page was not stored where the
//! cursor stood (the next sync starts again from the cursor), or when the peer leaves. Each
//! sync has a number: a page or a store result of an earlier sync of the same peer changes
//! nothing.

use std::collections::HashMap;
use std::hash::Hash;

/// One page of a peer's log, as received.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub bodies: Vec<String>,
    /// The cursor the page was asked for, and the responder's sequence number of its last body.
    pub after: u64,
    pub last: u64,
    /// The responder had nothing after it.
    pub end: bool,
    pub fetch_ms: u64,
}

/// What the PeerManager does next for a peer's sync.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Ask the peer for its log after `after` (tagged with the sync's number).
    Request { sync: u64, after: u64 },
    /// Check and store this page, then report with [`SyncSessions::stored`].
    Store { sync: u64, page: Page },
}

/// How storing a page went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored, and the cursor moved to the page's end.
    Advanced,
    /// Not stored where the cursor stood (an earlier page was lost): start again later.
    CursorMoved,
    /// The router could not take it.
    Failed,
}

#[derive(Debug)]
struct Session {
    number: u64,
    storing: bool,
    /// A page that arrived while the previous one was being stored.
    waiting: Option<Page>,
    /// Stored the page the peer marked as its end: done once it is stored.
    last_page: bool,
}

#[derive(Debug)]
pub struct SyncSessions<P> {
    sessions: HashMap<P, Session>,
    next_number: u64,
}

impl<P> Default for SyncSessions<P> {
    fn default() -> Self {
        SyncSessions {
            sessions: HashMap::new(),
            next_number: 1,
        }
    }
}

impl<P: Eq + Hash + Clone> SyncSessions<P> {
    /// Starts a sync with `peer` unless one is running; the caller then reads our cursor for
    /// the peer and calls [`SyncSessions::cursor`]. Returns the sync's number.
    pub fn start(&mut self, peer: &P) -> Option<u64> {
        if self.sessions.contains_key(peer) {
            return None;
        }
        let number = self.next_number;
        self.next_number += 1;
        let session = Session {
            number,
            storing: false,
            waiting: None,
            last_page: false,
        };
        self.sessions.insert(peer.clone(), session);
        Some(number)
    }

    pub fn is_syncing(&self, peer: &P) -> bool {
        self.sessions.contains_key(peer)
    }

    /// Syncs running.
    pub fn running(&self) -> usize {
        self.sessions.len()
    }

    /// Ends `peer`'s sync (it left, a request failed or was refused); a page or store result
    /// that arrives for it later is ignored.
    pub fn end(&mut self, peer: &P) {
        self.sessions.remove(peer);
    }

    /// A request of sync `sync` failed or was refused: that sync ends (a later one is not
    /// touched).
    pub fn failed(&mut self, peer: &P, sync: u64) {
        if self.current(peer, sync).is_some() {
            self.sessions.remove(peer);
        }
    }

    fn current(&mut self, peer: &P, sync: u64) -> Option<&mut Session> {
        self.sessions.get_mut(peer).filter(|s| s.number == sync)
    }

    /// Our cursor for `peer` was read: the first request.
    pub fn cursor(&mut self, peer: &P, sync: u64, after: u64) -> Option<Step> {
        self.current(peer, sync)?;
        Some(Step::Request { sync, after })
    }

    /// A page arrived for sync `sync`.
    pub fn page(&mut self, peer: &P, sync: u64, page: Page) -> Vec<Step> {
        let Some(session) = self.current(peer, sync) else {
            return Vec::new(); // a sync that ended: the next one starts from the cursor
        };
        if page.bodies.is_empty() {
            self.sessions.remove(peer); // in sync
            return Vec::new();
        }
        if page.last <= page.after {
            // objects, yet the log did not move: a broken or hostile peer; asking again would
            // loop, storing it could move the cursor back
            self.sessions.remove(peer);
            return Vec::new();
        }
        if session.storing {
            session.waiting = Some(page);
            return Vec::new();
        }
        session.storing = true;
        store(session, page)
    }

    /// The page of sync `sync` was stored (or not).
    pub fn stored(&mut self, peer: &P, sync: u64, how: Stored) -> Vec<Step> {
        let Some(session) = self.current(peer, sync) else {
            return Vec::new();
        };
        if how != Stored::Advanced || session.last_page {
            self.sessions.remove(peer);
            return Vec::new();
        }
        match session.waiting.take() {
            Some(next) => store(session, next),
            None => {
                session.storing = false;
                Vec::new()
            }
        }
    }
}

/// Stores `page`, asking for the one after it meanwhile unless the peer had nothing more.
fn store(session: &mut Session, page: Page) -> Vec<Step> {
    let sync = session.number;
    let mut steps = Vec::with_capacity(2);
    if page.end {
        session.last_page = true;
    } else {
        steps.push(Step::Request {
            sync,
            after: page.last,
        });
    }
    steps.push(Step::Store { sync, page });
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(after: u64, last: u64, end: bool) -> Page {
        Page {
            bodies: (after + 1..=last).map(|i| format!("body {i}")).collect(),
            after,
            last,
            end,
            fetch_ms: 0,
        }
    }

    fn request(sync: u64, after: u64) -> Step {
        Step::Request { sync, after }
    }

    fn stores(steps: &[Step]) -> Vec<(u64, u64)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Store { page, .. } => Some((page.after, page.last)),
                Step::Request { .. } => None,
            })
            .collect()
    }

    #[test]
    fn one_sync_per_peer_from_the_cursor() {
        let mut s = SyncSessions::default();
        let n = s.start(&"p").unwrap();
        assert_eq!(s.start(&"p"), None, "one at a time");
        assert_eq!(s.cursor(&"p", n, 40), Some(request(n, 40)));
        s.end(&"p");
        assert!(!s.is_syncing(&"p"));
        assert_eq!(s.cursor(&"p", n, 40), None, "ended: nothing is asked");
        let again = s.start(&"p").unwrap();
        assert_ne!(again, n);
    }

    #[test]
    fn the_next_page_is_asked_for_while_one_is_stored_and_one_waits_at_most() {
        let mut s = SyncSessions::default();
        let n = s.start(&"p").unwrap();
        let steps = s.page(&"p", n, page(0, 10, false));
        assert_eq!(steps[0], request(n, 10));
        assert_eq!(stores(&steps), vec![(0, 10)]);
        // the next page arrives before the first is stored: it waits, nothing more is asked
        assert!(s.page(&"p", n, page(10, 20, false)).is_empty());
        let steps = s.stored(&"p", n, Stored::Advanced);
        assert_eq!(steps[0], request(n, 20));
        assert_eq!(stores(&steps), vec![(10, 20)]);
        // stored before the next page came: that page is stored as it arrives
        assert!(s.stored(&"p", n, Stored::Advanced).is_empty());
        let steps = s.page(&"p", n, page(20, 25, true));
        assert_eq!(steps.len(), 1, "the peer's last page: nothing more to ask");
        assert_eq!(stores(&steps), vec![(20, 25)]);
        assert!(s.is_syncing(&"p"), "done once the last page is stored");
        assert!(s.stored(&"p", n, Stored::Advanced).is_empty());
        assert!(!s.is_syncing(&"p"));
    }

    #[test]
    fn a_page_whose_log_does_not_move_ends_the_sync() {
        let mut s = SyncSessions::default();
        let n = s.start(&"p").unwrap();
        let mut stuck = page(10, 20, false);
        stuck.last = 10;
        assert!(s.page(&"p", n, stuck).is_empty());
        assert!(!s.is_syncing(&"p"));
        let n = s.start(&"p").unwrap();
        let mut back = page(10, 20, false);
        back.last = 3;
        assert!(
            s.page(&"p", n, back).is_empty(),
            "nothing stored, the cursor stays"
        );
        assert!(!s.is_syncing(&"p"));
    }

    #[test]
    fn an_empty_page_means_in_sync() {
        let mut s = SyncSessions::default();
        let n = s.start(&"p").unwrap();
        assert!(s.page(&"p", n, page(7, 7, true)).is_empty());
        assert!(!s.is_syncing(&"p"));
    }

    #[test]
    fn a_page_not_stored_at_the_cursor_or_a_failed_store_ends_the_sync() {
        for how in [Stored::CursorMoved, Stored::Failed] {
            let mut s = SyncSessions::default();
            let n = s.start(&"p").unwrap();
            s.page(&"p", n, page(0, 10, false));
            s.page(&"p", n, page(10, 20, false));
            assert!(
                s.stored(&"p", n, how).is_empty(),
                "the waiting page is dropped"
            );
            assert!(!s.is_syncing(&"p"));
        }
    }

    #[test]
    fn pages_and_results_of_an_ended_sync_change_nothing() {
        let mut s = SyncSessions::default();
        let old = s.start(&"p").unwrap();
        s.page(&"p", old, page(0, 10, false));
        s.end(&"p"); // the peer left while the page was stored
        let new = s.start(&"p").unwrap();
        // the old sync's answer to the request made meanwhile, and its store result
        assert!(s.page(&"p", old, page(10, 20, false)).is_empty());
        assert!(s.stored(&"p", old, Stored::Advanced).is_empty());
        // the new sync is untouched: its first page is stored at once
        let steps = s.page(&"p", new, page(10, 20, false));
        assert_eq!(stores(&steps), vec![(10, 20)]);
        // a failure of the old sync's request does not end the new one
        s.failed(&"p", old);
        assert!(s.is_syncing(&"p"));
        s.failed(&"p", new);
        assert!(!s.is_syncing(&"p"));
        let new = s.start(&"p").unwrap();
        s.page(&"p", new, page(10, 20, false));
        // and peers do not share syncs
        let q = s.start(&"q").unwrap();
        assert!(s.page(&"q", new, page(0, 5, false)).is_empty());
        assert_eq!(stores(&s.page(&"q", q, page(0, 5, false))), vec![(0, 5)]);
        assert_eq!(s.running(), 2);
    }
}
