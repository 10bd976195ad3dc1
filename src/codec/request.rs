//! Request-head parsing over httparse: bytes in, a validated [`Request`] (or a precise
//! [`ProtocolError`]) out. No sockets here.
//!
//! httparse does the tokenising; this file adds the message-framing rules of RFC 9112 that
//! httparse leaves to its caller and that request smuggling lives in: one `Host`, one body length,
//! `Transfer-Encoding` only on HTTP/1.1 and only `chunked`, CRLF line endings only.

use std::mem::MaybeUninit;

use super::error::ProtocolError;

/// Most header lines a request may carry; one more is a 431. httparse needs a fixed array, and
/// 64 is what nginx and Go accept in practice while keeping the array at 2 KiB of stack.
pub const MAX_HEADERS: usize = 64;

/// The HTTP versions this server speaks. httparse only recognises 1.0 and 1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the request's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither `Content-Length` nor `Transfer-Encoding`.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, validated request head. Borrows from the read buffer: parsing copies nothing.
#[derive(Debug)]
pub struct Request<'a> {
    /// The method token exactly as sent (methods are case-sensitive).
    pub method: &'a str,
    /// The request-target as sent, query included.
    pub target: &'a str,
    /// The path of the target: origin-form without its query, or the path part of an
    /// absolute-form target; `*` for the asterisk form.
    pub path: &'a str,
    pub version: Version,
    /// Every header line, in order.
    pub headers: &'a [httparse::Header<'a>],
    /// Whether the client allows the connection to stay open after this request
    /// (RFC 9112 §9.3: 1.1 defaults to persistent, 1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    pub body: BodyFraming,
    /// `Expect: 100-continue` on an HTTP/1.1 request (never honoured for 1.0, RFC 9110 §10.1.1).
    pub expect_continue: bool,
}

impl Request<'_> {
    /// The first header with this name (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// The three outcomes of parsing a request head, kept apart as httparse keeps them: a partial
/// head is not an error, it only means "read more".
#[derive(Debug)]
pub enum Parse<'a> {
    /// A whole head: the request and how many bytes of the buffer it took.
    Complete {
        request: Request<'a>,
        head_len: usize,
    },
    /// The buffer holds the start of a head; read more bytes and parse again.
    Partial,
    /// The bytes cannot be a valid request; answer with the error's status and close.
    Error(ProtocolError),
}

/// Limits the parser enforces; the server builds this from its `Config`.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Largest request head (request line + header lines) in bytes; larger is 431, or 414 when the
    /// request line alone does not fit.
    pub max_head_bytes: usize,
    /// Longest request-target in bytes; longer is 414.
    pub max_target_bytes: usize,
}

/// Slots httparse fills with header references; the caller keeps them alive as long as the
/// parsed [`Request`]. They start uninitialised: zeroing 2 KiB of stack per request shows in a
/// hello-world profile, and httparse only hands back the slots it wrote.
pub type HeaderSlots<'a> = [MaybeUninit<httparse::Header<'a>>; MAX_HEADERS];

/// Fresh, uninitialised header slots for one call to [`parse`].
pub const fn header_slots<'a>() -> HeaderSlots<'a> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Parses one request head from the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], slots: &'a mut HeaderSlots<'a>, limits: &HeadLimits) -> Parse<'a> {
    let mut raw = httparse::Request::new(&mut []);
    match raw.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Partial) => Parse::Partial.or_too_large(buf, limits),
        Err(e) => Parse::Error(classify(e, buf)),
        Ok(httparse::Status::Complete(head_len)) if head_len > limits.max_head_bytes => {
            Parse::Error(ProtocolError::HeadersTooLarge)
        }
        Ok(httparse::Status::Complete(head_len)) => {
            match validate(&raw, &buf[..head_len], limits) {
                Err(e) => Parse::Error(e),
                Ok(fields) => {
                    let method = raw.method.unwrap_or_default();
                    let target = raw.path.unwrap_or_default();
                    let headers: &'a mut [httparse::Header<'a>] = std::mem::take(&mut raw.headers);
                    Parse::Complete {
                        request: Request {
                            method,
                            target,
                            path: path_of(target),
                            version: fields.version,
                            headers,
                            keep_alive: fields.keep_alive,
                            body: fields.body,
                            expect_continue: fields.expect_continue,
                        },
                        head_len,
                    }
                }
            }
        }
    }
}

