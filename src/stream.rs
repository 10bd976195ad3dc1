//! Streamed bodies: the channel between the thread that produces a body in pieces and the
//! connection that writes them, with backpressure both ways.
//!
//! The producer ([`BodyWriter`]) hands over pieces; the connection takes them one at a time,
//! when the socket has taken the previous one. The channel holds back the producer while it
//! already has [`STREAM_HIGH_WATER`] bytes waiting, so a client that reads slowly makes the
//! server hold at most the piece being written and what the channel queued before it filled,
//! never the whole body. Each side learns about the other without polling:
//!
//! - the producer blocks on a condition variable while the channel is full, and is woken when
//!   the connection takes a piece, or when the connection goes (its client left, the request was
//!   a HEAD, the server forced its drain): then [`BodyWriter::send`] fails and the producer stops;
//! - the connection, when it finds the channel empty, leaves a [`Wake`]; the producer's next
//!   piece (or its end) posts it to the loop's [`Inbox`], which wakes the event loop.
//!
//! A producer that ends without [`BodyWriter::finish`] (an error, a panic) fails the response
//! visibly: the client never sees a truncated body that looks complete (the connection says
//! how, see `conn.rs`).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::codec::Chunk;
use crate::handler::{Inbox, ReplyId};

/// Bytes a stream may have waiting in its channel before [`BodyWriter::send`] blocks. The same
/// figure as the connection's output cap ([`OUTPUT_HIGH_WATER`](crate::conn::OUTPUT_HIGH_WATER)):
/// what a slow reader can make the server hold is that, plus the piece being written and the
/// one that filled the channel, whatever the body's length.
pub const STREAM_HIGH_WATER: usize = 4 * 1024;

/// The channel of one streamed body; `pub(crate)`: users see only its two ends.
#[derive(Debug)]
struct Channel {
    state: Mutex<State>,
    /// Signalled when the producer may go on: room in the channel, or nobody listening.
    room: Condvar,
    /// The declared length (`Content-Length`), if any.
    length: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    pieces: VecDeque<Chunk>,
    /// Bytes in `pieces`.
    queued: usize,
    /// Bytes the producer has sent so far, against `length`.
    sent: u64,
    end: Option<End>,
    /// The connection no longer wants the body: its client left, it was a HEAD, or the server
    /// stopped. The producer's next `send` fails.
    gone: bool,
    /// The connection found the channel empty and waits: whom to wake with the next piece.
    wake: Option<Wake>,
}

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Every byte was sent ([`BodyWriter::finish`]).
    Finished,
    /// The producer gave up, broke the declared length, or was dropped unfinished.
    Failed,
}

/// Whom the producer wakes when the connection waits for a piece.
#[derive(Debug)]
pub(crate) struct Wake {
    pub inbox: Arc<Inbox>,
    pub id: ReplyId,
}

/// What the connection finds in the channel.
#[derive(Debug)]
pub(crate) enum Next {
    /// The next piece, to write.
    Piece(Chunk),
    /// Nothing yet: the producer's next piece wakes the loop.
    Wait,
    /// The body is complete.
    Finished,
    /// The producer failed: end the response visibly.
    Failed,
}

/// A pair of ends for a new stream; see [`Body::stream`](crate::Body::stream).
pub(crate) fn channel(length: Option<u64>) -> (Receiver, BodyWriter) {
    let channel = Arc::new(Channel {
        state: Mutex::new(State::default()),
        room: Condvar::new(),
        length,
    });
    let writer = BodyWriter {
        channel: channel.clone(),
        done: false,
    };
    (Receiver { channel }, writer)
}

