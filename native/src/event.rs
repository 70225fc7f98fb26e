//! Storefront events (docs/semantics.md, "Events") as the core needs them, and the fast reader
//! of their JSON.
//!
//! `parse` reads only the plain shapes storefronts send (string ids, string prices, upper- or
//! lower-case currency codes, event times as text or epoch milliseconds) and validates them
//! exactly as the Python checked parser (`streams.models.event_parse`) does; times and amounts
//! by the very functions that parser calls (`text::parse_time`, `Money::parse`). Anything else
//! — a malformed record or a legal but unusual shape — returns None and is left to that parser,
//! which also gives the reason a record is refused. tests/unit/test_native_parse.py holds the
//! two together.

use std::borrow::Cow;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::money::Money;
use crate::text::{check_ms, parse_time, push_fmt, write_opt_str, write_str, write_time};

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
            if product.price.is_some() {
                out.extend_from_slice(b",\"price\":");
                Money::write_opt(out, product.price);
            }
            out.push(b'}');
        }
        if self.kind.changes_cart() {
            push_fmt(out, format_args!(",\"quantity\":{}", self.quantity));
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

// Objects are read by hand, not derived: serde's derive would also read a struct from a JSON
// array by position, and would skip unknown members without checking them, where orjson (the
// checked parser's reader) refuses invalid text anywhere in a record.

type Text<'a> = Option<Str<'a>>;

/// A JSON string, borrowed from the record unless it had escapes.
struct Str<'a>(Cow<'a, str>);

impl Str<'_> {
    fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

#[derive(Default)]
struct RawEvent<'a> {
    event_id: Text<'a>,
    kind: Text<'a>,
    occurred_at: Option<Time<'a>>,
    session_id: Text<'a>,
    customer_id: Text<'a>,
    store_id: Text<'a>,
    product: Option<RawProduct<'a>>,
    quantity: Option<Quantity>,
    cart: Option<RawCart<'a>>,
    order: Option<RawOrder<'a>>,
}

#[derive(Default)]
struct RawProduct<'a> {
    id: Text<'a>,
    name: Text<'a>,
    price: Text<'a>,
    currency: Text<'a>,
    url: Text<'a>,
    image_url: Text<'a>,
    #[allow(dead_code)] // checked to be a string, not kept
    category: Text<'a>,
}

#[derive(Default)]
struct RawCart<'a> {
    id: Text<'a>,
    url: Text<'a>,
}

#[derive(Default)]
struct RawOrder<'a> {
    id: Text<'a>,
    value: Text<'a>,
    currency: Text<'a>,
    /// Not read here: a record that has them is left to the checked parser, which owns the rule.
    discount_codes: Option<Checked>,
}

/// Reads one member's value into `slot` (null stays None); a repeated member is refused.
fn member<'de, A, T>(
    map: &mut A,
    slot: &mut Option<T>,
    seen: &mut u32,
    bit: u32,
) -> Result<(), A::Error>
where
    A: de::MapAccess<'de>,
    T: Deserialize<'de>,
{
    if *seen & bit != 0 {
        return Err(de::Error::custom("duplicate member"));
    }
    *seen |= bit;
    *slot = map.next_value::<Option<T>>()?;
    Ok(())
}

/// An object's members by name; a name it does not know is read (and checked) and dropped.
macro_rules! object {
    ($name:ident, $what:literal, { $($key:literal => $field:ident: $bit:literal),* $(,)? }) => {
        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor<'a>(std::marker::PhantomData<&'a ()>);
                impl<'de: 'a, 'a> Visitor<'de> for ObjectVisitor<'a> {
                    type Value = $name<'a>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        let mut out = $name::default();
                        let mut seen = 0u32;
                        while let Some(key) = map.next_key::<Str<'de>>()? {
                            match &*key {
                                $($key => member(&mut map, &mut out.$field, &mut seen, $bit)?,)*
                                _ => map.next_value::<Checked>().map(drop)?,
                            }
                        }
                        Ok(out)
                    }
                }
                deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
            }
        }
    };
}
object!(RawEvent, "an event object", {
    "event_id" => event_id: 1,
    "type" => kind: 2,
    "occurred_at" => occurred_at: 4,
    "session_id" => session_id: 8,
    "customer_id" => customer_id: 16,
    "store_id" => store_id: 32,
    "product" => product: 64,
    "quantity" => quantity: 128,
    "cart" => cart: 256,
    "order" => order: 512,
});
object!(RawProduct, "a product object", {
    "id" => id: 1,
    "name" => name: 2,
    "price" => price: 4,
    "currency" => currency: 8,
    "url" => url: 16,
    "image_url" => image_url: 32,
    "category" => category: 64,
});
object!(RawCart, "a cart object", { "id" => id: 1, "url" => url: 2 });
object!(RawOrder, "an order object", {
    "id" => id: 1,
    "value" => value: 2,
    "currency" => currency: 4,
    "discount_codes" => discount_codes: 8,
});

