//! A session's saved state (the sessions table's value): compact, versioned JSON.
//!
//! `{"v":2,"s":session,"c":customer,"st":store,"cart":[[id,qty,price,name,url,image,currency]],
//! "cu":cart_url,"l":last,"cd":closed_deadline,"ls":last_seen,"o":ordered,"co":checkout,
//! "vn":views,"vw":[[id,views,price,name,url]],"f":[[fingerprint,time]],"p":[[time,seq,event]]}`
//! Pending events are kept in their contract shape and read back by the contract's reader.
//! The seen event ids are their fingerprints (seen.rs), in ascending order.
//!
//! Version 1, written before fingerprints, had `"seen":{event_id:time}` in place of `"f"`; it
//! is still read (each id is fingerprinted on load), so a worker of this version restarted on
//! state an older one wrote carries on with it. Only version 2 is written.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::Time;
use crate::intern::{Facts, Interner};
use crate::money::Money;
use crate::seen::fingerprint;
use crate::sessions::{CartLine, Session, Viewed};
use crate::text::{push_fmt, write_list, write_opt_str, write_str};

pub const STATE_VERSION: i64 = 2;
/// The oldest version `read` accepts.
const OLDEST_VERSION: i64 = 1;

pub fn write(state: &Session, out: &mut Vec<u8>) {
    push_fmt(out, format_args!("{{\"v\":{STATE_VERSION},\"s\":"));
    write_str(out, &state.session_id);
    out.extend_from_slice(b",\"c\":");
    write_opt_str(out, state.customer_id.as_deref());
    out.extend_from_slice(b",\"st\":");
    write_opt_str(out, state.store_id.as_deref());
    out.extend_from_slice(b",\"cart\":[");
    write_list(out, &state.cart, |out, (pid, line)| {
        out.push(b'[');
        write_str(out, pid);
        push_fmt(out, format_args!(",{},", line.quantity));
        let facts = &line.facts;
        Money::write_opt(out, facts.price);
        for text in [&facts.name, &facts.url, &facts.image_url, &facts.currency] {
            out.push(b',');
            write_opt_str(out, text.as_deref());
        }
        out.push(b']');
    });
    out.extend_from_slice(b"],\"cu\":");
    write_opt_str(out, state.cart_url.as_deref());
    push_fmt(
        out,
        format_args!(
            ",\"l\":{},\"cd\":{},\"ls\":{},\"o\":{},\"co\":{},\"vn\":{},\"vw\":[",
            Int(state.last_ms),
            Int(state.closed_deadline),
            state.last_seen_ms,
            state.ordered,
            state.checkout,
            state.views
        ),
    );
    write_list(out, &state.viewed, |out, (pid, item)| {
        out.push(b'[');
        write_str(out, pid);
        push_fmt(out, format_args!(",{},", item.views));
        Money::write_opt(out, item.facts.price);
        for text in [&item.facts.name, &item.facts.url] {
            out.push(b',');
            write_opt_str(out, text.as_deref());
        }
        out.push(b']');
    });
    out.extend_from_slice(b"],\"f\":[");
    let mut seen: Vec<(u64, i64)> = state.seen.iter().map(|(&f, &t)| (f, t)).collect();
    seen.sort_unstable();
    write_list(out, seen, |out, (f, t)| {
        push_fmt(out, format_args!("[{f},{t}]"))
    });
    out.extend_from_slice(b"],\"p\":[");
    write_list(out, &state.pending, |out, (t, seq, event)| {
        push_fmt(out, format_args!("[{t},{seq},"));
        event.write_json(out, Time::Text);
        out.push(b']');
    });
    out.extend_from_slice(b"]}");
}

/// An optional integer as JSON: the number, or `null`.
struct Int(Option<i64>);

impl std::fmt::Display for Int {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value}"),
            None => f.write_str("null"),
        }
    }
}

/// `[id, quantity, price, name, url, image_url, currency]`
type SavedLine = (String, i128, Opt, Opt, Opt, Opt, Opt);
/// `[id, views, price, name, url]`
type SavedView = (String, i64, Opt, Opt, Opt);
type Opt = Option<String>;

#[derive(Deserialize)]
struct Saved<'a> {
    v: i64,
    s: String,
    c: Option<String>,
    st: Option<String>,
    cart: Vec<SavedLine>,
    cu: Option<String>,
    l: Option<i64>,
    cd: Option<i64>,
    ls: i64,
    o: bool,
    co: bool,
    vn: i64,
    vw: Vec<SavedView>,
    /// Version 2.
    #[serde(default)]
    f: Option<Vec<(u64, i64)>>,
    /// Version 1.
    #[serde(default)]
    seen: Option<hashbrown::HashMap<String, i64>>,
    #[serde(borrow)]
    p: Vec<(i64, u64, &'a RawValue)>,
}

/// A saved session, its pending events still as text (the shell parses them).
pub struct Restored<'a> {
    pub session: Session,
    pub pending: Vec<(i64, u64, &'a [u8])>,
}

