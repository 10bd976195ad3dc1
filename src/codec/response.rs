//! Responses: the type a handler returns, the rules it keeps, and the encoding of its head.
//!
//! Encoding appends to a caller-owned `Vec<u8>` so one buffer serves every response the event loop
//! writes. A body is not part of that buffer unless it is small: it is written from where it
//! lives (see [`Body`]), so a response of any size costs the connection only its head.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::request::Version;
use crate::stream::Receiver;

/// A header line: a name and a value, each borrowed when it is a constant and owned when it is
/// computed.
pub type Header = (Cow<'static, str>, Cow<'static, str>);

/// A response as a handler builds it: a status, header lines and a body. The server adds `Date`,
/// `Content-Length` and `Connection` when it encodes it.
///
/// HTTP's rules hold from the moment a `Response` exists, so no handler can put on the wire what
/// HTTP forbids, and the encoder can copy what it is given without checking it again:
///
/// - **The status has three digits** (RFC 9110 §15). A constructor panics on any other number, as
///   Go's `ResponseWriter.WriteHeader` does: a status is the program's constant, and a malformed
///   status line would only fail later, in the client.
/// - **1xx, 204, 205 and 304 carry no content** (RFC 9110 §6.4.1, §15.3.6). A body given with
///   one of these statuses is dropped, not refused: a handler that built a body and then found
///   the client's copy still fresh (304) has made no mistake worth a panic, and the client must
///   not see the bytes either way (Go's net/http does the same for 1xx, 204 and 304, in
///   `bodyAllowedForStatus`). 1xx, 204 and 304 have no `Content-Length` either (§8.6; for 304
///   it is optional, and leaving it out is never wrong); a 205 says `Content-Length: 0`, so that
///   its client knows where it ends.
///   (1xx statuses are interim, §15.2: the server sends `100 Continue` itself, and a handler that
///   answers 1xx leaves its client waiting for a final response, so it has no reason to.)
/// - **One line per header name.** Setting a header replaces one of the same name, compared
///   without regard to ASCII case (RFC 9110 §5.1), so `Response::text(..).with_header
///   ("Content-Type", "application/json")` replaces `text/plain` instead of sending both.
/// - **The server's own headers are refused**: `Content-Length`, `Transfer-Encoding`,
///   `Connection` and `Date` (see [`InvalidHeader::Reserved`] for why each).
/// - **A name is a token, and a value holds no control character but tab**: CR or LF would end
///   the line and let the value write headers (or a body) of its own choosing, response
///   splitting; NUL ends a string in C code downstream; RFC 9110 §5.5 allows none of them.
///
/// The fields are private so that none of this can be bypassed; read them with
/// [`status`](Response::status), [`headers`](Response::headers) and [`body`](Response::body).
/// Headers and body are `Cow`s so that a response built from constants (the common case for a
/// probe or hello-world handler) borrows them: answering a request allocates nothing.
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: Cow<'static, [Header]>,
    body: Body,
}

/// The header every text response with content carries.
const TEXT_PLAIN: &[Header] = &[(
    Cow::Borrowed("Content-Type"),
    Cow::Borrowed("text/plain; charset=utf-8"),
)];

impl Response {
    /// A `text/plain` response.
    ///
    /// For 1xx, 204, 205 and 304 this is [`Response::empty`]: the body is dropped and no
    /// `Content-Type` is set, which would describe content there is not (and a 304's headers
    /// update the client's cached copy, RFC 9111 §4.3.4, whose type is not `text/plain`).
    ///
    /// # Panics
    ///
    /// If `status` is not a three-digit number (100 to 999).
    pub fn text(status: u16, body: impl Into<Cow<'static, str>>) -> Self {
        if !has_content(three_digits(status)) {
            return Response::empty(status);
        }
        let body = match body.into() {
            Cow::Borrowed(s) => Body::from(s.as_bytes()),
            Cow::Owned(s) => Body::from(s.into_bytes()),
        };
        Response {
            status,
            headers: Cow::Borrowed(TEXT_PLAIN),
            body,
        }
    }

