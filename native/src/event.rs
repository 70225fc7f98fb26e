//! Storefront events (docs/semantics.md, "Events"): what a validated record holds, and its
//! canonical JSON. The reader that validates records is `read.rs`.

use crate::money::Money;
use crate::text::{push_fmt, write_str, write_time};

pub const MAX_ID_CHARS: usize = 256;
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PageViewed,
    ProductViewed,
    CartItemAdded,
    CartItemRemoved,
    CheckoutStarted,
    OrderCompleted,
}

impl Kind {
    /// Every kind, in the contract's order (docs/semantics.md, "Events").
    pub const ALL: [Kind; 6] = [
        Kind::PageViewed,
        Kind::ProductViewed,
        Kind::CartItemAdded,
        Kind::CartItemRemoved,
        Kind::CheckoutStarted,
        Kind::OrderCompleted,
    ];

    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "page_viewed" => Kind::PageViewed,
            "product_viewed" => Kind::ProductViewed,
            "cart_item_added" => Kind::CartItemAdded,
            "cart_item_removed" => Kind::CartItemRemoved,
            "checkout_started" => Kind::CheckoutStarted,
            "order_completed" => Kind::OrderCompleted,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::PageViewed => "page_viewed",
            Kind::ProductViewed => "product_viewed",
            Kind::CartItemAdded => "cart_item_added",
            Kind::CartItemRemoved => "cart_item_removed",
            Kind::CheckoutStarted => "checkout_started",
            Kind::OrderCompleted => "order_completed",
        }
    }

    pub fn needs_product(self) -> bool {
        matches!(
            self,
            Kind::ProductViewed | Kind::CartItemAdded | Kind::CartItemRemoved
        )
    }

    pub fn changes_cart(self) -> bool {
        matches!(self, Kind::CartItemAdded | Kind::CartItemRemoved)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub id: String,
    pub name: Option<String>,
    pub price: Option<Money>,
    pub currency: Option<String>,
    pub url: Option<String>,
    pub image_url: Option<String>,
    pub category: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cart {
    pub id: Option<String>,
    pub url: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub id: Option<String>,
    pub value: Option<Money>,
    pub currency: Option<String>,
    /// The codes the shopper entered at checkout, trimmed.
    pub discount_codes: Vec<String>,
}

/// One validated event, with everything the contract keeps (`streams.models.events.Event`).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub kind: Kind,
    pub occurred_at: i64,
    pub session_id: String,
    pub customer_id: Option<String>,
    pub store_id: Option<String>,
    pub product: Option<Product>,
    /// 1 unless the event changes the cart.
    pub quantity: i64,
    pub cart: Option<Cart>,
    /// Boxed: only `order_completed` has one, and a smaller event keeps a `Record` within
    /// Python's small-object allocator.
    pub order: Option<Box<Order>>,
}

/// How `Event::write_json` writes `occurred_at`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// RFC 3339 UTC with milliseconds: the contract's canonical shape.
    Text,
    /// Epoch milliseconds: what Python decodes into its `Event` (msgspec, no re-validation).
    Millis,
}

impl Event {
    pub fn cart_url(&self) -> Option<&str> {
        self.cart.as_ref().and_then(|cart| cart.url.as_deref())
    }

    /// The event as JSON, members in the order of Python's `Event.to_dict` and absent values
    /// left out, so `Time::Text` gives the bytes of `Event.to_json()`.
    pub fn write_json(&self, out: &mut Vec<u8>, time: Time) {
        out.extend_from_slice(b"{\"event_id\":");
        write_str(out, &self.event_id);
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(self.kind.name().as_bytes());
        match time {
            Time::Text => {
                out.extend_from_slice(b"\",\"occurred_at\":\"");
                write_time(out, self.occurred_at);
                out.extend_from_slice(b"\",\"session_id\":");
            }
            Time::Millis => push_fmt(
                out,
                format_args!("\",\"occurred_at\":{},\"session_id\":", self.occurred_at),
            ),
        }
        write_str(out, &self.session_id);
        member(out, ",\"customer_id\":", self.customer_id.as_deref());
        member(out, ",\"store_id\":", self.store_id.as_deref());
        if let Some(product) = &self.product {
            out.extend_from_slice(b",\"product\":{\"id\":");
            write_str(out, &product.id);
            member(out, ",\"name\":", product.name.as_deref());
            money(out, ",\"price\":", product.price);
            member(out, ",\"currency\":", product.currency.as_deref());
            member(out, ",\"url\":", product.url.as_deref());
            member(out, ",\"image_url\":", product.image_url.as_deref());
            member(out, ",\"category\":", product.category.as_deref());
            out.push(b'}');
        }
        if self.kind.changes_cart() {
            push_fmt(out, format_args!(",\"quantity\":{}", self.quantity));
        }
        if let Some(cart) = &self.cart {
            out.extend_from_slice(b",\"cart\":{");
            let start = out.len();
            member(out, ",\"id\":", cart.id.as_deref());
            member(out, ",\"url\":", cart.url.as_deref());
            close(out, start);
        }
        if let Some(order) = &self.order {
            out.extend_from_slice(b",\"order\":{");
            let start = out.len();
            member(out, ",\"id\":", order.id.as_deref());
            money(out, ",\"value\":", order.value);
            member(out, ",\"currency\":", order.currency.as_deref());
            if !order.discount_codes.is_empty() {
                out.extend_from_slice(b",\"discount_codes\":[");
                for (i, code) in order.discount_codes.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, code);
                }
                out.push(b']');
            }
            close(out, start);
        }
        out.push(b'}');
    }
}

/// `,"key":"value"` for a value that is there.
fn member(out: &mut Vec<u8>, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        out.extend_from_slice(key.as_bytes());
        write_str(out, value);
    }
}

fn money(out: &mut Vec<u8>, key: &str, value: Option<Money>) {
    if value.is_some() {
        out.extend_from_slice(key.as_bytes());
        Money::write_opt(out, value);
    }
}

/// Close an object whose members were written from `start` each with a leading comma.
fn close(out: &mut Vec<u8>, start: usize) {
    if out.len() > start {
        out.remove(start);
    }
    out.push(b'}');
}
