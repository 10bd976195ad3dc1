//! Phase-change log lines in logfmt on stderr: `ts=… level=info event=drain open=12 …`.
//! One line per event, written with a single `write` so lines from a dying process don't tear.
//!
//! Where the lines go is the process's choice, made once with [`set_sink`]: stderr (the
//! default, and what the binary keeps), nowhere, or a function of the embedder's that receives
//! each line as a [`Record`], to route it into its own logger. The choice is process-wide, as
//! the `log` crate's `set_logger` is, because some lines belong to no one server (a refused
//! start, a failed report to systemd), and every line carries what tells servers apart (the
//! `pid=` of `listening` and `exit`, the `addr=` of `listening`).

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::codec::date::rfc3339_millis;

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// A phase change or a state change an operator expects (`listening`, `drain`, `exit` 0).
    Info,
    /// Something went wrong for some clients or for a while (`force`, `accept_paused`).
    Warn,
    /// Something failed that the server cannot fix (`accept_failed`, `start_failed`).
    Error,
}

impl Level {
    /// The name in the line: `info`, `warn` or `error`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// A value in a logfmt pair: quoted when it holds spaces, quotes or `=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// Text, such as `after=delay_over` or `addr=127.0.0.1:8080`.
    Str(&'a str),
    /// A count, such as `open=12`.
    Num(u64),
}

impl From<u64> for Value<'_> {
    fn from(n: u64) -> Self {
        Value::Num(n)
    }
}

impl From<usize> for Value<'_> {
    fn from(n: usize) -> Self {
        Value::Num(n as u64)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(s)
    }
}

impl fmt::Display for Value<'_> {
    /// As it appears after `key=`: quoted (Rust's escapes) if it must be.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Str(s) if needs_quotes(s) => write!(f, "{s:?}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// One log line, as a [`Sink::Custom`] function receives it. Its `Display` is the logfmt line
/// the stderr sink writes (without the newline).
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// When the line was made.
    pub time: SystemTime,
    /// How serious it is.
    pub level: Level,
    /// What happened: `listening`, `announce`, `drain`, `force`, `interrupted`, `exit`, …
    /// (docs/design.md, "Logging").
    pub event: &'a str,
    /// The rest of the line, in order: `open=12`, `signal=SIGTERM`, …
    pub pairs: &'a [(&'a str, Value<'a>)],
}

impl<'a> Record<'a> {
    /// The value of `key`, if the line has it.
    ///
    /// ```
    /// use lameduck::logging::{Level, Record, Value};
    ///
    /// let record = Record {
    ///     time: std::time::SystemTime::UNIX_EPOCH,
    ///     level: Level::Info,
    ///     event: "drain",
    ///     pairs: &[("open", Value::Num(2)), ("after", Value::Str("delay_over"))],
    /// };
    /// assert_eq!(record.get("after"), Some(Value::Str("delay_over")));
    /// assert_eq!(
    ///     record.to_string(),
    ///     "ts=1970-01-01T00:00:00.000Z level=info event=drain open=2 after=delay_over"
    /// );
    /// ```
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }
}

impl fmt::Display for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ts={} level={} event={}",
            rfc3339_millis(self.time),
            self.level.name(),
            self.event
        )?;
        for (key, value) in self.pairs {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

/// Where log lines go (see [`set_sink`]).
#[derive(Clone, Default)]
pub enum Sink {
    /// Logfmt on stderr, one `write` per line: the default.
    #[default]
    Stderr,
    /// Nowhere.
    Off,
    /// To a function of the embedder's, called on the thread that logs (the server's loop,
    /// mostly), once per line. It must be quick, and must not block: the loop waits for it.
    Custom(Arc<dyn Fn(&Record<'_>) + Send + Sync>),
}

impl Sink {
    /// A [`Sink::Custom`] calling `f`.
    pub fn custom(f: impl Fn(&Record<'_>) + Send + Sync + 'static) -> Sink {
        Sink::Custom(Arc::new(f))
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sink::Stderr => "Stderr",
            Sink::Off => "Off",
            Sink::Custom(_) => "Custom(..)",
        })
    }
}

/// The process's sink. Read once per line (lines are per phase change, never per request).
static SINK: RwLock<Sink> = RwLock::new(Sink::Stderr);

/// Sends every log line of this process, from now on, to `sink`, and returns the sink it
/// replaces. Set it before `Server::bind` to have every line of the server's life (bind logs
/// an inherited socket).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use lameduck::logging::{self as log, Sink};
///
/// // Keep the events, in order, instead of writing them to stderr.
/// let events = Arc::new(Mutex::new(Vec::new()));
/// let kept = Arc::clone(&events);
/// let previous = log::set_sink(Sink::custom(move |record| {
///     kept.lock().unwrap().push(record.event.to_string());
/// }));
/// // ... Server::bind, run ...
/// log::set_sink(previous);
/// ```
pub fn set_sink(sink: Sink) -> Sink {
    let mut current = SINK
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    std::mem::replace(&mut *current, sink)
}

/// Writes one log line for `event` with the given pairs to the process's [`Sink`].
pub fn event(level: Level, event: &str, pairs: &[(&str, Value<'_>)]) {
    let record = Record {
        time: SystemTime::now(),
        level,
        event,
        pairs,
    };
    // A clone of the sink (an `Arc` at most), so that a custom sink runs without the lock held
    // and may itself call `set_sink`.
    let sink = SINK
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    match sink {
        Sink::Stderr => {
            let mut line = String::new();
            let _ = writeln!(line, "{record}");
            // Nothing useful can be done if stderr is gone.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        Sink::Off => {}
        Sink::Custom(f) => f(&record),
    }
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.bytes()
            .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == 0x7f)
}
