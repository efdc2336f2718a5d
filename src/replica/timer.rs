//! The session's timers: a closed set of deadlines in a table (quinn's `TimerTable`).

use std::time::Instant;

/// A deadline the session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Silence from the master: handshake timeout, or `repl-timeout` in transfer and
    /// streaming, counted from the last byte received.
    Silence = 0,
    /// Next periodic `REPLCONF ACK`.
    Ack = 1,
}

impl Timer {
    /// Every timer, in the order `handle_timeout` processes them.
    pub(crate) const VALUES: [Timer; 2] = [Timer::Silence, Timer::Ack];
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimerTable {
    data: [Option<Instant>; 2],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.data[timer as usize] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    pub(crate) fn stop_all(&mut self) {
        self.data = [None; 2];
    }

    /// The earliest deadline set.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }

    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.data[timer as usize].is_some_and(|t| t <= now)
    }
}
