//! The HTTP surface over real sockets against the real binary: routes, keep-alive, pipelining,
//! and requests split into the smallest pieces TCP allows.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;

use support::{Lameduck, get, read_response, request};

#[test]
fn root_says_hello() {
    let server = Lameduck::start(&[]);
    let response = request(server.addr, &get("/"));
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"Hello, World!");
    assert_eq!(response.header("content-length"), Some("13"));
    assert!(
        response
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    let date = response.header("date").expect("Date header");
    assert!(
        date.ends_with(" GMT") && date.len() == 29,
        "IMF-fixdate: {date:?}"
    );
}

#[test]
fn head_has_the_length_but_no_body() {
    let server = Lameduck::start(&[]);
    let mut stream = server.connect();
    // HEAD then GET on one connection: if HEAD leaked a body, the GET's status line would be off.
    stream
        .write_all(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let head = read_response(&mut reader, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    let health = read_response(&mut reader, false).unwrap();
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
}

#[test]
fn health_is_ready_while_serving() {
    let server = Lameduck::start(&[]);
    let response = request(server.addr, &get("/health"));
    assert_eq!(response.status, 200);
    assert!(!response.closes());
    let head = request(server.addr, b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
}

#[test]
fn unknown_path_is_404() {
    let server = Lameduck::start(&[]);
    assert_eq!(request(server.addr, &get("/nope")).status, 404);
    assert_eq!(request(server.addr, &get("/health/x")).status, 404);
    // The query is not part of the path.
    assert_eq!(request(server.addr, &get("/?x=1")).status, 200);
}

#[test]
fn other_methods_are_405_with_allow() {
    let server = Lameduck::start(&[]);
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"[..],
        b"DELETE /health HTTP/1.1\r\nHost: t\r\n\r\n",
        b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    ] {
        let response = request(server.addr, raw);
        assert_eq!(response.status, 405, "{}", String::from_utf8_lossy(raw));
        assert_eq!(response.header("allow"), Some("GET, HEAD"));
    }
}

#[test]
fn keep_alive_reuses_the_connection() {
    let server = Lameduck::start(&[]);
    let stream = server.connect();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..5 {
        writer.write_all(&get("/")).unwrap();
        let response = read_response(&mut reader, false).unwrap();
        assert_eq!(response.status, 200);
        assert!(!response.closes());
    }
    let mut log_server = server;
    drop(writer);
    drop(reader);
    // All five came over one accepted connection.
    log_server.signal(libc::SIGINT);
    let exit = log_server.wait_for("event=exit");
    assert_eq!(support::field(&exit, "accepted"), Some("1"), "{exit}");
    assert_eq!(support::field(&exit, "served"), Some("5"), "{exit}");
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked() {
    let server = Lameduck::start(&[]);
    // Plain 1.0: answered, then the server closes.
    let mut stream = server.connect();
    let text = support::exchange_until_close(&mut stream, b"GET / HTTP/1.0\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    assert!(text.ends_with("Hello, World!"), "{text}");

    // 1.0 with keep-alive: the server says so and keeps the connection.
    let stream = server.connect();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..2 {
        writer
            .write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let response = read_response(&mut reader, false).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn http_1_1_connection_close_is_honoured() {
    let server = Lameduck::start(&[]);
    let mut stream = server.connect();
    let text = support::exchange_until_close(
        &mut stream,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1);
}

#[test]
fn hundred_pipelined_requests_in_one_write() {
    let server = Lameduck::start(&[]);
    let mut batch = Vec::new();
    for i in 0..100 {
        // Alternate paths so an out-of-order answer would show.
        let path = if i % 2 == 0 { "/" } else { "/health" };
        batch.extend_from_slice(&get(path));
    }
    let mut stream = server.connect();
    stream.write_all(&batch).unwrap();
    let mut reader = BufReader::new(stream);
    for i in 0..100 {
        let response = read_response(&mut reader, false).unwrap();
        assert_eq!(response.status, 200, "response {i}");
        let expected: &[u8] = if i % 2 == 0 {
            b"Hello, World!"
        } else {
            b"ok\n"
        };
        assert_eq!(response.body, expected, "response {i} out of order");
    }
}

#[test]
fn request_split_into_single_bytes() {
    let server = Lameduck::start(&[]);
    let mut stream = server.connect();
    stream.set_nodelay(true).unwrap();
    let raw = b"GET /health HTTP/1.1\r\nHost: split\r\nUser-Agent: one-byte-at-a-time\r\n\r\n";
    for byte in raw.iter() {
        stream.write_all(std::slice::from_ref(byte)).unwrap();
    }
    let response = read_response(&mut BufReader::new(stream), false).unwrap();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"ok\n"[..])
    );
}

#[test]
fn pipelined_pair_split_at_every_byte_boundary() {
    let server = Lameduck::start(&[]);
    let pair = [get("/"), get("/health")].concat();
    for split in 1..pair.len() {
        let mut stream = server.connect();
        stream.set_nodelay(true).unwrap();
        stream.write_all(&pair[..split]).unwrap();
        stream.write_all(&pair[split..]).unwrap();
        let mut reader = BufReader::new(stream);
        let first = read_response(&mut reader, false).unwrap();
        let second = read_response(&mut reader, false).unwrap();
        assert_eq!(first.body, b"Hello, World!", "split at {split}");
        assert_eq!(second.body, b"ok\n", "split at {split}");
    }
}

#[test]
fn malformed_request_gets_400_and_a_close_and_others_are_unharmed() {
    let server = Lameduck::start(&[]);
    let bystander = server.connect();
    let mut bystander_writer = bystander.try_clone().unwrap();
    let mut bystander_reader = BufReader::new(bystander);

    let mut bad = server.connect();
    let text = support::exchange_until_close(
        &mut bad,
        b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
    );
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("Connection: close"), "{text}");

    bystander_writer.write_all(&get("/")).unwrap();
    let response = read_response(&mut bystander_reader, false).unwrap();
    assert_eq!(response.status, 200);
}

#[test]
fn content_length_body_is_discarded_not_parsed() {
    let server = Lameduck::start(&[]);
    let mut stream = server.connect();
    // The body looks like a request; if it were parsed as one, a third response would appear
    // and the second would be the wrong one.
    let body = "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n";
    let raw = format!(
        "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}GET / HTTP/1.1\r\nHost: t\r\n\r\n",
        body.len()
    );
    stream.write_all(raw.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    assert_eq!(read_response(&mut reader, false).unwrap().status, 405);
    assert_eq!(
        read_response(&mut reader, false).unwrap().body,
        b"Hello, World!"
    );
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    let server = Lameduck::start(&[]);
    let stream = server.connect();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(
            b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    // The body is only sent after the 100: this read would time out without it.
    let interim = read_response(&mut reader, false).unwrap();
    assert_eq!(interim.status, 100);
    writer.write_all(b"hello").unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 405);
}

#[test]
fn slow_head_gets_408_at_the_header_timeout() {
    let server = Lameduck::start(&["--header-timeout", "1s"]);
    let mut stream = server.connect();
    let started = std::time::Instant::now();
    let text = support::exchange_until_close(&mut stream, b"GET / HTTP/1.1\r\nHost: t\r\n");
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert!(text.contains("Connection: close"), "{text}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "not before the timeout"
    );
}

#[test]
fn idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let server = Lameduck::start(&["--idle-timeout", "1s"]);
    let mut stream = server.connect();
    stream.write_all(&get("/")).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    let idle_since = std::time::Instant::now();
    // Nothing more arrives: the next read sees the server's FIN (an EOF, not a reset).
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("a gentle close");
    assert!(rest.is_empty());
    assert!(
        idle_since.elapsed() >= std::time::Duration::from_secs(1),
        "not before the timeout"
    );
}

#[test]
fn options_asterisk_says_what_the_server_allows() {
    let server = Lameduck::start(&[]);
    let response = request(server.addr, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
    assert_eq!(response.header("content-length"), Some("0"));
}

/// RFC 9112 §3: "It is RECOMMENDED that all HTTP senders and recipients support, at a minimum,
/// request-line lengths of 8000 octets." At the default limits such a line, with the headers a
/// browser sends, is served; a target over `--max-uri-bytes` (8192) is a 414 and a head over
/// `--max-header-bytes` (12288) a 431. Regression: the defaults were 4096 and 8192, so this
/// request line was a 414.
#[test]
fn default_limits_serve_an_8000_octet_request_line() {
    let server = Lameduck::start(&[]);
    let browser_headers = format!(
        "Host: example.com\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
         Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
         Cookie: session={}\r\n",
        "c".repeat(500 - "session=".len())
    );
    // `/?q=aaa…`: the path stays `/`, so a served request is a 200.
    let target = |len: usize| format!("/?q={}", "a".repeat(len - "/?q=".len()));
    let status = |target: &str, extra: &str| {
        let raw = format!("GET {target} HTTP/1.1\r\n{browser_headers}{extra}\r\n");
        request(server.addr, raw.as_bytes()).status
    };

    let line = format!("GET {} HTTP/1.1", target(7987));
    assert_eq!(line.len(), 8000);
    assert_eq!(status(&target(7987), ""), 200);
    assert_eq!(
        status(&target(8192), ""),
        200,
        "a target at --max-uri-bytes"
    );
    assert_eq!(
        status(&target(8193), ""),
        414,
        "a target over --max-uri-bytes"
    );

    // Pad the head with one more field to exactly 12288 bytes, then one more byte.
    let fixed = format!("GET / HTTP/1.1\r\n{browser_headers}X-Pad: \r\n\r\n").len();
    let pad = |head_len: usize| format!("X-Pad: {}\r\n", "p".repeat(head_len - fixed));
    assert_eq!(
        status("/", &pad(12288)),
        200,
        "a head at --max-header-bytes"
    );
    assert_eq!(
        status("/", &pad(12289)),
        431,
        "a head over --max-header-bytes"
    );
}

/// Long enough to see the old behaviour (a 408 at the default 10 s header timeout) as bytes on
/// the wire rather than as a read timeout of the test's own.
const PAST_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// SIGINT, then the connection `stream` must be closed as an idle one is: EOF without a byte
/// (a connection the server took for active would get a 408 at the header timeout), and the
/// server must exit 0.
fn drain_expecting_silent_close(server: &mut Lameduck, mut stream: TcpStream) {
    server.signal(libc::SIGINT);
    let received = support::receive_until_close(&mut stream, PAST_HEADER_TIMEOUT);
    assert!(
        received.eof() && received.bytes.is_empty(),
        "EOF without a byte; got {received}"
    );
    drop(stream);
    assert_eq!(server.wait_exit(support::PROMPT).code(), Some(0));
}

/// A stray CRLF between requests is ignored (RFC 9112 §2.2), so it does not make an idle
/// keep-alive connection busy: at SIGINT the drain closes it as idle, the client reads EOF
/// without a byte, and the server exits 0.
/// Before the fix: the CRLF made the connection Active, the drain waited for a head that never
/// came, and the client got a 408 at the header timeout.
#[test]
fn stray_crlf_between_requests_leaves_the_connection_idle() {
    let mut server = Lameduck::start(&[]);
    let mut stream = server.connect();
    stream.write_all(&get("/")).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    assert!(reader.buffer().is_empty());
    stream.write_all(b"\r\n").unwrap();
    // The server has read the CRLF once it answers a later connection.
    assert_eq!(request(server.addr, &get("/")).status, 200);

    drain_expecting_silent_close(&mut server, stream);
}

/// The same before the first request: a connection that has sent only a CRLF has sent no
/// request, and the drain closes it without a word.
/// Before the fix: a 408 at the header timeout, as above.
#[test]
fn stray_crlf_before_the_first_request_leaves_the_connection_new() {
    let mut server = Lameduck::start(&[]);
    let mut stream = server.connect();
    stream.write_all(b"\r\n").unwrap();
    assert_eq!(request(server.addr, &get("/")).status, 200);

    drain_expecting_silent_close(&mut server, stream);
}

/// Ignoring a stray CRLF must not lose the request that follows it, whether the CRLF comes
/// before the first request or between two, and arrives in a read of its own.
/// A guard for the fix above: this already held before it.
#[test]
fn a_request_after_a_stray_crlf_is_answered() {
    let server = Lameduck::start(&[]);
    let stream = server.connect();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..2 {
        writer.write_all(b"\r\n").unwrap();
        // The server has read the CRLF on its own once it answers a later connection.
        assert_eq!(request(server.addr, &get("/")).status, 200);
        writer.write_all(&get("/")).unwrap();
        let response = read_response(&mut reader, false).unwrap();
        assert_eq!(response.status, 200);
        assert!(!response.closes(), "{}", response.head);
    }
}

/// A handler's `Response` keeps HTTP's rules on the wire (RFC 9110 §6.4.1, §8.6): a 204 and a
/// 304 given a body go out with neither content nor `Content-Length`, a header set twice goes out
/// once, and the pipelined request behind them is still read as a request, not as leftover body.
///
/// No route of the binary answers 204 or 304, so this runs a handler of its own through the real
/// connection state machine, over the in-memory transport of tests/support/memory.rs.
#[test]
fn no_content_statuses_keep_a_pipelined_connection_in_step() {
    use lameduck::codec::{Request, Response};
    use lameduck::conn::{Connection, Scratch, Verdict};
    use std::time::Instant;
    use support::memory::{self, Memory};

    fn handler(request: &Request<'_>) -> Response {
        match request.path {
            "/204" => Response::text(204, "a body the client must not see"),
            "/304" => Response::text(304, "stale").with_header("ETag", "\"v1\""),
            _ => Response::text(200, "next")
                .with_header("Cache-Control", "no-cache")
                .with_header("cache-control", "no-store"),
        }
    }
    let limits = memory::limits();
    let mut scratch = Scratch::new(64 * 1024);
    let mut conn = Connection::new(Memory::new(usize::MAX), Instant::now());
    conn.stream_mut().arrive(
        b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /304 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /304 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let mut handler: fn(&Request<'_>) -> Response = handler;
    let mut replies = memory::Replies::new();
    let mut ctx = memory::context(&limits, Instant::now(), &mut handler, &mut replies);
    assert_eq!(conn.on_ready(&mut scratch, &mut ctx, false), Verdict::Open);

    let date = std::str::from_utf8(memory::DATE).unwrap();
    let not_modified = format!("HTTP/1.1 304 Not Modified\r\nDate: {date}\r\nETag: \"v1\"\r\n\r\n");
    let expected = [
        format!("HTTP/1.1 204 No Content\r\nDate: {date}\r\n\r\n"),
        not_modified.clone(),
        not_modified,
        format!(
            "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 4\r\n\
             Content-Type: text/plain; charset=utf-8\r\ncache-control: no-store\r\n\r\nnext"
        ),
    ]
    .concat();
    assert_eq!(
        String::from_utf8_lossy(&conn.stream_mut().written),
        expected
    );
}
