//! The event ids a session has seen, for dropping repeats (docs/semantics.md, "Duplicates"):
//! each id is kept as a 64-bit fingerprint, its XXH3 hash, mapped to the event's time, not as
//! the id's text. XXH3 is fixed by its specification, so a fingerprint is the same in every
//! process, version and platform and can be saved in the session's state.
//!
//! Two different ids of one session that share a fingerprint would make the later one a
//! "repeat" and drop it. Over the n ids one session keeps within the dedup window the chance of
//! any such pair is about n² / 2^65: for 10,000 ids (a busy session over a day) 3·10⁻¹², and
//! across a billion sessions of 10 ids each 3·10⁻⁹ in all.

use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::xxh3_64;

/// Fingerprint → the time of the event that had it.
pub type Seen = hashbrown::HashMap<u64, i64, BuildHasherDefault<PassThrough>>;

/// An event id's fingerprint (XXH3-64 of its UTF-8 bytes).
pub fn fingerprint(event_id: &str) -> u64 {
    xxh3_64(event_id.as_bytes())
}

/// The table's hash of a fingerprint is the fingerprint: it is already uniformly spread, so
/// hashing it again would only cost time (and a per-map seed, memory).
#[derive(Clone, Copy, Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_the_same_everywhere() {
        // XXH3-64 with the default secret and seed 0: fixed by the specification, so saved
        // state stays readable by every later version.
        assert_eq!(fingerprint(""), 0x2d06_8005_38d3_94c2);
        assert_ne!(fingerprint("e1"), fingerprint("e2"));
    }
}
