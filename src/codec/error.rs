//! The protocol errors a client can cause, and the one place that maps each to a status code.

use std::fmt;

/// Why a request was refused. Every variant ends the connection after its response: once the
/// framing is in doubt, no later byte on that connection can be trusted (RFC 9112 §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// Malformed or smuggling-shaped input; the text says which rule it broke (for logs and tests).
    Malformed(&'static str),
    /// The head did not arrive within the header-read timeout.
    RequestTimeout,
    /// An `Expect` other than `100-continue`.
    ExpectationFailed,
    /// The body is longer than the configured limit.
    BodyTooLarge,
    /// The request-target is longer than the configured limit.
    UriTooLong,
    /// The head is larger than the limit, or has more header lines than the parser holds.
    HeadersTooLarge,
    /// A transfer coding other than `chunked`, applied before the final `chunked`
    /// (RFC 9112 §6.1: "SHOULD respond with 501").
    UnsupportedTransferCoding,
    /// A method that has not ended within the head limit: longer than any method we implement
    /// (RFC 9112 §3: "SHOULD respond with 501").
    MethodTooLong,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1.
    VersionNotSupported,
}

impl ProtocolError {
    /// The response status for this error: the single mapping from protocol errors to codes.
    pub fn status(self) -> u16 {
        match self {
            ProtocolError::Malformed(_) => 400,
            ProtocolError::RequestTimeout => 408,
            ProtocolError::BodyTooLarge => 413,
            ProtocolError::UriTooLong => 414,
            ProtocolError::ExpectationFailed => 417,
            ProtocolError::HeadersTooLarge => 431,
            ProtocolError::UnsupportedTransferCoding | ProtocolError::MethodTooLong => 501,
            ProtocolError::VersionNotSupported => 505,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Malformed(why) => write!(f, "malformed request: {why}"),
            other => write!(f, "{}", super::response::reason(other.status())),
        }
    }
}
