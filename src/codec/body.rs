//! Request-body framing: consumes a `Content-Length` or chunked body from the byte stream so that
//! it can never be read as the next request. The bytes themselves are discarded.
//!
//! The chunked decoder is a byte-at-a-time state machine over RFC 9112 §7.1, so it accepts input
//! split at any boundary and needs no buffer of its own. Extensions and trailers are checked
//! against their grammar and then discarded: a line that is not what the grammar says means the
//! client and we may disagree on where the body ends, so it is a 400 and the connection closes.

use super::error::ProtocolError;
use super::request::BodyFraming;

/// Longest chunk-size line (size plus extensions) or trailer line we accept. Extensions are
/// legal but nobody needs kilobytes of them; unbounded they are a memory and CPU sink.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// The most bytes a trailer section may have, all its lines together. Each line is also bounded
/// by [`MAX_CHUNK_LINE_BYTES`]; without a bound on the section, a client could send trailer lines
/// for ever, holding its connection (and a drain) with bytes that are all discarded.
pub const MAX_TRAILER_BYTES: usize = 8 * 1024;

/// The most fields a trailer section may have (real ones carry a checksum or a status or two).
pub const MAX_TRAILER_FIELDS: usize = 32;

/// Most hex digits in a chunk size: 15 digits keep the value below 2^60, far above any body
/// limit, so the arithmetic can never overflow.
const MAX_CHUNK_SIZE_DIGITS: usize = 15;

/// Where a body decoder is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
    /// Body bytes seen so far (data only, not framing), checked against `limit`.
    seen: u64,
    limit: u64,
    /// Bytes and fields of the trailer section so far, against [`MAX_TRAILER_BYTES`] and
    /// [`MAX_TRAILER_FIELDS`].
    trailer_bytes: usize,
    trailer_fields: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// `Content-Length` body: this many bytes still to come.
    Fixed {
        remaining: u64,
    },
    /// Reading the hex digits of a chunk size.
    Size {
        value: u64,
        digits: usize,
    },
    /// After the chunk size: chunk extensions (where in their grammar: `at`), checked and
    /// discarded up to the CR. `len` counts their bytes against [`MAX_CHUNK_LINE_BYTES`].
    Extension {
        at: Ext,
        len: usize,
        size: u64,
    },
    /// Saw the CR ending a size line; LF must follow.
    SizeLf {
        size: u64,
    },
    /// Inside chunk data.
    Data {
        remaining: u64,
    },
    /// After chunk data: CR must follow.
    DataCr,
    /// After chunk data and CR: LF must follow.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside the name of a trailer field (RFC 9110 §5.1: a token, then `:` at once).
    TrailerName {
        len: usize,
    },
    /// Inside the value of a trailer field.
    Trailer {
        len: usize,
    },
    /// CR ending a trailer line; LF must follow.
    TrailerLf,
    /// CR of the final empty line; LF must follow, then the body is complete.
    FinalLf,
    Done,
}

/// Where the decoder is in the chunk extensions of RFC 9112 §7.1.1:
///
/// ```text
/// chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// chunk-ext-name = token
/// chunk-ext-val  = token / quoted-string
/// ```
///
/// BWS ("bad" whitespace: spaces and tabs) is accepted where the grammar puts it, because RFC 9110
/// §5.6.3 says recipients "MUST parse for such bad whitespace and remove it": so `1 ;a` is a chunk
/// of size 1, while `1 ` (whitespace that no `;` follows) and `1;a=b ` (whitespace at the end of
/// the line) are not in the grammar and are refused, as are `5;` (no name) and `5;bad[=x`. Each
/// state names what has just been read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// The chunk size. Only `;` or BWS lead into extensions; a CR right after the size is
    /// [`State::Size`]'s to take.
    Start,
    /// BWS before a `;`.
    SpaceBeforeSemicolon,
    /// `;` and maybe BWS: a name must come.
    Semicolon,
    /// Part of a name.
    Name,
    /// BWS after a name: `=` or `;` must come.
    SpaceAfterName,
    /// `=` and maybe BWS: a value must come.
    Equals,
    /// Part of a token value.
    Token,
    /// Inside a quoted-string value.
    Quoted,
    /// A backslash inside a quoted-string: the next byte is taken as it is (a quoted-pair).
    Escape,
    /// The closing quote of a quoted-string.
    Closed,
}