impl Parse<'_> {
    /// A partial head that already fills the head limit will never complete.
    fn or_too_large(self, buf: &[u8], limits: &HeadLimits) -> Self {
        if buf.len() < limits.max_head_bytes {
            return self;
        }
        // Without a line end in sight the request line itself is too long: that is a long URI.
        if !buf.contains(&b'\n') {
            Parse::Error(ProtocolError::UriTooLong)
        } else {
            Parse::Error(ProtocolError::HeadersTooLarge)
        }
    }
}

/// Maps an httparse error to our error, looking at the bytes where httparse's kind is too coarse.
fn classify(e: httparse::Error, buf: &[u8]) -> ProtocolError {
    match e {
        httparse::Error::TooManyHeaders => ProtocolError::HeadersTooLarge,
        // httparse rejects every version but 1.0 and 1.1 the same way. A well-formed
        // `HTTP/x.y` it cannot speak is 505 (RFC 9110 §15.6.6); anything else is malformed.
        httparse::Error::Version if has_wellformed_version(buf) => {
            ProtocolError::VersionNotSupported
        }
        httparse::Error::Version => ProtocolError::Malformed("bad HTTP version"),
        httparse::Error::Token => ProtocolError::Malformed("bad method"),
        httparse::Error::HeaderName => ProtocolError::Malformed("bad header name"),
        httparse::Error::HeaderValue => ProtocolError::Malformed("bad header value"),
        httparse::Error::NewLine => ProtocolError::Malformed("bad line ending"),
        httparse::Error::Status => ProtocolError::Malformed("bad status"),
    }
}

/// True when the request line ends in `HTTP/<digit>.<digit>` followed by CRLF.
fn has_wellformed_version(buf: &[u8]) -> bool {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    match line.len().checked_sub(9).map(|at| &line[at..]) {
        Some([b' ', b'H', b'T', b'T', b'P', b'/', major, b'.', minor]) => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        _ => false,
    }
}

/// What validation learns about a head beyond what httparse reports.
struct Fields {
    version: Version,
    keep_alive: bool,
    body: BodyFraming,
    expect_continue: bool,
}

