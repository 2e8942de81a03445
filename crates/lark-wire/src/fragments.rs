//! Reassembly of fragmented data frames (`message_id`, `sum`, `seq`).
//!
//! Fragments may arrive out of order or twice; incomplete sets expire; the
//! bytes held are capped so a hostile or broken peer cannot exhaust memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most fragments one message may declare.
pub const MAX_FRAGMENTS: usize = 64;

/// Why a fragment was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FragmentError {
    /// `sum`/`seq` missing, not numbers, or `seq >= sum`.
    #[error("bad fragment headers: sum={sum:?} seq={seq:?}")]
    BadHeaders {
        /// The `sum` header.
        sum: Option<String>,
        /// The `seq` header.
        seq: Option<String>,
    },
    /// Holding the fragment would exceed the byte cap.
    #[error("fragment buffer full ({0} bytes held)")]
    BufferFull(usize),
}

struct Partial {
    slots: Vec<Option<Vec<u8>>>,
    bytes: usize,
    touched: Instant,
}

/// Holds partial messages until every fragment has arrived.
pub struct Reassembler {
    partials: HashMap<String, Partial>,
    ttl: Duration,
    max_bytes: usize,
    held: usize,
}

impl Reassembler {
    /// A reassembler that expires partial sets after `ttl` and holds at most
    /// `max_bytes` of fragments.
    pub fn new(ttl: Duration, max_bytes: usize) -> Reassembler {
        Reassembler {
            partials: HashMap::new(),
            ttl,
            max_bytes,
            held: 0,
        }
    }

    /// Bytes currently held.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Offers one fragment; returns the whole payload when it completes a set.
    pub fn push(
        &mut self,
        message_id: &str,
        sum: Option<&str>,
        seq: Option<&str>,
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<Option<Vec<u8>>, FragmentError> {
        let bad = || FragmentError::BadHeaders {
            sum: sum.map(str::to_string),
            seq: seq.map(str::to_string),
        };
        let total: usize = sum.unwrap_or("1").parse().map_err(|_| bad())?;
        if total <= 1 {
            return Ok(Some(payload));
        }
        let index: usize = seq.ok_or_else(bad)?.parse().map_err(|_| bad())?;
        if total > MAX_FRAGMENTS || index >= total {
            return Err(bad());
        }
        self.expire(now);
        let partial = self
            .partials
            .entry(message_id.to_string())
            .or_insert_with(|| Partial {
                slots: vec![None; total],
                bytes: 0,
                touched: now,
            });
        if partial.slots.len() != total {
            return Err(bad());
        }
        if partial.slots[index].is_some() {
            return Ok(None); // duplicate fragment
        }
        if self.held + payload.len() > self.max_bytes {
            return Err(FragmentError::BufferFull(self.held));
        }
        let len = payload.len();
        partial.slots[index] = Some(payload);
        partial.bytes += len;
        partial.touched = now;
        self.held += len;
        if partial.slots.iter().any(Option::is_none) {
            return Ok(None);
        }
        let done = self.partials.remove(message_id).expect("present");
        self.held -= done.bytes;
        Ok(Some(done.slots.into_iter().flatten().flatten().collect()))
    }

    /// Drops partial sets untouched for longer than the TTL; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let ttl = self.ttl;
        let before = self.partials.len();
        let mut freed = 0;
        self.partials.retain(|_, p| {
            let keep = now.duration_since(p.touched) <= ttl;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.held -= freed;
        before - self.partials.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Reassembler {
        Reassembler::new(Duration::from_secs(5), 1024)
    }

    #[test]
    fn single_frame_passes_through() {
        let now = Instant::now();
        assert_eq!(
            r().push("m", Some("1"), Some("0"), b"ab".to_vec(), now)
                .unwrap(),
            Some(b"ab".to_vec())
        );
    }

    #[test]
    fn out_of_order_and_duplicates() {
        let now = Instant::now();
        let mut r = r();
        assert_eq!(
            r.push("m", Some("3"), Some("2"), b"c".to_vec(), now)
                .unwrap(),
            None
        );
        assert_eq!(
            r.push("m", Some("3"), Some("0"), b"a".to_vec(), now)
                .unwrap(),
            None
        );
        assert_eq!(
            r.push("m", Some("3"), Some("0"), b"a".to_vec(), now)
                .unwrap(),
            None
        );
        assert_eq!(
            r.push("m", Some("3"), Some("1"), b"b".to_vec(), now)
                .unwrap(),
            Some(b"abc".to_vec())
        );
        assert_eq!(r.held_bytes(), 0);
    }

    #[test]
    fn incomplete_sets_expire() {
        let now = Instant::now();
        let mut r = r();
        r.push("m", Some("2"), Some("0"), b"a".to_vec(), now)
            .unwrap();
        assert_eq!(r.held_bytes(), 1);
        assert_eq!(r.expire(now + Duration::from_secs(6)), 1);
        assert_eq!(r.held_bytes(), 0);
    }

    #[test]
    fn bad_headers_and_cap() {
        let now = Instant::now();
        let mut r = r();
        assert!(r
            .push("m", Some("2"), Some("2"), b"a".to_vec(), now)
            .is_err());
        assert!(r
            .push("m", Some("x"), Some("0"), b"a".to_vec(), now)
            .is_err());
        assert!(r
            .push("m", Some("1000"), Some("0"), b"a".to_vec(), now)
            .is_err());
        let big = vec![0u8; 1025];
        assert_eq!(
            r.push("m", Some("2"), Some("0"), big.clone(), now),
            Err(FragmentError::BufferFull(0))
        );
    }
}