impl Ext {
    /// Whether the line may end (CR) here: only after a whole extension.
    fn may_end(self) -> bool {
        matches!(self, Ext::Name | Ext::Token | Ext::Closed)
    }

    /// The state after byte `b` (never the CR that ends the line, see [`Ext::may_end`]).
    fn next(self, b: u8) -> Result<Ext, ProtocolError> {
        use Ext::*;
        let next = match (self, b) {
            (Quoted, b'"') => Closed,
            (Quoted, b'\\') => Escape,
            (Quoted, _) if is_qdtext(b) => Quoted,
            // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            (Escape, b'\t' | b' '..=b'~' | 0x80..=0xff) => Quoted,
            (Quoted | Escape, _) => {
                return Err(ProtocolError::Malformed("bad quoted chunk extension value"));
            }
            // After the size or a whole extension (BWS included), `;` starts the next one.
            (Start | SpaceBeforeSemicolon | Name | SpaceAfterName | Token | Closed, b';') => {
                Semicolon
            }
            (Start | SpaceBeforeSemicolon | Token | Closed, b' ' | b'\t') => SpaceBeforeSemicolon,
            (Semicolon, b' ' | b'\t') => Semicolon,
            (Semicolon | Name, _) if is_tchar(b) => Name,
            (Name | SpaceAfterName, b' ' | b'\t') => SpaceAfterName,
            (Name | SpaceAfterName, b'=') => Equals,
            (Equals, b' ' | b'\t') => Equals,
            (Equals, b'"') => Quoted,
            (Equals | Token, _) if is_tchar(b) => Token,
            _ => return Err(ProtocolError::Malformed("bad chunk extension")),
        };
        Ok(next)
    }
}

/// `qdtext` of RFC 9110 §5.6.4: any byte of a quoted-string but `"`, `\` and controls.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | b'!' | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// What one call to [`BodyDecoder::decode`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belonged to the body (framing included).
    pub consumed: usize,
    /// The body is complete; bytes after `consumed` belong to the next request.
    pub done: bool,
}

impl BodyDecoder {
    /// A decoder for the framing of one request, or `None` when the request has no body.
    /// Refuses at once a declared length over `limit`, before any of it is read.
    pub fn new(framing: BodyFraming, limit: u64) -> Result<Option<Self>, ProtocolError> {
        let state = match framing {
            BodyFraming::None => return Ok(None),
            BodyFraming::Length(n) if n > limit => return Err(ProtocolError::BodyTooLarge),
            BodyFraming::Length(n) => State::Fixed { remaining: n },
            BodyFraming::Chunked => State::Size {
                value: 0,
                digits: 0,
            },
        };
        Ok(Some(BodyDecoder {
            state,
            seen: 0,
            limit,
            trailer_bytes: 0,
            trailer_fields: 0,
        }))
    }

    /// Consumes body bytes from the start of `input`.
    pub fn decode(&mut self, input: &[u8]) -> Result<Progress, ProtocolError> {
        self.decode_into(input, None)
    }

    /// Like [`BodyDecoder::decode`], and appends the body's data (de-chunked: no sizes, no
    /// extensions, no trailers) to `data`.
    pub fn decode_into(
        &mut self,
        input: &[u8],
        mut data: Option<&mut Vec<u8>>,
    ) -> Result<Progress, ProtocolError> {
        let mut at = 0;
        while at < input.len() {
            match self.state {
                State::Done => break,
                // Data runs are skipped in one step rather than byte by byte.
                State::Fixed { remaining } | State::Data { remaining } => {
                    let take = remaining.min((input.len() - at) as u64);
                    if let Some(data) = data.as_deref_mut() {
                        data.extend_from_slice(&input[at..at + take as usize]);
                    }
                    at += take as usize;
                    let left = remaining - take;
                    self.state = match self.state {
                        State::Fixed { .. } if left == 0 => State::Done,
                        State::Fixed { .. } => State::Fixed { remaining: left },
                        _ if left == 0 => State::DataCr,
                        _ => State::Data { remaining: left },
                    };
                }
                _ => {
                    self.step(input[at])?;
                    at += 1;
                }
            }
        }
        Ok(Progress {
            consumed: at,
            done: self.state == State::Done,
        })
    }