impl Channel {
    /// The state, whatever a panicking thread left it as (every update is one assignment).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The producer's end of a streamed body: sends its pieces from any thread.
///
/// ```
/// use std::io::Write;
/// use lameduck::{Body, Response};
///
/// let (body, mut writer) = Body::stream(Some(11));
/// let response = Response::new(200, body); // the handler returns this (or sends it later)
/// # drop(response); // (no connection here: the writer is told the client has gone)
/// # let (_keep, mut writer) = Body::stream(Some(11));
/// # std::thread::spawn(move || {
/// writer.send("hello ")?; // a `Chunk`: static, owned or shared bytes, never copied
/// writer.write_all(b"world")?; // or io::Write, which copies
/// writer.finish()?; // without this, the client sees the response fail, not end
/// # Ok::<(), std::io::Error>(())
/// # });
/// ```
#[derive(Debug)]
pub struct BodyWriter {
    channel: Arc<Channel>,
    /// `finish` was called, or the stream failed already.
    done: bool,
}

impl BodyWriter {
    /// Sends the next piece of the body. Blocks while the connection already has
    /// [`STREAM_HIGH_WATER`] bytes waiting (a slow client slows its producer, never the
    /// server). Fails with `BrokenPipe` once nobody will read the body (the client left, the
    /// request was a HEAD, the server stopped), and with `InvalidInput` if the piece would take
    /// the body past its declared length (the response then fails).
    pub fn send(&mut self, piece: impl Into<Chunk>) -> io::Result<()> {
        let piece = piece.into();
        let len = piece.as_bytes().len();
        let channel = &self.channel;
        let mut state = channel.lock();
        while !state.gone && state.end.is_none() && state.queued >= STREAM_HIGH_WATER {
            state = channel.room.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.gone || state.end.is_some() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let sent = state.sent + len as u64;
        if channel.length.is_some_and(|length| sent > length) {
            drop(state);
            self.fail();
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "more bytes than the body's declared length",
            ));
        }
        if len == 0 {
            // An empty piece would end a chunked body early: there is nothing to send.
            return Ok(());
        }
        state.sent = sent;
        state.queued += len;
        state.pieces.push_back(piece);
        wake(state);
        Ok(())
    }

    /// Ends the body. Fails (and so does the response) if a declared length was not reached.
    pub fn finish(mut self) -> io::Result<()> {
        let mut state = self.channel.lock();
        if state.gone {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let short = self
            .channel
            .length
            .is_some_and(|length| state.sent != length);
        if short {
            drop(state);
            self.fail();
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "fewer bytes than the body's declared length",
            ));
        }
        state.end = Some(End::Finished);
        self.done = true;
        wake(state);
        Ok(())
    }

    /// True once nobody will read the body (the client left, the request was a HEAD, the server
    /// stopped): slow work may check it and stop early.
    pub fn is_cancelled(&self) -> bool {
        self.channel.lock().gone
    }

    /// Ends the body as failed: the client sees the response end early, visibly.
    fn fail(&mut self) {
        self.done = true;
        let mut state = self.channel.lock();
        if state.end.is_none() {
            state.end = Some(End::Failed);
        }
        wake(state);
    }
}

/// Copies each buffer into an owned piece; [`BodyWriter::send`] takes bytes without a copy.
impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf.to_vec())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BodyWriter {
    /// A producer that stops without `finish` (an early return, a panic) fails the response.
    fn drop(&mut self) {
        if !self.done {
            self.fail();
        }
    }
}

/// Posts the connection's wake-up, if it waits, after releasing the lock.
fn wake(mut state: MutexGuard<'_, State>) {
    let wake = state.wake.take();
    drop(state);
    if let Some(wake) = wake {
        wake.inbox.post_stream(wake.id);
    }
}

/// The connection's end of a streamed body. Dropping it tells the producer nobody listens.
#[derive(Debug)]
pub struct Receiver {
    channel: Arc<Channel>,
}

impl Receiver {
    /// The declared length, if any.
    pub fn length(&self) -> Option<u64> {
        self.channel.length
    }

    /// The next piece, or why there is none. On [`Next::Wait`] the producer's next piece (or
    /// end) posts `wake()` to the loop.
    pub(crate) fn next(&self, wake: impl FnOnce() -> Wake) -> Next {
        let mut state = self.channel.lock();
        if let Some(piece) = state.pieces.pop_front() {
            state.queued -= piece.as_bytes().len();
            drop(state);
            self.channel.room.notify_one();
            return Next::Piece(piece);
        }
        match state.end {
            Some(End::Finished) => Next::Finished,
            Some(End::Failed) => Next::Failed,
            None => {
                state.wake = Some(wake());
                Next::Wait
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.channel.lock();
        state.gone = true;
        state.pieces.clear();
        state.queued = 0;
        drop(state);
        self.channel.room.notify_all();
    }
}
