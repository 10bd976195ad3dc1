//! Answers of any size, through the real example program `examples/slow_work.rs` over real
//! sockets: bodies written from where they live (a streamed download, one shared blob), framed
//! as the client can read them (a length, chunks, or the end of the connection), failing
//! visibly, holding back their producer for a slow reader, and never stalling other clients.
//!
//! Every byte is checked: byte `i` of each of the example's large answers is `i % 251`.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

use support::{
    Lameduck, PROMPT, TempDir, field, get, read_chunked, read_response, request, start_example,
};

fn start(dir: &TempDir, args: &[&str]) -> Lameduck {
    start_example("slow_work", dir, args)
}

/// The example's pattern: `len` bytes from offset 0.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn head_request(path: &str, version: &str) -> Vec<u8> {
    format!("GET {path} HTTP/{version}\r\nHost: t\r\n\r\n").into_bytes()
}

/// A sized download, a chunked one and the shared blob (whole, and a prefix lent by the
/// example's own type) arrive byte for byte with their framing; the connection stays usable
/// after each.
#[test]
fn large_answers_arrive_byte_for_byte_with_their_framing() {
    let dir = TempDir::new();
    let server = start(&dir, &[]);
    let mut client = BufReader::new(server.connect());
    let cases: &[(&str, usize, Option<&str>)] = &[
        ("/download?bytes=3000000", 3_000_000, Some("3000000")),
        ("/download?bytes=3000000&chunked=1", 3_000_000, None),
        ("/download?bytes=1&chunked=1", 1, None),
        ("/download?bytes=0", 0, Some("0")),
        ("/blob", 8 << 20, Some("8388608")),
        ("/blob?bytes=100000", 100_000, Some("100000")),
    ];
    for &(path, len, length) in cases {
        client.get_mut().write_all(&get(path)).expect("write");
        let response = read_response(&mut client, false).expect(path);
        assert_eq!(response.status, 200, "{path}: {}", response.head);
        assert_eq!(response.header("Content-Length"), length, "{path}");
        let chunked = response.header("Transfer-Encoding") == Some("chunked");
        assert_eq!(chunked, length.is_none(), "{path}: {}", response.head);
        assert_eq!(
            response.header("Content-Type"),
            Some("application/octet-stream")
        );
        assert!(response.body == pattern(len), "{path}: body differs");
        assert!(!response.closes(), "{path}");
    }
    // And the ordinary answers still come on the same connection.
    still_serves(&mut client);
}

/// An HTTP/1.0 client knows no chunked coding: a body of unknown length is delimited by the end
/// of the connection (no length, no `Transfer-Encoding`, `Connection: close`).
#[test]
fn a_stream_of_unknown_length_to_http_1_0_ends_with_the_connection() {
    let dir = TempDir::new();
    let server = start(&dir, &[]);
    let raw = head_request("/download?bytes=500000&chunked=1", "1.0");
    let response = request(server.addr, &raw);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Transfer-Encoding"), None);
    assert_eq!(response.header("Content-Length"), None);
    assert!(response.closes(), "{}", response.head);
    assert!(response.body == pattern(500_000));
}

/// HEAD gets the head only (the length a GET would get), its producer is told nobody listens,
/// and the connection goes on with the next request.
#[test]
fn head_of_a_download_is_the_head_only_and_its_producer_stops() {
    let dir = TempDir::new();
    let mut server = start(&dir, &[]);
    let mut client = BufReader::new(server.connect());
    let head = b"HEAD /download?bytes=100000000 HTTP/1.1\r\nHost: t\r\n\r\n";
    client.get_mut().write_all(head).expect("write HEAD");
    let response = read_response(&mut client, true).expect("HEAD answer");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Length"), Some("100000000"));
    let (gone, sent) = producer_gone(&mut server);
    assert!(sent < 1 << 20, "a HEAD's producer ran on: {gone}");
    still_serves(&mut client);
}