    /// Whether the decoder is in the trailer section (after the last chunk): no more body data
    /// will come, so these bytes are no progress worth a renewed timeout.
    pub fn in_trailers(&self) -> bool {
        matches!(
            self.state,
            State::TrailerStart
                | State::TrailerName { .. }
                | State::Trailer { .. }
                | State::TrailerLf
                | State::FinalLf
        )
    }

    /// Advances the chunked framing by one byte.
    fn step(&mut self, b: u8) -> Result<(), ProtocolError> {
        use ProtocolError::Malformed;
        if self.in_trailers() {
            // RFC 9110 §6.5: trailers are bounded like a head is; 431 as for one.
            self.trailer_bytes += 1;
            if self.trailer_bytes > MAX_TRAILER_BYTES {
                return Err(ProtocolError::HeadersTooLarge);
            }
        }
        self.state = match self.state {
            State::Size { value, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits == MAX_CHUNK_SIZE_DIGITS {
                        return Err(Malformed("chunk size too long"));
                    }
                    let digit = (b as char).to_digit(16).unwrap_or(0);
                    State::Size {
                        value: value * 16 + u64::from(digit),
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err(Malformed("chunk size missing")),
                b';' | b' ' | b'\t' => State::Extension {
                    at: Ext::Start.next(b)?,
                    len: 1,
                    size: self.chunk(value)?,
                },
                b'\r' => State::SizeLf {
                    size: self.chunk(value)?,
                },
                // Signs, `0x` prefixes and bare LFs all end up here; a space before the size too.
                _ => return Err(Malformed("bad chunk size")),
            },
            State::Extension { at, len, size } => match b {
                b'\r' if at.may_end() => State::SizeLf { size },
                _ if len + 1 >= MAX_CHUNK_LINE_BYTES => {
                    return Err(Malformed("chunk extension too long"));
                }
                _ => State::Extension {
                    at: at.next(b)?,
                    len: len + 1,
                    size,
                },
            },
            State::SizeLf { size } => match b {
                b'\n' if size == 0 => State::TrailerStart,
                b'\n' => State::Data { remaining: size },
                _ => return Err(Malformed("bare CR in chunk size line")),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(Malformed("chunk data longer than its size")),
            },
            State::DataLf => match b {
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Err(Malformed("bare CR after chunk data")),
            },
            State::TrailerStart => match b {
                b'\r' => State::FinalLf,
                // A line starting with whitespace is obs-fold (RFC 9112 §5.2): refused.
                b' ' | b'\t' => return Err(Malformed("obs-fold in trailer")),
                // Trailers are discarded, but only field lines are trailers: a line that is not
                // one (`GET / HTTP/1.1`) means client and server disagree on where the body
                // ends, which is the start of a smuggled request.
                _ if is_tchar(b) => {
                    self.trailer_fields += 1;
                    if self.trailer_fields > MAX_TRAILER_FIELDS {
                        return Err(ProtocolError::HeadersTooLarge);
                    }
                    State::TrailerName { len: 1 }
                }
                _ => return Err(Malformed("bad trailer field name")),
            },
            State::TrailerName { len } => match b {
                b':' => State::Trailer { len: len + 1 },
                _ if len + 1 >= MAX_CHUNK_LINE_BYTES => {
                    return Err(Malformed("trailer line too long"));
                }
                _ if is_tchar(b) => State::TrailerName { len: len + 1 },
                // Whitespace before the colon included (RFC 9112 §5.1).
                _ => return Err(Malformed("bad trailer field name")),
            },
            State::Trailer { len } => match b {
                b'\r' => State::TrailerLf,
                _ => self.trailer_byte(b, len)?,
            },
            State::TrailerLf => match b {
                b'\n' => State::TrailerStart,
                _ => return Err(Malformed("bare CR in trailer")),
            },
            State::FinalLf => match b {
                b'\n' => State::Done,
                _ => return Err(Malformed("bare CR after last chunk")),
            },
            State::Fixed { .. } | State::Data { .. } | State::Done => self.state.clone(),
        };
        Ok(())
    }

    /// Accounts a chunk of `size` bytes against the body limit.
    fn chunk(&mut self, size: u64) -> Result<u64, ProtocolError> {
        self.seen = self.seen.saturating_add(size);
        if self.seen > self.limit {
            return Err(ProtocolError::BodyTooLarge);
        }
        Ok(size)
    }

    fn trailer_byte(&self, b: u8, len: usize) -> Result<State, ProtocolError> {
        if len + 1 >= MAX_CHUNK_LINE_BYTES {
            return Err(ProtocolError::Malformed("trailer line too long"));
        }
        match b {
            b'\t' | b' '..=b'~' | 0x80..=0xff => Ok(State::Trailer { len: len + 1 }),
            _ => Err(ProtocolError::Malformed("bad byte in trailer")),
        }
    }
}

/// `tchar` of RFC 9110 §5.6.2: the bytes of a token, such as a field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the bytes the body took, or the
    /// error, once the body is done or the input is used up.
    fn decode_in_steps(
        framing: BodyFraming,
        limit: u64,
        input: &[u8],
        step: usize,
    ) -> Result<(usize, bool), ProtocolError> {
        let Some(mut decoder) = BodyDecoder::new(framing, limit)? else {
            return Ok((0, true));
        };
        let mut at = 0;
        while at < input.len() {
            let end = (at + step).min(input.len());
            let progress = decoder.decode(&input[at..end])?;
            // An unfinished body takes every byte it is given.
            assert!(progress.done || progress.consumed == end - at);
            at += progress.consumed;
            if progress.done {
                return Ok((at, true));
            }
        }
        Ok((at, false))
    }

