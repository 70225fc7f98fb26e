//! `cartpulse detect`'s file runner: a JSONL file through the reader and the detector, the
//! abandonments written back to Python as JSON lines in large chunks.

use std::fs::File;
use std::io::{BufRead, BufReader};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::event::MAX_RECORD_BYTES;
use crate::read::{self, Keep, Refusal};
use crate::records::Closed;
use crate::sessions::Detector;

const WRITE_CHUNK: usize = 1 << 20;

/// Every line of the file at `path` through the reader and `detector`, each abandonment
/// written as a JSON line with `write(bytes)` in large chunks. A refused line goes to
/// `refused(line, lineno, reason, unknown_type)`. Returns (events, cart abandonments, browse
/// abandonments).
pub fn run_jsonl(
    detector: &mut Detector,
    py: Python<'_>,
    path: &str,
    write: &Bound<'_, PyAny>,
    refused: &Bound<'_, PyAny>,
    flush: bool,
) -> PyResult<(u64, u64, u64)> {
    let file = File::open(path).map_err(|e| PyOSError::new_err(format!("{path}: {e}")))?;
    let mut reader = BufReader::with_capacity(WRITE_CHUNK, file);
    let (mut line, mut out, mut closed) =
        (Vec::new(), Vec::with_capacity(2 * WRITE_CHUNK), Vec::new());
    let (mut events, mut lineno, mut counts) = (0u64, 0u64, [0u64; 2]);
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| PyOSError::new_err(format!("{path}: {e}")))?;
        if read == 0 {
            break;
        }
        lineno += 1;
        let event = match read::read_keeping(&line, MAX_RECORD_BYTES, Keep::Detection) {
            Ok(event) => event,
            Err(refusal) => {
                let unknown = matches!(refusal, Refusal::UnknownType(_));
                let line = PyBytes::new(py, &line);
                refused.call1((line, lineno, refusal.reason(), unknown))?;
                continue;
            }
        };
        events += 1;
        detector.on_event(event, &mut closed);
        if !closed.is_empty() {
            take_lines(&mut closed, &mut out, &mut counts);
            if out.len() >= WRITE_CHUNK {
                write.call1((PyBytes::new(py, &out),))?;
                out.clear();
            }
        }
    }
    if flush {
        detector.flush(&mut closed);
        take_lines(&mut closed, &mut out, &mut counts);
    }
    if !out.is_empty() {
        write.call1((PyBytes::new(py, &out),))?;
    }
    Ok((events, counts[0], counts[1]))
}

fn take_lines(closed: &mut Vec<Closed>, out: &mut Vec<u8>, counts: &mut [u64; 2]) {
    for c in closed.drain(..) {
        counts[usize::from(c.kind == "browse")] += 1;
        out.extend_from_slice(&c.json);
        out.push(b'\n');
    }
}
