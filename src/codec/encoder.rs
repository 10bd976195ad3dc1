//! The output side of the codec: the reusable buffer responses are encoded into, which keeps the
//! encoded bytes of constant responses for the current second.
//!
//! Why keep them: a hello-world or probe response is a dozen short pieces (status line, `Date`,
//! `Content-Length` formatted from a number, each header, the body). Measured with `perf` under
//! pipelined load, assembling them was the largest user-space cost after the kernel's, and with
//! musl's `memcpy`, which has no fast path for short copies, it was a quarter of the server's CPU.
//! A response built only from constants (`Cow::Borrowed` headers and body, which are `'static`
//! and so can never change) encodes to the same bytes until the `Date` changes, so it is encoded
//! once a second and then copied whole.

use super::date::DATE_LEN;
use super::response::{Persistence, Response, encode};

/// Distinct constant responses remembered per second: `/` and `/health`, each as GET and HEAD,
/// keep-alive and close, fit with room to spare.
const SLOTS: usize = 8;

/// Largest encoding remembered. The cache is for the small responses that dominate a probe or
/// hello-world load; a large constant body is copied from the binary anyway, and caching it
/// would keep a copy alive for nothing.
const SLOT_MAX_BYTES: usize = 1024;

/// Capacity the buffer keeps between turns. It grows to hold whatever one turn encodes; after a
/// large response it shrinks back to this, so one big answer does not stay resident.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Encoded output waiting to be written, and the cache of constant responses.
#[derive(Debug)]
pub struct Encoder {
    /// The encoded bytes, in order. The connection writes them out and clears the buffer; the
    /// capacity is kept, so steady-state encoding allocates nothing.
    pub bytes: Vec<u8>,
    /// The `Date` value the cached encodings carry.
    date: [u8; DATE_LEN],
    slots: [Slot; SLOTS],
    /// The slot the next new response evicts (round robin).
    next: usize,
}

#[derive(Debug, Default)]
struct Slot {
    key: Option<Key>,
    bytes: Vec<u8>,
}

/// What makes two constant responses encode identically: the same status, the same `'static`
/// header list and body (by address and length), the same HEAD-ness and persistence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    status: u16,
    headers: (usize, usize),
    body: (usize, usize),
    head_only: bool,
    persistence: Persistence,
}

impl Key {
    /// The key of a response built only from constants; `None` when any part is owned.
    fn of(response: &Response, head_only: bool, persistence: Persistence) -> Option<Key> {
        let (headers, body) = response.constant_parts()?;
        Some(Key {
            status: response.status(),
            headers: (headers.as_ptr() as usize, headers.len()),
            body: (body.as_ptr() as usize, body.len()),
            head_only,
            persistence,
        })
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::with_capacity(0)
    }
}

impl Encoder {
    pub fn with_capacity(capacity: usize) -> Self {
        Encoder {
            bytes: Vec::with_capacity(capacity),
            date: [0; DATE_LEN],
            slots: Default::default(),
            next: 0,
        }
    }

    /// Appends `response` (see [`encode`]); a constant response is copied from the cache.
    pub fn encode(
        &mut self,
        response: &Response,
        head_only: bool,
        persistence: Persistence,
        date: &[u8],
    ) {
        let key = Key::of(response, head_only, persistence);
        let small =
            |_: &Key| (response.body().as_bytes()).is_some_and(|b| b.len() <= SLOT_MAX_BYTES);
        let Some(key) = key.filter(small) else {
            return encode(&mut self.bytes, response, head_only, persistence, date);
        };
        if date != self.date {
            // A new second: every cached encoding carries the old `Date`. The buffers are kept.
            self.date.copy_from_slice(&date[..DATE_LEN.min(date.len())]);
            for slot in &mut self.slots {
                slot.key = None;
            }
        }
        let slot = match self.slots.iter().position(|s| s.key == Some(key)) {
            Some(hit) => &self.slots[hit],
            None => {
                let slot = &mut self.slots[self.next];
                self.next = (self.next + 1) % SLOTS;
                slot.bytes.clear();
                encode(&mut slot.bytes, response, head_only, persistence, date);
                slot.key = Some(key);
                slot
            }
        };
        self.bytes.extend_from_slice(&slot.bytes);
    }

