//! The HTTP/1.1 codec: pure functions and small state machines from bytes to requests and from
//! responses to bytes. Nothing in here touches a socket, so all of it is unit-tested, fuzzed and
//! benchmarked on plain byte slices.
//!
//! - [`request`]: request-head parsing (httparse plus the RFC 9112 framing rules);
//! - [`body`]: consuming `Content-Length` and chunked bodies;
//! - [`response`]: the [`Response`] type, the HTTP rules it keeps, and its encoding;
//! - [`encoder`]: the reusable output buffer, with constant responses encoded once a second;
//! - [`date`]: the cached `Date` header;
//! - [`error`]: protocol errors and their status codes.

pub mod body;
pub mod date;
pub mod encoder;
pub mod error;
pub mod request;
pub mod response;

pub use body::{BodyDecoder, Progress};
pub use date::DateCache;
pub use encoder::Encoder;
pub use error::ProtocolError;
pub use request::{BodyFraming, HeadLimits, Parse, Request, Version, header_slots, parse};
pub use response::{
    Body, Chunk, Framing, Header, InvalidHeader, Persistence, Response, encode, encode_head,
};

#[cfg(test)]
mod tests;