/// A producer that gives up mid-body ends the response visibly, whatever the framing: a sized
/// body never reaches its length, a chunked one never gets its last chunk (then the connection
/// closes), and a close-delimited one ends with a reset, not the FIN that would mark its end.
#[test]
fn a_producer_that_fails_mid_body_never_looks_complete() {
    let dir = TempDir::new();
    let server = start(&dir, &[]);
    let fail = "fail_at=200000";

    let mut sized = BufReader::new(server.connect());
    let path = format!("/download?bytes=1000000&{fail}");
    sized.get_mut().write_all(&get(&path)).expect("write");
    let error = read_response(&mut sized, false).expect_err("a sized body cut short");
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");

    let mut chunked = BufReader::new(server.connect());
    let path = format!("/download?bytes=1000000&chunked=1&{fail}");
    chunked.get_mut().write_all(&get(&path)).expect("write");
    let mut head = String::new();
    while head != "\r\n" {
        head.clear();
        chunked.read_line(&mut head).expect("head line");
    }
    let error = read_chunked(&mut chunked).expect_err("no last chunk");
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");

    let mut http10 = server.connect();
    let path = format!("/download?bytes=1000000&chunked=1&{fail}");
    http10
        .write_all(&head_request(&path, "1.0"))
        .expect("write");
    let mut received = Vec::new();
    let error = http10
        .read_to_end(&mut received)
        .expect_err("a reset, not EOF");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
}

/// A client that stops reading holds back its producer: the server holds the piece being
/// written and a few KiB queued, the rest waits in the producer, not in memory. When the client
/// goes, the producer's next send fails and it stops, having produced about what the kernel's
/// socket buffers took, not the gigabyte it was asked for.
#[test]
fn a_reader_that_stops_holds_back_its_producer_until_it_goes() {
    let dir = TempDir::new();
    let mut server = start(&dir, &[]);
    let mut client = download(&server, 1 << 30);
    let mut first = vec![0u8; 1 << 20];
    client.read_exact(&mut first).expect("the first MiB");
    // Stop reading for a second (a window, as a slow client pauses): time enough for a producer
    // that nothing held back to run hundreds of MiB ahead.
    thread::sleep(Duration::from_secs(1));
    drop(client);
    let (gone, sent) = producer_gone(&mut server);
    // What was read, the kernel's buffers on both sides (tcp_wmem's largest default is 4 MiB),
    // and two pieces: far below the 1 GiB asked for, and below what a second of producing makes.
    assert!(
        sent < 16 << 20,
        "the producer ran ahead of its reader: {gone}"
    );
}

/// No client stalls the others (the case (a)): while twenty clients read a large answer
/// at about 200 KB/s, `GET /` and `/health` on new connections are answered.
#[test]
fn slow_readers_of_large_answers_stall_no_one() {
    let dir = TempDir::new();
    let server = start(&dir, &[]);
    let readers: Vec<_> = (0..20)
        .map(|i| {
            let mut stream = server.connect();
            let path = if i % 2 == 0 {
                "/blob".to_string()
            } else {
                "/download?bytes=8388608".to_string()
            };
            stream.write_all(&get(&path)).expect("write");
            thread::spawn(move || read_slowly(stream, 2 << 20))
        })
        .collect();
    for _ in 0..10 {
        for path in ["/", "/health"] {
            let response = request(server.addr, &get(path));
            assert_eq!(response.status, 200, "{path} while slow readers read");
        }
    }
    for reader in readers {
        reader.join().expect("slow reader");
    }
}

