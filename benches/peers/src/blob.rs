//! The large shared body of the large-answer and slow-reader runs (`benches/large.sh`,
//! `benches/slow_readers.sh`), the same for every Rust peer: 8 MiB where byte `i` is `i % 251`,
//! made once per process and shared by every connection. `GET /blob` answers all of it,
//! `GET /blob?bytes=N` (N ≤ 8 MiB) its first N bytes (a `Bytes::slice`: a reference, no copy),
//! anything else 400. Included with `#[path]` by each peer (a module, not a library, so each peer
//! stays its own file plus this one).

use std::sync::OnceLock;

use bytes::Bytes;

/// Bytes in the shared body.
pub const LEN: usize = 8 * 1024 * 1024;

static BLOB: OnceLock<Bytes> = OnceLock::new();

/// The body, one allocation for the whole process. The peers call it once at start, so the
/// body is in their idle RSS and no request pays for making it.
pub fn shared() -> &'static Bytes {
    BLOB.get_or_init(|| (0..LEN).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into())
}

/// The answer to a `/blob` query: all of the body without `bytes=`, its first N bytes for
/// `bytes=N` with N ≤ [`LEN`], `None` (answer 400) for anything else.
pub fn answer(query: Option<&str>) -> Option<Bytes> {
    let n = match query {
        None => LEN,
        Some(q) => q.strip_prefix("bytes=")?.parse().ok()?,
    };
    (n <= LEN).then(|| shared().slice(..n))
}
