//! `streams._native`: cartpulse's detection core, for Python.
//!
//! `Core` is one partition's detector (see core.rs); streams/core/detection.py wraps it for the
//! worker and the tests, and streams/offline.py drives `Core.run_jsonl` for `cartpulse detect`.

mod core;
mod event;
#[cfg(test)]
mod fuzz;
mod money;
mod state;
mod text;

use std::fs::File;
use std::io::{BufRead, BufReader};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::core::{Closed, Config, Detector};
use crate::event::{Event, Kind, Product};
use crate::money::Money;

/// tests/fixtures/contract_cases.json: the contract's accepted and refused times and amounts,
/// which pytest runs through every Python reader too (tests/unit/test_contract_cases.py).
#[cfg(test)]
pub(crate) fn contract_cases() -> serde_json::Value {
    serde_json::from_str(include_str!("../../tests/fixtures/contract_cases.json"))
        .expect("the contract cases are JSON")
}

// Many small, short-lived allocations (ids, names, per-session maps): mimalloc frees them far
// faster than the system allocator, above all when a detector with many sessions is dropped.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WRITE_CHUNK: usize = 1 << 20;

#[pyclass(module = "streams._native", unsendable)]
struct Core {
    inner: Detector,
    /// `parse_event(raw) -> Event` for records the fast reader leaves to Python.
    parse_fallback: Py<PyAny>,
    /// `cart_value([(price_text, quantity), ...]) -> str` when Python's context would round.
    cart_value: Py<PyAny>,
}

type ClosedRecord<'py> = (&'static str, String, i64, Bound<'py, PyBytes>);

fn records<'py>(py: Python<'py>, closed: &mut Vec<Closed>) -> Vec<ClosedRecord<'py>> {
    closed
        .drain(..)
        .map(|c| (c.kind, c.key, c.detected_at, PyBytes::new(py, &c.json)))
        .collect()
}

