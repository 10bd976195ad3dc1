//! Table-driven tests of the codec on plain byte slices: one named case per edge, in the manner
//! of httparse's own tests.

use super::request::{BodyFraming, HeadLimits, Parse, Version, header_slots, parse};
use super::response::{Persistence, Response, encode};
use super::{BodyDecoder, ProtocolError};

const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 8192,
    max_target_bytes: 4096,
};

const GET: &[u8] = b"GET /health?probe=1 HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n";

/// What a parse came to, without the borrowed request.
#[derive(Debug, PartialEq)]
enum Outcome {
    Complete {
        head_len: usize,
        keep_alive: bool,
        body: BodyFraming,
    },
    Partial,
    Error(u16),
}

fn outcome(bytes: &[u8]) -> Outcome {
    let mut slots = header_slots();
    match parse(bytes, &mut slots, &LIMITS) {
        Parse::Complete { request, head_len } => Outcome::Complete {
            head_len,
            keep_alive: request.keep_alive,
            body: request.framing,
        },
        Parse::Partial => Outcome::Partial,
        Parse::Error(e) => Outcome::Error(e.status()),
    }
}

#[test]
fn complete_request_fields() {
    let mut slots = header_slots();
    let Parse::Complete { request, head_len } = parse(GET, &mut slots, &LIMITS) else {
        panic!("expected a complete head");
    };
    assert_eq!(head_len, GET.len());
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/health?probe=1");
    assert_eq!(request.path, "/health");
    assert_eq!(request.version, Version::Http11);
    assert_eq!(request.header("host"), Some(&b"example"[..]));
    assert!(request.keep_alive);
    assert_eq!(request.framing, BodyFraming::None);
}

#[test]
fn partial_at_every_boundary() {
    // Every strict prefix of a valid head is "read more", never an error and never complete.
    for end in 0..GET.len() {
        assert_eq!(
            outcome(&GET[..end]),
            Outcome::Partial,
            "prefix of {end} bytes"
        );
    }
}

#[test]
fn pipelined_pair() {
    let pair = [GET, b"HEAD / HTTP/1.1\r\nHost: b\r\n\r\n"].concat();
    let Outcome::Complete { head_len, .. } = outcome(&pair) else {
        panic!("first head");
    };
    assert_eq!(
        head_len,
        GET.len(),
        "the first head stops where the second starts"
    );
    let mut slots = header_slots();
    let Parse::Complete { request, head_len } = parse(&pair[head_len..], &mut slots, &LIMITS)
    else {
        panic!("second head");
    };
    assert_eq!(
        (request.method, request.path, head_len),
        ("HEAD", "/", pair.len() - GET.len())
    );
}