    /// Empties the buffer once its bytes are written or queued, shrinking it back to
    /// 64 KiB if a large response grew it.
    pub fn clear(&mut self) {
        self.bytes.clear();
        if self.bytes.capacity() > KEEP_CAPACITY {
            self.bytes.shrink_to(KEEP_CAPACITY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Version;

    const D1: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";
    const D2: &[u8] = b"Sun, 06 Nov 1994 08:49:38 GMT";

    /// Whatever the cache does, the bytes must be exactly what `encode` produces.
    fn same_as_plain(
        encoder: &mut Encoder,
        response: &Response,
        head_only: bool,
        p: Persistence,
        date: &[u8],
    ) {
        let mut plain = Vec::new();
        encode(&mut plain, response, head_only, p, date);
        encoder.bytes.clear();
        encoder.encode(response, head_only, p, date);
        assert_eq!(encoder.bytes, plain);
    }

    #[test]
    fn cached_bytes_equal_plain_encoding() {
        let mut encoder = Encoder::default();
        let hello = Response::text(200, "Hello, World!");
        let ok = Response::text(200, "ok\n");
        let keep = Persistence::KeepAlive(Version::Http11);
        for date in [D1, D1, D2, D2, D1] {
            for head_only in [false, true] {
                for p in [
                    keep,
                    Persistence::Close,
                    Persistence::KeepAlive(Version::Http10),
                ] {
                    same_as_plain(&mut encoder, &hello, head_only, p, date);
                    same_as_plain(&mut encoder, &ok, head_only, p, date);
                }
            }
        }
    }

    /// The statuses whose content and length are left out, and headers set (and replaced) on a
    /// constant response, come out of the cache exactly as `encode` writes them.
    #[test]
    fn every_status_rule_survives_the_cache() {
        let mut encoder = Encoder::default();
        let responses = [
            Response::empty(204),
            Response::text(204, "dropped"),
            Response::text(205, "dropped"),
            Response::text(304, "dropped").with_header("ETag", "\"v1\""),
            Response::text(100, ""),
            Response::text(200, "x").with_header("Content-Type", "application/json"),
            Response::text(405, "no\n").with_header("Allow", "GET, HEAD"),
        ];
        for date in [D1, D1, D2] {
            for response in &responses {
                for head_only in [false, true] {
                    for p in [Persistence::KeepAlive(Version::Http11), Persistence::Close] {
                        same_as_plain(&mut encoder, response, head_only, p, date);
                    }
                }
            }
        }
    }

    #[test]
    fn owned_responses_are_encoded_every_time() {
        let mut encoder = Encoder::default();
        let first = Response::text(200, String::from("one"));
        same_as_plain(&mut encoder, &first, false, Persistence::Close, D1);
        // Same length, same status, different owned body: no stale copy may come back.
        let second = Response::text(200, String::from("two"));
        same_as_plain(&mut encoder, &second, false, Persistence::Close, D1);
        let with_header = Response::text(200, "x").with_header("X-A", "1");
        same_as_plain(&mut encoder, &with_header, false, Persistence::Close, D1);
        let other_header = Response::text(200, "x").with_header("X-A", "2");
        same_as_plain(&mut encoder, &other_header, false, Persistence::Close, D1);
    }

    #[test]
    fn shrinks_back_after_a_large_response() {
        let mut encoder = Encoder::with_capacity(4096);
        let large = Response::text(200, "x".repeat(4 * 1024 * 1024));
        encoder.encode(&large, false, Persistence::Close, D1);
        assert!(encoder.bytes.capacity() >= 4 * 1024 * 1024);
        encoder.clear();
        assert!(encoder.bytes.is_empty());
        assert!(encoder.bytes.capacity() <= KEEP_CAPACITY);
        // A large constant body is not remembered either.
        static LARGE: [u8; 2 * SLOT_MAX_BYTES] = [b'y'; 2 * SLOT_MAX_BYTES];
        let large = std::str::from_utf8(&LARGE).unwrap();
        let constant = Response::text(200, large);
        encoder.encode(&constant, false, Persistence::Close, D1);
        assert!(
            encoder
                .slots
                .iter()
                .all(|slot| slot.bytes.len() <= SLOT_MAX_BYTES)
        );
    }

    #[test]
    fn appends_after_what_is_already_queued() {
        let mut encoder = Encoder::default();
        let hello = Response::text(200, "Hello, World!");
        encoder.encode(&hello, false, Persistence::Close, D1);
        let one = encoder.bytes.len();
        encoder.encode(&hello, false, Persistence::Close, D1);
        assert_eq!(encoder.bytes.len(), 2 * one);
        assert_eq!(encoder.bytes[..one], encoder.bytes[one..]);
    }
}
