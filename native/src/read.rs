//! The event contract's one reader (docs/semantics.md, "Events"): every record gives either
//! the event or the reason it is refused, the text that goes into dead-letter records and the
//! collector's answers. Python's `parse_event` is a thin call into this.
//!
//! A record is read as Python reads a decoded JSON document: a member given twice keeps its
//! last value, `null` is the same as absent, integer ids read as their digits, a JSON number as
//! an amount reads as the text Python prints for it (`2.5`, `1e-05`), and currencies may be
//! lower-case. The field rules (`required_id`, `optional_id`, `amount`, `currency`, `time`)
//! are also what Python's product and REES46 readers call. tests/fixtures/contract_cases.json
//! holds every rule; cargo test and pytest both run it.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

use crate::event::{Cart, Event, Kind, Order, Product, MAX_ID_CHARS};
use crate::money::Money;
use crate::text::{check_ms, parse_time, TIME_RANGE};
use crate::value::{float_text, py_strip, str_repr, Key, Val};

pub const MAX_DISCOUNT_CODES: usize = 32;

/// Why a record is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It breaks the contract: to the dead-letter topic with this reason.
    Invalid(String),
    /// A well-formed record of a type cartpulse does not know (`unknown type 'x'`).
    UnknownType(String),
}

impl Refusal {
    pub fn reason(&self) -> &str {
        match self {
            Refusal::Invalid(reason) | Refusal::UnknownType(reason) => reason,
        }
    }
}

type Checked<T> = Result<T, String>;

/// What a reading keeps of a valid record; it checks the whole record either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Everything the contract keeps (`streams.models.events.Event`).
    All,
    /// What detection reads: without product.category, cart.id and the order, which are then
    /// checked but not copied (`Event::for_detection`).
    Detection,
}

/// One record: the whole event, or why not. `max_bytes` is the shell's size limit.
pub fn read(raw: &[u8], max_bytes: usize) -> Result<Event, Refusal> {
    read_keeping(raw, max_bytes, Keep::All)
}

/// `read`, keeping `keep` of the event.
pub fn read_keeping(raw: &[u8], max_bytes: usize, keep: Keep) -> Result<Event, Refusal> {
    if raw.len() > max_bytes {
        return Err(Refusal::Invalid(format!(
            "record is {} bytes, over the {max_bytes}-byte limit",
            raw.len()
        )));
    }
    let not_json = |e: serde_json::Error| Refusal::Invalid(format!("not valid JSON: {e}"));
    let mut document = serde_json::Deserializer::from_slice(raw);
    let top = TopVisitor(keep)
        .deserialize(&mut document)
        .map_err(not_json)?;
    document.end().map_err(not_json)?; // invalid JSON is the reason before any other
    match top {
        Top::Record(event) => event,
        Top::Other(kind) => Err(Refusal::Invalid(format!(
            "a record must be a JSON object, not {kind}"
        ))),
    }
}

fn event(f: &Fields, keep: Keep) -> Result<Event, Refusal> {
    let event_id = required_id(&f.scalars[EVENT_ID], "event_id").map_err(Refusal::Invalid)?;
    let kind = match &f.scalars[TYPE] {
        Val::Str(name) if !name.is_empty() => Kind::from_name(name).ok_or_else(|| {
            let name: String = name.chars().take(64).collect();
            Refusal::UnknownType(format!("unknown type {}", str_repr(&name)))
        })?,
        _ => {
            return Err(Refusal::Invalid(
                "type is required and must be a non-empty string".into(),
            ))
        }
    };
    fields(f, event_id, kind, keep).map_err(Refusal::Invalid)
}