/// Applies the framing rules httparse leaves to us.
fn validate(
    raw: &httparse::Request,
    head: &[u8],
    limits: &HeadLimits,
) -> Result<Fields, ProtocolError> {
    // RFC 9112 §2.2: a recipient MAY accept a bare LF as a line end; we don't, because a
    // proxy in front of us that disagrees is exactly how requests get smuggled.
    if has_bare_lf(head) {
        return Err(ProtocolError::Malformed("bare LF"));
    }
    let version = match raw.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    let target = raw.path.unwrap_or_default();
    if target.len() > limits.max_target_bytes {
        return Err(ProtocolError::UriTooLong);
    }
    check_target(raw.method.unwrap_or_default(), target)?;

    let mut hosts = 0;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for h in raw.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            check_host(h.value)?;
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if length.is_some_and(|seen| seen != n) {
                return Err(ProtocolError::Malformed("conflicting Content-Length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            chunked = parse_transfer_encoding(h.value, chunked)?;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in list_items(h.value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if h.value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = version == Version::Http11;
            } else {
                return Err(ProtocolError::ExpectationFailed);
            }
        }
    }

    // RFC 9112 §3.2: a 1.1 request without exactly one Host is a 400.
    if version == Version::Http11 && hosts != 1 {
        return Err(ProtocolError::Malformed("HTTP/1.1 needs exactly one Host"));
    }
    if hosts > 1 {
        return Err(ProtocolError::Malformed("more than one Host"));
    }
    let body = match (transfer_encoding, length) {
        // RFC 9112 §6.1: Transfer-Encoding on 1.0 cannot be trusted; the message length is unknown.
        (true, _) if version == Version::Http10 => {
            return Err(ProtocolError::Malformed("Transfer-Encoding on HTTP/1.0"));
        }
        // RFC 9112 §6.3 item 3: both is a smuggling attempt or a broken proxy; reject and close.
        (true, Some(_)) => {
            return Err(ProtocolError::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        (true, None) if chunked => BodyFraming::Chunked,
        (true, None) => return Err(ProtocolError::Malformed("chunked is not the final coding")),
        (false, Some(0)) | (false, None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    Ok(Fields {
        version,
        keep_alive,
        body,
        expect_continue: expect_continue && body != BodyFraming::None,
    })
}

/// The path part of a request-target: query dropped, scheme and authority of the absolute form
/// (RFC 9112 §3.2.2) dropped.
fn path_of(target: &str) -> &str {
    let without_query = target.split(['?', '#']).next().unwrap_or("");
    if let Some(rest) = without_query
        .strip_prefix("http://")
        .or_else(|| without_query.strip_prefix("https://"))
    {
        return match rest.find('/') {
            Some(at) => &rest[at..],
            None => "/",
        };
    }
    without_query
}

/// RFC 9112 §3.2: origin-form starts with `/`; absolute-form has a scheme; the asterisk form is
/// only for OPTIONS; authority-form is only for CONNECT, which this server does not proxy.
fn check_target(method: &str, target: &str) -> Result<(), ProtocolError> {
    if target.starts_with('/') {
        return Ok(());
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(())
        } else {
            Err(ProtocolError::Malformed("asterisk-form outside OPTIONS"))
        };
    }
    let lower_scheme = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    if lower_scheme.starts_with("http://") || lower_scheme.starts_with("https://") {
        return Ok(());
    }
    Err(ProtocolError::Malformed("bad request-target"))
}

/// Host = uri-host [ ":" port ]; we accept reg-name, IPv4 and bracketed IPv6 characters.
fn check_host(value: &[u8]) -> Result<(), ProtocolError> {
    let ok = value.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'.' | b'-'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    });
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::Malformed("bad Host"))
    }
}

/// Content-Length = 1*DIGIT (RFC 9110 §8.6). A list of identical values, as some proxies send
/// after merging duplicates, is accepted as that one value; anything else is a 400.
fn parse_content_length(value: &[u8]) -> Result<u64, ProtocolError> {
    let mut result: Option<u64> = None;
    for item in value.split(|&b| b == b',') {
        let item = trim_ows(item);
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return Err(ProtocolError::Malformed("bad Content-Length"));
        }
        let mut n: u64 = 0;
        for &d in item {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or(ProtocolError::Malformed("Content-Length overflows"))?;
        }
        if result.is_some_and(|seen| seen != n) {
            return Err(ProtocolError::Malformed("conflicting Content-Length"));
        }
        result = Some(n);
    }
    result.ok_or(ProtocolError::Malformed("bad Content-Length"))
}

/// Folds one `Transfer-Encoding` line into "chunked is the final coding so far". The only coding
/// this server decodes is `chunked` (RFC 9112 §7): any other is 501, and `chunked` anywhere but
/// last, or twice, is 400 (RFC 9112 §6.3 item 4).
fn parse_transfer_encoding(value: &[u8], mut chunked_last: bool) -> Result<bool, ProtocolError> {
    let mut any = false;
    for coding in value.split(|&b| b == b',') {
        let coding = trim_ows(coding);
        if coding.is_empty() {
            continue;
        }
        any = true;
        if !coding.eq_ignore_ascii_case(b"chunked") {
            return Err(ProtocolError::UnsupportedTransferCoding);
        }
        if chunked_last {
            return Err(ProtocolError::Malformed("chunked applied twice"));
        }
        chunked_last = true;
    }
    if any {
        Ok(chunked_last)
    } else {
        Err(ProtocolError::Malformed("empty Transfer-Encoding"))
    }
}

/// The non-empty comma-separated items of a header value, whitespace trimmed.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// A `\n` not preceded by `\r`. httparse accepts these; RFC 9112 lets us refuse them.
fn has_bare_lf(head: &[u8]) -> bool {
    let mut previous = 0u8;
    for &b in head {
        if b == b'\n' && previous != b'\r' {
            return true;
        }
        previous = b;
    }
    false
}