/// Any JSON value, read in full (strings decoded, numbers parsed) and dropped: what orjson
/// would refuse in it (a lone surrogate, a number beyond a double) makes the record the
/// checked parser's.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CheckedVisitor;
        impl<'de> Visitor<'de> for CheckedVisitor {
            type Value = Checked;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Checked, E> {
                if v.is_finite() {
                    Ok(Checked)
                } else {
                    Err(E::custom("not a finite number"))
                }
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(Checked)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
                while map.next_entry::<Str<'de>, Checked>()?.is_some() {}
                Ok(Checked)
            }
        }
        deserializer.deserialize_any(CheckedVisitor)
    }
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
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v.is_finite() {
                    Ok(Quantity::Other)
                } else {
                    Err(E::custom("not a finite number"))
                }
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Quantity::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Quantity::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(Quantity::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<Str<'de>, Checked>()?.is_some() {}
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
fn required_id(value: Text<'_>) -> Option<String> {
    let value = value?;
    (!value.is_empty() && chars_within(&value, MAX_ID_CHARS)).then(|| value.into_owned())
}

/// An optional id: absent, null and "" are None; else at most 256 characters.
/// The outer None means "not for the fast reader".
fn optional_id(value: Text<'_>) -> Option<Option<String>> {
    match value {
        None => Some(None),
        Some(v) if v.is_empty() => Some(None),
        Some(v) => chars_within(&v, MAX_ID_CHARS).then(|| Some(v.into_owned())),
    }
}

fn money(value: Text<'_>) -> Option<Option<Money>> {
    match value {
        None => Some(None),
        Some(v) if v.is_empty() => Some(None),
        Some(v) => Money::parse(&v).ok().map(Some),
    }
}

fn currency(value: Text<'_>) -> Option<Option<String>> {
    match value {
        None => Some(None),
        Some(v) if v.is_empty() => Some(None),
        Some(v) => (v.len() == 3 && v.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| Some(v.to_ascii_uppercase())),
    }
}

/// Read one record, or None to leave it to the checked parser (see the module docs).
pub fn parse(raw: &[u8]) -> Option<Event> {
    parse_within(raw, MAX_RECORD_BYTES)
}

/// `parse`, for a shell whose record size limit may be lower than the contract's.
pub fn parse_within(raw: &[u8], max_bytes: usize) -> Option<Event> {
    if raw.len() > max_bytes.min(MAX_RECORD_BYTES) {
        return None;
    }
    let record: RawEvent = serde_json::from_slice(raw).ok()?;
    let kind = Kind::from_name(&record.kind?)?;
    let event_id = required_id(record.event_id)?;
    let occurred_at = match record.occurred_at? {
        Time::Millis(ms) => check_ms(ms).ok()?,
        Time::Text(text) => parse_time(&text).ok()?,
    };
    let session_id = required_id(record.session_id)?;
    let customer_id = optional_id(record.customer_id)?;
    let store_id = optional_id(record.store_id)?;
    let product = match record.product {
        Some(raw) => Some(Product {
            id: required_id(raw.id)?,
            name: raw.name.map(Str::into_owned),
            price: money(raw.price)?,
            currency: currency(raw.currency)?,
            url: raw.url.map(Str::into_owned),
            image_url: raw.image_url.map(Str::into_owned),
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
            cart.url.map(Str::into_owned)
        }
        None => None,
    };
    if let Some(order) = record.order {
        if order.discount_codes.is_some() {
            return None; // order.discount_codes: streams/models/event_parse.py's rule
        }
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
            br#"{"event_id":"e","type":"order_completed","occurred_at":1569888000000,"session_id":"s","order":{"id":"o","discount_codes":["CP-X"]}}"#,
        ] {
            assert!(parse(raw).is_none(), "{}", String::from_utf8_lossy(raw));
        }
    }
}
