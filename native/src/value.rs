//! A JSON value as the contract's reader sees it, and as Python would print it.
//!
//! The reader validates a record the way Python reads a decoded JSON document: a member given
//! twice keeps its last value, a JSON integer within 64 bits is an integer and any other number
//! a double (orjson's reading), and a refusal quotes the offending value as Python's `repr`
//! prints it (`Val::repr`).

use std::borrow::Cow;
use std::fmt::Write;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// One JSON value; strings are borrowed from the record unless they had escapes.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Val<'a> {
    #[default]
    Null,
    Bool(bool),
    /// Within `i64::MIN..=u64::MAX`, as orjson reads integers (larger ones are doubles).
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Val<'a>>),
    Object(Vec<(Cow<'a, str>, Val<'a>)>),
    /// A value from Python that JSON has no name for, as Python prints it (field rules only).
    Foreign(String),
}

impl<'a> Val<'a> {
    /// An object's member: the last one of that name (as a decoded `dict` holds it), else Null.
    pub fn member(members: &'a [(Cow<'a, str>, Val<'a>)], key: &str) -> &'a Val<'a> {
        members
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map_or(&Val::Null, |(_, value)| value)
    }

    /// Python's `repr` of the decoded value, cut to `max_chars` (`f"{value!r:.N}"`).
    pub fn repr(&self, max_chars: usize) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        match out.char_indices().nth(max_chars) {
            Some((at, _)) => out[..at].to_owned(),
            None => out,
        }
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            Val::Null => out.push_str("None"),
            Val::Bool(true) => out.push_str("True"),
            Val::Bool(false) => out.push_str("False"),
            Val::Int(value) => {
                let _ = write!(out, "{value}");
            }
            Val::Float(value) => out.push_str(&float_text(*value)),
            Val::Str(text) => out.push_str(&str_repr(text)),
            Val::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_repr(out);
                }
                out.push(']');
            }
            Val::Object(members) => {
                // A dict: each name once, at its first place, with its last value.
                out.push('{');
                let mut first = true;
                for (i, (name, _)) in members.iter().enumerate() {
                    if members[..i].iter().any(|(earlier, _)| earlier == name) {
                        continue;
                    }
                    if !first {
                        out.push_str(", ");
                    }
                    first = false;
                    out.push_str(&str_repr(name));
                    out.push_str(": ");
                    Val::member(members, name).write_repr(out);
                }
                out.push('}');
            }
            Val::Foreign(text) => out.push_str(text),
        }
    }
}

/// Python's `str(float)` (`repr`): the shortest digits that read back, fixed notation for
/// exponents -4..15 (with at least one fraction digit), else `1e-05` / `1.5e+16`.
pub fn float_text(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `d.ddde±x`.
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the point
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point as usize >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
    }
    out
}

/// Python's `repr(str)`: single quotes unless the text has one and no double quote; `\\`, the
/// quote, `\t \n \r` and unprintable characters escaped. Python decides "printable" from the
/// Unicode database; this uses the control, separator and common format characters, which
/// covers what records carry.
pub fn str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
    out
}

fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let code = c as u32;
    !(c.is_control()
        || c.is_whitespace()
        || matches!(
            code,
            0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
                | 0x202a..=0x202e | 0x2060..=0x206f | 0xd800..=0xf8ff | 0xfeff
                | 0xfff9..=0xfffb | 0xe0001..=0xe007f | 0xf0000..
        ))
}

/// Python's `str.strip()`: Unicode whitespace, with the four information separators.
pub fn py_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

impl<'de: 'a, 'a> Deserialize<'de> for Val<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValVisitor(std::marker::PhantomData))
    }
}

struct ValVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ValVisitor<'a> {
    type Value = Val<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Val::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Val::Int(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.is_finite() {
            Ok(Val::Float(v))
        } else {
            Err(E::custom("number is out of range"))
        }
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Val<'a>>()? {
            items.push(item);
        }
        Ok(Val::Array(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<Key<'a>, Val<'a>>()? {
            members.push((key.0, value));
        }
        Ok(Val::Object(members))
    }
}

/// An object member's name, borrowed unless it had escapes.
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_prints_them() {
        for (value, text) in [
            (2.5, "2.5"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (10.0, "10.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (35.79, "35.79"),
            (-0.0, "-0.0"),
            (1.8446744073709552e19, "1.8446744073709552e+19"),
            (123456789.123, "123456789.123"),
            (1.5e-7, "1.5e-07"),
            (0.1, "0.1"),
        ] {
            assert_eq!(float_text(value), text);
        }
    }

    #[test]
    fn strings_and_containers_print_as_python_prints_them() {
        let val: Val = serde_json::from_str(
            r#"{"a":[1,2.5,"it's",null,true],"b":{"q":"\"x'"},"a":"\t\u0001é"}"#,
        )
        .unwrap();
        assert_eq!(val.repr(100), r#"{'a': '\t\x01é', 'b': {'q': '"x\''}}"#);
        assert_eq!(val.repr(5), "{'a':");
    }
}
