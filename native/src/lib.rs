//! `streams._native`: cartpulse's detection core, for Python.
//!
//! The bindings only: `Core` is one partition's detector (sessions.rs, rules.rs, records.rs),
//! the reader's functions are in py_read.rs, and `Core.run_jsonl` is runner.rs. Python reaches
//! all of it through one face, streams/contract/native.py.
//!
//! The `test-hooks` feature adds functions only tests call (`abandonment_id`, `amount`);
//! release and wheel builds leave it off, and nothing in the package needs it.

mod event;
#[cfg(test)]
mod fuzz;
mod intern;
mod money;
mod py_read;
mod read;
mod records;
mod rules;
mod runner;
mod seen;
mod sessions;
mod state;
mod text;
mod value;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use crate::py_read::Record;
use crate::read::Keep;
use crate::records::Closed;
use crate::rules::Config;
use crate::sessions::Detector;

/// tests/fixtures/contract_cases.json: the contract's records, times, amounts and cart values,
/// accepted and refused, which pytest runs too (tests/unit/test_contract_cases.py).
#[cfg(test)]
pub(crate) fn contract_cases() -> serde_json::Value {
    serde_json::from_str(include_str!("../../tests/fixtures/contract_cases.json"))
        .expect("the contract cases are JSON")
}

// Many small, short-lived allocations (ids, names, per-session maps): mimalloc frees them far
// faster than the system allocator, above all when a detector with many sessions is dropped.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sendable: a partition's load builds its detector in a worker thread (``restore_many``,
/// without the interpreter's lock, beside the other partitions' loads); the loop's thread uses
/// it afterwards. One thread at a time: pyo3's borrow flag refuses a second.
#[pyclass(module = "streams._native")]
struct Core {
    inner: Detector,
}

type ClosedRecord<'py> = (&'static str, String, i64, Bound<'py, PyBytes>);

fn records<'py>(py: Python<'py>, closed: &mut Vec<Closed>) -> Vec<ClosedRecord<'py>> {
    closed
        .drain(..)
        .map(|c| (c.kind, c.key, c.detected_at, PyBytes::new(py, &c.json)))
        .collect()
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (
        gap_ms, min_product_views, lateness_ms, dedup_window_ms, default_store_id,
        watermark=None, max_event_ms=None, auto_watermark=true,
        track_changes=true,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        gap_ms: i64,
        min_product_views: i64,
        lateness_ms: i64,
        dedup_window_ms: i64,
        default_store_id: String,
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
        Core { inner }
    }

    /// Add a session from its saved state; ValueError for a value it cannot read.
    fn restore(&mut self, raw: &[u8]) -> PyResult<()> {
        restore_one(&mut self.inner, raw).map_err(PyValueError::new_err)
    }

    /// Add saved sessions, in order, without holding the interpreter's lock: another thread
    /// (another partition's load) runs meanwhile. Returns the index and the reason of each
    /// value it could not read (skipped); the others are restored.
    fn restore_many(&mut self, py: Python<'_>, raws: Vec<PyBackedBytes>) -> Vec<(usize, String)> {
        let inner = &mut self.inner;
        py.allow_threads(|| {
            let mut refused = Vec::new();
            for (index, raw) in raws.iter().enumerate() {
                if let Err(reason) = restore_one(inner, raw) {
                    refused.push((index, reason));
                }
            }
            refused
        })
    }

    /// Take one event as the reader gave it: (False if its event_id was seen before, the
    /// abandonments it closed).
    fn on_event<'py>(
        &mut self,
        py: Python<'py>,
        record: &Bound<'py, Record>,
    ) -> (bool, Vec<ClosedRecord<'py>>) {
        let mut closed = Vec::new();
        let fresh = self.inner.on_event(record.get().event.clone(), &mut closed);
        (fresh, records(py, &mut closed))
    }

    fn advance<'py>(&mut self, py: Python<'py>, watermark: i64) -> Vec<ClosedRecord<'py>> {
        let mut closed = Vec::new();
        self.inner.advance(watermark, &mut closed);
        records(py, &mut closed)
    }

    fn flush<'py>(&mut self, py: Python<'py>) -> Vec<ClosedRecord<'py>> {
        let mut closed = Vec::new();
        self.inner.flush(&mut closed);
        records(py, &mut closed)
    }

    /// `cartpulse detect` over a JSONL file: every line through the reader and the core, each
    /// abandonment written as a JSON line with `write(bytes)` in large chunks. A refused line
    /// goes to `refused(line, lineno, reason, unknown_type)`, which counts and reports it.
    /// Returns (events, cart abandonments, browse abandonments).
    fn run_jsonl(
        &mut self,
        py: Python<'_>,
        path: &str,
        write: &Bound<'_, PyAny>,
        refused: &Bound<'_, PyAny>,
        flush: bool,
    ) -> PyResult<(u64, u64, u64)> {
        runner::run_jsonl(&mut self.inner, py, path, write, refused, flush)
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
        self.inner
            .sessions
            .iter()
            .map(|s| s.session_id.to_string())
            .collect()
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
                let session = self.inner.sessions.get(&sid)?;
                out.clear();
                state::write(session, &mut out);
                Some((sid.to_string(), PyBytes::new(py, &out)))
            })
            .collect();
        let deleted = self.inner.deleted.drain().map(|sid| sid.to_string());
        (changed, deleted.collect())
    }
}

/// For tests: `abandonment_id` as the core computes it.
#[cfg(feature = "test-hooks")]
#[pyfunction]
fn abandonment_id(session_id: &str, kind: &str, deadline_ms: i64) -> String {
    records::abandonment_id(session_id, kind, deadline_ms)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    py_read::register(m)?;
    #[cfg(feature = "test-hooks")]
    {
        m.add_function(wrap_pyfunction!(abandonment_id, m)?)?;
        py_read::register_test_hooks(m)?;
    }
    m.add("MIN_EVENT_MS", text::MIN_EVENT_MS)?;
    m.add("MAX_EVENT_MS", text::MAX_EVENT_MS)?;
    m.add("TIME_RANGE", text::TIME_RANGE)?;
    Ok(())
}

/// One saved session into the detector; the reason when the value cannot be read.
fn restore_one(inner: &mut Detector, raw: &[u8]) -> Result<(), String> {
    let restored = state::read(raw, &mut inner.rules.strings)?;
    let mut session = restored.session;
    for (t, seq, text) in restored.pending {
        // Written by the core from a record it read: no size limit to hold it to.
        let event = read::read_keeping(text, usize::MAX, Keep::Detection).map_err(|refusal| {
            format!(
                "unreadable pending event in saved state: {}",
                refusal.reason()
            )
        })?;
        session.pending.push((t, seq, event));
    }
    session.pending.sort_by_key(|p| (p.0, p.1));
    inner.restore(session);
    Ok(())
}
