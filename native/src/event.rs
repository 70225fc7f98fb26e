//! Storefront events (BRIEF §2) as the core needs them, and the fast reader of their JSON.
//!
//! `parse` reads only the plain shapes storefronts send (string ids, string prices, upper- or
//! lower-case currency codes, canonical event times) and validates them exactly as the Python
//! checked parser (`streams.models.event_parse`) does. Anything else — a malformed record or a
//! legal but unusual shape — returns None and is left to that parser, which also gives the
//! reason a record is refused. tests/unit/test_native_parse.py holds the two together.

use std::borrow::Cow;

use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

use crate::money::Money;
use crate::text::{parse_time, write_opt_str, write_str, write_time};

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

    fn needs_product(self) -> bool {
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
}

/// One validated event: the fields detection reads (a record's other fields are validated by
/// the parsers and not kept).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub kind: Kind,
    pub occurred_at: i64,
    pub session_id: String,
    pub customer_id: Option<String>,
    pub store_id: Option<String>,
    pub product: Option<Product>,
    pub quantity: i64,
    pub cart_url: Option<String>,
}

impl Event {
    /// The canonical contract shape of what is kept (pending events in saved state).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event_id\":");
        write_str(out, &self.event_id);
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(self.kind.name().as_bytes());
        out.extend_from_slice(b"\",\"occurred_at\":\"");
        write_time(out, self.occurred_at);
        out.extend_from_slice(b"\",\"session_id\":");
        write_str(out, &self.session_id);
        for (key, value) in [
            (",\"customer_id\":", &self.customer_id),
            (",\"store_id\":", &self.store_id),
        ] {
            if let Some(value) = value {
                out.extend_from_slice(key.as_bytes());
                write_str(out, value);
            }
        }
        if let Some(product) = &self.product {
            out.extend_from_slice(b",\"product\":{\"id\":");
            write_str(out, &product.id);
            for (key, value) in [
                (",\"name\":", &product.name),
                (",\"currency\":", &product.currency),
                (",\"url\":", &product.url),
                (",\"image_url\":", &product.image_url),
            ] {
                if let Some(value) = value {
                    out.extend_from_slice(key.as_bytes());
                    write_str(out, value);
                }
            }
            if let Some(price) = product.price {
                out.extend_from_slice(b",\"price\":\"");
                price.write(out);
                out.push(b'"');
            }
            out.push(b'}');
        }
        if self.kind.changes_cart() {
            out.extend_from_slice(format!(",\"quantity\":{}", self.quantity).as_bytes());
        }
        if let Some(url) = &self.cart_url {
            out.extend_from_slice(b",\"cart\":{\"url\":");
            write_opt_str(out, Some(url));
            out.push(b'}');
        }
        out.push(b'}');
    }
}

// -- the fast reader -------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    occurred_at: Option<Time<'a>>,
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    customer_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    store_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    product: Option<RawProduct<'a>>,
    quantity: Option<Quantity>,
    #[serde(borrow)]
    cart: Option<RawCart<'a>>,
    #[serde(borrow)]
    order: Option<RawOrder<'a>>,
}

#[derive(Deserialize)]
struct RawProduct<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    currency: Option<Cow<'a, str>>,
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    image_url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    #[allow(dead_code)] // validated as a string, not kept
    category: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawCart<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawOrder<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(borrow)]
    currency: Option<Cow<'a, str>>,
}

/// `occurred_at`: epoch milliseconds (an integer) or text.
enum Time<'a> {
    Millis(i64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Time<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl<'de> Visitor<'de> for TimeVisitor {
            type Value = Time<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("epoch milliseconds or RFC 3339 text")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Time::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(Time::Millis)
                    .map_err(|_| E::custom("too large"))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Time::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Time::Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_any(TimeVisitor)
    }
}

/// `quantity`: an integer, or anything at all on types that carry none (it is then ignored).
enum Quantity {
    Count(i64),
    Other,
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;
        impl<'de> Visitor<'de> for QuantityVisitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a quantity")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Quantity::Count(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Quantity::Other, Quantity::Count))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Quantity::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Quantity::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Quantity::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Quantity::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Quantity::Other)
            }
        }
        deserializer.deserialize_any(QuantityVisitor)
    }
}

fn chars_within(text: &str, max: usize) -> bool {
    // A byte count at or under the limit is a char count under it too.
    text.len() <= max || text.chars().count() <= max
}

/// A required id: a non-empty string of at most 256 characters.
fn required_id(value: Option<Cow<'_, str>>) -> Option<String> {
    let value = value?;
    (!value.is_empty() && chars_within(&value, MAX_ID_CHARS)).then(|| value.into_owned())
}

