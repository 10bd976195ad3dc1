//! Responses: the type a handler returns, and its encoding onto the wire.
//!
//! Encoding appends to a caller-owned `Vec<u8>` so one buffer serves every response the event loop
//! writes; a static body is borrowed, not copied into a fresh allocation per request.

use std::borrow::Cow;

use super::request::Version;

/// A header line: a static name and a value that is borrowed when it is static.
pub type Header = (&'static str, Cow<'static, str>);

/// A response as a handler builds it. The server adds `Date`, `Content-Length` and `Connection`.
///
/// Headers and body are `Cow`s so that a response built from constants (the common case for a
/// probe or hello-world handler) borrows them: answering a request allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Cow<'static, [Header]>,
    pub body: Cow<'static, [u8]>,
}

/// The header every text response carries.
const TEXT_PLAIN: &[Header] = &[("Content-Type", Cow::Borrowed("text/plain; charset=utf-8"))];

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<Cow<'static, str>>) -> Self {
        let body = match body.into() {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        };
        Response {
            status,
            headers: Cow::Borrowed(TEXT_PLAIN),
            body,
        }
    }

    /// Adds a header line (this copies the header list into an owned `Vec`).
    pub fn with_header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Self {
        self.headers.to_mut().push((name, value.into()));
        self
    }
}

/// What the `Connection` header of an encoded response must say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Keep the connection open. HTTP/1.1 says nothing (persistence is its default); a 1.0
    /// client that asked for keep-alive gets `Connection: keep-alive` back (RFC 9112 §9.3).
    KeepAlive(Version),
    /// This is the last response on the connection: `Connection: close`.
    Close,
}

/// The bytes of an interim `100 Continue` (RFC 9110 §15.2.1).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends `response` to `out`. For a HEAD request (`head_only`) the body is left out but its
/// `Content-Length` is still announced (RFC 9110 §9.3.2). `date` is the cached `Date` value.
pub fn encode(
    out: &mut Vec<u8>,
    response: &Response,
    head_only: bool,
    persistence: Persistence,
    date: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(response.status));
    out.push(b' ');
    out.extend_from_slice(reason(response.status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\nContent-Length: ");
    push_decimal(out, response.body.len() as u64);
    for (name, value) in response.headers.iter() {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    match persistence {
        Persistence::Close => out.extend_from_slice(b"\r\nConnection: close"),
        Persistence::KeepAlive(Version::Http10) => {
            out.extend_from_slice(b"\r\nConnection: keep-alive")
        }
        Persistence::KeepAlive(Version::Http11) => {}
    }
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(&response.body);
    }
}

/// Appends the decimal digits of `n` without going through `fmt` (which is measurably slower).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The reason phrase for a status code (RFC 9110 §15).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
