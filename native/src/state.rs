//! A session's saved state (the sessions table's value): compact, versioned JSON.
//!
//! `{"v":1,"s":session,"c":customer,"st":store,"cart":[[id,qty,price,name,url,image,currency]],
//! "cu":cart_url,"l":last,"cd":closed_deadline,"ls":last_seen,"o":ordered,"co":checkout,
//! "vn":views,"vw":[[id,views,price,name,url]],"seen":{event_id:time},"p":[[time,seq,event]]}`
//! Pending events are kept in their contract shape and read back by the contract's reader.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::Time;
use crate::money::Money;
use crate::sessions::{CartLine, Session, Viewed};
use crate::text::{push_fmt, write_list, write_opt_str, write_str};

pub const STATE_VERSION: i64 = 1;

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
        Money::write_opt(out, line.price);
        for text in [&line.name, &line.url, &line.image_url, &line.currency] {
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
        Money::write_opt(out, item.price);
        for text in [&item.name, &item.url] {
            out.push(b',');
            write_opt_str(out, text.as_deref());
        }
        out.push(b']');
    });
    out.extend_from_slice(b"],\"seen\":{");
    write_list(out, &state.seen, |out, (event_id, t)| {
        write_str(out, event_id);
        push_fmt(out, format_args!(":{t}"));
    });
    out.extend_from_slice(b"},\"p\":[");
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
    seen: hashbrown::HashMap<String, i64>,
    #[serde(borrow)]
    p: Vec<(i64, u64, &'a RawValue)>,
}

/// A saved session, its pending events still as text (the shell parses them).
pub struct Restored<'a> {
    pub session: Session,
    pub pending: Vec<(i64, u64, &'a [u8])>,
}

pub fn read(raw: &[u8]) -> Result<Restored<'_>, String> {
    let saved: Saved =
        serde_json::from_slice(raw).map_err(|e| format!("unreadable session state: {e}"))?;
    if saved.v != STATE_VERSION {
        return Err(format!(
            "session state version {} is not supported",
            saved.v
        ));
    }
    let money = |text: Option<String>| -> Result<Option<Money>, String> {
        text.map(|t| Money::parse(&t).map_err(|e| format!("amount {t:?} {e}")))
            .transpose()
    };
    let mut session = Session::new(saved.s);
    session.customer_id = saved.c;
    session.store_id = saved.st;
    for (pid, quantity, price, name, url, image_url, currency) in saved.cart {
        let price = money(price)?;
        session.cart.insert(
            pid,
            CartLine {
                quantity,
                price,
                name,
                url,
                image_url,
                currency,
            },
        );
    }
    session.cart_url = saved.cu;
    session.last_ms = saved.l;
    session.closed_deadline = saved.cd;
    session.last_seen_ms = saved.ls;
    session.ordered = saved.o;
    session.checkout = saved.co;
    session.views = saved.vn;
    for (pid, views, price, name, url) in saved.vw {
        let price = money(price)?;
        session.viewed.insert(
            pid,
            Viewed {
                views,
                price,
                name,
                url,
            },
        );
    }
    session.seen = saved.seen;
    let pending = saved
        .p
        .into_iter()
        .map(|(t, seq, event)| (t, seq, event.get().as_bytes()))
        .collect();
    Ok(Restored { session, pending })
}
