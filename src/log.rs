//! Phase-change log lines in logfmt on stderr: `ts=… level=info event=drain open=12 …`.
//! One line per event, written with a single `write` so lines from a dying process don't tear.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::SystemTime;

use crate::codec::date::rfc3339_millis;

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// A value in a logfmt pair: quoted when it holds spaces, quotes or `=`.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Str(&'a str),
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

/// Writes one logfmt line for `event` with the given pairs to stderr.
pub fn event(level: Level, event: &str, pairs: &[(&str, Value<'_>)]) {
    let level = match level {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    let mut line = format!(
        "ts={} level={level} event={event}",
        rfc3339_millis(SystemTime::now())
    );
    for (key, value) in pairs {
        let _ = match value {
            Value::Num(n) => write!(line, " {key}={n}"),
            Value::Str(s) if needs_quotes(s) => write!(line, " {key}={s:?}"),
            Value::Str(s) => write!(line, " {key}={s}"),
        };
    }
    line.push('\n');
    // Nothing useful can be done if stderr is gone.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.bytes()
            .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == 0x7f)
}
