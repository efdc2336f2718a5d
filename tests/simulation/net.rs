//! In-memory links: one [`Pipe`] per direction of a connection, with seeded latency, writes
//! split at any byte into separate reads, stalls, a bounded amount in flight (the socket
//! buffers) and an orderly end (`Fin`).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use crate::rng::Rng;

#[derive(Debug, Clone)]
pub enum Piece {
    Data(Bytes),
    /// The sender closed: the receiver reads end-of-file after the data before it.
    Fin,
}

#[derive(Debug)]
pub struct Pipe {
    q: VecDeque<(Duration, Piece)>,
    /// Bytes written and not yet read (what the socket buffers hold).
    pub inflight: usize,
    /// Nothing is read before this instant (a stalled reader or a congested path).
    pub stalled_until: Duration,
    /// Base one-way latency of this path.
    pub latency: Duration,
    last: Duration,
}

impl Pipe {
    pub fn new(latency: Duration) -> Pipe {
        Pipe {
            q: VecDeque::new(),
            inflight: 0,
            stalled_until: Duration::ZERO,
            latency,
            last: Duration::ZERO,
        }
    }

    fn at(&mut self, now: Duration, rng: &mut Rng) -> Duration {
        let jitter = Duration::from_micros(rng.range(0, self.latency.as_micros() as u64 / 2 + 1));
        let t = (now + self.latency + jitter).max(self.last);
        self.last = t;
        t
    }

    /// Writes `data`; it arrives in one to four reads split at random bytes.
    pub fn send(&mut self, now: Duration, data: Bytes, rng: &mut Rng) {
        if data.is_empty() {
            return;
        }
        self.inflight += data.len();
        let mut rest = data;
        let pieces = if rest.len() > 1 && rng.chance(0.5) {
            rng.range(2, 4)
        } else {
            1
        };
        for _ in 1..pieces {
            if rest.len() < 2 {
                break;
            }
            let cut = rng.range(1, rest.len() as u64 - 1) as usize;
            let head = rest.split_to(cut);
            let t = self.at(now, rng);
            self.q.push_back((t, Piece::Data(head)));
        }
        let t = self.at(now, rng);
        self.q.push_back((t, Piece::Data(rest)));
    }

    pub fn fin(&mut self, now: Duration, rng: &mut Rng) {
        let t = self.at(now, rng);
        self.q.push_back((t, Piece::Fin));
    }

    /// Drops everything in flight (a reset connection).
    pub fn clear(&mut self) {
        self.q.clear();
        self.inflight = 0;
    }

    pub fn next_at(&self) -> Option<Duration> {
        self.q.front().map(|(t, _)| (*t).max(self.stalled_until))
    }

    pub fn pop_due(&mut self, now: Duration) -> Option<Piece> {
        if self.next_at()? > now {
            return None;
        }
        let (_, p) = self.q.pop_front()?;
        if let Piece::Data(d) = &p {
            self.inflight -= d.len();
        }
        Some(p)
    }
}
