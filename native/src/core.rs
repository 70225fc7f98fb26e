//! The detection core: event-time activity periods per session, one partition's worth.
//!
//! Pure: no Python, Kafka, clock or I/O. `on_event` takes one validated event and `advance` a
//! watermark; both append the abandonments whose periods closed to `out`, in a deterministic
//! order (by deadline, then session id). The worker and `cartpulse detect` drive the same core,
//! so a replay through Kafka and an offline run agree. The rules are stated in full in
//! streams/core/detection.py's module docstring and docs/semantics.md.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use hashbrown::{HashMap, HashSet};
use indexmap::IndexMap;

use crate::event::{Event, Kind};
use crate::money::Money;
use crate::text::{push_fmt, write_list, write_opt_str, write_str, write_time};

pub const MAX_VIEWED_KEPT: usize = 50; // distinct products remembered per period
pub const MAX_VIEWED_REPORTED: usize = 10;
const SEEN_PRUNE_ABOVE: usize = 64;

#[derive(Clone, Debug)]
pub struct Config {
    pub gap_ms: i64,
    pub min_product_views: i64,
    pub lateness_ms: i64,
    pub dedup_window_ms: i64,
    pub default_store_id: String,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub applied: u64,
    pub duplicates: u64,
    pub late: u64,
    pub buffered: u64,
    pub late_into_closed: u64,
    pub evicted: u64,
}

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

/// A closed period's record, already in its JSON form (docs/semantics.md).
#[derive(Clone, Debug)]
pub struct Closed {
    pub kind: &'static str,
    pub key: String,
    pub detected_at: i64,
    pub json: Vec<u8>,
}

pub struct Detector {
    pub sessions: HashMap<String, Session>,
    pub rules: Rules,
    pub auto_watermark: bool,
    pub track_changes: bool,
    pub watermark: Option<i64>,
    pub max_event_ms: Option<i64>,
    pub dirty: HashSet<String>,
    pub deleted: HashSet<String>,
}

/// What applies the rules to one session at a time: the configuration, the counters, the
/// deadline index and the arrival sequence. Apart from the sessions, so that a session can be
/// borrowed from the map while the rules change it.
pub struct Rules {
    pub config: Config,
    pub counters: Counters,
    index: BinaryHeap<Reverse<(i64, String)>>,
    seq: u64,
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
        self.sessions.insert(state.session_id.clone(), state);
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
            .or_insert_with(|| Session::new(event.session_id.clone()));
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

// -- the rules -------------------------------------------------------------------------------

impl Rules {
    /// Apply the session's pending events up to `watermark` and close its period if due.
    fn settle(&mut self, state: &mut Session, watermark: i64, out: &mut Vec<Closed>) {
        let ready = state.pending.partition_point(|p| p.0 <= watermark);
        let pending: Vec<_> = state.pending.drain(..ready).collect();
        for (t, _, event) in pending {
            self.apply(state, &event, t, out);
        }
        if state
            .last_ms
            .is_some_and(|last| last + self.config.gap_ms <= watermark)
        {
            self.close(state, out);
        }
    }