fn slow_value<'a>(
    py: Python<'a>,
    cart_value: &'a Py<PyAny>,
) -> impl FnMut(&[(Money, i128)]) -> Option<String> + 'a {
    move |lines| {
        let lines: Vec<(String, i128)> = lines.iter().map(|(p, q)| (p.to_text(), *q)).collect();
        cart_value
            .call1(py, (lines,))
            .and_then(|v| v.extract::<String>(py))
            .ok()
    }
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (
        gap_ms, min_product_views, lateness_ms, dedup_window_ms, default_store_id,
        parse_fallback, cart_value, watermark=None, max_event_ms=None, auto_watermark=true,
        track_changes=true,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        gap_ms: i64,
        min_product_views: i64,
        lateness_ms: i64,
        dedup_window_ms: i64,
        default_store_id: String,
        parse_fallback: Py<PyAny>,
        cart_value: Py<PyAny>,
        watermark: Option<i64>,
        max_event_ms: Option<i64>,
        auto_watermark: bool,
        track_changes: bool,
    ) -> Core {
        let config = Config {
            gap_ms,
            min_product_views,
            lateness_ms,
            dedup_window_ms,
            default_store_id,
        };
        let mut inner = Detector::new(config, watermark, max_event_ms);
        inner.auto_watermark = auto_watermark;
        inner.track_changes = track_changes;
        Core {
            inner,
            parse_fallback,
            cart_value,
        }
    }

    /// Add a session from its saved state; ValueError for a value it cannot read.
    fn restore(&mut self, py: Python<'_>, raw: &[u8]) -> PyResult<()> {
        let restored = state::read(raw).map_err(PyValueError::new_err)?;
        let mut session = restored.session;
        for (t, seq, text) in restored.pending {
            let event = self.parse(py, text)?;
            session.pending.push((t, seq, event));
        }
        session.pending.sort_by_key(|p| (p.0, p.1));
        self.inner.restore(session);
        Ok(())
    }

    /// Take one event, a `Record` or a Python `Event`: (False if its event_id was seen before,
    /// the abandonments it closed).
    fn on_event<'py>(
        &mut self,
        py: Python<'py>,
        event: &Bound<'py, PyAny>,
    ) -> PyResult<(bool, Vec<ClosedRecord<'py>>)> {
        let event = match event.downcast::<Record>() {
            Ok(record) => record.get().event.clone(),
            Err(_) => event_from_py(py, event)?,
        };
        let mut closed = Vec::new();
        let fresh = self
            .inner
            .on_event(event, &mut closed, &mut slow_value(py, &self.cart_value));
        Ok((fresh, records(py, &mut closed)))
    }

    fn advance<'py>(&mut self, py: Python<'py>, watermark: i64) -> Vec<ClosedRecord<'py>> {
        let mut closed = Vec::new();
        self.inner.advance(
            watermark,
            &mut closed,
            &mut slow_value(py, &self.cart_value),
        );
        records(py, &mut closed)
    }

    fn flush<'py>(&mut self, py: Python<'py>) -> Vec<ClosedRecord<'py>> {
        let mut closed = Vec::new();
        self.inner
            .flush(&mut closed, &mut slow_value(py, &self.cart_value));
        records(py, &mut closed)
    }

    /// `cartpulse detect` over a JSONL file: every line through the core, each abandonment
    /// written as a JSON line with `write(bytes)` in large chunks. Lines the fast reader
    /// leaves go to `slow_line(line, lineno)`, which returns an `Event` or None (refused; it
    /// counts and reports them). Returns (events, cart abandonments, browse abandonments).
    fn run_jsonl(
        &mut self,
        py: Python<'_>,
        path: &str,
        write: &Bound<'_, PyAny>,
        slow_line: &Bound<'_, PyAny>,
        flush: bool,
    ) -> PyResult<(u64, u64, u64)> {
        let file = File::open(path).map_err(|e| PyOSError::new_err(format!("{path}: {e}")))?;
        let mut reader = BufReader::with_capacity(WRITE_CHUNK, file);
        let (mut line, mut out, mut closed) =
            (Vec::new(), Vec::with_capacity(2 * WRITE_CHUNK), Vec::new());
        let (mut events, mut lineno, mut counts) = (0u64, 0u64, [0u64; 2]);
        let mut slow = slow_value(py, &self.cart_value);
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| PyOSError::new_err(format!("{path}: {e}")))?;
            if read == 0 {
                break;
            }
            lineno += 1;
            let event = match event::parse(&line) {
                Some(event) => event,
                None => {
                    let parsed = slow_line.call1((PyBytes::new(py, &line), lineno))?;
                    if parsed.is_none() {
                        continue;
                    }
                    event_from_py(py, &parsed)?
                }
            };
            events += 1;
            self.inner.on_event(event, &mut closed, &mut slow);
            if !closed.is_empty() {
                take_lines(&mut closed, &mut out, &mut counts);
                if out.len() >= WRITE_CHUNK {
                    write.call1((PyBytes::new(py, &out),))?;
                    out.clear();
                }
            }
        }
        if flush {
            self.inner.flush(&mut closed, &mut slow);
            take_lines(&mut closed, &mut out, &mut counts);
        }
        if !out.is_empty() {
            write.call1((PyBytes::new(py, &out),))?;
        }
        Ok((events, counts[0], counts[1]))
    }

    #[getter]
    fn watermark(&self) -> Option<i64> {
        self.inner.watermark
    }

    #[getter]
    fn max_event_ms(&self) -> Option<i64> {
        self.inner.max_event_ms
    }

    /// (applied, duplicates, late, buffered, late_into_closed, evicted) since creation.
    fn counters(&self) -> (u64, u64, u64, u64, u64, u64) {
        let c = &self.inner.rules.counters;
        (
            c.applied,
            c.duplicates,
            c.late,
            c.buffered,
            c.late_into_closed,
            c.evicted,
        )
    }

    fn __len__(&self) -> usize {
        self.inner.sessions.len()
    }

    fn __contains__(&self, session_id: &str) -> bool {
        self.inner.sessions.contains_key(session_id)
    }

    fn open_sessions(&self) -> usize {
        self.inner.open_sessions()
    }

    /// A session's saved state, or None for a session the core does not hold.
    fn state<'py>(&self, py: Python<'py>, session_id: &str) -> Option<Bound<'py, PyBytes>> {
        self.inner.sessions.get(session_id).map(|s| {
            let mut out = Vec::with_capacity(512);
            state::write(s, &mut out);
            PyBytes::new(py, &out)
        })
    }

    /// (customer id, session id) of every session that names a customer, its own or a
    /// pending event's.
    fn customer_sessions(&self) -> Vec<(String, String)> {
        self.inner.customer_sessions()
    }

    /// Drop these sessions whole (an erasure); returns how many were held.
    fn forget(&mut self, session_ids: Vec<String>) -> usize {
        self.inner.forget(&session_ids)
    }

    fn session_ids(&self) -> Vec<String> {
        self.inner.sessions.keys().cloned().collect()
    }

    /// The sessions changed and forgotten since the last call, as (session_id, saved state)
    /// and session ids; clears both (with change tracking on).
    fn take_changes<'py>(
        &mut self,
        py: Python<'py>,
    ) -> (Vec<(String, Bound<'py, PyBytes>)>, Vec<String>) {
        let mut out = Vec::with_capacity(512);
        let changed = self
            .inner
            .dirty
            .drain()
            .filter_map(|sid| {
                let session = self.inner.sessions.get(sid.as_str())?;
                out.clear();
                state::write(session, &mut out);
                Some((sid, PyBytes::new(py, &out)))
            })
            .collect();
        (changed, self.inner.deleted.drain().collect())
    }
}