    /// The outcome must be the same however the input is split.
    fn decode(
        framing: BodyFraming,
        limit: u64,
        input: &[u8],
    ) -> Result<(usize, bool), ProtocolError> {
        let whole = decode_in_steps(framing, limit, input, input.len().max(1));
        for step in [1, 2, 3, 7] {
            assert_eq!(
                decode_in_steps(framing, limit, input, step),
                whole,
                "{:?} in steps of {step}",
                String::from_utf8_lossy(input)
            );
        }
        whole
    }

    fn chunked(input: &[u8]) -> Result<(usize, bool), ProtocolError> {
        decode(BodyFraming::Chunked, 1024, input)
    }

    #[test]
    fn data_comes_out_de_chunked_however_the_input_is_split() {
        let input = b"5;a=b\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nT: x\r\n\r\nGET";
        for step in [1, 2, 3, 7, input.len()] {
            let mut decoder = BodyDecoder::new(BodyFraming::Chunked, 100)
                .unwrap()
                .unwrap();
            let mut data = Vec::new();
            let mut at = 0;
            while at < input.len() {
                let end = (at + step).min(input.len());
                let progress = decoder
                    .decode_into(&input[at..end], Some(&mut data))
                    .unwrap();
                at += progress.consumed;
                if progress.done {
                    break;
                }
            }
            assert_eq!(data, b"hello world!", "in steps of {step}");
            assert_eq!(&input[at..], b"GET", "in steps of {step}");
        }
    }

    #[test]
    fn content_length_body_stops_at_its_length() {
        assert_eq!(
            decode(BodyFraming::Length(5), 10, b"helloGET"),
            Ok((5, true))
        );
        assert_eq!(decode(BodyFraming::Length(5), 10, b"hel"), Ok((3, false)));
        assert_eq!(
            BodyDecoder::new(BodyFraming::Length(11), 10),
            Err(ProtocolError::BodyTooLarge)
        );
        assert_eq!(BodyDecoder::new(BodyFraming::None, 10), Ok(None));
    }

