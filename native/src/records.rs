//! The abandonment record: a closed period's facts written as the JSON line the topic and
//! `cartpulse detect` carry (docs/semantics.md), and its stable id.

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use std::sync::Arc;

use crate::money::Money;
use crate::rules::Rules;
use crate::sessions::{nonempty, CartLine, Session};
use crate::text::{push_fmt, write_list, write_opt_str, write_str, write_time};

pub const MAX_VIEWED_REPORTED: usize = 10;

/// A closed period's record, already in its JSON form (docs/semantics.md).
#[derive(Clone, Debug)]
pub struct Closed {
    pub kind: &'static str,
    pub key: String,
    pub detected_at: i64,
    pub json: Vec<u8>,
}

impl Rules {
    pub(crate) fn abandonment(
        &self,
        state: &Session,
        kind: &'static str,
        last: i64,
        deadline: i64,
    ) -> Closed {
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
            let facts = &line.facts;
            Money::write_opt(json, facts.price);
            json.extend_from_slice(b",\"name\":");
            write_opt_str(json, facts.name.as_deref());
            json.extend_from_slice(b",\"url\":");
            write_opt_str(json, facts.url.as_deref());
            json.extend_from_slice(b",\"image_url\":");
            write_opt_str(json, facts.image_url.as_deref());
            json.push(b'}');
        });
        json.extend_from_slice(b"],\"value\":");
        Money::write_opt(&mut json, cart_value(&state.cart));
        json.extend_from_slice(b",\"currency\":");
        let currency = state
            .cart
            .iter()
            .find_map(|(_, line)| nonempty(&line.facts.currency));
        write_opt_str(&mut json, currency);
        json.extend_from_slice(b",\"url\":");
        write_opt_str(&mut json, state.cart_url.as_deref());
        json.extend_from_slice(b"},\"viewed_products\":[");
        let reported = state.viewed.iter().rev().take(MAX_VIEWED_REPORTED);
        write_list(&mut json, reported, |json, (pid, item)| {
            json.extend_from_slice(b"{\"product_id\":");
            write_str(json, pid);
            push_fmt(json, format_args!(",\"views\":{},\"price\":", item.views));
            Money::write_opt(json, item.facts.price);
            json.extend_from_slice(b",\"name\":");
            write_opt_str(json, item.facts.name.as_deref());
            json.extend_from_slice(b",\"url\":");
            write_opt_str(json, item.facts.url.as_deref());
            json.push(b'}');
        });
        json.extend_from_slice(b"]}");
        let key = match state.customer_id.as_deref() {
            Some(customer) if !customer.is_empty() => customer.to_owned(),
            _ => state.session_id.to_string(),
        };
        Closed {
            kind,
            key,
            detected_at: deadline,
            json,
        }
    }
}

/// Python's `value = (value or 0) + price * quantity` over the lines with a price, in its
/// default decimal context (a zero sum counts as none, as in Python); None when no line has one.
fn cart_value(cart: &[(Arc<str>, CartLine)]) -> Option<Money> {
    let mut value: Option<Money> = None;
    for (_, line) in cart {
        let Some(price) = line.facts.price else {
            continue;
        };
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
