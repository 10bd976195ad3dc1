//! Answers that come later, over the in-memory transport (tests/support/memory.rs): the exact
//! moments at which a handler takes its reply, sends it, drops it, or its client leaves are the
//! test's to choose, which a real socket and a real thread would leave to chance.

mod support;

use std::time::Instant;

use lameduck::conn::{Connection, Limits, Scratch, Verdict};
use lameduck::handler::Message;
use lameduck::{Call, Handler, Reply, Request, Response};
use support::memory::{self, Memory, Replies};

/// Answers `/` at once; for `/later` takes the reply and keeps it in `held`.
struct Deferring {
    held: Vec<Reply>,
}

impl Handler for Deferring {
    fn call(&mut self, request: &Request<'_>, call: Call<'_>) -> Option<Response> {
        match request.path {
            "/later" => {
                self.held.push(call.reply_later());
                None
            }
            "/forgot" => None,
            _ => Some(Response::text(200, format!("now {}\n", request.path))),
        }
    }
}

struct Session {
    conn: Connection<Memory>,
    scratch: Scratch,
    limits: Limits,
    replies: Replies,
    handler: Deferring,
}

impl Session {
    fn new() -> Session {
        Session {
            conn: Connection::new(Memory::new(usize::MAX), Instant::now()),
            scratch: Scratch::new(64 * 1024),
            limits: memory::limits(),
            replies: Replies::new(),
            handler: Deferring { held: Vec::new() },
        }
    }

    fn event(&mut self, read_closed: bool) -> Verdict {
        let mut ctx = memory::context(
            &self.limits,
            Instant::now(),
            &mut self.handler,
            &mut self.replies,
        );
        self.conn.on_ready(&mut self.scratch, &mut ctx, read_closed)
    }

    /// Delivers every reply sent so far, as the loop does when its waker fires.
    fn deliver(&mut self) -> Option<Verdict> {
        let mut verdict = None;
        for (id, message) in self.replies.inbox.take() {
            let Message::Answer(response) = message else {
                continue;
            };
            let mut ctx = memory::context(
                &self.limits,
                Instant::now(),
                &mut self.handler,
                &mut self.replies,
            );
            verdict = self
                .conn
                .on_reply(id.serial, response, &mut self.scratch, &mut ctx)
                .or(verdict);
        }
        verdict
    }

    fn output(&mut self) -> String {
        String::from_utf8_lossy(&self.conn.stream_mut().written).into_owned()
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// Responses on a connection stay in the order of its requests: a request pipelined behind one
/// whose answer is pending is not even read until that answer has been written.
#[test]
fn a_pipelined_request_waits_behind_a_pending_answer() {
    let mut s = Session::new();
    let mut input = get("/later");
    input.extend(get("/after"));
    s.conn.stream_mut().arrive(&input);
    assert_eq!(s.event(false), Verdict::Open);
    assert_eq!(
        s.output(),
        "",
        "nothing may be answered before the pending request"
    );
    assert_eq!(
        s.conn.stream_mut().unread(),
        get("/after"),
        "the request behind waits in the kernel"
    );

    let reply = s.handler.held.pop().expect("the handler kept the reply");
    std::thread::spawn(move || reply.send(Response::text(200, "later\n")))
        .join()
        .unwrap();
    assert_eq!(s.deliver(), Some(Verdict::Open));
    let out = s.output();
    let later = out.find("later\n").expect("the pending answer");
    let after = out.find("now /after\n").expect("the answer behind it");
    assert!(later < after, "{out}");
}

/// A handle dropped unsent (a bug in the handler, a panic on a worker) answers 500 and closes:
/// the client is never left hanging.
#[test]
fn a_dropped_reply_answers_500_and_closes() {
    let mut s = Session::new();
    s.conn.stream_mut().arrive(&get("/later"));
    s.event(false);
    drop(s.handler.held.pop());
    s.deliver();
    let out = s.output();
    assert!(out.starts_with("HTTP/1.1 500 "), "{out}");
    assert!(out.contains("Connection: close"), "{out}");
}

/// A handler that neither answers nor keeps the reply gets the same 500.
#[test]
fn no_answer_and_no_reply_is_a_500() {
    let mut s = Session::new();
    s.conn.stream_mut().arrive(&get("/forgot"));
    s.event(false);
    let out = s.output();
    assert!(out.starts_with("HTTP/1.1 500 "), "{out}");
}

/// A client that leaves while its answer is pending is noticed: the connection closes, the
/// handle says it is cancelled, and an answer sent anyway is discarded.
#[test]
fn a_client_that_leaves_cancels_its_reply() {
    let mut s = Session::new();
    s.conn.stream_mut().arrive(&get("/later"));
    s.event(false);
    let reply = s.handler.held.pop().expect("reply");
    assert!(!reply.is_cancelled());
    s.conn.stream_mut().eof = true;
    assert_eq!(s.event(true), Verdict::Close);
    drop(s.conn);
    assert!(reply.is_cancelled(), "the handle must tell");
    reply.send(Response::text(200, "too late\n"));
    assert!(
        s.replies.inbox.take().is_empty(),
        "a cancelled answer goes nowhere"
    );
}