fn fields(f: &Fields, event_id: String, kind: Kind, keep: Keep) -> Checked<Event> {
    let occurred_at = time(&f.scalars[OCCURRED_AT], "occurred_at")?;
    let session_id = required_id(&f.scalars[SESSION_ID], "session_id")?;
    let customer_id = optional_id(&f.scalars[CUSTOMER_ID], "customer_id")?.map(Cow::into_owned);
    let store_id = optional_id(&f.scalars[STORE_ID], "store_id")?.map(Cow::into_owned);
    let product = match &f.product {
        Obj::Absent if kind.needs_product() => {
            return Err(format!("{} needs product.id", kind.name()))
        }
        Obj::Absent => None,
        Obj::Members(members) => Some(product(members, keep)?),
        Obj::Other => return Err("product must be an object".into()),
    };
    let quantity = if kind.changes_cart() {
        match &f.scalars[QUANTITY] {
            Val::Null => 1,
            &Val::Int(q) if (1..=i128::from(i64::MAX)).contains(&q) => q as i64,
            other => {
                return Err(format!(
                    "quantity must be an integer >= 1 and < 2**63, got {}",
                    other.repr(40)
                ))
            }
        }
    } else {
        1
    };
    let cart = match &f.cart {
        Obj::Absent => None,
        Obj::Members([id, url]) => {
            let id = optional_id(id, "cart.id")?;
            Some(Cart {
                id: id.filter(|_| keep == Keep::All).map(Cow::into_owned),
                url: optional_str(url, "url")?,
            })
        }
        Obj::Other => return Err("cart must be an object".into()),
    };
    let order = match &f.order {
        Obj::Absent => None,
        Obj::Members([id, value, currency_code, codes]) => {
            let order = Order {
                id: optional_id(id, "order.id")?.map(Cow::into_owned),
                value: amount(value, "order.value")?,
                currency: currency(currency_code, "order.currency")?,
                discount_codes: discount_codes(codes)?,
            };
            (keep == Keep::All).then(|| Box::new(order))
        }
        Obj::Other => return Err("order must be an object".into()),
    };
    Ok(Event {
        event_id,
        kind,
        occurred_at,
        session_id,
        customer_id,
        store_id,
        product,
        quantity,
        cart,
        order,
    })
}

fn product(members: &[Val<'_>; 7], keep: Keep) -> Checked<Product> {
    let [id, name, price, currency_code, url, image_url, category] = members;
    let id = required_id(id, "product.id")?;
    let mut texts = [None, None, None, None];
    let named = [
        (name, "name"),
        (url, "url"),
        (image_url, "image_url"),
        (category, "category"),
    ];
    for (slot, (value, key)) in texts.iter_mut().zip(named) {
        *slot = match value {
            Val::Null => None,
            Val::Str(_) if key == "category" && keep == Keep::Detection => None,
            Val::Str(text) => Some(text.to_string()),
            _ => return Err(format!("product.{key} must be a string")),
        };
    }
    let [name, url, image_url, category] = texts;
    Ok(Product {
        id,
        name,
        price: amount(price, "product.price")?,
        currency: currency(currency_code, "product.currency")?,
        url,
        image_url,
        category,
    })
}

fn chars_over(text: &str, max: usize) -> bool {
    // A byte count at or under the limit is a char count under it too.
    text.len() > max && text.chars().count() > max
}

/// A required id: a non-empty string of at most 256 characters, or an integer (its digits).
pub fn required_id(value: &Val, label: &str) -> Checked<String> {
    let text = match value {
        Val::Str(text) if !text.is_empty() => text.to_string(),
        Val::Int(number) => number.to_string(),
        _ => {
            return Err(format!(
                "{label} is required and must be a non-empty string"
            ))
        }
    };
    if chars_over(&text, MAX_ID_CHARS) {
        return Err(format!("{label} is longer than {MAX_ID_CHARS} characters"));
    }
    Ok(text)
}

/// An optional id: absent, null and "" are none; else a string of at most 256 characters, or
/// an integer (its digits).
pub fn optional_id<'v>(value: &'v Val, label: &str) -> Checked<Option<Cow<'v, str>>> {
    match value {
        Val::Null => Ok(None),
        Val::Str(text) if text.is_empty() => Ok(None),
        Val::Int(number) => Ok(Some(Cow::Owned(number.to_string()))),
        Val::Str(text) if chars_over(text, MAX_ID_CHARS) => {
            Err(format!("{label} is longer than {MAX_ID_CHARS} characters"))
        }
        Val::Str(text) => Ok(Some(Cow::Borrowed(text))),
        _ => Err(format!("{label} must be a string")),
    }
}

fn optional_str(value: &Val, label: &str) -> Checked<Option<String>> {
    match value {
        Val::Null => Ok(None),
        Val::Str(text) => Ok(Some(text.to_string())),
        _ => Err(format!("{label} must be a string")),
    }
}

/// A money amount: decimal text or a JSON number (read as the text Python prints for it) under
/// `Money::parse`'s rule; none for absent, null and "".
pub fn amount(value: &Val, label: &str) -> Checked<Option<Money>> {
    let text: Cow<str> = match value {
        Val::Null => return Ok(None),
        Val::Str(text) if text.is_empty() => return Ok(None),
        Val::Str(text) => Cow::Borrowed(text),
        Val::Int(number) => Cow::Owned(number.to_string()),
        &Val::Float(number) => Cow::Owned(float_text(number)),
        _ => return Err(format!("{label} must be a decimal number or string")),
    };
    Money::parse(&text)
        .map(Some)
        .map_err(|e| format!("{label} {e}, got {}", value.repr(40)))
}

