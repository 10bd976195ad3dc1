//! Table-driven tests of the codec on plain byte slices: one named case per edge, in the manner
//! of httparse's own tests.

use super::request::{BodyFraming, HeadLimits, Parse, Version, header_slots, parse};
use super::response::{InvalidHeader, Persistence, Response, encode};
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

const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

/// `response` as the wire sees it, keep-alive on HTTP/1.1.
fn wire(response: &Response, head_only: bool) -> String {
    let mut out = Vec::new();
    let keep = Persistence::KeepAlive(Version::Http11);
    encode(&mut out, response, head_only, keep, DATE);
    String::from_utf8(out).unwrap()
}

/// The values of the header lines named `name` (any case) in an encoded response.
fn values<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .filter_map(|line| line.split_once(": "))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

/// Every header rule of `Response`, one named case each: what `try_header` accepts, and the
/// error that names the problem for what it refuses.
#[test]
fn header_rules() {
    use InvalidHeader::{Name, Reserved, Value};
    // The variant a refused header gets; it names the header.
    type Refusal = fn(&'static str) -> InvalidHeader;
    type Case = (&'static str, &'static str, &'static str, Option<Refusal>);
    let cases: &[Case] = &[
        ("plain", "X-Trace", "abc-123", None),
        ("space_and_tab_inside", "X-A", "a b\tc", None),
        ("empty_value", "X-A", "", None),
        ("utf8_is_obs_text", "X-A", "café", None),
        ("every_tchar", "!#$%&'*+-.^_`|~09AZaz", "v", None),
        ("cr", "X-A", "a\rb", Some(Value)),
        ("lf", "X-A", "a\nb", Some(Value)),
        ("splitting", "X-A", "a\r\nSet-Cookie: s=1", Some(Value)),
        ("nul", "X-A", "a\0b", Some(Value)),
        ("other_control", "X-A", "a\x1bb", Some(Value)),
        ("del", "X-A", "a\x7f", Some(Value)),
        ("empty_name", "", "v", Some(Name)),
        ("space_in_name", "X A", "v", Some(Name)),
        ("colon_in_name", "X-A:", "v", Some(Name)),
        ("crlf_in_name", "X-A\r\nX-B", "v", Some(Name)),
        ("non_ascii_name", "Ä", "v", Some(Name)),
        ("content_length", "Content-Length", "5", Some(Reserved)),
        ("any_case", "content-LENGTH", "5", Some(Reserved)),
        ("chunked", "Transfer-Encoding", "chunked", Some(Reserved)),
        ("connection", "Connection", "keep-alive", Some(Reserved)),
        ("date", "date", "Sun, 06 Nov 1994", Some(Reserved)),
        ("reserved_before_value", "Date", "\r\n", Some(Reserved)),
    ];
    for &(case, name, value, refusal) in cases {
        let got = Response::text(200, "x").try_header(name, value);
        match (got, refusal) {
            (Ok(response), None) => {
                let line = format!("\r\n{name}: {value}\r\n");
                assert!(wire(&response, false).contains(&line), "{case}");
            }
            (Err(e), Some(refusal)) => assert_eq!(e, refusal(name), "{case}"),
            (got, _) => panic!("{case}: {got:?}"),
        }
    }
}

/// `with_header` is for constants: a bad one is a bug in the program, found when the line runs.
#[test]
#[should_panic(expected = "header Connection is the server's to write")]
fn with_header_panics_on_a_reserved_name() {
    let _ = Response::text(200, "x").with_header("Connection", "keep-alive");
}

#[test]
#[should_panic(expected = "the value of header X-A has a control character")]
fn with_header_panics_on_a_control_character() {
    let _ = Response::text(200, "x").with_header("X-A", String::from("a\r\nX-Evil: 1"));
}

/// A header set twice is one line: the last value, at the first one's place, whatever the case
/// of the name. This is how a handler changes `text`'s `Content-Type`.
#[test]
fn setting_a_header_again_replaces_it() {
    let json = Response::text(200, "{}").with_header("content-type", "application/json");
    assert_eq!(
        values(&wire(&json, false), "Content-Type"),
        ["application/json"]
    );
    let twice = Response::empty(200)
        .with_header("X-A", "1")
        .with_header("X-B", "2")
        .with_header("x-a", "3");
    let names_values: Vec<(&str, &str)> = twice
        .headers()
        .iter()
        .map(|(n, v)| (*n, v.as_ref()))
        .collect();
    assert_eq!(names_values, [("x-a", "3"), ("X-B", "2")]);
}

/// A response built from constants stays borrowed: answering with it allocates nothing, and the
/// encoder can keep its bytes for the second.
#[test]
fn a_constant_text_response_borrows_everything() {
    let hello = Response::text(200, "Hello, World!");
    assert!(hello.constant_parts().is_some());
    assert!(Response::empty(204).constant_parts().is_some());
    assert!(
        Response::text(200, String::from("x"))
            .constant_parts()
            .is_none()
    );
}

/// What each status puts on the wire for a body the handler gave, as GET and as HEAD: no content
/// and no length for 1xx, 204 and 304 (RFC 9110 §6.4.1, §8.6); no content but `Content-Length:
/// 0` for 205 (§15.3.6); the length always, and the content unless HEAD, for the others.
#[test]
fn status_decides_content_and_length() {
    // (status, Content-Length a GET and a HEAD announce, whether a GET carries the body)
    let cases: &[(u16, Option<&str>, bool)] = &[
        (100, None, false),
        (101, None, false),
        (103, None, false),
        (199, None, false),
        (200, Some("4"), true),
        (204, None, false),
        (205, Some("0"), false),
        (206, Some("4"), true),
        (304, None, false),
        (404, Some("4"), true),
        (503, Some("4"), true),
    ];
    for &(status, length, content) in cases {
        for response in [
            Response::text(status, "body"),
            Response::text(status, String::from("body")),
        ] {
            for head_only in [false, true] {
                let text = wire(&response, head_only);
                let (head, rest) = text.split_once("\r\n\r\n").unwrap();
                let announced = values(&text, "Content-Length");
                assert_eq!(
                    announced,
                    Vec::from_iter(length),
                    "{status} {head_only}: {text:?}"
                );
                let sent = if content && !head_only { "body" } else { "" };
                assert_eq!(rest, sent, "{status} head_only={head_only}");
                // No content means no Content-Type describing it.
                assert_eq!(
                    values(head, "Content-Type").len(),
                    content as usize,
                    "{status}"
                );
            }
        }
    }
}

/// 304's headers update the client's cached copy (RFC 9111 §4.3.4), so what a handler adds is
/// sent as given, and nothing about a body that is not there.
#[test]
fn not_modified_carries_only_its_validators() {
    let response = Response::text(304, "stale body").with_header("ETag", "\"v2\"");
    assert_eq!(response.body().as_bytes(), Some(&b""[..]));
    assert_eq!(
        wire(&response, false),
        "HTTP/1.1 304 Not Modified\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
         ETag: \"v2\"\r\n\r\n"
    );
}

/// A status line carries three digits (RFC 9110 §15); any other number is refused where the
/// response is built, not discovered by the client.
#[test]
fn a_status_is_three_digits() {
    for status in [100, 999] {
        assert_eq!(Response::empty(status).status(), status);
    }
    for status in [0, 99, 1000, u16::MAX] {
        let text = std::panic::catch_unwind(|| Response::text(status, "x"));
        let empty = std::panic::catch_unwind(|| Response::empty(status));
        assert!(text.is_err() && empty.is_err(), "{status} accepted");
    }
}

/// Reason phrases from RFC 9110 §15 (and RFC 6585 for 429), the no-content statuses among them;
/// a code without one gets a placeholder, which clients ignore (RFC 9112 §4).
#[test]
fn reason_phrases() {
    let cases = [
        (100, "Continue"),
        (200, "OK"),
        (204, "No Content"),
        (205, "Reset Content"),
        (304, "Not Modified"),
        (405, "Method Not Allowed"),
        (413, "Content Too Large"),
        (429, "Too Many Requests"),
        (503, "Service Unavailable"),
        (599, "Unknown"),
    ];
    for (status, phrase) in cases {
        let line = format!("HTTP/1.1 {status} {phrase}\r\n");
        assert!(
            wire(&Response::empty(status), false).starts_with(&line),
            "{status}"
        );
    }
}
