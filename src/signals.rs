//! SIGTERM and SIGINT as a pollable source in the loop's `mio::Poll`.
//!
//! signal-hook installs async-signal-safe handlers that write to a self-pipe, and signal-hook-mio
//! makes the pipe's read end a mio `Source`. The loop therefore learns of a signal like of any
//! other event, between two connection events, with no shared flags and no races.

use std::io;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

/// The signals the lifecycle reacts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The orchestrator's stop: lame-duck delay, then drain.
    Term,
    /// Ctrl-C: drain at once.
    Int,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
        }
    }
}

/// The registered signal handlers and their pollable pipe.
pub struct SignalSource {
    signals: Signals,
}

impl SignalSource {
    /// Installs the handlers. From here on SIGTERM/SIGINT no longer kill the process; they are
    /// queued for the loop.
    pub fn new() -> io::Result<Self> {
        Ok(SignalSource {
            signals: Signals::new([SIGTERM, SIGINT])?,
        })
    }

    /// The mio source to register.
    pub fn source(&mut self) -> &mut Signals {
        &mut self.signals
    }

    /// Signals that arrived since the last call, in arrival order as far as signal-hook keeps it.
    /// (A signal repeated before we read is delivered once: it is a flag, not a counter.)
    pub fn pending(&mut self) -> Vec<Signal> {
        self.signals
            .pending()
            .filter_map(|number| match number {
                SIGTERM => Some(Signal::Term),
                SIGINT => Some(Signal::Int),
                _ => None,
            })
            .collect()
    }
}