    /// A response with `body` and no headers: bytes of any kind, sized or streamed (see
    /// [`Body`]). Nothing is guessed: set a `Content-Type` if the client needs one.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lameduck::{Body, Response};
    ///
    /// // One allocation, shared by every response that clones the Arc.
    /// let logo: Arc<[u8]> = Arc::from(&b"\x89PNG..."[..]);
    /// let response = Response::new(200, Body::shared(logo)).with_header("Content-Type", "image/png");
    /// assert_eq!(response.body().len(), Some(7));
    /// ```
    ///
    /// For 1xx, 204, 205 and 304 the body is dropped (a stream is told its client is gone).
    ///
    /// # Panics
    ///
    /// If `status` is not a three-digit number (100 to 999).
    pub fn new(status: u16, body: impl Into<Body>) -> Self {
        let mut response = Response::empty(status);
        if has_content(status) {
            response.body = body.into();
        }
        response
    }

    /// A response with no headers and no body: a 204, a 304, or a redirect once a `Location`
    /// is added.
    ///
    /// # Panics
    ///
    /// If `status` is not a three-digit number (100 to 999).
    pub fn empty(status: u16) -> Self {
        Response {
            status: three_digits(status),
            headers: Cow::Borrowed(&[]),
            body: Body::from(&b""[..]),
        }
    }

    /// Sets a header from constants, replacing one of the same name (this copies the header list
    /// into an owned `Vec`).
    ///
    /// For a value that comes from outside the program (a request, a file, a database), use
    /// [`try_header`](Response::try_header): this one is for values the program spells out.
    ///
    /// # Panics
    ///
    /// Where `try_header` returns an error: a name that is not a token, a name the server writes
    /// itself, a value with a control character. As with `http::HeaderName::from_static`, such a
    /// header is a bug in the program, best found the first time the line runs.
    pub fn with_header(
        self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.try_header(name, value)
            .unwrap_or_else(|e| panic!("Response::with_header: {e}"))
    }