/// An optional id: absent, null and "" are None; else at most 256 characters.
/// The outer None means "not for the fast reader".
fn optional_id(value: Option<Cow<'_, str>>) -> Option<Option<String>> {
    match value {
        None => Some(None),
        Some(v) if v.is_empty() => Some(None),
        Some(v) => chars_within(&v, MAX_ID_CHARS).then(|| Some(v.into_owned())),
    }
}

fn money(value: Option<Cow<'_, str>>) -> Option<Option<Money>> {
    match value {
        None => Some(None),
        Some(v) if v.is_empty() => Some(None),
        Some(v) => Money::parse_plain(&v).map(Some),
    }
}

fn currency(value: Option<Cow<'_, str>>) -> Option<Option<String>> {
    match value {
        None => Some(None),
        Some(v) if v.is_empty() => Some(None),
        Some(v) => (v.len() == 3 && v.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| Some(v.to_ascii_uppercase())),
    }
}

/// Read one record, or None to leave it to the checked parser (see the module docs).
pub fn parse(raw: &[u8]) -> Option<Event> {
    if raw.len() > MAX_RECORD_BYTES {
        return None;
    }
    let record: RawEvent = serde_json::from_slice(raw).ok()?;
    let kind = Kind::from_name(&record.kind?)?;
    let event_id = required_id(record.event_id)?;
    let occurred_at = match record.occurred_at? {
        Time::Millis(ms) => crate::text::in_range(ms).then_some(ms)?,
        Time::Text(text) => {
            if text.len() > 40 {
                return None;
            }
            parse_time(&text)?
        }
    };
    let session_id = required_id(record.session_id)?;
    let customer_id = optional_id(record.customer_id)?;
    let store_id = optional_id(record.store_id)?;
    let product = match record.product {
        Some(raw) => Some(Product {
            id: required_id(raw.id)?,
            name: raw.name.map(Cow::into_owned),
            price: money(raw.price)?,
            currency: currency(raw.currency)?,
            url: raw.url.map(Cow::into_owned),
            image_url: raw.image_url.map(Cow::into_owned),
        }),
        None if kind.needs_product() => return None,
        None => None,
    };
    let quantity = if kind.changes_cart() {
        match record.quantity {
            None => 1,
            Some(Quantity::Count(q)) if q >= 1 => q,
            Some(_) => return None,
        }
    } else {
        1
    };
    let cart_url = match record.cart {
        Some(cart) => {
            optional_id(cart.id)?;
            cart.url.map(Cow::into_owned)
        }
        None => None,
    };
    if let Some(order) = record.order {
        optional_id(order.id)?;
        money(order.value)?;
        currency(order.currency)?;
    }
    Some(Event {
        event_id,
        kind,
        occurred_at,
        session_id,
        customer_id,
        store_id,
        product,
        quantity,
        cart_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_plain_record_and_writes_it_back() {
        let raw = br#"{"event_id":"e1","type":"cart_item_added","occurred_at":"2019-10-01T00:00:00.000Z","session_id":"s1","product":{"id":"p1","price":"2.50","currency":"usd","name":"N"},"quantity":2,"cart":{"url":"https://x/c"}}"#;
        let event = parse(raw).unwrap();
        assert_eq!(event.quantity, 2);
        assert_eq!(
            event.product.as_ref().unwrap().currency.as_deref(),
            Some("USD")
        );
        let mut out = Vec::new();
        event.write_json(&mut out);
        assert_eq!(parse(&out).unwrap(), event);
    }

    #[test]
    fn leaves_unusual_shapes_to_the_checked_parser() {
        for raw in [
            &br#"{"event_id":1,"type":"page_viewed","occurred_at":1569888000000,"session_id":"s"}"#[..],
            br#"{"event_id":"e","type":"nope","occurred_at":1569888000000,"session_id":"s"}"#,
            br#"{"event_id":"e","type":"product_viewed","occurred_at":1569888000000,"session_id":"s"}"#,
            br#"{"event_id":"e","type":"cart_item_added","occurred_at":1569888000000,"session_id":"s","product":{"id":"p"},"quantity":0}"#,
            br#"{"event_id":"e","event_id":"f","type":"page_viewed","occurred_at":1569888000000,"session_id":"s"}"#,
            br#"{"event_id":"e","type":"page_viewed","occurred_at":1569888000,"session_id":"s"}"#,
            br#"[1]"#,
        ] {
            assert!(parse(raw).is_none(), "{}", String::from_utf8_lossy(raw));
        }
    }
}
