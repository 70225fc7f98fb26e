//! The sessions of one partition and the detector that holds them: the per-session state,
//! the watermark, change tracking, erasure. The rules that change a session are in rules.rs,
//! the abandonment records in records.rs.
//!
//! Pure: no Python, Kafka, clock or I/O. `on_event` takes one validated event and `advance` a
//! watermark; both append the abandonments whose periods closed to `out`, in a deterministic
//! order (by deadline, then session id). The worker and `cartpulse detect` drive the same core,
//! so a replay through Kafka and an offline run agree. The rules are stated in full in
//! streams/core/detection.py's module docstring and docs/semantics.md.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashSet, HashTable};

use crate::event::Event;
use crate::intern::{Facts, Interner};
use crate::records::Closed;
use crate::rules::{Config, Counters, Rules};
use crate::seen::{fingerprint, Seen};

#[derive(Clone, Debug, PartialEq)]
pub struct CartLine {
    pub quantity: i128,
    /// Price, name, url, image url and currency, shared with every line and view that has them.
    pub facts: Arc<Facts>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Viewed {
    pub views: i64,
    /// Price, name and url (no image, no currency), shared like a cart line's.
    pub facts: Arc<Facts>,
}

/// Everything the detector keeps for one session: the cart (which persists across periods),
/// the open period's facts, recent event ids and events waiting for the watermark.
///
/// Product ids, store ids and product facts are the detector's shared copies (intern.rs); the
/// cart and the viewed products are short vectors in insertion order, searched linearly (the
/// viewed products are at most `MAX_VIEWED_KEPT`, a cart has a few lines).
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub session_id: Arc<str>,
    pub customer_id: Option<Box<str>>,
    pub store_id: Option<Arc<str>>,
    pub cart: Vec<(Arc<str>, CartLine)>,
    pub cart_url: Option<Box<str>>,
    pub last_ms: Option<i64>,
    pub closed_deadline: Option<i64>,
    pub last_seen_ms: i64,
    pub ordered: bool,
    pub checkout: bool,
    pub views: i64,
    /// Least recently viewed first.
    pub viewed: Vec<(Arc<str>, Viewed)>,
    pub seen: Seen,
    /// `(time, seq, event)` ahead of the watermark, sorted by `(time, seq)`.
    pub pending: Vec<(i64, u64, Event)>,
    pub index_due: Option<i64>,
}

impl Session {
    pub fn new(session_id: Arc<str>) -> Session {
        Session {
            session_id,
            ..Session::default()
        }
    }
}

/// The sessions by id. Each is boxed, so a bucket is one pointer, and its id is stored once, in
/// the session (the deadline index and the change sets share it).
#[derive(Default)]
pub struct Sessions {
    table: HashTable<Box<Session>>,
    hasher: DefaultHashBuilder,
}

impl Sessions {
    fn hash(&self, session_id: &str) -> u64 {
        self.hasher.hash_one(session_id)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn get(&self, session_id: &str) -> Option<&Session> {
        let hash = self.hash(session_id);
        self.table
            .find(hash, |s| &*s.session_id == session_id)
            .map(|s| &**s)
    }

    pub fn get_mut(&mut self, session_id: &str) -> Option<&mut Session> {
        let hash = self.hash(session_id);
        self.table
            .find_mut(hash, |s| &*s.session_id == session_id)
            .map(|s| &mut **s)
    }

    pub fn contains_key(&self, session_id: &str) -> bool {
        self.get(session_id).is_some()
    }

    /// The session with this id, a new empty one if there is none.
    pub fn get_or_insert(&mut self, session_id: &str) -> &mut Session {
        let hash = self.hash(session_id);
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |s| &*s.session_id == session_id,
            |s| hasher.hash_one(&*s.session_id),
        );
        entry
            .or_insert_with(|| Box::new(Session::new(Arc::from(session_id))))
            .into_mut()
    }