/// An ISO 4217 code, upper-cased; none for absent, null and "".
pub fn currency(value: &Val, label: &str) -> Checked<Option<String>> {
    match value {
        Val::Null => Ok(None),
        Val::Str(text) if text.is_empty() => Ok(None),
        Val::Str(text) if text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(text.to_ascii_uppercase()))
        }
        _ => Err(format!(
            "{label} must be an ISO 4217 code like 'USD', got {}",
            value.repr(20)
        )),
    }
}

/// Event time: RFC 3339 text with a UTC offset or epoch milliseconds, within 2000..2100.
pub fn time(value: &Val, label: &str) -> Checked<i64> {
    let checked = match value {
        Val::Null => return Err(format!("{label} is required")),
        Val::Str(text) => parse_time(text),
        // An integer past 64 bits is as far outside the range as one just past it.
        &Val::Int(ms) => i64::try_from(ms).map_or(Err(TIME_RANGE), check_ms),
        _ => {
            return Err(format!(
                "{label} must be an RFC 3339 string or epoch milliseconds"
            ))
        }
    };
    checked.map_err(|e| format!("{label} {e}, got {}", value.repr(50)))
}

/// `order.discount_codes`: codes as strings, or objects with a `code` (Shopify's order shape,
/// `{"code", "amount", "type"}`), each trimmed.
fn discount_codes(value: &Val) -> Checked<Vec<String>> {
    let items = match value {
        Val::Null => return Ok(Vec::new()),
        Val::Array(items) if items.len() <= MAX_DISCOUNT_CODES => items,
        _ => {
            return Err(format!(
                "order.discount_codes must be a list of at most {MAX_DISCOUNT_CODES} codes"
            ))
        }
    };
    items
        .iter()
        .map(|item| {
            let code = match item {
                Val::Object(members) => Val::member(members, "code"),
                other => other,
            };
            match code {
                Val::Str(code) if !py_strip(code).is_empty() && !chars_over(code, MAX_ID_CHARS) => {
                    Ok(py_strip(code).to_owned())
                }
                _ => Err(format!(
                    "order.discount_codes: each code is a non-empty string (or an object with \
                     one in 'code') of at most {MAX_ID_CHARS} characters"
                )),
            }
        })
        .collect()
}

// -- the record's members ----------------------------------------------------------------

// Members are read into fixed slots by name (a repeated one overwrites: the last counts), so a
// record is read without a map or a lookup per field.
const EVENT_ID: usize = 0;
const TYPE: usize = 1;
const OCCURRED_AT: usize = 2;
const SESSION_ID: usize = 3;
const CUSTOMER_ID: usize = 4;
const STORE_ID: usize = 5;
const QUANTITY: usize = 6;

fn scalar_slot(name: &str) -> Option<usize> {
    Some(match name {
        "event_id" => EVENT_ID,
        "type" => TYPE,
        "occurred_at" => OCCURRED_AT,
        "session_id" => SESSION_ID,
        "customer_id" => CUSTOMER_ID,
        "store_id" => STORE_ID,
        "quantity" => QUANTITY,
        _ => return None,
    })
}

fn product_slot(name: &str) -> Option<usize> {
    [
        "id",
        "name",
        "price",
        "currency",
        "url",
        "image_url",
        "category",
    ]
    .iter()
    .position(|key| *key == name)
}

fn cart_slot(name: &str) -> Option<usize> {
    ["id", "url"].iter().position(|key| *key == name)
}

fn order_slot(name: &str) -> Option<usize> {
    ["id", "value", "currency", "discount_codes"]
        .iter()
        .position(|key| *key == name)
}

/// The members the contract names (absent ones Null).
#[derive(Default)]
struct Fields<'a> {
    scalars: [Val<'a>; 7],
    product: Obj<'a, 7>,
    cart: Obj<'a, 2>,
    order: Obj<'a, 4>,
}

/// A member that must be an object: absent (or null), its known members in slots, or not an
/// object at all.
#[derive(Default)]
enum Obj<'a, const N: usize> {
    #[default]
    Absent,
    Members([Val<'a>; N]),
    Other,
}

/// Reads an `Obj`, its members' slots found by the function.
struct ObjSeed<'a, const N: usize>(fn(&str) -> Option<usize>, PhantomData<&'a ()>);

