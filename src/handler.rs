//! What the server calls for each request: the [`Handler`] trait, the [`Call`] it is given, and
//! the [`Reply`] handle that answers a request later, from any thread.
//!
//! The event loop is one thread, so a handler must never block it. A handler that can answer at
//! once (a probe, a redirect, anything computed from the request alone) returns the response:
//! that path allocates nothing. A handler that has slow work to do (a database, a file, another
//! service) takes the request's [`Reply`] with [`Call::reply_later`], hands it to another thread
//! (a [`Pool`](crate::Pool), say) and returns `None`; the loop goes on serving everyone else, and
//! the connection waits, its next pipelined requests unread in the kernel, until the reply is
//! sent. Sending it wakes the loop ([`mio::Waker`]).
//!
//! Bounds, so that no mistake in user code hangs a connection and no load grows without limit:
//! a reply dropped unsent answers 500; a reply not sent within `--handler-timeout` is answered
//! 503 and its late answer discarded; and no more than `--max-pending` replies wait at once (the
//! one over it is answered 503 with `Retry-After` at once, and its handle says so).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::codec::{Request, Response};

/// Answers requests. Any `FnMut(&Request) -> Response` is one (the fast path: every request
/// answered at once, on the loop):
///
/// ```no_run
/// use lameduck::{Config, Response, Server};
///
/// let mut server = Server::bind(Config::default())?;
/// server.run(|request: &lameduck::Request<'_>| match request.path {
///     "/hi" => Response::text(200, "hi\n"),
///     _ => Response::text(404, "not found\n"),
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// To answer later, implement the trait and take the reply (or use [`Pool::handler`](crate::Pool::handler)):
///
/// ```no_run
/// use lameduck::{Call, Handler, Request, Response};
///
/// struct Later;
///
/// impl Handler for Later {
///     fn call(&mut self, request: &Request<'_>, call: Call<'_>) -> Option<Response> {
///         let reply = call.reply_later();
///         let bytes = request.body.len();
///         std::thread::spawn(move || reply.send(Response::text(200, format!("bytes={bytes}\n"))));
///         None
///     }
/// }
/// ```
pub trait Handler {
    /// Answers `request` now (`Some`), or returns `None` after taking the reply with
    /// [`Call::reply_later`]. `None` without taking the reply is a bug, answered 500.
    fn call(&mut self, request: &Request<'_>, call: Call<'_>) -> Option<Response>;
}

impl<F> Handler for F
where
    F: FnMut(&Request<'_>) -> Response,
{
    fn call(&mut self, request: &Request<'_>, _call: Call<'_>) -> Option<Response> {
        Some(self(request))
    }
}

/// What a handler may do besides reading its request.
pub struct Call<'a> {
    pub(crate) ready: bool,
    pub(crate) inbox: &'a Arc<Inbox>,
    pub(crate) id: ReplyId,
    /// Whether the pending bound allows one more waiting reply.
    pub(crate) room: bool,
    /// Where the connection finds the reply's shared state once it is taken.
    pub(crate) taken: &'a mut Option<Arc<Shared>>,
}

impl Call<'_> {
    /// Whether the server is serving normally (false from SIGTERM on): the readiness route's
    /// answer.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Takes this request's reply handle, to answer later, from any thread. Over
    /// `--max-pending` the request is answered 503 (`Retry-After`) at once instead, and the
    /// handle is [cancelled](Reply::is_cancelled) from the start.
    pub fn reply_later(self) -> Reply {
        let shared = Arc::new(Shared {
            cancelled: AtomicBool::new(!self.room),
        });
        *self.taken = Some(shared.clone());
        Reply {
            id: self.id,
            inbox: self.inbox.clone(),
            shared,
            sent: false,
        }
    }
}

/// Which waiting request a reply answers: its connection's slab index, and a serial unique in
/// the loop (slab indices are reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyId {
    pub index: usize,
    pub serial: u64,
}

/// What a reply and its connection share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The request will never be answered by this reply: its client went away, it timed out, or
    /// it was over the pending bound. Set by the loop.
    pub(crate) cancelled: AtomicBool,
}

/// Replies on their way to the loop, and how to wake it. One per event loop; the server makes
/// it (an in-memory test makes its own).
#[derive(Debug)]
pub struct Inbox {
    sent: Mutex<Vec<(ReplyId, Message)>>,
    waker: mio::Waker,
}

/// What arrives in the [`Inbox`] for a connection.
#[derive(Debug)]
pub enum Message {
    /// A reply's answer (`None`: the handle was dropped unsent).
    Answer(Option<Response>),
    /// A streamed body the connection waits on has a piece (or its end) ready.
    Stream,
}

/// The handle that answers a request later, from any thread. Dropping it unsent answers 500, so
/// a handler that loses it (a panic on a worker, a forgotten branch) never hangs its client.
#[derive(Debug)]
pub struct Reply {
    id: ReplyId,
    inbox: Arc<Inbox>,
    shared: Arc<Shared>,
    sent: bool,
}

impl Reply {
    /// Answers the request (wakes the event loop). Does nothing useful once the reply is
    /// [cancelled](Reply::is_cancelled): the answer is discarded.
    pub fn send(mut self, response: Response) {
        self.sent = true;
        self.post(Some(response));
    }

    /// True once nobody waits for this answer any more: the client went away, the request was
    /// answered 503 for waiting longer than `--handler-timeout`, or for being over
    /// `--max-pending`. Slow work may check it and stop early.
    pub fn is_cancelled(&self) -> bool {
        self.shared.cancelled.load(Ordering::Relaxed)
    }

    fn post(&self, response: Option<Response>) {
        if self.is_cancelled() {
            return;
        }
        self.inbox.post(self.id, Message::Answer(response));
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.sent {
            self.post(None);
        }
    }
}

impl Inbox {
    /// An inbox whose replies wake the loop through `waker`.
    pub fn new(waker: mio::Waker) -> Arc<Inbox> {
        Arc::new(Inbox {
            sent: Mutex::new(Vec::new()),
            waker,
        })
    }

    /// Every message posted since the last call, in the order they were posted, each with the
    /// request (or streamed body) it is for.
    pub fn take(&self) -> Vec<(ReplyId, Message)> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Tells the loop that the streamed body `id` has a piece (or its end) ready.
    pub(crate) fn post_stream(&self, id: ReplyId) {
        self.post(id, Message::Stream);
    }

    fn post(&self, id: ReplyId, message: Message) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        // One wake-up per batch, not per message: the loop empties the whole inbox (under this
        // lock) each time it is woken, so a message that finds the inbox non-empty is behind one
        // whose wake-up is already on its way and will be taken with it. Only the first message
        // of a batch pays for the wake-up (a write(2) to the waker's eventfd).
        let first = sent.is_empty();
        sent.push((id, message));
        drop(sent);
        if first {
            // If the loop is gone (the server stopped), there is no one left to answer.
            let _ = self.waker.wake();
        }
    }
}

impl Shared {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Nobody waits for this reply's answer any more.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}