#[test]
fn keep_alive_rules() {
    let cases: &[(&str, &[u8], bool)] = &[
        (
            "1.1 default persistent",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            true,
        ),
        (
            "1.1 close",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            "1.1 close in a list",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, Close\r\n\r\n",
            false,
        ),
        ("1.0 default close", b"GET / HTTP/1.0\r\n\r\n", false),
        (
            "1.0 keep-alive",
            b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            true,
        ),
        (
            "1.0 keep-alive and close",
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
    ];
    for (name, bytes, expected) in cases {
        match outcome(bytes) {
            Outcome::Complete { keep_alive, .. } => assert_eq!(keep_alive, *expected, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn errors_map_to_precise_statuses() {
    let cases: &[(&str, &[u8], u16)] = &[
        ("missing host on 1.1 (RFC 9112 §3.2)", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("bare LF (RFC 9112 §2.2)", b"GET / HTTP/1.1\nHost: a\n\n", 400),
        ("bare CR", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
        ("space before colon (RFC 9112 §5.1)", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        ("obs-fold (RFC 9112 §5.2)", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400),
        ("TE and CL (RFC 9112 §6.3)", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        ("conflicting CLs", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        ("signed CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400),
        ("unknown coding before chunked (RFC 9112 §6.1)", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        // Chunked not final: the length is unknown, and RFC 9112 §6.3 says 400 (MUST), which
        // wins over §6.1's 501 (SHOULD) for the unknown coding.
        ("unknown coding alone (RFC 9112 §6.3)", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ("TE on 1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("HTTP/2.0 (RFC 9110 §15.6.6)", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("garbage version", b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
        ("asterisk outside OPTIONS", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("Expect other than 100-continue", b"GET / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n", 417),
    ];
    for (name, bytes, status) in cases {
        assert_eq!(outcome(bytes), Outcome::Error(*status), "{name}");
    }
}

#[test]
fn size_limits() {
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(5000));
    assert_eq!(outcome(long_uri.as_bytes()), Outcome::Error(414));
    // A request line that never ends within the head limit is a long URI too.
    let endless = format!("GET /{}", "a".repeat(9000));
    assert_eq!(outcome(endless.as_bytes()), Outcome::Error(414));
    let big_header = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "b".repeat(9000));
    assert_eq!(outcome(big_header.as_bytes()), Outcome::Error(431));
    let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    assert_eq!(outcome(many.as_bytes()), Outcome::Error(431));
}

#[test]
fn body_framing() {
    let cl = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
    assert!(matches!(
        outcome(cl),
        Outcome::Complete {
            body: BodyFraming::Length(5),
            ..
        }
    ));
    let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(matches!(
        outcome(te),
        Outcome::Complete {
            body: BodyFraming::Chunked,
            ..
        }
    ));
    let same = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n";
    assert!(matches!(
        outcome(same),
        Outcome::Complete {
            body: BodyFraming::Length(5),
            ..
        }
    ));
}

#[test]
fn chunked_body_split_at_every_boundary() {
    let body = b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\nGET";
    let framing_len = body.len() - 3;
    for split in 0..=framing_len {
        let mut decoder = BodyDecoder::new(BodyFraming::Chunked, 1024)
            .unwrap()
            .unwrap();
        let first = decoder.decode(&body[..split]).unwrap();
        assert_eq!(first.consumed, split);
        assert!(!first.done || split == framing_len);
        let second = decoder.decode(&body[split..]).unwrap();
        assert!(second.done, "split at {split}");
        assert_eq!(
            first.consumed + second.consumed,
            framing_len,
            "the next request is untouched"
        );
    }
}

#[test]
fn chunked_errors() {
    let cases: &[(&str, &[u8], ProtocolError)] = &[
        (
            "empty size",
            b"\r\n",
            ProtocolError::Malformed("chunk size missing"),
        ),
        (
            "signed size",
            b"+5\r\n",
            ProtocolError::Malformed("chunk size missing"),
        ),
        // BWS after the size may only lead to a `;` (RFC 9112 §7.1.1).
        (
            "space after size",
            b"5 \r\n",
            ProtocolError::Malformed("bad chunk extension"),
        ),
        (
            "bare LF",
            b"5\nhello",
            ProtocolError::Malformed("bad chunk size"),
        ),
        (
            "overflow",
            b"fffffffffffffffff\r\n",
            ProtocolError::Malformed("chunk size too long"),
        ),
        (
            "data longer than size",
            b"2\r\nhello\r\n",
            ProtocolError::Malformed("chunk data longer than its size"),
        ),
        (
            "over the body limit",
            b"401\r\n",
            ProtocolError::BodyTooLarge,
        ),
    ];
    for (name, bytes, expected) in cases {
        let mut decoder = BodyDecoder::new(BodyFraming::Chunked, 1024)
            .unwrap()
            .unwrap();
        assert_eq!(decoder.decode(bytes).map(|_| ()), Err(*expected), "{name}");
    }
    assert_eq!(
        BodyDecoder::new(BodyFraming::Length(1025), 1024),
        Err(ProtocolError::BodyTooLarge),
        "a declared length over the limit is refused before reading"
    );
}

#[test]
fn content_length_body_stops_at_its_length() {
    let mut decoder = BodyDecoder::new(BodyFraming::Length(3), 1024)
        .unwrap()
        .unwrap();
    let p = decoder.decode(b"ab").unwrap();
    assert_eq!((p.consumed, p.done), (2, false));
    let p = decoder.decode(b"cGET /").unwrap();
    assert_eq!((p.consumed, p.done), (1, true));
}

#[test]
fn encode_keep_alive_close_and_head() {
    let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
    let hello = Response::text(200, "Hello, World!");
    let mut out = Vec::new();
    encode(
        &mut out,
        &hello,
        false,
        Persistence::KeepAlive(Version::Http11),
        date,
    );
    assert_eq!(
        out,
        b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 13\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\r\nHello, World!"
    );
    out.clear();
    encode(&mut out, &hello, true, Persistence::Close, date);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.ends_with("Content-Length: 13\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"), "{text}");
    out.clear();
    encode(
        &mut out,
        &hello,
        false,
        Persistence::KeepAlive(Version::Http10),
        date,
    );
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("\r\nConnection: keep-alive\r\n")
    );
}

#[test]
fn encoding_appends_to_a_reused_buffer() {
    let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
    let mut out = Vec::new();
    let response = Response::text(404, "not found\n").with_header("X-A", "1");
    encode(&mut out, &response, false, Persistence::Close, date);
    let one = out.len();
    encode(&mut out, &response, false, Persistence::Close, date);
    assert_eq!(out.len(), 2 * one);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .starts_with("HTTP/1.1 404 Not Found\r\n")
    );
}