impl Core {
    fn parse(&self, py: Python<'_>, raw: &[u8]) -> PyResult<Event> {
        match event::parse(raw) {
            Some(event) => Ok(event),
            None => {
                let parsed = self.parse_fallback.call1(py, (PyBytes::new(py, raw),))?;
                event_from_py(py, parsed.bind(py))
            }
        }
    }
}

fn take_lines(closed: &mut Vec<Closed>, out: &mut Vec<u8>, counts: &mut [u64; 2]) {
    for c in closed.drain(..) {
        counts[usize::from(c.kind == "browse")] += 1;
        out.extend_from_slice(&c.json);
        out.push(b'\n');
    }
}

fn opt_str(value: Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if value.is_none() {
        Ok(None)
    } else {
        value.extract().map(Some)
    }
}

fn money_of(value: Bound<'_, PyAny>) -> PyResult<Option<Money>> {
    if value.is_none() {
        return Ok(None);
    }
    let text = value.str()?.to_string();
    Money::parse(&text)
        .map(Some)
        .map_err(|e| PyValueError::new_err(format!("amount {text:?} {e}")))
}

/// A validated `streams.models.events.Event` → the core's event.
fn event_from_py(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Event> {
    let kind: String = obj.getattr(intern!(py, "type"))?.extract()?;
    let kind = Kind::from_name(&kind)
        .ok_or_else(|| PyValueError::new_err(format!("unknown type {kind:?}")))?;
    let product = obj.getattr(intern!(py, "product"))?;
    let product = if product.is_none() {
        None
    } else {
        Some(Product {
            id: product.getattr(intern!(py, "id"))?.extract()?,
            name: opt_str(product.getattr(intern!(py, "name"))?)?,
            price: money_of(product.getattr(intern!(py, "price"))?)?,
            currency: opt_str(product.getattr(intern!(py, "currency"))?)?,
            url: opt_str(product.getattr(intern!(py, "url"))?)?,
            image_url: opt_str(product.getattr(intern!(py, "image_url"))?)?,
        })
    };
    let cart = obj.getattr(intern!(py, "cart"))?;
    let cart_url = if cart.is_none() {
        None
    } else {
        opt_str(cart.getattr(intern!(py, "url"))?)?
    };
    Ok(Event {
        event_id: obj.getattr(intern!(py, "event_id"))?.extract()?,
        kind,
        occurred_at: obj.getattr(intern!(py, "occurred_at"))?.extract()?,
        session_id: obj.getattr(intern!(py, "session_id"))?.extract()?,
        customer_id: opt_str(obj.getattr(intern!(py, "customer_id"))?)?,
        store_id: opt_str(obj.getattr(intern!(py, "store_id"))?)?,
        product,
        quantity: obj.getattr(intern!(py, "quantity"))?.extract()?,
        cart_url,
    })
}

/// A record the native reader read: what a shell needs to route it, and the event for the core.
#[pyclass(module = "streams._native", frozen)]
struct Record {
    event: Event,
}

#[pymethods]
impl Record {
    #[getter]
    fn session_id(&self) -> &str {
        &self.event.session_id
    }

    #[getter]
    fn r#type(&self) -> &'static str {
        self.event.kind.name()
    }

    #[getter]
    fn customer_id(&self) -> Option<&str> {
        self.event.customer_id.as_deref()
    }

    #[getter]
    fn occurred_at(&self) -> i64 {
        self.event.occurred_at
    }
}

