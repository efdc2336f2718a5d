//! `FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]` (Redis 6.2+): hand the master role to
//! a replica without losing a write.
//!
//! The node pauses writes ([`Node::writes_paused`]), waits until the target (or, without `TO`,
//! any replica) has acknowledged the whole stream, then follows it
//! ([`NodeEvent::FailoverDemote`]); the application connects to the target with
//! `PSYNC <replid> <offset> FAILOVER`, which makes the target promote itself and continue this
//! node partially. [`Node::handle_failover_result`] ends the failover, or aborts it and makes
//! this node a master again.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{reply_static, Handled, Node, NodeEvent};
use crate::master::{parse_i64, LinkId, ReplicaState};

/// INFO's `master_failover_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailoverState {
    /// `no-failover`.
    NoFailover,
    /// `waiting-for-sync`: writes paused until the target acknowledged everything.
    WaitingForSync,
    /// `failover-in-progress`: following the target, waiting for its `PSYNC` reply.
    InProgress,
}

impl FailoverState {
    /// The word INFO prints.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverState::NoFailover => "no-failover",
            FailoverState::WaitingForSync => "waiting-for-sync",
            FailoverState::InProgress => "failover-in-progress",
        }
    }
}

#[derive(Debug)]
pub(super) struct Failover {
    target: Option<(String, u16)>,
    force: bool,
    pub(super) deadline: Option<Instant>,
    state: FailoverState,
}

impl Node {
    /// The failover state INFO prints.
    pub fn failover_state(&self) -> FailoverState {
        self.failover
            .as_ref()
            .map_or(FailoverState::NoFailover, |f| f.state)
    }

    /// Whether writes must wait: a `FAILOVER` is in progress. Clients that write block until
    /// it ends (then, if it succeeded, this node is a replica and refuses them).
    pub fn writes_paused(&self) -> bool {
        self.failover.is_some()
    }

    pub(super) fn failover_command<A: AsRef<[u8]>>(&mut self, now: Instant, argv: &[A]) -> Handled {
        // Redis reads ABORT only as the sole argument; elsewhere it is a syntax error.
        if argv.len() == 2 && argv[1].as_ref().eq_ignore_ascii_case(b"abort") {
            if self.failover.is_none() {
                return reply_static(b"-ERR No failover in progress.\r\n");
            }
            self.abort_failover("Failover manually aborted");
            return reply_static(b"+OK\r\n");
        }
        // Each option at most once (a repeated one is a syntax error). The port is any integer:
        // one out of range simply matches no replica.
        let mut target: Option<(String, i64)> = None;
        let mut force = false;
        let mut timeout_ms: Option<i64> = None;
        let mut j = 1;
        while j < argv.len() {
            let a = argv[j].as_ref();
            if a.eq_ignore_ascii_case(b"timeout") && j + 1 < argv.len() && timeout_ms.is_none() {
                let Some(ms) = parse_i64(argv[j + 1].as_ref()) else {
                    return reply_static(b"-ERR value is not an integer or out of range\r\n");
                };
                if ms <= 0 {
                    return reply_static(b"-ERR FAILOVER timeout must be greater than 0\r\n");
                }
                timeout_ms = Some(ms);
                j += 2;
            } else if a.eq_ignore_ascii_case(b"to") && j + 2 < argv.len() && target.is_none() {
                let Some(port) = parse_i64(argv[j + 2].as_ref()) else {
                    return reply_static(b"-ERR value is not an integer or out of range\r\n");
                };
                let host = String::from_utf8_lossy(argv[j + 1].as_ref()).into_owned();
                target = Some((host, port));
                j += 3;
            } else if a.eq_ignore_ascii_case(b"force") && !force {
                force = true;
                j += 1;
            } else {
                return reply_static(b"-ERR syntax error\r\n");
            }
        }
        if self.failover.is_some() {
            return reply_static(b"-ERR FAILOVER already in progress.\r\n");
        }
        if self.replica_of_master {
            return reply_static(b"-ERR FAILOVER is not valid when server is a replica.\r\n");
        }
        if self.replicas().next().is_none() {
            return reply_static(b"-ERR FAILOVER requires connected replicas.\r\n");
        }
        if force && (timeout_ms.is_none() || target.is_none()) {
            return reply_static(
                b"-ERR FAILOVER with force option requires both a timeout and target HOST and IP.\r\n",
            );
        }
        let target = match target {
            None => None,
            Some((host, port)) => {
                let found = u16::try_from(port)
                    .ok()
                    .and_then(|p| self.find_replica(&host, p).map(|r| (r, p)));
                let Some((r, port)) = found else {
                    return reply_static(
                        b"-ERR FAILOVER target HOST and PORT is not a replica.\r\n",
                    );
                };
                if !matches!(
                    self.links[&r].state,
                    ReplicaState::Online | ReplicaState::WaitFirstAck
                ) {
                    return reply_static(b"-ERR FAILOVER target replica is not online.\r\n");
                }
                Some((host, port))
            }
        };
        self.flush();
        self.failover = Some(Failover {
            target,
            force,
            deadline: timeout_ms.map(|ms| now + Duration::from_millis(ms as u64)),
            state: FailoverState::WaitingForSync,
        });
        self.check_failover(now);
        Handled::Reply(Bytes::from_static(b"+OK\r\n"))
    }