    /// Sets a header, replacing one of the same name, or says why it cannot be sent. The response
    /// is consumed either way: on an error, answer with something else (a 400 or a 500, as the
    /// value's source deserves). The name may be computed:
    ///
    /// ```
    /// use lameduck::Response;
    ///
    /// let field = format!("X-{}-Version", "Api");
    /// let response = Response::text(200, "ok\n").try_header(field, "2")?;
    /// assert_eq!(response.headers()[1].0, "X-Api-Version");
    /// # Ok::<(), lameduck::InvalidHeader>(())
    /// ```
    pub fn try_header(
        self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Result<Self, InvalidHeader> {
        self.add_header(name.into(), value.into(), Add::Replace)
    }

    /// Adds a header line after any of the same name, for the fields HTTP lets repeat: `Set-Cookie`
    /// (RFC 6265 §3: one cookie per line, never folded) and the list-based fields (`Vary`,
    /// `Cache-Control`, `Link`…, RFC 9110 §5.3). Panics where
    /// [`try_append_header`](Response::try_append_header) returns an error.
    ///
    /// ```
    /// use lameduck::Response;
    ///
    /// let response = Response::empty(204)
    ///     .append_header("Set-Cookie", "session=abc; HttpOnly")
    ///     .append_header("Set-Cookie", "theme=dark");
    /// assert_eq!(response.headers().len(), 2);
    /// ```
    pub fn append_header(
        self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.try_append_header(name, value)
            .unwrap_or_else(|e| panic!("Response::append_header: {e}"))
    }

    /// Adds a header line after any of the same name, or says why it cannot be sent: the rules
    /// of [`try_header`](Response::try_header), and a field that may appear only once
    /// (`Content-Type`, `Location`, `ETag`… see [`InvalidHeader::Repeated`]) cannot be added
    /// twice.
    pub fn try_append_header(
        self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Result<Self, InvalidHeader> {
        self.add_header(name.into(), value.into(), Add::Append)
    }

    /// Checks a header against the rules, then sets it as `add` says.
    fn add_header(
        mut self,
        name: Cow<'static, str>,
        value: Cow<'static, str>,
        add: Add,
    ) -> Result<Self, InvalidHeader> {
        let name = check_header(name, &value)?;
        let headers = self.headers.to_mut();
        let same = headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(&name));
        match (same, add) {
            (Some(at), Add::Replace) => headers[at] = (name, value),
            (Some(_), Add::Append) if SINGLETONS.iter().any(|s| s.eq_ignore_ascii_case(&name)) => {
                return Err(InvalidHeader::Repeated(name));
            }
            _ => headers.push((name, value)),
        }
        Ok(self)
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The header lines the handler set, in order (a name appears more than once only where it
    /// was [appended](Response::append_header)).
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The body: what a GET gets, and whose length a HEAD is told. Always empty for 1xx, 204,
    /// 205 and 304.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Takes the body out, leaving an empty one: the connection writes it after the head.
    pub(crate) fn take_body(&mut self) -> Body {
        std::mem::replace(&mut self.body, Body::from(&b""[..]))
    }

    /// How the body is delimited on the wire for a client speaking `version` (RFC 9112 §6.3).
    pub fn framing(&self, version: Version) -> Framing {
        if !has_length(self.status) {
            return Framing::None;
        }
        match (self.body.len(), version) {
            (Some(len), _) => Framing::Length(len),
            (None, Version::Http11) => Framing::Chunked,
            // An HTTP/1.0 client knows no chunked coding (RFC 9112 §7.1): the body ends
            // where the connection does.
            (None, Version::Http10) => Framing::UntilClose,
        }
    }

    /// The headers and body of a response built only from constants (borrowed `'static` data,
    /// which can never change), or `None` when any part is owned. The encoder keys its cache on
    /// them.
    pub(super) fn constant_parts(&self) -> Option<(&'static [Header], &'static [u8])> {
        match (&self.headers, self.body.as_static()) {
            (Cow::Borrowed(headers), Some(body)) => Some((headers, body)),
            _ => None,
        }
    }
}

/// What setting a header does to a line of the same name.
#[derive(Clone, Copy)]
enum Add {
    /// Takes its place ([`Response::try_header`]).
    Replace,
    /// Goes after it ([`Response::try_append_header`]).
    Append,
}

/// How a response's body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body and no length: 1xx, 204, 304 (RFC 9110 §8.6).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`: a streamed body of unknown length, to an HTTP/1.1 client.
    Chunked,
    /// Neither: a streamed body of unknown length to an HTTP/1.0 client ends when the
    /// connection closes, so the response must be the connection's last.
    UntilClose,
}

/// A response body: where its bytes live. None of them is copied into the connection: the
/// server writes the head, then the body from here (`writev`), resuming at an offset after a
/// partial write, so a response of any size costs a connection the same few hundred bytes.
///
/// - **`'static` bytes** (`&'static [u8]`, `&'static str`): borrowed, never copied.
/// - **Owned bytes** (`Vec<u8>`, `String`): held once, until written.
/// - **Shared bytes** ([`Body::shared`]): one allocation that any number of responses write
///   from at once, each holding one reference (an `Arc<[u8]>`, or your own type).
/// - **A stream** ([`Body::stream`]): pieces sent from another thread with backpressure; see
///   [`BodyWriter`](crate::BodyWriter).
///
/// ```
/// use lameduck::{Body, Response};
///
/// let gzip: Vec<u8> = vec![0x1f, 0x8b, 8, 0];
/// let response = Response::new(200, gzip)
///     .with_header("Content-Type", "application/gzip");
/// assert_eq!(response.body().len(), Some(4));
/// let _ = Body::from("text is bytes too");
/// ```
#[derive(Debug)]
pub struct Body(BodyKind);

#[derive(Debug)]
enum BodyKind {
    Bytes(Chunk),
    Stream(Receiver),
}

/// Bytes held in memory: a whole body, or one piece of a streamed one.
///
/// ```
/// use std::sync::Arc;
/// use lameduck::Chunk;
///
/// let shared: Arc<[u8]> = Arc::from(vec![0u8; 1 << 20]);
/// let piece = Chunk::shared(shared.clone()); // a reference, not a copy
/// assert_eq!(piece.as_bytes().len(), 1 << 20);
/// ```
pub struct Chunk(ChunkKind);

enum ChunkKind {
    Static(&'static [u8]),
    Owned(Vec<u8>),
    Slice(Arc<[u8]>),
    Shared(Arc<dyn AsRef<[u8]> + Send + Sync>),
}

impl Chunk {
    /// Bytes shared with whoever else holds `bytes`: an `Arc<[u8]>`, an `Arc<Vec<u8>>`, or any
    /// type of yours that can lend its bytes (a memory-mapped file, a cache entry).
    pub fn shared<T>(bytes: Arc<T>) -> Chunk
    where
        Arc<T>: Into<Chunk>,
        T: ?Sized,
    {
        bytes.into()
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            ChunkKind::Static(bytes) => bytes,
            ChunkKind::Owned(bytes) => bytes,
            ChunkKind::Slice(bytes) => bytes,
            ChunkKind::Shared(bytes) => (**bytes).as_ref(),
        }
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            ChunkKind::Static(_) => "static",
            ChunkKind::Owned(_) => "owned",
            ChunkKind::Slice(_) | ChunkKind::Shared(_) => "shared",
        };
        write!(f, "Chunk({kind}, {} bytes)", self.as_bytes().len())
    }
}

impl From<&'static [u8]> for Chunk {
    fn from(bytes: &'static [u8]) -> Chunk {
        Chunk(ChunkKind::Static(bytes))
    }
}

