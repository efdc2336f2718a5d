//! `WAIT numreplicas timeout`: clients blocked until enough replicas acknowledged their writes.

use std::time::{Duration, Instant};

use super::{Node, NodeError, NodeEvent};
use crate::ids::ReplOffset;

/// The error a replica answers `WAIT` with (Redis 7.0's words, without the leading `-ERR `).
pub const WAIT_ON_REPLICA: &str = "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.";

/// A blocked `WAIT`, answered later by [`NodeEvent::WaitDone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaitId(pub u64);

/// The outcome of [`Node::handle_wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Answer now with this many replicas.
    Ready(usize),
    /// The client blocks; [`NodeEvent::WaitDone`] with this id answers it.
    Blocked(WaitId),
}

#[derive(Debug)]
pub(super) struct Waiter {
    id: WaitId,
    offset: ReplOffset,
    replicas: usize,
    pub(super) deadline: Option<Instant>,
}

impl Node {
    /// `WAIT numreplicas timeout` for a client whose last command left the node at `offset`
    /// (track `offset()` after each of its commands). Answers at once when enough online
    /// replicas acknowledged `offset` (or when `can_block` is false, as inside `MULTI`);
    /// otherwise blocks the client and asks every replica for an ACK with one
    /// `REPLCONF GETACK *` shared by all waiters. `timeout` `None` waits forever.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use respsync::node::{Node, NodeConfig, WaitOutcome};
    ///
    /// let now = Instant::now();
    /// let mut node = Node::new(NodeConfig::default(), now);
    /// // No replica: WAIT 0 answers at once, WAIT 1 blocks until its timeout.
    /// assert_eq!(node.handle_wait(now, node.offset(), 0, None, true), Ok(WaitOutcome::Ready(0)));
    /// let Ok(WaitOutcome::Blocked(id)) = node.handle_wait(now, node.offset(), 1, Some(Duration::from_millis(10)), true) else { panic!() };
    /// node.handle_timeout(now + Duration::from_millis(10));
    /// assert!(matches!(node.poll_event(), Some(respsync::node::NodeEvent::WaitDone { wait, replicas: 0 }) if wait == id));
    /// ```
    pub fn handle_wait(
        &mut self,
        now: Instant,
        offset: ReplOffset,
        replicas: usize,
        timeout: Option<Duration>,
        can_block: bool,
    ) -> Result<WaitOutcome, NodeError> {
        let now = self.clamp(now);
        if self.replica_of_master {
            return Err(NodeError::WaitOnReplica);
        }
        let acked = self.replicas_acked(offset);
        if acked >= replicas || !can_block {
            return Ok(WaitOutcome::Ready(acked));
        }
        let id = WaitId(self.next_wait);
        self.next_wait += 1;
        self.waits.push(Waiter {
            id,
            offset,
            replicas,
            deadline: timeout.map(|t| now + t),
        });
        if self.backlog.is_some() && self.replicas().next().is_some() {
            self.getack_wanted = true;
        }
        Ok(WaitOutcome::Blocked(id))
    }

    /// The client blocked in `wait` went away: forget it.
    pub fn cancel_wait(&mut self, wait: WaitId) {
        self.waits.retain(|w| w.id != wait);
    }

    /// Unblocks every blocked `WAIT` with an error ([`NodeEvent::WaitUnblocked`]): the node is
    /// about to follow a master, and its replicas' acknowledgements will count another
    /// history's bytes.
    pub(super) fn unblock_waits(&mut self) {
        for w in std::mem::take(&mut self.waits) {
            self.events
                .push_back(NodeEvent::WaitUnblocked { wait: w.id });
        }
    }

    pub(super) fn check_waits(&mut self, now: Instant) {
        if self.waits.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.waits.len() {
            let w = &self.waits[i];
            let acked = self.replicas_acked(w.offset);
            if acked >= w.replicas || w.deadline.is_some_and(|d| now >= d) {
                let w = self.waits.swap_remove(i);
                self.events.push_back(NodeEvent::WaitDone {
                    wait: w.id,
                    replicas: acked,
                });
            } else {
                i += 1;
            }
        }
    }
}