    fn find_replica(&self, host: &str, port: u16) -> Option<LinkId> {
        self.replicas()
            .find(|r| r.ip() == host && r.listening_port == i64::from(port))
            .map(|r| r.link)
    }

    pub(super) fn check_failover(&mut self, now: Instant) {
        if self.failover_state() != FailoverState::WaitingForSync {
            return;
        }
        self.flush();
        let Some(f) = &self.failover else {
            return;
        };
        let end = self.offset;
        let caught_up = |r: &crate::master::MasterSession| {
            matches!(r.state, ReplicaState::Online) && r.ack_offset == end
        };
        let chosen = match &f.target {
            Some((host, port)) => self
                .find_replica(host, *port)
                .filter(|l| caught_up(&self.links[l]))
                .map(|_| (host.clone(), *port)),
            None => self
                .replicas()
                .filter(|r| caught_up(r))
                .filter_map(|r| Some((r.ip().to_owned(), u16::try_from(r.listening_port).ok()?)))
                .next(),
        };
        let expired = f.deadline.is_some_and(|d| now >= d);
        let target = match (chosen, expired, f.force, &f.target) {
            (Some(t), _, _, _) => t,
            (None, true, true, Some(t)) => t.clone(),
            (None, true, _, _) => {
                self.abort_failover("Replica never caught up before timeout");
                return;
            }
            (None, false, _, _) => return,
        };
        if let Some(f) = &mut self.failover {
            f.state = FailoverState::InProgress;
            f.deadline = None;
        }
        self.follow();
        self.events.push_back(NodeEvent::FailoverDemote {
            host: target.0,
            port: target.1,
        });
    }

    /// The outcome of the `PSYNC … FAILOVER` after [`NodeEvent::FailoverDemote`]: `true` for
    /// `+CONTINUE`/`+FULLRESYNC` (the failover is done: this node is a replica), `false` for
    /// anything else (it is aborted: this node becomes a master again, under a new id so its
    /// replicas continue partially).
    pub fn handle_failover_result(&mut self, now: Instant, succeeded: bool) {
        if self.failover.is_none() {
            return;
        }
        self.clamp(now);
        if succeeded {
            self.failover = None;
        } else {
            self.abort_failover("Failover target rejected the PSYNC request");
        }
    }

    fn abort_failover(&mut self, reason: &'static str) {
        let Some(f) = self.failover.take() else {
            return;
        };
        if f.state == FailoverState::InProgress {
            self.become_master();
        }
        self.events.push_back(NodeEvent::FailoverAborted { reason });
    }
}