impl From<&'static str> for Chunk {
    fn from(text: &'static str) -> Chunk {
        Chunk::from(text.as_bytes())
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(bytes: Vec<u8>) -> Chunk {
        Chunk(ChunkKind::Owned(bytes))
    }
}

impl From<String> for Chunk {
    fn from(text: String) -> Chunk {
        Chunk::from(text.into_bytes())
    }
}

impl From<Arc<[u8]>> for Chunk {
    fn from(bytes: Arc<[u8]>) -> Chunk {
        Chunk(ChunkKind::Slice(bytes))
    }
}

/// Any type of yours that lends its bytes, shared: `Arc<Vec<u8>>`, a memory map, a cache entry.
impl<T: AsRef<[u8]> + Send + Sync + 'static> From<Arc<T>> for Chunk {
    fn from(bytes: Arc<T>) -> Chunk {
        Chunk(ChunkKind::Shared(bytes))
    }
}

impl Body {
    /// A body shared with whoever else holds `bytes` (see [`Chunk::shared`]): one allocation
    /// for every client, each response holding a reference.
    pub fn shared<T>(bytes: Arc<T>) -> Body
    where
        Arc<T>: Into<Chunk>,
        T: ?Sized,
    {
        Body(BodyKind::Bytes(bytes.into()))
    }

    /// A body streamed in pieces from another thread, and the [`BodyWriter`](crate::BodyWriter)
    /// that sends them. With `length` the response says `Content-Length` and the writer must
    /// send exactly that many bytes; without, it is chunked (close-delimited for an HTTP/1.0
    /// client).
    ///
    /// ```no_run
    /// use lameduck::{Body, Call, Handler, Request, Response};
    ///
    /// struct Count;
    ///
    /// impl Handler for Count {
    ///     fn call(&mut self, _: &Request<'_>, _: Call<'_>) -> Option<Response> {
    ///         let (body, mut writer) = Body::stream(None);
    ///         std::thread::spawn(move || {
    ///             for i in 0..1000 {
    ///                 // Waits while the client has its share queued; fails once it has gone.
    ///                 if writer.send(format!("{i}\n")).is_err() {
    ///                     return;
    ///                 }
    ///             }
    ///             let _ = writer.finish();
    ///         });
    ///         Some(Response::new(200, body))
    ///     }
    /// }
    /// ```
    pub fn stream(length: Option<u64>) -> (Body, crate::BodyWriter) {
        let (receiver, writer) = crate::stream::channel(length);
        (Body(BodyKind::Stream(receiver)), writer)
    }