/// One record through the native reader: a `Record`, or None when it leaves the record to
/// Python's `parse_event` (unusual shapes, and everything invalid, with its reason).
#[pyfunction]
fn read(raw: &[u8], max_bytes: usize) -> Option<Record> {
    event::parse_within(raw, max_bytes).map(|event| Record { event })
}

/// The contract's event time (docs/semantics.md): RFC 3339 text or epoch milliseconds (an int)
/// → epoch milliseconds; ValueError with the reason (to follow the field's name) otherwise.
/// `parse_event` and the REES46 reader call this, so every input format has the one rule.
#[pyfunction]
fn event_time(value: &Bound<'_, PyAny>) -> PyResult<i64> {
    let checked = if let Ok(text) = value.downcast::<PyString>() {
        text::parse_time(text.to_str()?)
    } else {
        // An int past 64 bits is as far outside the range as one just past it.
        value
            .extract::<i64>()
            .map_or(Err(text::TIME_RANGE), text::check_ms)
    };
    checked.map_err(PyValueError::new_err)
}

/// The contract's amount (docs/semantics.md) → its canonical text (`str(Decimal)`; `-0` is
/// `0`); ValueError with the reason (to follow the field's name) otherwise.
#[pyfunction]
fn amount(text: &str) -> PyResult<String> {
    Money::parse(text)
        .map(Money::to_text)
        .map_err(PyValueError::new_err)
}

/// For tests: what the fast reader makes of a record — None when it leaves it to Python, else
/// the record it would keep, in its contract shape.
#[pyfunction]
fn read_event<'py>(py: Python<'py>, raw: &[u8]) -> Option<Bound<'py, PyBytes>> {
    event::parse(raw).map(|event| {
        let mut out = Vec::new();
        event.write_json(&mut out);
        PyBytes::new(py, &out)
    })
}

/// For tests: `abandonment_id` as the core computes it.
#[pyfunction]
fn abandonment_id(session_id: &str, kind: &str, deadline_ms: i64) -> String {
    core::abandonment_id(session_id, kind, deadline_ms)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    m.add_class::<Record>()?;
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(read_event, m)?)?;
    m.add_function(wrap_pyfunction!(abandonment_id, m)?)?;
    m.add_function(wrap_pyfunction!(event_time, m)?)?;
    m.add_function(wrap_pyfunction!(amount, m)?)?;
    m.add("MIN_EVENT_MS", text::MIN_EVENT_MS)?;
    m.add("MAX_EVENT_MS", text::MAX_EVENT_MS)?;
    m.add("TIME_RANGE", text::TIME_RANGE)?;
    Ok(())
}