    /// Add a session, replacing one with the same id.
    pub fn insert(&mut self, session: Session) {
        let hash = self.hash(&session.session_id);
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |s| s.session_id == session.session_id,
            |s| hasher.hash_one(&*s.session_id),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut held) => **held.get_mut() = session,
            hashbrown::hash_table::Entry::Vacant(free) => {
                free.insert(Box::new(session));
            }
        }
    }

    pub fn remove(&mut self, session_id: &str) -> Option<Box<Session>> {
        let hash = self.hash(session_id);
        self.table
            .find_entry(hash, |s| &*s.session_id == session_id)
            .ok()
            .map(|held| held.remove().0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.table.iter().map(|s| &**s)
    }
}

pub struct Detector {
    pub sessions: Sessions,
    pub rules: Rules,
    pub auto_watermark: bool,
    pub track_changes: bool,
    pub watermark: Option<i64>,
    pub max_event_ms: Option<i64>,
    pub dirty: HashSet<Arc<str>>,
    pub deleted: HashSet<Arc<str>>,
}

impl Detector {
    pub fn new(config: Config, watermark: Option<i64>, max_event_ms: Option<i64>) -> Detector {
        Detector {
            sessions: Sessions::default(),
            rules: Rules {
                config,
                counters: Counters::default(),
                strings: Interner::new(),
                index: BinaryHeap::new(),
                seq: 0,
            },
            auto_watermark: true,
            track_changes: true,
            watermark,
            max_event_ms,
            dirty: HashSet::new(),
            deleted: HashSet::new(),
        }
    }

    /// Add a session restored from saved state (before any event).
    pub fn restore(&mut self, mut state: Session) {
        state.index_due = None;
        if let Some(&(_, seq, _)) = state.pending.iter().max_by_key(|p| p.1) {
            self.rules.seq = self.rules.seq.max(seq); // ties keep arrival order across a restart
        }
        self.rules.reindex(&mut state);
        self.sessions.insert(state);
    }

    // -- inputs ------------------------------------------------------------------------------

    /// Take one event; appends the abandonments it closes (usually none). Returns false for a
    /// repeated `event_id` (dropped).
    pub fn on_event(&mut self, event: Event, out: &mut Vec<Closed>) -> bool {
        let t = event.occurred_at;
        let rules = &mut self.rules;
        let state = self.sessions.get_or_insert(&event.session_id);
        match state.seen.entry(fingerprint(&event.event_id)) {
            hashbrown::hash_map::Entry::Occupied(_) => {
                rules.counters.duplicates += 1;
                return false;
            }
            hashbrown::hash_map::Entry::Vacant(free) => {
                free.insert(t);
            }
        }
        if self.track_changes && !self.dirty.contains(&*state.session_id) {
            self.deleted.remove(&*state.session_id);
            self.dirty.insert(Arc::clone(&state.session_id));
        }
        let max_ms = match self.max_event_ms {
            Some(max) if max >= t => max,
            _ => {
                self.max_event_ms = Some(t);
                t
            }
        };
        let mut watermark = self.watermark;
        if watermark.is_some_and(|w| t < w) {
            rules.counters.late += 1;
            rules.apply(state, &event, t, out);
        } else {
            if self.auto_watermark {
                let candidate = max_ms - rules.config.lateness_ms;
                if watermark.is_none_or(|w| candidate > w) {
                    watermark = Some(candidate);
                    self.watermark = watermark;
                }
            }
            if watermark.is_some_and(|w| t <= w) && state.pending.is_empty() {
                rules.apply(state, &event, t, out);
            } else {
                rules.counters.buffered += 1;
                rules.seq += 1;
                let seq = rules.seq;
                let at = state.pending.partition_point(|p| (p.0, p.1) <= (t, seq));
                state.pending.insert(at, (t, seq, event));
            }
        }
        rules.reindex(state);
        if let Some(w) = watermark {
            if rules
                .index
                .peek()
                .is_some_and(|Reverse((due, _))| *due <= w)
            {
                self.drain(w, out);
            }
        }
        true
    }