    fn apply(&mut self, state: &mut Session, event: &Event, t: i64, out: &mut Vec<Closed>) {
        self.counters.applied += 1;
        let mut last = state.last_ms;
        if last.is_some_and(|last| t >= last + self.config.gap_ms) {
            self.close(state, out);
            last = None;
        }
        if t > state.last_seen_ms {
            state.last_seen_ms = t;
        }
        if let Some(customer) = &event.customer_id {
            state.customer_id = Some(customer.clone());
        }
        if let Some(store) = &event.store_id {
            state.store_id = Some(store.clone());
        }
        let mut in_period = true;
        match last {
            None => {
                if state.closed_deadline.is_some_and(|d| t < d) {
                    self.counters.late_into_closed += 1;
                    in_period = false; // belongs to a closed period: the cart changes, nothing else
                } else {
                    state.last_ms = Some(t);
                    state.ordered = false;
                    state.checkout = false;
                    state.views = 0;
                    state.viewed.clear(); // the closed period's products went to its abandonment
                }
            }
            Some(last) if t > last => state.last_ms = Some(t),
            Some(_) => {}
        }

        let product = event.product.as_ref();
        match event.kind {
            Kind::ProductViewed => {
                if let (true, Some(product)) = (in_period, product) {
                    state.views += 1;
                    let viewed = &mut state.viewed;
                    // Re-inserted last: the most recent at the end.
                    let item = match viewed.shift_remove(product.id.as_str()) {
                        Some(mut item) => {
                            item.views += 1;
                            if product.price.is_some() {
                                item.price = product.price;
                            }
                            if let Some(name) = nonempty(&product.name) {
                                item.name = Some(name.to_owned());
                            }
                            if let Some(url) = nonempty(&product.url) {
                                item.url = Some(url.to_owned());
                            }
                            item
                        }
                        None => {
                            if viewed.len() >= MAX_VIEWED_KEPT {
                                viewed.shift_remove_index(0);
                            }
                            Viewed {
                                views: 1,
                                price: product.price,
                                name: nonempty(&product.name).map(str::to_owned),
                                url: nonempty(&product.url).map(str::to_owned),
                            }
                        }
                    };
                    viewed.insert(product.id.clone(), item);
                }
            }
            Kind::CartItemAdded => {
                if let Some(product) = product {
                    let line = state
                        .cart
                        .entry(product.id.clone())
                        .or_insert_with(|| CartLine {
                            quantity: 0,
                            price: None,
                            name: None,
                            url: None,
                            image_url: None,
                            currency: None,
                        });
                    line.quantity = line.quantity.saturating_add(i128::from(event.quantity));
                    if product.price.is_some() {
                        line.price = product.price;
                        if let Some(currency) = nonempty(&product.currency) {
                            line.currency = Some(currency.to_owned());
                        }
                    }
                    if let Some(name) = nonempty(&product.name) {
                        line.name = Some(name.to_owned());
                    }
                    if let Some(url) = nonempty(&product.url) {
                        line.url = Some(url.to_owned());
                    }
                    if let Some(image) = nonempty(&product.image_url) {
                        line.image_url = Some(image.to_owned());
                    }
                }
                if let Some(url) = event.cart_url().filter(|url| !url.is_empty()) {
                    state.cart_url = Some(url.to_owned());
                }
            }
            Kind::CartItemRemoved => {
                if let Some(product) = product {
                    // A remove of an unknown product is ignored.
                    if let Some(line) = state.cart.get_mut(product.id.as_str()) {
                        line.quantity -= i128::from(event.quantity);
                        if line.quantity <= 0 {
                            state.cart.shift_remove(product.id.as_str());
                        }
                    }
                }
            }
            Kind::OrderCompleted => {
                state.cart.clear();
                if in_period {
                    state.ordered = true;
                }
            }
            Kind::CheckoutStarted => {
                if in_period {
                    state.checkout = true;
                }
                if let Some(url) = event.cart_url().filter(|url| !url.is_empty()) {
                    state.cart_url = Some(url.to_owned());
                }
            }
            Kind::PageViewed => {}
        }
    }

    fn close(&mut self, state: &mut Session, out: &mut Vec<Closed>) {
        let last = state
            .last_ms
            .take()
            .expect("only called with an open period");
        let deadline = last + self.config.gap_ms;
        state.closed_deadline = Some(deadline);
        let kind = if state.ordered {
            None
        } else if !state.cart.is_empty() {
            Some("cart")
        } else if state.views >= self.config.min_product_views {
            Some("browse")
        } else {
            None
        };
        if let Some(kind) = kind {
            out.push(self.abandonment(state, kind, last, deadline));
        }
        // Forget event ids that left the dedup window.
        if state.seen.len() > SEEN_PRUNE_ABOVE {
            let horizon = deadline - self.config.dedup_window_ms;
            state.seen.retain(|_, t| *t >= horizon);
        }
    }

