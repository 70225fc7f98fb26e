//! The contract's reader for Python: `read` gives a `Record` (what the core takes as it is) or
//! a `Refused` with the reason, and `read_json` the whole event as JSON, which Python decodes
//! into its `Event` without checking it again; the `field_*` functions are the field rules for
//! Python's product and REES46 readers, so no rule of the contract is written in Python.

use std::borrow::Cow;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::event::{Event, Kind, Time, MAX_ID_CHARS, MAX_RECORD_BYTES};
use crate::money::Money;
use crate::read::{self as reader, Keep, Refusal};
use crate::text;
use crate::value::Val;

/// A record the reader accepted: what a shell needs to route it, and the event for the core
/// (what detection reads). It holds no reference to the record's bytes: that costs the
/// worker's hot path more than anything it would give.
#[pyclass(module = "streams._native", frozen)]
pub struct Record {
    pub event: Event,
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

fn written<'py>(py: Python<'py>, event: &Event, time: Time) -> Bound<'py, PyBytes> {
    let mut out = Vec::with_capacity(256);
    event.write_json(&mut out, time);
    PyBytes::new(py, &out)
}

fn refused(py: Python<'_>, refusal: Refusal) -> PyResult<PyObject> {
    let unknown_type = matches!(refusal, Refusal::UnknownType(_));
    let reason = match refusal {
        Refusal::Invalid(reason) | Refusal::UnknownType(reason) => reason,
    };
    let refused = Refused {
        reason,
        unknown_type,
    };
    Ok(Bound::new(py, refused)?.into_any().unbind())
}

/// A record the reader refused, and why.
#[pyclass(module = "streams._native", frozen, get_all)]
pub struct Refused {
    reason: String,
    /// A well-formed record of a type cartpulse does not know.
    unknown_type: bool,
}

/// One record through the contract's reader: a `Record`, or `Refused` with the reason.
#[pyfunction]
fn read(py: Python<'_>, raw: &[u8], max_bytes: usize) -> PyResult<PyObject> {
    match reader::read_keeping(raw, max_bytes, Keep::Detection) {
        Ok(event) => Ok(Bound::new(py, Record { event })?.into_any().unbind()),
        Err(refusal) => refused(py, refusal),
    }
}

/// One record through the contract's reader: the whole event as JSON with `occurred_at` in
/// epoch milliseconds (what `streams.models.events.Event` decodes from), or `Refused`.
#[pyfunction]
fn read_json(py: Python<'_>, raw: &[u8], max_bytes: usize) -> PyResult<PyObject> {
    match reader::read(raw, max_bytes) {
        Ok(event) => Ok(written(py, &event, Time::Millis).into_any().unbind()),
        Err(refusal) => refused(py, refusal),
    }
}

/// One record through the contract's reader: the whole event in the contract's canonical
/// shape (the bytes of Python's `Event.to_json()`, and of pending events in saved state), or
/// `Refused`.
#[pyfunction]
fn canonical(py: Python<'_>, raw: &[u8], max_bytes: usize) -> PyResult<PyObject> {
    match reader::read(raw, max_bytes) {
        Ok(event) => Ok(written(py, &event, Time::Text).into_any().unbind()),
        Err(refusal) => refused(py, refusal),
    }
}

/// A Python value as the reader sees JSON (what orjson decodes into, and CSV text).
fn val_of<'py>(value: &Bound<'py, PyAny>) -> PyResult<Val<'static>> {
    Ok(if value.is_none() {
        Val::Null
    } else if let Ok(flag) = value.downcast::<PyBool>() {
        Val::Bool(flag.is_true())
    } else if value.is_instance_of::<PyInt>() {
        match value.extract::<i128>() {
            Ok(number) => Val::Int(number),
            Err(_) => Val::Foreign(value.repr()?.to_string()),
        }
    } else if let Ok(number) = value.downcast::<PyFloat>() {
        Val::Float(number.value())
    } else if let Ok(text) = value.downcast::<PyString>() {
        Val::Str(Cow::Owned(text.to_str()?.to_owned()))
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items: PyResult<Vec<_>> = value.try_iter()?.map(|item| val_of(&item?)).collect();
        Val::Array(items?)
    } else if let Ok(dict) = value.downcast::<PyDict>() {
        let mut members = Vec::with_capacity(dict.len());
        for (key, item) in dict.iter() {
            members.push((Cow::Owned(key.str()?.to_string()), val_of(&item)?));
        }
        Val::Object(members)
    } else {
        Val::Foreign(value.repr()?.to_string())
    })
}