    /// Move the watermark forward (never back); appends the periods that closed.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Closed>) {
        if self.watermark.is_some_and(|w| watermark <= w) {
            return;
        }
        self.watermark = Some(watermark);
        self.drain(watermark, out);
    }

    /// Settle every session whose due time the watermark has reached, earliest first.
    fn drain(&mut self, watermark: i64, out: &mut Vec<Closed>) {
        let rules = &mut self.rules;
        while let Some(Reverse((due, _))) = rules.index.peek() {
            if *due > watermark {
                break;
            }
            let Reverse((due, sid)) = rules.index.pop().expect("peeked");
            let Some(state) = self.sessions.get_mut(&sid) else {
                continue; // stale entry: the session was forgotten
            };
            if state.index_due != Some(due) {
                continue; // stale entry: the session moved on
            }
            state.index_due = None;
            rules.settle(state, watermark, out);
            if state.last_ms.is_none()
                && state.pending.is_empty()
                && state.last_seen_ms + rules.config.dedup_window_ms <= watermark
            {
                self.sessions.remove(&sid);
                rules.counters.evicted += 1;
                if self.track_changes {
                    self.dirty.remove(&sid);
                    self.deleted.insert(sid);
                }
            } else {
                rules.reindex(state);
                if self.track_changes {
                    self.dirty.insert(sid);
                }
            }
        }
    }

    /// Close every open period as if the input had ended (`detect --flush`), in due order.
    pub fn flush(&mut self, out: &mut Vec<Closed>) {
        let rules = &mut self.rules;
        let mut order: Vec<(i64, Arc<str>)> = self
            .sessions
            .iter()
            .map(|s| (rules.due(s), Arc::clone(&s.session_id)))
            .collect();
        order.sort_unstable();
        for (_, sid) in order {
            let state = self.sessions.get_mut(&sid).expect("listed");
            for (t, _, event) in std::mem::take(&mut state.pending) {
                rules.apply(state, &event, t, out);
            }
            if state.last_ms.is_some() {
                rules.close(state, out);
                if self.track_changes {
                    self.dirty.insert(sid);
                }
            }
        }
    }

    /// Every (customer id, session id) pair a session names: its own customer and those of
    /// its pending events (an erasure must find a session before its events are applied).
    pub fn customer_sessions(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for state in self.sessions.iter() {
            let sid = &state.session_id;
            let own = nonempty(&state.customer_id);
            if let Some(customer) = own {
                pairs.push((customer.to_owned(), sid.to_string()));
            }
            for (_, _, event) in &state.pending {
                match nonempty(&event.customer_id) {
                    Some(customer) if Some(customer) != own => {
                        pairs.push((customer.to_owned(), sid.to_string()));
                    }
                    _ => {}
                }
            }
        }
        pairs
    }

    /// Drop these sessions whole (an erasure): cart, views, pending events and the event ids
    /// seen. With change tracking they are reported as forgotten (`take_changes`), so the
    /// shell deletes their saved state; their deadline-index entries go stale and are skipped.
    /// Returns how many of them were held.
    pub fn forget(&mut self, session_ids: &[String]) -> usize {
        let mut dropped = 0;
        for sid in session_ids {
            let Some(session) = self.sessions.remove(sid) else {
                continue;
            };
            dropped += 1;
            if self.track_changes {
                self.dirty.remove(sid.as_str());
                self.deleted.insert(session.session_id);
            }
        }
        dropped
    }

    pub fn open_sessions(&self) -> usize {
        self.sessions.iter().filter(|s| s.last_ms.is_some()).count()
    }
}

pub(crate) fn nonempty<T: AsRef<str>>(text: &Option<T>) -> Option<&str> {
    text.as_ref().map(AsRef::as_ref).filter(|t| !t.is_empty())
}