    #[test]
    fn chunked_bodies_stop_at_their_end() {
        for body in [
            &b"0\r\n\r\n"[..],
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5;a=b;c\r\nhello\r\n0;x=\"y\"\r\n\r\n",
            b"A\r\n0123456789\r\n0\r\n\r\n",
            b"0005\r\nhello\r\n000\r\n\r\n",
            b"0\r\nA: 1\r\nB-c:\r\n\r\n",
        ] {
            let mut input = body.to_vec();
            input.extend_from_slice(b"GET / HTTP/1.1\r\n");
            assert_eq!(
                chunked(&input),
                Ok((body.len(), true)),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn bad_chunk_framing_is_400() {
        for body in [
            &b"\r\n"[..],
            b"-1\r\n",
            b"+1\r\n",
            b" 1\r\n",
            b"1 \r\n",
            b"1\t\r\n",
            b"0x1\r\n",
            b"g\r\n",
            b";a\r\n",
            b"1000000000000000\r\n",
            b"1\nx\r\n",
            b"1\rx",
            b"1\r\nx\n",
            b"1\r\nxy\r\n",
            b"1;a\nx",
            b"1;\0\r\n",
            b"0\n\n",
            b"0\r\n\n",
            b"0\r\n\rx",
            b"0\r\n x: 1\r\n\r\n",
            b"0\r\nA: \0\r\n\r\n",
            b"0\r\nA: 1\n\r\n",
            // Regression: trailer lines were accepted without field-line syntax.
            b"0\r\nnot a field\r\n\r\n",
            b"0\r\nA : 1\r\n\r\n",
            b"0\r\n: 1\r\n\r\n",
            b"0\r\nGET / HTTP/1.1\r\n\r\n",
        ] {
            match chunked(body) {
                Err(ProtocolError::Malformed(_)) => {}
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    /// RFC 9112 §7.1.1, with the BWS that RFC 9110 §5.6.3 says a recipient MUST parse.
    #[test]
    fn chunk_extensions_follow_their_grammar() {
        for line in [
            &b"5;a"[..],
            b"5;a=b",
            b"5;a;b=1;c=2",
            b"5;a=\"\"",
            b"5;a=\"x;y=z\"",
            b"5;a=\"q\\\"uo\\\\te\\ \"",
            b"5;a=\"caf\xe9\tx\"",
            b"5;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~09AZaz",
            // BWS around `;` and `=`.
            b"5 ;a",
            b"5\t;a",
            b"5; a",
            b"5;a =b",
            b"5;a= b",
            b"5 \t; \ta \t= \tb \t;c ;d=\"e\" ;f",
        ] {
            let mut body = line.to_vec();
            body.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
            assert_eq!(
                chunked(&body),
                Ok((body.len(), true)),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        for line in [
            // Regression: these were accepted.
            &b"5;"[..],
            b"5;bad[=x",
            b"5;=x",
            b"5;;a",
            b"5;a;",
            b"5;a=",
            b"5;a==b",
            b"5;a=b=c",
            b"5;a b",
            b"5;a=b c",
            b"5;\"a\"",
            b"5;a=\"x\"y",
            b"5;a=\"x",
            b"5;a=\"x\\",
            b"5;a=\"\x01\"",
            b"5;a=\"\\\x7f\"",
            b"5;a=caf\xe9",
            b"5;caf\xe9",
            b"5;a\x0bb",
            // Whitespace the grammar has no place for: not before `;` or `=`.
            b"5 ",
            b"5 a",
            b"5 ;",
            b"5;a ",
            b"5;a=b ",
            b"5;a=\"b\" ",
            b"5; ",
        ] {
            let mut body = line.to_vec();
            body.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
            match chunked(&body) {
                Err(ProtocolError::Malformed(_)) => {}
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
            }
        }
    }

    #[test]
    fn long_lines_are_refused() {
        let extension = format!("1;{}\r\n", "a".repeat(MAX_CHUNK_LINE_BYTES));
        assert!(matches!(
            chunked(extension.as_bytes()),
            Err(ProtocolError::Malformed(_))
        ));
        let trailer = format!("0\r\nA: {}\r\n", "a".repeat(MAX_CHUNK_LINE_BYTES));
        assert!(matches!(
            chunked(trailer.as_bytes()),
            Err(ProtocolError::Malformed(_))
        ));
        let name = format!("0\r\n{}", "a".repeat(MAX_CHUNK_LINE_BYTES));
        assert!(matches!(
            chunked(name.as_bytes()),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn chunked_limit_counts_data_only() {
        let at_limit = format!(
            "200\r\n{0}\r\n200\r\n{0}\r\n0\r\nX: {1}\r\n\r\n",
            "x".repeat(512),
            "t".repeat(100)
        );
        assert_eq!(chunked(at_limit.as_bytes()), Ok((at_limit.len(), true)));
        assert_eq!(chunked(b"401\r\n"), Err(ProtocolError::BodyTooLarge));
        let over = format!("200\r\n{}\r\n201\r\n", "x".repeat(512));
        assert_eq!(chunked(over.as_bytes()), Err(ProtocolError::BodyTooLarge));
        assert_eq!(
            chunked(b"fffffffffffffff;x\r\n"),
            Err(ProtocolError::BodyTooLarge)
        );
    }
}