/// Read a saved session (version 1 or 2); its texts and facts become `strings`' shared copies.
pub fn read<'a>(raw: &'a [u8], strings: &mut Interner) -> Result<Restored<'a>, String> {
    let saved: Saved =
        serde_json::from_slice(raw).map_err(|e| format!("unreadable session state: {e}"))?;
    if !(OLDEST_VERSION..=STATE_VERSION).contains(&saved.v) {
        return Err(format!(
            "session state version {} is not supported",
            saved.v
        ));
    }
    let money = |text: Option<String>| -> Result<Option<Money>, String> {
        text.map(|t| Money::parse(&t).map_err(|e| format!("amount {t:?} {e}")))
            .transpose()
    };
    let mut session = Session::new(Arc::from(saved.s));
    session.customer_id = saved.c.map(String::into_boxed_str);
    session.store_id = saved.st.as_deref().map(|store| strings.text(store));
    for (pid, quantity, price, name, url, image_url, currency) in saved.cart {
        let facts = Facts {
            price: money(price)?,
            name: strings.opt_text(name.as_deref()),
            url: strings.opt_text(url.as_deref()),
            image_url: strings.opt_text(image_url.as_deref()),
            currency: strings.opt_text(currency.as_deref()),
        };
        let line = CartLine {
            quantity,
            facts: strings.facts(facts),
        };
        push_unique(&mut session.cart, strings.text(&pid), line);
    }
    session.cart_url = saved.cu.map(String::into_boxed_str);
    session.last_ms = saved.l;
    session.closed_deadline = saved.cd;
    session.last_seen_ms = saved.ls;
    session.ordered = saved.o;
    session.checkout = saved.co;
    session.views = saved.vn;
    for (pid, views, price, name, url) in saved.vw {
        let facts = Facts {
            price: money(price)?,
            name: strings.opt_text(name.as_deref()),
            url: strings.opt_text(url.as_deref()),
            ..Facts::default()
        };
        let item = Viewed {
            views,
            facts: strings.facts(facts),
        };
        push_unique(&mut session.viewed, strings.text(&pid), item);
    }
    match (saved.v, saved.f, saved.seen) {
        (2, Some(seen), None) => session.seen.extend(seen),
        (1, None, Some(seen)) => session
            .seen
            .extend(seen.into_iter().map(|(id, t)| (fingerprint(&id), t))),
        _ => {
            return Err(format!(
                "session state version {} needs {} (and not the other)",
                saved.v,
                if saved.v == 1 { "\"seen\"" } else { "\"f\"" }
            ))
        }
    }
    let pending = saved
        .p
        .into_iter()
        .map(|(t, seq, event)| (t, seq, event.get().as_bytes()))
        .collect();
    Ok(Restored { session, pending })
}

/// Append `(id, value)`, or replace the value of an entry with that id where it stands (as a
/// map read from JSON would: a repeated id keeps its first place and its last value).
fn push_unique<T>(items: &mut Vec<(Arc<str>, T)>, id: Arc<str>, value: T) {
    match items.iter_mut().find(|(held, _)| *held == id) {
        Some((_, held)) => *held = value,
        None => items.push((id, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{read_keeping, Keep};
    use crate::rules::Config;
    use crate::sessions::Detector;

    const V1: &str = r#"{"v":1,"s":"s1","c":"c1","st":"shop","cart":[["p1",2,"3.50","Shoe","https://s/p1",null,"EUR"]],"cu":null,"l":1000,"cd":null,"ls":1000,"o":false,"co":false,"vn":1,"vw":[["p1",1,"3.50","Shoe","https://s/p1"]],"seen":{"e1":1000},"p":[]}"#;

    fn detector() -> Detector {
        let config = Config {
            gap_ms: 60_000,
            min_product_views: 1,
            lateness_ms: 0,
            dedup_window_ms: 86_400_000,
            default_store_id: "default".into(),
        };
        Detector::new(config, None, None)
    }

    fn event(event_id: &str) -> crate::event::Event {
        let raw = format!(
            r#"{{"event_id":"{event_id}","type":"page_viewed","occurred_at":"2019-10-01T00:00:02Z","session_id":"s1"}}"#
        );
        read_keeping(raw.as_bytes(), usize::MAX, Keep::Detection).expect("a valid event")
    }

    #[test]
    fn version_1_is_read_and_its_event_ids_still_count_as_seen() {
        let mut detector = detector();
        let restored = read(V1.as_bytes(), &mut detector.rules.strings).expect("readable");
        assert!(restored.session.seen.contains_key(&fingerprint("e1")));
        detector.restore(restored.session);
        let mut out = Vec::new();
        assert!(!detector.on_event(event("e1"), &mut out));
        assert!(detector.on_event(event("e2"), &mut out));
        assert_eq!(detector.rules.counters.duplicates, 1);
    }

    #[test]
    fn version_1_is_written_again_as_version_2_with_the_same_facts() {
        let mut strings = Interner::new();
        let session = read(V1.as_bytes(), &mut strings).expect("readable").session;
        let mut written = Vec::new();
        write(&session, &mut written);
        let text = String::from_utf8(written.clone()).expect("UTF-8");
        let expected = V1.replace(r#""v":1"#, r#""v":2"#).replace(
            r#""seen":{"e1":1000}"#,
            &format!(r#""f":[[{},1000]]"#, fingerprint("e1")),
        );
        assert_eq!(text, expected);
        let again = read(&written, &mut strings).expect("readable").session;
        let mut rewritten = Vec::new();
        write(&again, &mut rewritten);
        assert_eq!(rewritten, written);
    }

    #[test]
    fn a_state_with_both_or_neither_kind_of_seen_ids_is_refused() {
        let mut strings = Interner::new();
        let both = V1.replace(r#""seen":{"#, r#""f":[],"seen":{"#);
        assert!(read(both.as_bytes(), &mut strings).is_err());
        let v2_with_ids = V1.replace(r#""v":1"#, r#""v":2"#);
        assert!(read(v2_with_ids.as_bytes(), &mut strings).is_err());
        let v3 = V1.replace(r#""v":1"#, r#""v":3"#);
        assert!(read(v3.as_bytes(), &mut strings).is_err());
    }
}