/// A download in flight at SIGTERM finishes during DRAIN, counts as in flight (`writing=1`),
/// and the exit is clean; one whose client never reads is abandoned at FORCE and counted.
#[test]
fn the_drain_waits_for_answers_being_written_and_counts_the_abandoned() {
    let dir = TempDir::new();
    let mut server = start(&dir, &["--shutdown-delay", "0"]);
    let mut downloading = download(&server, 20_000_000);
    let mut some = [0u8; 4096];
    downloading
        .read_exact(&mut some)
        .expect("the download starts");
    server.signal(libc::SIGTERM);
    let drain = server.wait_for("event=drain");
    assert_eq!(field(&drain, "writing"), Some("1"), "{drain}");
    let mut rest = Vec::new();
    downloading
        .read_to_end(&mut rest)
        .expect("the rest of the download");
    assert_eq!(some.len() + rest.len() - head_len(&some), 20_000_000);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));

    let mut server = start(&dir, &["--shutdown-delay", "0", "--drain-timeout", "1s"]);
    // (Held, not read, until the end: its response is still being written.)
    let _stuck = download(&server, 100_000_000);
    assert_eq!(request(server.addr, &get("/health")).status, 200);
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(1));
    let exit = server.wait_for("event=exit");
    assert_eq!(field(&exit, "outcome"), Some("forced"), "{exit}");
    assert_eq!(field(&exit, "abandoned"), Some("1"), "{exit}");
}

/// A second signal ends the process at once (exit 1) and counts every answer not given, as FORCE
/// does: a reply a handler still owes (`/sleep`) and a response still being written to a client
/// that does not read (`/download`).
/// Before the fix: the exit line said `abandoned=0`.
#[test]
fn a_second_signal_counts_every_answer_not_given() {
    let dir = TempDir::new();
    let mut server = start(&dir, &["--shutdown-delay", "20s", "--grace-period", "60s"]);
    let mut owed = server.connect();
    owed.write_all(&get("/sleep?ms=30000")).expect("write");
    // (Held, not read, until the end: its response is still being written.)
    let _stuck = download(&server, 100_000_000);
    // Answered only after the events before it: both requests have been read.
    assert_eq!(request(server.addr, &get("/health")).status, 200);
    server.signal(libc::SIGTERM);
    let announce = server.wait_for("event=announce");
    assert_eq!(
        (field(&announce, "pending"), field(&announce, "writing")),
        (Some("1"), Some("1")),
        "{announce}"
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(1));
    let exit = server.wait_for("event=exit");
    assert_eq!(field(&exit, "outcome"), Some("interrupted"), "{exit}");
    assert_eq!(field(&exit, "abandoned"), Some("2"), "{exit}");
    let received = support::receive_until_close(&mut owed, PROMPT);
    assert!(received.bytes.is_empty(), "{received}");
}

/// Waits for the example's line saying a download's producer found its client gone; returns
/// it, and how many bytes the producer had sent by then.
fn producer_gone(server: &mut Lameduck) -> (String, u64) {
    let gone = server.wait_for("event=download_gone");
    let sent = field(&gone, "sent").and_then(|v| v.parse().ok());
    let sent = sent.unwrap_or_else(|| panic!("no sent= in {gone}"));
    (gone, sent)
}

/// `GET /` on `client` is answered: the connection is still in step after what came before.
fn still_serves(client: &mut BufReader<TcpStream>) {
    client.get_mut().write_all(&get("/")).expect("write");
    let hello = read_response(client, false).expect("GET / on the same connection");
    assert_eq!(hello.body, b"Hello, World!");
}

/// Asks for a download of `bytes` on a new connection with a small receive buffer (so that the
/// kernel holds little of what the client does not read), and reads nothing yet.
fn download(server: &Lameduck, bytes: u64) -> TcpStream {
    let mut stream = server.connect();
    set_receive_buffer(&stream, 64 * 1024);
    let path = format!("/download?bytes={bytes}");
    stream
        .write_all(&get(&path))
        .expect("write the download request");
    stream
}

/// The length of the response head at the start of `bytes`.
fn head_len(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head in the first read")
        + 4
}

/// Reads `limit` bytes at about 200 KB/s (16 KiB every 80 ms: pacing a slow client), then
/// closes.
fn read_slowly(mut stream: TcpStream, limit: usize) {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    while total < limit {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
        thread::sleep(Duration::from_millis(80));
    }
}

/// A small receive buffer, so that the kernel holds little of what the client does not read.
fn set_receive_buffer(stream: &TcpStream, bytes: libc::c_int) {
    // SAFETY: the pointer and length describe a live c_int for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF");
}
