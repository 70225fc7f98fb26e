//! The detection rules, one session at a time: events applied in event-time order, periods
//! closed at their deadline, the deadline index, and the counters (docs/semantics.md).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::event::{Event, Kind};
use crate::intern::{Facts, Interner, Update};
use crate::records::Closed;
use crate::sessions::{nonempty, CartLine, Session, Viewed};

pub const MAX_VIEWED_KEPT: usize = 50; // distinct products remembered per period
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

/// What applies the rules to one session at a time: the configuration, the counters, the
/// shared texts and product facts, the deadline index and the arrival sequence. Apart from the
/// sessions, so that a session can be borrowed from the map while the rules change it.
pub struct Rules {
    pub config: Config,
    pub counters: Counters,
    pub(crate) strings: Interner,
    pub(crate) index: BinaryHeap<Reverse<(i64, Arc<str>)>>,
    pub(crate) seq: u64,
}

impl Rules {
    /// Apply the session's pending events up to `watermark` and close its period if due.
    pub(crate) fn settle(&mut self, state: &mut Session, watermark: i64, out: &mut Vec<Closed>) {
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

    pub(crate) fn apply(
        &mut self,
        state: &mut Session,
        event: &Event,
        t: i64,
        out: &mut Vec<Closed>,
    ) {
        self.counters.applied += 1;
        let mut last = state.last_ms;
        if last.is_some_and(|last| t >= last + self.config.gap_ms) {
            self.close(state, out);
            last = None;
        }
        if t > state.last_seen_ms {
            state.last_seen_ms = t;
        }
        if let Some(customer) = event.customer_id.as_deref() {
            if state.customer_id.as_deref() != Some(customer) {
                state.customer_id = Some(customer.into());
            }
        }
        if let Some(store) = event.store_id.as_deref() {
            if state.store_id.as_deref() != Some(store) {
                state.store_id = Some(self.strings.text(store));
            }
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
                    let update = Update {
                        price: product.price,
                        name: nonempty(&product.name),
                        url: nonempty(&product.url),
                        ..Update::default()
                    };
                    let viewed = &mut state.viewed;
                    // Moved to the end: the most recent last.
                    let item = match viewed.iter().position(|(id, _)| **id == *product.id) {
                        Some(at) => {
                            let (id, mut item) = viewed.remove(at);
                            item.views += 1;
                            item.facts = self.strings.update(&item.facts, update);
                            (id, item)
                        }
                        None => {
                            if viewed.len() >= MAX_VIEWED_KEPT {
                                viewed.remove(0);
                            }
                            let none = self.strings.facts(Facts::default());
                            let item = Viewed {
                                views: 1,
                                facts: self.strings.update(&none, update),
                            };
                            (self.strings.text(&product.id), item)
                        }
                    };
                    viewed.push(item);
                }
            }
            Kind::CartItemAdded => {
                if let Some(product) = product {
                    let cart = &mut state.cart;
                    let at = match cart.iter().position(|(id, _)| **id == *product.id) {
                        Some(at) => at,
                        None => {
                            let line = CartLine {
                                quantity: 0,
                                facts: self.strings.facts(Facts::default()),
                            };
                            cart.push((self.strings.text(&product.id), line));
                            cart.len() - 1
                        }
                    };
                    let line = &mut cart[at].1;
                    line.quantity = line.quantity.saturating_add(i128::from(event.quantity));
                    let update = Update {
                        price: product.price,
                        name: nonempty(&product.name),
                        url: nonempty(&product.url),
                        image_url: nonempty(&product.image_url),
                        // A currency comes with the price it is of.
                        currency: product.price.and(nonempty(&product.currency)),
                    };
                    line.facts = self.strings.update(&line.facts, update);
                }
                if let Some(url) = event.cart_url().filter(|url| !url.is_empty()) {
                    set_text(&mut state.cart_url, url);
                }
            }
            Kind::CartItemRemoved => {
                if let Some(product) = product {
                    // A remove of an unknown product is ignored.
                    let cart = &mut state.cart;
                    if let Some(at) = cart.iter().position(|(id, _)| **id == *product.id) {
                        let line = &mut cart[at].1;
                        line.quantity -= i128::from(event.quantity);
                        if line.quantity <= 0 {
                            cart.remove(at);
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
                    set_text(&mut state.cart_url, url);
                }
            }
            Kind::PageViewed => {}
        }
    }

    pub(crate) fn close(&mut self, state: &mut Session, out: &mut Vec<Closed>) {
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

    pub(crate) fn reindex(&mut self, state: &mut Session) {
        let due = self.due(state);
        if state.index_due.is_none_or(|current| due < current) {
            state.index_due = Some(due);
            self.index
                .push(Reverse((due, Arc::clone(&state.session_id))));
        }
    }
}

/// Set a session's own text, reusing it when it is the same.
fn set_text(held: &mut Option<Box<str>>, text: &str) {
    if held.as_deref() != Some(text) {
        *held = Some(text.into());
    }
}