fn checked<T>(result: Result<T, String>) -> PyResult<T> {
    result.map_err(PyValueError::new_err)
}

/// The contract's event time rule for a field: epoch milliseconds, or ValueError(reason).
#[pyfunction]
fn field_time(value: &Bound<'_, PyAny>, label: &str) -> PyResult<i64> {
    checked(reader::time(&val_of(value)?, label))
}

/// The contract's amount rule for a field: canonical text (`str(Decimal)`) or None for no
/// amount, or ValueError(reason).
#[pyfunction]
fn field_amount(value: &Bound<'_, PyAny>, label: &str) -> PyResult<Option<String>> {
    checked(reader::amount(&val_of(value)?, label)).map(|money| money.map(Money::to_text))
}

/// The contract's currency rule for a field: the upper-case code or None, or ValueError.
#[pyfunction]
fn field_currency(value: &Bound<'_, PyAny>, label: &str) -> PyResult<Option<String>> {
    checked(reader::currency(&val_of(value)?, label))
}

/// The contract's optional id rule for a field: the id or None, or ValueError(reason).
#[pyfunction]
fn field_id(value: &Bound<'_, PyAny>, label: &str) -> PyResult<Option<String>> {
    let value = val_of(value)?;
    checked(reader::optional_id(&value, label)).map(|id| id.map(Cow::into_owned))
}

/// Event time alone: RFC 3339 text or epoch milliseconds (an int) → epoch milliseconds;
/// ValueError with the bare reason (to follow the field's name) otherwise.
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

/// Epoch milliseconds → the contract's RFC 3339 text (`2019-10-01T00:10:00.000Z`): the one
/// writer of times, for every record Python writes too. ValueError outside the event time range
/// widened to years 0..9999 (a time the text cannot hold).
#[pyfunction]
fn format_time(ms: i64) -> PyResult<String> {
    const YEAR_0: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
    const YEAR_10000: i64 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
    if !(YEAR_0..YEAR_10000).contains(&ms) {
        return Err(PyValueError::new_err(format!(
            "{ms} ms is outside the years 0 to 9999"
        )));
    }
    let mut out = Vec::with_capacity(24);
    text::write_time(&mut out, ms);
    Ok(String::from_utf8(out).expect("write_time writes ASCII"))
}

/// For tests: an amount's text alone → its canonical text (`str(Decimal)`; `-0` is `0`);
/// ValueError with the bare reason otherwise.
#[cfg(feature = "test-hooks")]
#[pyfunction]
fn amount(text: &str) -> PyResult<String> {
    Money::parse(text)
        .map(Money::to_text)
        .map_err(PyValueError::new_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Record>()?;
    m.add_class::<Refused>()?;
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(read_json, m)?)?;
    m.add_function(wrap_pyfunction!(canonical, m)?)?;
    m.add_function(wrap_pyfunction!(field_time, m)?)?;
    m.add_function(wrap_pyfunction!(field_amount, m)?)?;
    m.add_function(wrap_pyfunction!(field_currency, m)?)?;
    m.add_function(wrap_pyfunction!(field_id, m)?)?;
    m.add_function(wrap_pyfunction!(event_time, m)?)?;
    m.add_function(wrap_pyfunction!(format_time, m)?)?;
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    m.add("EVENT_TYPES", PyTuple::new(m.py(), kinds)?)?;
    m.add("MAX_RECORD_BYTES", MAX_RECORD_BYTES)?;
    m.add("MAX_ID_CHARS", MAX_ID_CHARS)?;
    Ok(())
}

#[cfg(feature = "test-hooks")]
pub fn register_test_hooks(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(amount, m)?)?;
    Ok(())
}