    /// The length in bytes: `None` for a stream of unknown length.
    pub fn len(&self) -> Option<u64> {
        match &self.0 {
            BodyKind::Bytes(chunk) => Some(chunk.as_bytes().len() as u64),
            BodyKind::Stream(receiver) => receiver.length(),
        }
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The bytes of a body held in memory; `None` for a stream.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            BodyKind::Bytes(chunk) => Some(chunk.as_bytes()),
            BodyKind::Stream(_) => None,
        }
    }

    /// The body as the connection writes it.
    pub(crate) fn into_source(self) -> Source {
        match self.0 {
            BodyKind::Bytes(chunk) => Source::Bytes(chunk),
            BodyKind::Stream(receiver) => Source::Stream(receiver),
        }
    }

    fn as_static(&self) -> Option<&'static [u8]> {
        match self.0 {
            BodyKind::Bytes(Chunk(ChunkKind::Static(bytes))) => Some(bytes),
            _ => None,
        }
    }
}

/// Where a body's bytes come from, for the connection that writes them.
pub(crate) enum Source {
    Bytes(Chunk),
    Stream(Receiver),
}

impl<T: Into<Chunk>> From<T> for Body {
    fn from(bytes: T) -> Body {
        Body(BodyKind::Bytes(bytes.into()))
    }
}

/// Why a header cannot be set. Each variant names the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidHeader {
    /// The name is not a token (RFC 9110 §5.1, §5.6.2): empty, or with a space, a colon, a
    /// control character or another delimiter. It would not parse as a header line, or would
    /// parse as a different one.
    Name(Cow<'static, str>),
    /// The name is one the server writes itself, each for a reason:
    ///
    /// - `Content-Length`: the server computes it from the body (and leaves it out where HTTP
    ///   says so); a second, different length is the shape request smuggling rides on, which
    ///   RFC 9112 §6.3 tells a recipient to treat as an unrecoverable error.
    /// - `Transfer-Encoding`: the server frames every body, by its length or in chunks. A
    ///   second framing from the handler would contradict it (RFC 9112 §6.3), and the
    ///   connection's framing would be lost.
    /// - `Connection`: persistence is decided when the response is written (after SIGTERM every
    ///   response closes its connection); a handler's `keep-alive` would contradict the
    ///   server's `close`, and a client that believed it would send its next request into a
    ///   closed socket.
    /// - `Date`: the server writes one on every response (RFC 9110 §6.6.1) from its once-a-second
    ///   cache; a second `Date` makes the field invalid.
    Reserved(Cow<'static, str>),
    /// The value of this header has a control character other than tab: CR, LF, NUL, or one of
    /// the others RFC 9110 §5.5 leaves out of a field value.
    Value(Cow<'static, str>),
    /// The field may appear only once (RFC 9110 §5.3: it is not a list, nor `Set-Cookie`), and
    /// is there already: a recipient would have to guess which line is meant. Replace it with
    /// [`with_header`](Response::with_header) instead.
    Repeated(Cow<'static, str>),
}

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidHeader::Name(name) => write!(f, "header name {name:?} is not a token"),
            InvalidHeader::Reserved(name) => {
                write!(
                    f,
                    "header {name} is the server's to write, not the handler's"
                )
            }
            InvalidHeader::Value(name) => {
                write!(
                    f,
                    "the value of header {name} has a control character (CR, LF, NUL…)"
                )
            }
            InvalidHeader::Repeated(name) => {
                write!(f, "header {name} may appear only once: replace it instead")
            }
        }
    }
}

impl std::error::Error for InvalidHeader {}