impl<'de: 'a, 'a, const N: usize> DeserializeSeed<'de> for ObjSeed<'a, N> {
    type Value = Obj<'a, N>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'a, 'a, const N: usize> Visitor<'de> for ObjSeed<'a, N> {
    type Value = Obj<'a, N>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut slots: [Val<'a>; N] = std::array::from_fn(|_| Val::Null);
        while let Some(Key(name)) = map.next_key::<Key<'a>>()? {
            let value = map.next_value::<Val<'a>>()?;
            if let Some(at) = (self.0)(&name) {
                slots[at] = value;
            }
        }
        Ok(Obj::Members(slots))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Obj::Absent)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Val<'a>>()?.is_some() {}
        Ok(Obj::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Obj::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Obj::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Obj::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Obj::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Obj::Other)
    }
}

/// A whole document: a record (its event or why not, judged where its members were read, so
/// they are never moved), or what else it is (`_json_type`).
// Made once per record and taken apart at once: on the stack, not boxed.
#[allow(clippy::large_enum_variant)]
enum Top {
    Record(Result<Event, Refusal>),
    Other(&'static str),
}

struct TopVisitor(Keep);

impl<'de> DeserializeSeed<'de> for TopVisitor {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON document")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut f = Fields::default();
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            match &*name {
                "product" => f.product = map.next_value_seed(ObjSeed(product_slot, PhantomData))?,
                "cart" => f.cart = map.next_value_seed(ObjSeed(cart_slot, PhantomData))?,
                "order" => f.order = map.next_value_seed(ObjSeed(order_slot, PhantomData))?,
                other => {
                    let value = map.next_value::<Val<'de>>()?;
                    if let Some(at) = scalar_slot(other) {
                        f.scalars[at] = value;
                    }
                }
            }
        }
        Ok(Top::Record(event(&f, self.0)))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Val<'de>>()?.is_some() {}
        Ok(Top::Other("an array"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Top::Other("null"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Top::Other("bool"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Top::Other("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Top::Other("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Top::Other("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Top::Other("a string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Time, MAX_RECORD_BYTES};

    fn raw(case: &serde_json::Value) -> Vec<u8> {
        let mut raw = case["record"].as_str().unwrap().as_bytes().to_vec();
        if let Some(size) = case["padded_to"].as_u64() {
            raw.resize(size as usize, b' ');
        }
        raw
    }

    /// tests/fixtures/contract_cases.json, which pytest runs through `parse_event` too.
    #[test]
    fn reads_every_contract_record_as_the_fixtures_say() {
        let cases = crate::contract_cases();
        let mut wrong = Vec::new();
        for case in cases["records"]["accepted"].as_array().unwrap() {
            match read(&raw(case), MAX_RECORD_BYTES) {
                Ok(event) => {
                    let mut out = Vec::new();
                    event.write_json(&mut out, Time::Text);
                    let written = String::from_utf8(out).unwrap();
                    if written != case["canonical"].as_str().unwrap() {
                        wrong.push(format!("{case}\n  wrote {written}"));
                    }
                    let mut millis = Vec::new();
                    event.write_json(&mut millis, Time::Millis);
                    assert_eq!(read(&millis, usize::MAX).as_ref(), Ok(&event), "reads back");
                    let mut detected = event;
                    detected.order = None;
                    if let Some(product) = &mut detected.product {
                        product.category = None;
                    }
                    if let Some(cart) = &mut detected.cart {
                        cart.id = None;
                    }
                    let kept = read_keeping(&raw(case), MAX_RECORD_BYTES, Keep::Detection);
                    assert_eq!(kept, Ok(detected), "what detection keeps");
                }
                Err(refusal) => wrong.push(format!("{case}\n  refused: {refusal:?}")),
            }
        }
        for case in cases["records"]["refused"].as_array().unwrap() {
            let (reason, unknown) = (
                case["reason"].as_str().unwrap(),
                case["unknown_type"] == true,
            );
            let expected = if unknown {
                Refusal::UnknownType(reason.into())
            } else {
                Refusal::Invalid(reason.into())
            };
            let kept = read_keeping(&raw(case), MAX_RECORD_BYTES, Keep::Detection);
            assert_eq!(kept.as_ref().err(), Some(&expected), "{case}");
            match read(&raw(case), MAX_RECORD_BYTES) {
                Err(refusal) if refusal == expected => {}
                other => wrong.push(format!("{case}\n  got {other:?}")),
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_shell_limit_below_the_contract_is_the_one_named() {
        let raw = br#"{"event_id":"e1","type":"page_viewed","occurred_at":1569888000000,"session_id":"s1"}"#;
        let refused = read(raw, raw.len() - 1).unwrap_err();
        assert_eq!(
            refused.reason(),
            format!(
                "record is {} bytes, over the {}-byte limit",
                raw.len(),
                raw.len() - 1
            )
        );
    }
}
