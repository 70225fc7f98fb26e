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

use hashbrown::{HashMap, HashSet};
use indexmap::IndexMap;

use crate::event::Event;
use crate::money::Money;
use crate::records::Closed;
use crate::rules::{Config, Counters, Rules};

#[derive(Clone, Debug, PartialEq)]
pub struct CartLine {
    pub quantity: i128,
    pub price: Option<Money>,
    pub name: Option<String>,
    pub url: Option<String>,
    pub image_url: Option<String>,
    pub currency: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Viewed {
    pub views: i64,
    pub price: Option<Money>,
    pub name: Option<String>,
    pub url: Option<String>,
}

/// Everything the detector keeps for one session: the cart (which persists across periods),
/// the open period's facts, recent event ids and events waiting for the watermark.
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub session_id: String,
    pub customer_id: Option<String>,
    pub store_id: Option<String>,
    pub cart: IndexMap<String, CartLine>,
    pub cart_url: Option<String>,
    pub last_ms: Option<i64>,
    pub closed_deadline: Option<i64>,
    pub last_seen_ms: i64,
    pub ordered: bool,
    pub checkout: bool,
    pub views: i64,
    pub viewed: IndexMap<String, Viewed>,
    pub seen: HashMap<String, i64>,
    /// `(time, seq, event)` ahead of the watermark, sorted by `(time, seq)`.
    pub pending: Vec<(i64, u64, Event)>,
    pub index_due: Option<i64>,
}

impl Session {
    pub fn new(session_id: String) -> Session {
        Session {
            session_id,
            ..Session::default()
        }
    }
}

pub struct Detector {
    pub sessions: HashMap<String, Box<Session>>,
    pub rules: Rules,
    pub auto_watermark: bool,
    pub track_changes: bool,
    pub watermark: Option<i64>,
    pub max_event_ms: Option<i64>,
    pub dirty: HashSet<String>,
    pub deleted: HashSet<String>,
}

impl Detector {
    pub fn new(config: Config, watermark: Option<i64>, max_event_ms: Option<i64>) -> Detector {
        Detector {
            sessions: HashMap::new(),
            rules: Rules {
                config,
                counters: Counters::default(),
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
        self.sessions.insert(state.session_id.clone(), Box::new(state));
    }

    // -- inputs ------------------------------------------------------------------------------

    /// Take one event; appends the abandonments it closes (usually none). Returns false for a
    /// repeated `event_id` (dropped).
    pub fn on_event(&mut self, event: Event, out: &mut Vec<Closed>) -> bool {
        let t = event.occurred_at;
        let rules = &mut self.rules;
        let state = self
            .sessions
            .entry_ref(event.session_id.as_str())
            .or_insert_with(|| Box::new(Session::new(event.session_id.clone())));
        if state.seen.contains_key(event.event_id.as_str()) {
            rules.counters.duplicates += 1;
            return false;
        }
        state.seen.insert(event.event_id.clone(), t);
        if self.track_changes && !self.dirty.contains(event.session_id.as_str()) {
            self.deleted.remove(event.session_id.as_str());
            self.dirty.insert(event.session_id.clone());
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
            let Some(state) = self.sessions.get_mut(sid.as_str()) else {
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
                self.sessions.remove(sid.as_str());
                rules.counters.evicted += 1;
                if self.track_changes {
                    self.dirty.remove(sid.as_str());
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
        let mut order: Vec<(i64, &String)> = self
            .sessions
            .iter()
            .map(|(sid, s)| (rules.due(s), sid))
            .collect();
        order.sort_unstable();
        let order: Vec<String> = order.into_iter().map(|(_, sid)| sid.clone()).collect();
        for sid in order {
            let state = self.sessions.get_mut(sid.as_str()).expect("listed");
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
        for (sid, state) in &self.sessions {
            let own = nonempty(&state.customer_id);
            if let Some(customer) = own {
                pairs.push((customer.to_owned(), sid.clone()));
            }
            for (_, _, event) in &state.pending {
                match nonempty(&event.customer_id) {
                    Some(customer) if Some(customer) != own => {
                        pairs.push((customer.to_owned(), sid.clone()));
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
            if self.sessions.remove(sid.as_str()).is_none() {
                continue;
            }
            dropped += 1;
            if self.track_changes {
                self.dirty.remove(sid.as_str());
                self.deleted.insert(sid.clone());
            }
        }
        dropped
    }

    pub fn open_sessions(&self) -> usize {
        self.sessions
            .values()
            .filter(|s| s.last_ms.is_some())
            .count()
    }
}

pub(crate) fn nonempty(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|t| !t.is_empty())
}