/// The headers the server writes itself; [`InvalidHeader::Reserved`] says why each.
const RESERVED: &[&str] = &["Content-Length", "Transfer-Encoding", "Connection", "Date"];

/// Common fields defined as a single value (RFC 9110, RFC 9111), which
/// [`Response::append_header`] will not add twice. Not every such field there is: the ones a
/// handler is likely to set.
const SINGLETONS: &[&str] = &[
    "Content-Type",
    "Content-Location",
    "Content-Range",
    "Location",
    "ETag",
    "Last-Modified",
    "Retry-After",
    "Age",
    "Expires",
    "Server",
];

/// The header rules of [`Response`], in the order a reader would check them.
/// Gives the name back when the header may be sent.
fn check_header(name: Cow<'static, str>, value: &str) -> Result<Cow<'static, str>, InvalidHeader> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(InvalidHeader::Name(name));
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&name)) {
        return Err(InvalidHeader::Reserved(name));
    }
    if !value.bytes().all(is_field_byte) {
        return Err(InvalidHeader::Value(name));
    }
    Ok(name)
}

/// RFC 9110 §5.6.2 `tchar`: the characters of a token, which a field name is.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.5: a field value is visible characters, space, tab and (as `obs-text`) bytes
/// above 0x7F, here the UTF-8 of a `str`. Every other control character is out.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

/// `status`, if it has the three digits of a status code (RFC 9110 §15).
fn three_digits(status: u16) -> u16 {
    assert!(
        (100..=999).contains(&status),
        "Response: status {status} is not a three-digit code"
    );
    status
}

/// Whether a response with this status may carry content (RFC 9110 §6.4.1, §15.3.6): every one
/// but the interim 1xx, 204 No Content, 205 Reset Content and 304 Not Modified.
fn has_content(status: u16) -> bool {
    !matches!(status, 100..=199 | 204 | 205 | 304)
}

/// Whether a response with this status announces its `Content-Length` (RFC 9110 §8.6): every
/// one but 1xx, 204 and 304. A 205 has no content but still says `0`: without a length its client
/// would read until the connection closes (RFC 9112 §6.3).
fn has_length(status: u16) -> bool {
    !matches!(status, 100..=199 | 204 | 304)
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

/// Appends `response` to `out`, its body included when it is held in memory (a stream's head
/// only, chunked). For a HEAD request (`head_only`) the body is left out but its
/// `Content-Length` is still announced (RFC 9110 §9.3.2); a 1xx, 204 or 304 has neither (its
/// body is already empty, see [`Response`]). `date` is the cached `Date` value.
pub fn encode(
    out: &mut Vec<u8>,
    response: &Response,
    head_only: bool,
    persistence: Persistence,
    date: &[u8],
) {
    let version = match persistence {
        Persistence::KeepAlive(version) => version,
        Persistence::Close => Version::Http11,
    };
    encode_head(out, response, response.framing(version), persistence, date);
    if !head_only {
        out.extend_from_slice(response.body.as_bytes().unwrap_or_default());
    }
}

/// Appends the head of `response`: status line, `Date`, the header `framing` calls for, the
/// handler's headers, `Connection`, and the empty line. The body is the caller's to write.
pub fn encode_head(
    out: &mut Vec<u8>,
    response: &Response,
    framing: Framing,
    persistence: Persistence,
    date: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(response.status));
    out.push(b' ');
    out.extend_from_slice(reason(response.status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    match framing {
        Framing::Length(len) => {
            out.extend_from_slice(b"\r\nContent-Length: ");
            push_decimal(out, len);
        }
        Framing::Chunked => out.extend_from_slice(b"\r\nTransfer-Encoding: chunked"),
        Framing::None | Framing::UntilClose => {}
    }
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

/// The reason phrase for a status code: those of RFC 9110 §15, with 103 (RFC 8297) and 429
/// (RFC 6585). Clients ignore the phrase (RFC 9112 §4), so any other code gets a placeholder.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