    fn abandonment(&self, state: &Session, kind: &'static str, last: i64, deadline: i64) -> Closed {
        let mut json = Vec::with_capacity(512 + 160 * (state.cart.len() + state.viewed.len()));
        json.extend_from_slice(b"{\"abandonment_id\":\"");
        json.extend_from_slice(abandonment_id(&state.session_id, kind, deadline).as_bytes());
        json.extend_from_slice(b"\",\"kind\":\"");
        json.extend_from_slice(kind.as_bytes());
        json.extend_from_slice(b"\",\"session_id\":");
        write_str(&mut json, &state.session_id);
        json.extend_from_slice(b",\"customer_id\":");
        write_opt_str(&mut json, state.customer_id.as_deref());
        json.extend_from_slice(b",\"store_id\":");
        let store = match state.store_id.as_deref() {
            Some(store) if !store.is_empty() => store,
            _ => self.config.default_store_id.as_str(),
        };
        write_str(&mut json, store);
        json.extend_from_slice(b",\"last_activity_at\":\"");
        write_time(&mut json, last);
        json.extend_from_slice(b"\",\"detected_at\":\"");
        write_time(&mut json, deadline);
        json.extend_from_slice(if state.checkout {
            b"\",\"checkout_started\":true,\"cart\":{\"items\":["
        } else {
            b"\",\"checkout_started\":false,\"cart\":{\"items\":["
        });
        write_list(&mut json, &state.cart, |json, (pid, line)| {
            json.extend_from_slice(b"{\"product_id\":");
            write_str(json, pid);
            push_fmt(
                json,
                format_args!(",\"quantity\":{},\"price\":", line.quantity),
            );
            Money::write_opt(json, line.price);
            json.extend_from_slice(b",\"name\":");
            write_opt_str(json, line.name.as_deref());
            json.extend_from_slice(b",\"url\":");
            write_opt_str(json, line.url.as_deref());
            json.extend_from_slice(b",\"image_url\":");
            write_opt_str(json, line.image_url.as_deref());
            json.push(b'}');
        });
        json.extend_from_slice(b"],\"value\":");
        Money::write_opt(&mut json, cart_value(&state.cart));
        json.extend_from_slice(b",\"currency\":");
        let currency = state
            .cart
            .values()
            .find_map(|line| nonempty(&line.currency));
        write_opt_str(&mut json, currency);
        json.extend_from_slice(b",\"url\":");
        write_opt_str(&mut json, state.cart_url.as_deref());
        json.extend_from_slice(b"},\"viewed_products\":[");
        let reported = state.viewed.iter().rev().take(MAX_VIEWED_REPORTED);
        write_list(&mut json, reported, |json, (pid, item)| {
            json.extend_from_slice(b"{\"product_id\":");
            write_str(json, pid);
            push_fmt(json, format_args!(",\"views\":{},\"price\":", item.views));
            Money::write_opt(json, item.price);
            json.extend_from_slice(b",\"name\":");
            write_opt_str(json, item.name.as_deref());
            json.extend_from_slice(b",\"url\":");
            write_opt_str(json, item.url.as_deref());
            json.push(b'}');
        });
        json.extend_from_slice(b"]}");
        let key = match state.customer_id.as_deref() {
            Some(customer) if !customer.is_empty() => customer.to_owned(),
            _ => state.session_id.clone(),
        };
        Closed {
            kind,
            key,
            detected_at: deadline,
            json,
        }
    }

    // -- the deadline index ------------------------------------------------------------------

    /// When this session next needs the detector's attention (event time).
    pub fn due(&self, state: &Session) -> i64 {
        let gap = self.config.gap_ms;
        match (state.pending.first(), state.last_ms) {
            (Some(&(t, _, _)), Some(last)) => t.min(last + gap),
            (Some(&(t, _, _)), None) => t,
            (None, Some(last)) => last + gap,
            (None, None) => state.last_seen_ms + self.config.dedup_window_ms,
        }
    }

    fn reindex(&mut self, state: &mut Session) {
        let due = self.due(state);
        if state.index_due.is_none_or(|current| due < current) {
            state.index_due = Some(due);
            self.index.push(Reverse((due, state.session_id.clone())));
        }
    }
}

fn nonempty(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|t| !t.is_empty())
}

/// Python's `value = (value or 0) + price * quantity` over the lines with a price, in its
/// default decimal context (a zero sum counts as none, as in Python); None when no line has one.
fn cart_value(cart: &IndexMap<String, CartLine>) -> Option<Money> {
    let mut value: Option<Money> = None;
    for line in cart.values() {
        let Some(price) = line.price else { continue };
        let sum = value.filter(|sum| sum.coef != 0).unwrap_or(Money::ZERO);
        value = Some(sum.plus_rounded(price.times_rounded(line.quantity)));
    }
    value
}

/// `<session>\0<kind>\0<deadline>` under BLAKE2b-128, as `ab-<hex>`: the same id for the same
/// period after a restart (streams.models.ids.stable_id; tests/support/abandonments.py checks).
pub fn abandonment_id(session_id: &str, kind: &str, deadline_ms: i64) -> String {
    let mut hasher = Blake2bVar::new(16).expect("16 is a valid BLAKE2b size");
    hasher.update(session_id.as_bytes());
    hasher.update(b"\x00");
    hasher.update(kind.as_bytes());
    hasher.update(b"\x00");
    let mut deadline = Vec::with_capacity(16);
    push_fmt(&mut deadline, format_args!("{deadline_ms}"));
    hasher.update(&deadline);
    let mut digest = [0u8; 16];
    hasher
        .finalize_variable(&mut digest)
        .expect("the size matches");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(35);
    id.push_str("ab-");
    for byte in digest {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 15)]));
    }
    id
}
