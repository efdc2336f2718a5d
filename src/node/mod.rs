//! `Node`: one server's replication state, and the master side of every link to its replicas.
//!
//! A [`Node`] owns what a Redis server owns for replication: its replication ids
//! ([`ReplicationIds`]), its offset (`master_repl_offset`) and its one [`Backlog`], and a
//! [`MasterSession`] for every connection that speaks the replication protocol to it. The
//! application keeps the sockets, the clock, the data and the snapshot files:
//!
//! - its command dispatcher hands `REPLCONF`, `PSYNC`, `SYNC` and `ROLE` to
//!   [`Node::handle_command`], which answers with reply bytes or takes the connection over as a
//!   replica link;
//! - every write it executes goes to [`Node::propagate`] (or
//!   [`Node::propagate_transaction`]), which encodes it once into the backlog; a `SELECT` is
//!   inserted whenever the database changes;
//! - bytes read from a replica link go to [`Node::handle_input`]; bytes to write to it come
//!   from [`Node::poll_transmit`]: slices of the one backlog, so a write is stored once
//!   whatever the number of replicas;
//! - [`Node::poll_event`] asks for snapshots ([`NodeEvent::SnapshotRequested`]) and says which
//!   links to close and why; [`Node::poll_timeout`] and [`Node::handle_timeout`] drive PINGs,
//!   keepalives, timeouts, the diskless delay and the backlog TTL.
//!
//! # Snapshots
//!
//! A replica that cannot continue partially waits (`wait_bgsave`) until the node asks for a
//! snapshot with [`NodeEvent::SnapshotRequested`]. The application calls
//! [`Node::handle_snapshot_started`] at the instant its data is consistent (under the same lock
//! that orders writes with [`Node::propagate`]): that fixes the `+FULLRESYNC` offset for every
//! replica waiting then. Writes made afterwards stay in the backlog and follow the snapshot.
//!
//! - **Disk** ([`SnapshotTarget::Disk`]): when the file is complete, call
//!   [`Node::handle_snapshot_file`] with its length; each replica's
//!   [`poll_transmit`](Node::poll_transmit) then yields [`Transmit::File`] once: write the
//!   whole file to that connection (sendfile or a copy loop) and call
//!   [`Node::handle_file_sent`]. Replicas that arrive while a disk snapshot is being written
//!   attach to it: one snapshot, many replicas.
//! - **Diskless** ([`SnapshotTarget::Socket`]): feed the RDB bytes as they are produced with
//!   [`Node::handle_snapshot_chunk`] (each chunk is shared by every attached replica, not
//!   copied) and end with [`Node::handle_snapshot_end`]. The node frames them with `$EOF:<mark>`
//!   and starts each replica's stream at its first `REPLCONF ACK`, as Redis 7 does. Keep
//!   [`Node::snapshot_buffered`] small (pause the producer while it is above a few MiB) so a
//!   slow replica paces the transfer.
//!
//! # Two-connection full syncs (Redis 8, Valkey 8)
//!
//! Both open a second, "rdb" connection to the master for the snapshot while the stream goes
//! over the main one. For the node the rdb connection is just another connection with its own
//! [`LinkId`], which becomes an `rdb-only` replica link; **the link id is the client id that
//! goes on the wire**, so give each connection a unique number (the example server uses its
//! client ids). Nothing else changes for the application: the snapshot is requested, started
//! and fed as above, always over the socket.
//!
//! - **Redis 8 rdb channel** ([`NodeConfig::rdb_channel`], with `diskless_sync`): a replica
//!   that offered `capa rdb-channel-repl` and cannot continue partially is answered
//!   `+RDBCHANNELSYNC <main link id>`; its main link then waits, silent
//!   ([`ReplicaState::WaitRdbChannel`]). The rdb connection names it with `REPLCONF
//!   main-ch-client-id` and asks `PSYNC ? -1`; when the snapshot starts it gets `+FULLRESYNC`
//!   and the `$EOF:` snapshot, and the main link streams from the snapshot's offset + 1 at once
//!   ([`ReplicaState::SendBulkAndStream`]), online when the snapshot ends or at its first ACK.
//!   The rdb link is closed after the snapshot; INFO lists the pair once.
//! - **Valkey 8 dual channel** ([`NodeConfig::dual_channel`], with `diskless_sync`): a replica
//!   that offered `capa dual-channel` gets `+DUALCHANNELSYNC` and stays a plain client. Its rdb
//!   connection (`REPLCONF … rdb-channel 1`, then `SYNC`) gets `$ENDOFF:<offset> <replid> 0
//!   <rdb link id>` and the snapshot; the backlog keeps the stream from `offset + 1` for it
//!   (up to [`RDB_CLIENT_GRACE`] after the rdb connection closed) until the main connection
//!   sends `REPLCONF set-rdb-client-id <id>` and `PSYNC <replid> <offset + 1>`, which continues
//!   ([`ReplicaState::BgRdbLoad`], online at its first ACK).
//!
//! A replica that did not offer one of these capabilities never gets either reply.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use respsync::master::ReplicaState;
//! use respsync::node::{Caller, Handled, LinkId, Node, NodeConfig, NodeEvent, Transmit};
//!
//! let now = Instant::now();
//! let config = NodeConfig { diskless_sync_delay: std::time::Duration::ZERO, ..NodeConfig::default() };
//! let mut node = Node::new(config, now);
//! let who = Caller::default();
//! let (main, rdb) = (LinkId(5), LinkId(6));
//! let drain = |node: &mut Node, link| {
//!     let mut out = Vec::new();
//!     while let Some(Transmit::Bytes(b)) = node.poll_transmit(link) {
//!         out.extend_from_slice(&b);
//!     }
//!     String::from_utf8_lossy(&out).into_owned()
//! };
//!
//! // A Redis 8.2 replica's main connection.
//! let capa: [&[u8]; 7] = [b"REPLCONF", b"capa", b"eof", b"capa", b"psync2", b"capa", b"rdb-channel-repl"];
//! node.handle_command(now, main, &who, &capa);
//! let psync: [&[u8]; 3] = [b"PSYNC", b"?", b"-1"];
//! assert_eq!(node.handle_command(now, main, &who, &psync), Handled::ReplicaLink);
//! assert_eq!(drain(&mut node, main), "+RDBCHANNELSYNC 5\r\n");
//!
//! // Its rdb connection.
//! let replconf: [&[u8]; 9] = [b"REPLCONF", b"capa", b"eof", b"rdb-only", b"1", b"rdb-channel", b"1",
//!     b"main-ch-client-id", b"5"];
//! node.handle_command(now, rdb, &who, &replconf);
//! assert_eq!(node.handle_command(now, rdb, &who, &psync), Handled::ReplicaLink);
//! let Some(NodeEvent::SnapshotRequested { snapshot, .. }) = node.poll_event() else { panic!() };
//! let start = node.handle_snapshot_started(now, snapshot).unwrap();
//! assert!(drain(&mut node, rdb).starts_with(&format!("+FULLRESYNC {} 0\r\n$EOF:", start.replid)));
//!
//! // The stream flows on the main connection while the snapshot goes over the other one.
//! node.propagate(0, &[&b"SET"[..], b"k", b"v"]);
//! assert_eq!(node.replica(main).unwrap().state(), ReplicaState::SendBulkAndStream);
//! assert!(drain(&mut node, main).starts_with("*2\r\n$6\r\nSELECT"));
//! node.handle_snapshot_chunk(now, snapshot, Bytes::from_static(b"REDIS0009\xff\0\0\0\0\0\0\0\0")).unwrap();
//! node.handle_snapshot_end(now, snapshot).unwrap();
//! assert_eq!(node.replica(main).unwrap().state(), ReplicaState::Online);
//! ```
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use respsync::node::{Caller, Handled, LinkId, Node, NodeConfig, NodeEvent, Transmit};
//!
//! let now = Instant::now();
//! let mut node = Node::new(NodeConfig { diskless_sync: false, ..NodeConfig::default() }, now);
//! let replica = LinkId(1);
//! let who = Caller::default();
//!
//! // The replica's handshake, as the application's dispatcher hands it over.
//! let replconf: [&[u8]; 3] = [b"REPLCONF", b"listening-port", b"6380"];
//! assert!(matches!(node.handle_command(now, replica, &who, &replconf), Handled::Reply(_)));
//! let psync: [&[u8]; 3] = [b"PSYNC", b"?", b"-1"];
//! assert!(matches!(node.handle_command(now, replica, &who, &psync), Handled::ReplicaLink));
//!
//! // The node asks for a snapshot; the application fixes it at a consistent point.
//! let Some(NodeEvent::SnapshotRequested { snapshot, .. }) = node.poll_event() else { panic!() };
//! let start = node.handle_snapshot_started(now, snapshot).unwrap();
//! // A write during the snapshot stays in the backlog and follows it.
//! node.propagate(0, &[&b"SET"[..], b"k", b"v"]);
//! // The application's own RDB of its data at `start.offset` (here: an empty one).
//! let rdb = b"REDIS0010\xff\0\0\0\0\0\0\0\0";
//! node.handle_snapshot_file(now, snapshot, rdb.len() as u64).unwrap();
//!
//! let mut wire = Vec::new();
//! while let Some(t) = node.poll_transmit(replica) {
//!     match t {
//!         Transmit::Bytes(b) => wire.extend_from_slice(&b),
//!         Transmit::File { .. } => {
//!             wire.extend_from_slice(rdb);
//!             node.handle_file_sent(now, replica);
//!         }
//!     }
//! }
//! let text = String::from_utf8_lossy(&wire);
//! assert!(text.starts_with(&format!("+FULLRESYNC {} 0\r\n$", start.replid)));
//! assert!(text.ends_with("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"));
//! assert_eq!(node.offset().value(), 23 + 27); // SELECT 0, then the SET
//! ```

mod config;
mod failover;
mod info;
mod wait;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

pub use self::config::{max_rdb_version_for, NodeConfig, OutputBufferLimit, MIN_BACKLOG_SIZE};
pub use self::failover::FailoverState;
pub use self::wait::{WaitId, WaitOutcome, WAIT_ON_REPLICA};
use crate::backlog::Backlog;
use crate::ids::{IdGenerator, PsyncCheck, ReplId, ReplOffset, ReplicationIds};
pub use crate::master::LinkId;
use crate::master::{parse_i64, MasterSession, RdbFilter, ReplicaState};
use crate::resp::{encode_command, DecodeError};

/// Propagated bytes are moved into the backlog as one chunk once this many accumulate (Redis's
/// replication buffer blocks are 16 KiB).
const FLUSH_AT: usize = 16 * 1024;

/// How long a Valkey dual-channel rdb connection's backlog position stays pinned after that
/// connection closed, waiting for its main connection's `PSYNC` (Valkey's
/// `DEFAULT_WAIT_BEFORE_RDB_CLIENT_FREE`).
pub const RDB_CLIENT_GRACE: Duration = Duration::from_secs(60);

/// A Valkey dual-channel rdb connection's `$ENDOFF` position, kept in the backlog until its
/// main connection continues from it.
#[derive(Debug, Clone, Copy)]
struct PsyncWait {
    /// `$ENDOFF` offset + 1.
    pos: ReplOffset,
    /// When the rdb connection closed (the grace period runs from then).
    closed_at: Option<Instant>,
}

/// What the node knows of the client calling a command (the application's connection state).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whether the connection may run commands: false while `requirepass` is set and the
    /// client has not authenticated (`PSYNC`, `SYNC` and `REPLCONF` then get `-NOAUTH`).
    pub authenticated: bool,
    /// Whether the client is inside `MULTI` (`SYNC`/`PSYNC` are refused there).
    pub in_multi: bool,
    /// The peer's address, shown in INFO unless the replica announces `ip-address`.
    pub peer_ip: Option<String>,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            authenticated: true,
            in_multi: false,
            peer_ip: None,
        }
    }
}

/// The outcome of [`Node::handle_command`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handled {
    /// Not a command the node handles: dispatch it as usual.
    NotMine,
    /// Write these bytes to the client as the reply.
    Reply(Bytes),
    /// Done, and Redis sends no reply (`REPLCONF ACK`, `REPLCONF GETACK`, a second `PSYNC`).
    NoReply,
    /// The connection is now a replica link: feed what it sends to [`Node::handle_input`] and
    /// write what [`Node::poll_transmit`] gives for it (the `PSYNC` reply included).
    ReplicaLink,
}

/// One snapshot the node asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(pub u64);

/// Where a snapshot goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotTarget {
    /// A file whose length is known before sending (`$<len>` framing).
    Disk,
    /// Straight to the sockets as it is produced (`$EOF:<mark>` framing).
    Socket,
}

/// What [`Node::handle_snapshot_started`] fixed: the data must be the state at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStart {
    /// The id replicas resume from (write it as the RDB aux field `repl-id`).
    pub replid: ReplId,
    /// The `+FULLRESYNC` offset (aux field `repl-offset`).
    pub offset: ReplOffset,
    /// The stream's database at that point (aux field `repl-stream-db`).
    pub stream_db: u32,
}

/// Bytes to write to a replica link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Write these bytes.
    Bytes(Bytes),
    /// Write the whole file of this disk snapshot (`len` bytes), then call
    /// [`Node::handle_file_sent`]. Nothing else is sent on the link until then.
    File {
        /// The snapshot whose file it is.
        snapshot: SnapshotId,
        /// Its length, as announced in `$<len>`.
        len: u64,
    },
}

/// Why the node wants a link closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// No `REPLCONF ACK` for `repl-timeout` ("Disconnecting timedout replica").
    Timeout,
    /// The replica's unsent stream passed the hard output-buffer limit.
    OutputBufferHard {
        /// Bytes waiting.
        pending: u64,
        /// The limit.
        limit: u64,
    },
    /// The replica's unsent stream stayed above the soft limit for too long.
    OutputBufferSoft {
        /// Bytes waiting.
        pending: u64,
        /// The limit.
        limit: u64,
    },
    /// The snapshot it waited for failed.
    SnapshotFailed,
    /// An `rdb-only` client got its snapshot (write what is left, then close).
    RdbTransmitted,
    /// The node's history changed (a new master's full sync): sub-replicas reconnect.
    HistoryChanged,
    /// The replica broke the protocol.
    Protocol(DecodeError),
    /// The replica sent a command other than `REPLCONF` on its replication link.
    UnexpectedCommand(Bytes),
    /// A Redis 8 main connection whose rdb connection closed before its snapshot ended: the
    /// two-connection sync cannot complete (the replica starts over).
    RdbChannelClosed,
}

impl CloseReason {
    /// Whether the application should first write what [`Node::poll_transmit`] still gives for
    /// the link (an error reply or the end of a snapshot), then close it.
    pub fn flush_first(&self) -> bool {
        matches!(
            self,
            CloseReason::RdbTransmitted | CloseReason::SnapshotFailed
        )
    }
}

/// Something the application must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// Produce a snapshot: call [`Node::handle_snapshot_started`] at a consistent point, then
    /// feed the file ([`SnapshotTarget::Disk`]) or the bytes ([`SnapshotTarget::Socket`]).
    SnapshotRequested {
        /// Its id.
        snapshot: SnapshotId,
        /// Disk or socket.
        target: SnapshotTarget,
        /// What it must contain.
        filter: RdbFilter,
        /// The RDB version to write: every replica it serves loads it (see
        /// [`NodeConfig::snapshot_rdb_version`]).
        rdb_version: u8,
    },
    /// Nobody waits for this snapshot any more: stop producing it.
    SnapshotAbandoned {
        /// Its id.
        snapshot: SnapshotId,
    },
    /// Close this connection (after writing what is left, if
    /// [`CloseReason::flush_first`]), then call [`Node::handle_disconnect`].
    Close {
        /// The connection.
        link: LinkId,
        /// Why.
        reason: CloseReason,
    },
    /// Our master sent `PSYNC … FAILOVER`: this node promoted itself (as after
    /// `REPLICAOF NO ONE`). Stop the link to the old master; it is about to follow us.
    PromotedByFailover,
    /// `FAILOVER` reached its target: follow `host:port` now, with
    /// [`ReplicaSession::set_psync_failover`](crate::replica::ReplicaSession::set_psync_failover)
    /// on, and report the outcome with [`Node::handle_failover_result`]. The node already
    /// follows (as after [`Node::follow`]).
    FailoverDemote {
        /// The new master's address, as its replica link announced it.
        host: String,
        /// Its listening port.
        port: u16,
    },
    /// A `FAILOVER` was aborted (timeout, `FAILOVER ABORT`, or refused by the target); the
    /// node is a master again and writes are no longer paused.
    FailoverAborted {
        /// Why, in Redis's words.
        reason: &'static str,
    },
    /// A blocked `WAIT` is answered: reply `:replicas`.
    WaitDone {
        /// Which one.
        wait: WaitId,
        /// Replicas that acknowledged its offset.
        replicas: usize,
    },
    /// The node started following a master ([`Node::follow`]) while a client was blocked in
    /// `WAIT`: its replicas' acknowledgements would now count another history's bytes. As
    /// Redis does, reply the error [`commands::UNBLOCKED`](crate::commands::UNBLOCKED) and close
    /// the client's connection after the reply.
    WaitUnblocked {
        /// Which one.
        wait: WaitId,
    },
    /// A replica link sent a command other than `REPLCONF`; it was not run, and the link is
    /// closed (a [`NodeEvent::Close`] follows).
    UnexpectedCommand {
        /// The connection.
        link: LinkId,
        /// The command name.
        name: Bytes,
    },
}

/// Application misuse of the snapshot calls.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The snapshot is unknown, finished, abandoned, or not in the phase this call needs.
    #[error("snapshot {0:?} is not in progress or not in the phase this call needs")]
    UnknownSnapshot(SnapshotId),
    /// Nobody waits for this snapshot any more.
    #[error("nobody waits for snapshot {0:?}")]
    Abandoned(SnapshotId),
    /// `WAIT` on a replica (reply `-ERR ` + [`WAIT_ON_REPLICA`]).
    #[error("{WAIT_ON_REPLICA}")]
    WaitOnReplica,
}

/// Replication counters for `INFO stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// `sync_full`: full syncs served.
    pub sync_full: u64,
    /// `sync_partial_ok`: partial resyncs accepted.
    pub sync_partial_ok: u64,
    /// `sync_partial_err`: partial resyncs refused (a `?` id is not counted).
    pub sync_partial_err: u64,
    /// Snapshots started for replicas.
    pub snapshots: u64,
    /// Replicas dropped by the output-buffer limits.
    pub output_buffer_drops: u64,
    /// Replicas dropped for silence (`repl-timeout`).
    pub timeout_drops: u64,
    /// Stream bytes handed to replicas.
    pub repl_output_bytes: u64,
}

#[derive(Debug)]
struct Snapshot {
    id: SnapshotId,
    target: SnapshotTarget,
    filter: RdbFilter,
    /// `None` until started.
    offset: Option<ReplOffset>,
    mark: [u8; 40],
    rdb_version: u8,
}

/// One server's replication state (see the [module docs](self)).
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    now: Instant,
    rng: IdGenerator,
    ids: ReplicationIds,
    /// `master_repl_offset`, pending bytes included.
    offset: ReplOffset,
    backlog: Option<Backlog>,
    /// Propagated bytes not yet in the backlog.
    pending: BytesMut,
    /// The database of the last SELECT in the stream (`None`: SELECT before the next write).
    stream_db: Option<u32>,
    links: BTreeMap<LinkId, MasterSession>,
    snapshot: Option<Snapshot>,
    next_snapshot: u64,
    events: VecDeque<NodeEvent>,
    stats: NodeStats,
    /// Next 1 Hz cron tick.
    next_tick: Instant,
    /// Cron ticks since start (PING every `ping_period` ticks).
    ticks: u64,
    /// Since when no replica is attached (backlog TTL).
    no_replicas_since: Option<Instant>,
    /// The last replica went away while the clock was stale (an output-buffer limit reached
    /// from `propagate`): the next cron tick sets `no_replicas_since`, so that the backlog TTL
    /// never runs early.
    replicaless_unstamped: bool,
    /// Whether this node follows a master (its stream comes from upstream, not `propagate`).
    replica_of_master: bool,
    /// Whether the link to the master is up (sub-replicas may sync only then).
    upstream_up: bool,
    /// Clients blocked in `WAIT`.
    waits: Vec<wait::Waiter>,
    next_wait: u64,
    /// A `REPLCONF GETACK *` is due before the next bytes go out (one for all waiters).
    getack_wanted: bool,
    /// A `FAILOVER` in progress.
    failover: Option<failover::Failover>,
    /// Valkey dual-channel rdb connections whose main connection has not continued yet.
    psync_waits: BTreeMap<LinkId, PsyncWait>,
}

impl Node {
    /// A master with a fresh replication id, offset 0 and no backlog yet (Redis creates it
    /// when the first replica needs a full sync).
    pub fn new(config: NodeConfig, now: Instant) -> Node {
        let config = config.normalized();
        let mut rng = IdGenerator::new(config.id_seed);
        let ids = ReplicationIds::new(rng.next_id());
        Node {
            config,
            now,
            rng,
            ids,
            offset: ReplOffset::new(0),
            backlog: None,
            pending: BytesMut::new(),
            stream_db: None,
            links: BTreeMap::new(),
            snapshot: None,
            next_snapshot: 1,
            events: VecDeque::new(),
            stats: NodeStats::default(),
            next_tick: now + Duration::from_secs(1),
            ticks: 0,
            no_replicas_since: Some(now),
            replicaless_unstamped: false,
            replica_of_master: false,
            upstream_up: false,
            waits: Vec::new(),
            next_wait: 1,
            getack_wanted: false,
            failover: None,
            psync_waits: BTreeMap::new(),
        }
    }

    /// A master resuming the history saved in its own RDB (aux fields `repl-id`,
    /// `repl-offset`): as Redis 7 does on restart, it takes a fresh id, keeps the saved one as
    /// `replid2` valid up to `offset`, and keeps a backlog so its replicas continue partially.
    pub fn restored(config: NodeConfig, now: Instant, replid: ReplId, offset: ReplOffset) -> Node {
        let mut node = Node::new(config, now);
        node.ids = ReplicationIds::new(replid);
        let fresh = node.rng.next_id();
        node.ids.shift(fresh, offset);
        node.offset = offset;
        node.backlog = Some(Backlog::new(node.config.backlog_size, offset));
        node
    }

    /// A replica resuming the history saved in its own RDB: its id and offset are the saved
    /// ones, so its first `PSYNC <replid> <offset + 1>` continues where it stopped (Redis
    /// synthesizes a cached master the same way, protocol.md §3.7).
    pub fn restored_replica(
        config: NodeConfig,
        now: Instant,
        replid: ReplId,
        offset: ReplOffset,
    ) -> Node {
        let mut node = Node::new(config, now);
        node.ids = ReplicationIds::new(replid);
        node.offset = offset;
        node.backlog = Some(Backlog::new(node.config.backlog_size, offset));
        node.replica_of_master = true;
        node
    }

    /// The settings in force.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Changes `repl-backlog-size` (resizing the backlog at once).
    pub fn set_backlog_size(&mut self, size: u64) {
        self.config.backlog_size = size.max(MIN_BACKLOG_SIZE);
        let size = self.config.backlog_size;
        if let Some(b) = &mut self.backlog {
            b.set_size(size);
        }
    }

    /// Changes the other settings (the backlog size through
    /// [`set_backlog_size`](Self::set_backlog_size)).
    pub fn config_mut(&mut self) -> &mut NodeConfig {
        &mut self.config
    }

    /// The replication ids.
    pub fn ids(&self) -> &ReplicationIds {
        &self.ids
    }

    /// `master_repl_offset`.
    pub fn offset(&self) -> ReplOffset {
        self.offset
    }

    /// The backlog, once created.
    pub fn backlog(&self) -> Option<&Backlog> {
        self.backlog.as_ref()
    }

    /// Replication counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// One connection's session, if it has spoken the replication protocol.
    pub fn replica(&self, link: LinkId) -> Option<&MasterSession> {
        self.links.get(&link)
    }

    /// Every connection that became a replica link (INFO's `slaveN` order).
    pub fn replicas(&self) -> impl Iterator<Item = &MasterSession> + '_ {
        self.links.values().filter(|s| s.state.is_replica())
    }

    /// Online replicas whose last ACK is at most `min-replicas-max-lag` old (INFO's
    /// `min_slaves_good_slaves`).
    pub fn good_replicas(&self, now: Instant) -> usize {
        let lag = self.config.min_replicas_max_lag.as_secs();
        self.replicas()
            .filter(|s| {
                matches!(s.state, ReplicaState::Online | ReplicaState::WaitFirstAck)
                    && s.lag(now) <= lag
            })
            .count()
    }

    /// Whether `min-replicas-to-write` refuses writes now (reply `-NOREPLICAS Not enough good
    /// replicas to write.`). Always false on a replica or with the setting off.
    pub fn writes_refused(&self, now: Instant) -> bool {
        let need = self.config.min_replicas_to_write;
        !self.replica_of_master
            && need > 0
            && !self.config.min_replicas_max_lag.is_zero()
            && self.good_replicas(now) < need
    }

    /// Online replicas that acknowledged `offset` or beyond (what `WAIT` counts).
    pub fn replicas_acked(&self, offset: ReplOffset) -> usize {
        self.replicas()
            .filter(|s| {
                matches!(s.state, ReplicaState::Online | ReplicaState::WaitFirstAck)
                    && s.ack_offset >= offset
            })
            .count()
    }

    /// Bytes of a diskless snapshot queued for its slowest replica: pause the producer while
    /// this is above a few MiB.
    pub fn snapshot_buffered(&self, snapshot: SnapshotId) -> u64 {
        self.links
            .values()
            .filter(|s| s.snapshot.map(|(id, _)| id) == Some(snapshot.0))
            .map(|s| s.out_len)
            .max()
            .unwrap_or(0)
    }

    fn clamp(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    // ---------------------------------------------------------------- commands

    /// Runs `REPLCONF`, `PSYNC`, `SYNC` or `ROLE` for connection `link`; any other command is
    /// [`Handled::NotMine`]. Redis's pre-checks and error strings are applied (`-NOAUTH`,
    /// `-ERR Command not allowed inside a transaction`, arity).
    pub fn handle_command<A: AsRef<[u8]>>(
        &mut self,
        now: Instant,
        link: LinkId,
        caller: &Caller,
        argv: &[A],
    ) -> Handled {
        let now = self.clamp(now);
        let Some(name) = argv.first().map(AsRef::as_ref) else {
            return Handled::NotMine;
        };
        let cmd = if name.eq_ignore_ascii_case(b"REPLCONF") {
            Cmd::Replconf
        } else if name.eq_ignore_ascii_case(b"PSYNC") {
            Cmd::Psync
        } else if name.eq_ignore_ascii_case(b"SYNC") {
            Cmd::Sync
        } else if name.eq_ignore_ascii_case(b"ROLE") {
            Cmd::Role
        } else if name.eq_ignore_ascii_case(b"FAILOVER") {
            Cmd::Failover
        } else {
            return Handled::NotMine;
        };
        // Redis checks arity before authentication (`processCommand`).
        let lname = String::from_utf8_lossy(name).to_ascii_lowercase();
        let arity_ok = match cmd {
            Cmd::Replconf => true,
            Cmd::Psync => argv.len() >= 3,
            Cmd::Sync | Cmd::Role => argv.len() == 1,
            Cmd::Failover => true,
        };
        if !arity_ok {
            return reply_error(&format!(
                "ERR wrong number of arguments for '{lname}' command"
            ));
        }
        if !caller.authenticated {
            return reply_static(b"-NOAUTH Authentication required.\r\n");
        }
        match cmd {
            Cmd::Role => Handled::Reply(self.role_reply(now)),
            Cmd::Failover => self.failover_command(now, argv),
            Cmd::Replconf => self.replconf(now, link, caller, argv, false),
            Cmd::Psync | Cmd::Sync => {
                if caller.in_multi {
                    return reply_static(b"-ERR Command not allowed inside a transaction\r\n");
                }
                self.sync_command(now, link, caller, argv, cmd == Cmd::Sync)
            }
        }
    }

    fn session(&mut self, link: LinkId, now: Instant, caller: &Caller) -> &mut MasterSession {
        let limits = self.config.replica_input_limits;
        let s = self
            .links
            .entry(link)
            .or_insert_with(|| MasterSession::new(link, now, limits));
        if s.peer_ip.is_none() {
            s.peer_ip.clone_from(&caller.peer_ip);
        }
        s
    }

    fn replconf<A: AsRef<[u8]>>(
        &mut self,
        now: Instant,
        link: LinkId,
        caller: &Caller,
        argv: &[A],
        from_replica_link: bool,
    ) -> Handled {
        if argv.len().is_multiple_of(2) {
            return reply_static(b"-ERR syntax error\r\n");
        }
        // Read when the REPLCONF arrives, as the servers do.
        let rdb_channel_ok = self.config.rdb_channel && self.config.diskless_sync;
        let dual_channel_ok = self.config.dual_channel && self.config.diskless_sync;
        let mut i = 1;
        while i + 1 < argv.len() {
            let opt = argv[i].as_ref();
            let val = argv[i + 1].as_ref();
            i += 2;
            if opt.eq_ignore_ascii_case(b"ack") || opt.eq_ignore_ascii_case(b"fack") {
                // Only replicas' ACKs count; never a reply; the rest of the options is ignored.
                if opt.eq_ignore_ascii_case(b"ack") {
                    if let Some(off) = parse_i64(val) {
                        self.handle_ack(now, link, ReplOffset::new(off));
                    }
                }
                return Handled::NoReply;
            }
            if opt.eq_ignore_ascii_case(b"getack") {
                // On a master this does nothing (a replica answers its own master).
                return Handled::NoReply;
            }
            if opt.eq_ignore_ascii_case(b"main-ch-client-id") {
                // Redis 8: this rdb connection serves that main connection, which must be
                // waiting for it.
                let Some(id) = parse_i64(val) else {
                    return reply_static(b"-ERR value is not an integer or out of range\r\n");
                };
                let main = u64::try_from(id).ok().map(LinkId).filter(|m| {
                    *m != link
                        && self
                            .links
                            .get(m)
                            .is_some_and(|a| a.state == ReplicaState::WaitRdbChannel)
                });
                let Some(main) = main else {
                    return reply_error(&format!("ERR Unrecognized RDB client id: {id}"));
                };
                self.session(link, now, caller).main_channel = Some(main);
                continue;
            }
            if opt.eq_ignore_ascii_case(b"set-rdb-client-id") {
                // Valkey 8: this main connection continues from that rdb connection's $ENDOFF.
                let Some(id) = parse_i64(val) else {
                    return reply_static(b"-ERR value is not an integer or out of range\r\n");
                };
                let rdb = u64::try_from(id)
                    .ok()
                    .map(LinkId)
                    .filter(|b| self.psync_waits.contains_key(b));
                let Some(rdb) = rdb else {
                    return reply_error(&format!("ERR Unrecognized RDB client id {id}"));
                };
                self.session(link, now, caller).rdb_client = Some(rdb);
                continue;
            }
            let s = self.session(link, now, caller);
            if opt.eq_ignore_ascii_case(b"listening-port") {
                // Redis takes any `long` here (stored in an int) and shows it as given.
                match parse_i64(val).and_then(|p| i32::try_from(p).ok()) {
                    Some(p) => s.listening_port = i64::from(p),
                    None => {
                        return reply_static(b"-ERR value is not an integer or out of range\r\n")
                    }
                }
            } else if opt.eq_ignore_ascii_case(b"ip-address") {
                if val.len() >= 256 {
                    return reply_error(&format!(
                        "ERR REPLCONF ip-address provided by replica instance is too long: {} bytes",
                        val.len()
                    ));
                }
                s.announced_ip = Some(String::from_utf8_lossy(val).into_owned());
            } else if opt.eq_ignore_ascii_case(b"capa") {
                if val.eq_ignore_ascii_case(b"eof") {
                    s.capa.eof = true;
                } else if val.eq_ignore_ascii_case(b"psync2") {
                    s.capa.psync2 = true;
                } else if val.eq_ignore_ascii_case(b"rdb-channel-repl") && rdb_channel_ok {
                    s.capa.rdb_channel_repl = true;
                } else if val.eq_ignore_ascii_case(b"dual-channel") && dual_channel_ok {
                    s.capa.dual_channel = true;
                }
            } else if opt.eq_ignore_ascii_case(b"rdb-only") {
                match parse_flag(val) {
                    Ok(v) => s.rdb_only = v,
                    Err(reply) => return reply,
                }
            } else if opt.eq_ignore_ascii_case(b"rdb-channel") {
                match parse_flag(val) {
                    Ok(v) => s.rdb_channel = v,
                    Err(reply) => return reply,
                }
            } else if opt.eq_ignore_ascii_case(b"rdb-filter-only") {
                let mut filter = RdbFilter {
                    data: false,
                    functions: false,
                };
                for word in val.split(|b| *b == b' ').filter(|w| !w.is_empty()) {
                    if word.eq_ignore_ascii_case(b"functions") {
                        filter.functions = true;
                    } else {
                        return reply_error(&format!(
                            "ERR Unsupported rdb-filter-only option: {}",
                            String::from_utf8_lossy(word)
                        ));
                    }
                }
                s.filter = filter;
            } else if opt.eq_ignore_ascii_case(b"version") {
                // Valkey's `major.minor.patch`, each part 0..=255.
                if !valid_version(val) {
                    return reply_error(&format!(
                        "ERR Unrecognized version format: {}",
                        String::from_utf8_lossy(val)
                    ));
                }
                s.version = Some(String::from_utf8_lossy(val).into_owned());
            } else {
                return reply_error(&format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(opt)
                ));
            }
        }
        if from_replica_link {
            Handled::NoReply
        } else {
            reply_static(b"+OK\r\n")
        }
    }

    fn handle_ack(&mut self, now: Instant, link: LinkId, off: ReplOffset) {
        let Some(s) = self.links.get_mut(&link) else {
            return;
        };
        if !s.state.is_replica() {
            return;
        }
        if off > s.ack_offset {
            s.ack_offset = off;
        }
        s.ack_time = now;
        if matches!(
            s.state,
            ReplicaState::WaitFirstAck | ReplicaState::SendBulkAndStream | ReplicaState::BgRdbLoad
        ) {
            s.state = ReplicaState::Online;
        }
        self.check_waits(now);
        self.check_failover(now);
    }

    fn sync_command<A: AsRef<[u8]>>(
        &mut self,
        now: Instant,
        link: LinkId,
        caller: &Caller,
        argv: &[A],
        legacy: bool,
    ) -> Handled {
        if self.links.get(&link).is_some_and(|s| s.state.is_replica()) {
            return Handled::NoReply;
        }
        if !legacy && argv.len() > 3 && argv[3].as_ref().eq_ignore_ascii_case(b"failover") {
            if !self.replica_of_master {
                return reply_static(b"-ERR PSYNC FAILOVER can't be sent to a master.\r\n");
            }
            if !self.ids.id.matches(argv[1].as_ref()) {
                return reply_static(b"-ERR PSYNC FAILOVER replid must match my replid.\r\n");
            }
            // Our master hands over: promote, then answer its PSYNC like any other.
            self.become_master();
            self.events.push_back(NodeEvent::PromotedByFailover);
        }
        if self.failover.is_some() {
            return reply_static(b"-NOMASTERLINK Can't SYNC while failing over\r\n");
        }
        if self.replica_of_master && !self.upstream_up {
            return reply_static(
                b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n",
            );
        }
        let s = self.session(link, now, caller);
        if s.filter.is_filtered() && !s.capa.eof {
            return reply_static(b"-ERR Filtered replica requires EOF capability\r\n");
        }
        if legacy {
            s.pre_psync = true;
        } else {
            let replid = argv[1].as_ref();
            let Some(off) = parse_i64(argv[2].as_ref()) else {
                return reply_static(b"-ERR value is not an integer or out of range\r\n");
            };
            let off = ReplOffset::new(off);
            let window = self.flushed_backlog().map(Backlog::window);
            match self.ids.can_continue(replid, off, window) {
                PsyncCheck::Continue => {
                    self.continue_partially(now, link, off);
                    return Handled::ReplicaLink;
                }
                _ if replid == b"?" => {}
                _ => self.stats.sync_partial_err += 1,
            }
            // A full sync is needed: a replica that offered a two-connection sync (and that
            // the node honoured) gets it; the full sync is counted on its rdb connection.
            let s = self.link_mut(now, link);
            if s.capa.rdb_channel_repl && !s.rdb_channel {
                let s = self.start_waiting(now, link, ReplicaState::WaitRdbChannel);
                s.queue(Bytes::from(format!("+RDBCHANNELSYNC {}\r\n", link.0)));
                return Handled::ReplicaLink;
            }
            if s.capa.dual_channel && !s.rdb_channel {
                // The main connection stays a plain client until its PSYNC continues.
                return reply_static(b"+DUALCHANNELSYNC\r\n");
            }
        }
        // Full resynchronization.
        self.stats.sync_full += 1;
        let s = self.start_waiting(now, link, ReplicaState::WaitBgsaveStart);
        let (filter, needs_socket) = (s.filter, s.needs_socket());
        let rdb_version = self.links.get(&link).map(|s| self.rdb_version_of(s));
        // Attach to a disk snapshot being written for the same content and RDB version.
        if let Some(snap) = &self.snapshot {
            if let (SnapshotTarget::Disk, Some(off)) = (snap.target, snap.offset) {
                if snap.filter == filter
                    && !filter.is_filtered()
                    && !needs_socket
                    && rdb_version == Some(snap.rdb_version)
                {
                    let id = snap.id;
                    self.attach(link, id, off, snap.target, snap.mark);
                    return Handled::ReplicaLink;
                }
            }
        }
        self.maybe_request_snapshot(now);
        Handled::ReplicaLink
    }

    /// Link `link` (whose session exists) becomes a replica waiting in `state` for a full
    /// sync. The first replica ever creates the backlog: a new history starts here
    /// (protocol.md §2.3).
    fn start_waiting(
        &mut self,
        now: Instant,
        link: LinkId,
        state: ReplicaState,
    ) -> &mut MasterSession {
        if self.backlog.is_none() {
            self.ids = ReplicationIds::new(self.rng.next_id());
            self.backlog = Some(Backlog::new(self.config.backlog_size, self.offset));
        }
        self.no_replicas_since = None;
        let s = self.link_mut(now, link);
        s.state = state;
        s.waiting_since = now;
        s.ack_time = now;
        s
    }

    fn continue_partially(&mut self, now: Instant, link: LinkId, off: ReplOffset) {
        self.stats.sync_partial_ok += 1;
        self.no_replicas_since = None;
        let id = self.ids.id;
        // A Valkey main connection continuing from its rdb connection's $ENDOFF: the pin is
        // released, and the replica is online at its first ACK (after loading).
        let rdb_client = self.links.get_mut(&link).and_then(|s| s.rdb_client.take());
        let from_endoff = rdb_client.is_some_and(|b| self.psync_waits.remove(&b).is_some());
        let s = self.link_mut(now, link);
        s.state = if from_endoff {
            ReplicaState::BgRdbLoad
        } else {
            ReplicaState::Online
        };
        s.ack_time = now;
        s.pos = off;
        let line = if s.capa.psync2 {
            format!("+CONTINUE {id}\r\n")
        } else {
            "+CONTINUE\r\n".to_owned()
        };
        s.queue(Bytes::from(line));
        self.update_retain();
    }

    // ---------------------------------------------------------------- snapshots

    fn waiting(&self) -> impl Iterator<Item = &MasterSession> + '_ {
        self.links
            .values()
            .filter(|s| s.state == ReplicaState::WaitBgsaveStart)
    }

    /// Asks for a snapshot when replicas wait and none is in progress.
    fn maybe_request_snapshot(&mut self, now: Instant) {
        if self.snapshot.is_some() {
            return;
        }
        let Some(first) = self.waiting().min_by_key(|s| (s.waiting_since, s.link)) else {
            return;
        };
        let filter = first.filter;
        let rdb_version = self.rdb_version_of(first);
        let group: Vec<&MasterSession> = self
            .waiting()
            .filter(|s| s.filter == filter && self.rdb_version_of(s) == rdb_version)
            .collect();
        // Rdb connections are always served over the socket (replicas without `capa eof`
        // then wait for the next snapshot, which goes to disk).
        let socket = filter.is_filtered()
            || group.iter().any(|s| s.needs_socket())
            || (self.config.diskless_sync && group.iter().all(|s| s.capa.eof));
        let target = if socket {
            let oldest = group.iter().map(|s| s.waiting_since).min().unwrap_or(now);
            let max = self.config.diskless_sync_max_replicas;
            let due = now.saturating_duration_since(oldest) >= self.config.diskless_sync_delay
                || (max > 0 && group.len() >= max);
            if !due {
                return; // the cron tick looks again
            }
            SnapshotTarget::Socket
        } else {
            SnapshotTarget::Disk
        };
        let id = SnapshotId(self.next_snapshot);
        self.next_snapshot += 1;
        let mut mark = [0u8; 40];
        mark.copy_from_slice(self.rng.next_id().as_bytes());
        self.snapshot = Some(Snapshot {
            id,
            target,
            filter,
            offset: None,
            mark,
            rdb_version,
        });
        self.events.push_back(NodeEvent::SnapshotRequested {
            snapshot: id,
            target,
            filter,
            rdb_version,
        });
    }

    /// The RDB version a replica's snapshot is written in: the configured default, capped by
    /// what its announced version loads.
    pub fn rdb_version_of(&self, replica: &MasterSession) -> u8 {
        let default = self.config.snapshot_rdb_version;
        match replica.version().and_then(max_rdb_version_for) {
            Some(max) => default.min(max),
            None => default,
        }
    }

    fn attach(
        &mut self,
        link: LinkId,
        id: SnapshotId,
        off: ReplOffset,
        target: SnapshotTarget,
        mark: [u8; 40],
    ) {
        let replid = self.ids.id;
        let now = self.now;
        let Some(s) = self.links.get_mut(&link) else {
            return;
        };
        let valkey_rdb = s.is_valkey_rdb_channel();
        if valkey_rdb {
            // Valkey prints the id of its first database here: always 0. The stream after the
            // snapshot starts with a SELECT anyway.
            s.queue(Bytes::from(format!(
                "$ENDOFF:{off} {replid} 0 {}\r\n",
                link.0
            )));
        } else if !s.pre_psync {
            s.queue(Bytes::from(format!("+FULLRESYNC {replid} {off}\r\n")));
        }
        let main = s.main_channel;
        if target == SnapshotTarget::Socket {
            let mut hdr = BytesMut::with_capacity(47);
            hdr.put_slice(b"$EOF:");
            hdr.put_slice(&mark);
            hdr.put_slice(b"\r\n");
            s.queue(hdr.freeze());
        }
        s.state = ReplicaState::WaitBgsaveEnd;
        s.snapshot = Some((id.0, off));
        s.pos = off.next();
        if valkey_rdb {
            self.psync_waits.insert(
                link,
                PsyncWait {
                    pos: off.next(),
                    closed_at: None,
                },
            );
        }
        // A Redis 8 main connection gets the stream from the snapshot's offset + 1 at once.
        if let Some(a) = main.and_then(|a| self.links.get_mut(&a)) {
            if a.state == ReplicaState::WaitRdbChannel {
                a.state = ReplicaState::SendBulkAndStream;
                a.pos = off.next();
                a.ack_time = now;
            }
        }
        self.update_retain();
    }

    fn current_snapshot(&self, id: SnapshotId) -> Result<&Snapshot, NodeError> {
        match &self.snapshot {
            Some(s) if s.id == id => Ok(s),
            _ => Err(NodeError::UnknownSnapshot(id)),
        }
    }

    /// The application starts producing snapshot `id` now, with its data consistent at this
    /// instant: every replica waiting for it gets `+FULLRESYNC` with the returned offset.
    ///
    /// Returns [`NodeError::Abandoned`] (and forgets the snapshot) if nobody waits any more.
    pub fn handle_snapshot_started(
        &mut self,
        now: Instant,
        id: SnapshotId,
    ) -> Result<SnapshotStart, NodeError> {
        let now = self.clamp(now);
        let snap = self.current_snapshot(id)?;
        if snap.offset.is_some() {
            return Err(NodeError::UnknownSnapshot(id));
        }
        let (target, filter, mark, rdb_version) =
            (snap.target, snap.filter, snap.mark, snap.rdb_version);
        self.flush();
        let off = self.offset;
        let members: Vec<LinkId> = self
            .waiting()
            .filter(|s| {
                s.filter == filter
                    && self.rdb_version_of(s) == rdb_version
                    && match target {
                        SnapshotTarget::Disk => !s.needs_socket(),
                        SnapshotTarget::Socket => s.capa.eof,
                    }
            })
            .map(|s| s.link)
            .collect();
        if members.is_empty() {
            self.snapshot = None;
            self.maybe_request_snapshot(now);
            return Err(NodeError::Abandoned(id));
        }
        if let Some(snap) = &mut self.snapshot {
            snap.offset = Some(off);
        }
        for link in members {
            self.attach(link, id, off, target, mark);
        }
        // A master's next write re-selects its database; a replica's stream passes through
        // as it is, so its database (see `set_upstream_db`) stays known.
        let stream_db = if self.replica_of_master {
            self.stream_db.unwrap_or(0)
        } else {
            self.stream_db.take().unwrap_or(0)
        };
        self.stats.snapshots += 1;
        Ok(SnapshotStart {
            replid: self.ids.id,
            offset: off,
            stream_db,
        })
    }

    fn attached(&self, id: SnapshotId) -> Vec<LinkId> {
        self.links
            .values()
            .filter(|s| s.snapshot.map(|(sid, _)| sid) == Some(id.0))
            .map(|s| s.link)
            .collect()
    }

    /// The disk snapshot `id` is complete: its file is `len` bytes. Each attached replica
    /// gets `$<len>` and then, through [`poll_transmit`](Self::poll_transmit),
    /// [`Transmit::File`].
    pub fn handle_snapshot_file(
        &mut self,
        now: Instant,
        id: SnapshotId,
        len: u64,
    ) -> Result<(), NodeError> {
        let now = self.clamp(now);
        let snap = self.current_snapshot(id)?;
        if snap.target != SnapshotTarget::Disk || snap.offset.is_none() {
            return Err(NodeError::UnknownSnapshot(id));
        }
        self.snapshot = None;
        for link in self.attached(id) {
            let Some(s) = self.links.get_mut(&link) else {
                continue; // listed from `self.links` just above
            };
            s.queue(Bytes::from(format!("${len}\r\n")));
            s.state = ReplicaState::SendBulk;
            s.file = Some(len);
        }
        self.maybe_request_snapshot(now);
        Ok(())
    }

    /// The application wrote the whole [`Transmit::File`] to `link`: the replica is online and
    /// its stream starts right after the file's last byte.
    pub fn handle_file_sent(&mut self, now: Instant, link: LinkId) {
        let now = self.clamp(now);
        let Some(s) = self.links.get_mut(&link) else {
            return;
        };
        if s.state != ReplicaState::SendBulk || !s.file_in_flight {
            return;
        }
        s.file_in_flight = false;
        s.file = None;
        s.snapshot = None;
        s.ack_time = now;
        if s.rdb_only {
            s.state = ReplicaState::RdbTransmitted;
            self.events.push_back(NodeEvent::Close {
                link,
                reason: CloseReason::RdbTransmitted,
            });
        } else {
            s.state = ReplicaState::Online;
        }
        self.update_retain();
    }

    /// The next bytes of the diskless snapshot `id`, shared by every attached replica.
    pub fn handle_snapshot_chunk(
        &mut self,
        now: Instant,
        id: SnapshotId,
        data: Bytes,
    ) -> Result<(), NodeError> {
        self.clamp(now);
        let snap = self.current_snapshot(id)?;
        if snap.target != SnapshotTarget::Socket || snap.offset.is_none() {
            return Err(NodeError::UnknownSnapshot(id));
        }
        for link in self.attached(id) {
            let Some(s) = self.links.get_mut(&link) else {
                continue; // listed from `self.links` just above
            };
            s.queue(data.clone());
        }
        Ok(())
    }

    /// The diskless snapshot `id` is complete: the mark closes it, and each replica's stream
    /// starts at its first `REPLCONF ACK`.
    pub fn handle_snapshot_end(&mut self, now: Instant, id: SnapshotId) -> Result<(), NodeError> {
        let now = self.clamp(now);
        let snap = self.current_snapshot(id)?;
        if snap.target != SnapshotTarget::Socket || snap.offset.is_none() {
            return Err(NodeError::UnknownSnapshot(id));
        }
        let mark = Bytes::copy_from_slice(&snap.mark);
        self.snapshot = None;
        for link in self.attached(id) {
            let Some(s) = self.links.get_mut(&link) else {
                continue; // listed from `self.links` just above
            };
            s.queue(mark.clone());
            s.snapshot = None;
            s.ack_time = now;
            if s.rdb_only {
                s.state = ReplicaState::RdbTransmitted;
                let main = s.main_channel;
                self.events.push_back(NodeEvent::Close {
                    link,
                    reason: CloseReason::RdbTransmitted,
                });
                // Its Redis 8 main connection is online now (Redis: when the child exits).
                if let Some(a) = main.and_then(|a| self.links.get_mut(&a)) {
                    if a.state == ReplicaState::SendBulkAndStream {
                        a.state = ReplicaState::Online;
                        a.ack_time = now;
                    }
                }
            } else {
                s.state = ReplicaState::WaitFirstAck;
            }
        }
        self.update_retain();
        self.maybe_request_snapshot(now);
        Ok(())
    }

    /// Snapshot `id` could not be produced: its replicas are closed (those still waiting for
    /// it to start get `-ERR BGSAVE failed, replication can't continue` first).
    pub fn handle_snapshot_failed(&mut self, now: Instant, id: SnapshotId) {
        let now = self.clamp(now);
        let Ok(snap) = self.current_snapshot(id) else {
            return;
        };
        let (started, filter, rdb_version) = (snap.offset.is_some(), snap.filter, snap.rdb_version);
        self.snapshot = None;
        let victims: Vec<LinkId> = if started {
            self.attached(id)
        } else {
            self.waiting()
                .filter(|s| s.filter == filter && self.rdb_version_of(s) == rdb_version)
                .map(|s| s.link)
                .collect()
        };
        for link in victims {
            let Some(s) = self.links.get_mut(&link) else {
                continue; // listed from `self.links` just above
            };
            if !started {
                s.queue(Bytes::from_static(
                    b"-ERR BGSAVE failed, replication can't continue\r\n",
                ));
            }
            s.state = ReplicaState::RdbTransmitted;
            s.snapshot = None;
            s.file = None;
            let main = s.main_channel;
            self.events.push_back(NodeEvent::Close {
                link,
                reason: CloseReason::SnapshotFailed,
            });
            if let Some(a) = main {
                self.drop_main_channel(a);
            }
        }
        self.update_retain();
        self.maybe_request_snapshot(now);
    }

    // ---------------------------------------------------------------- stream

    /// Propagates one write executed on database `db` to every replica: encoded once into the
    /// backlog, preceded by `SELECT` when the stream's database changes.
    ///
    /// As in Redis 7.0, a master that has never had a replica (or whose backlog expired) has
    /// no backlog, and then the offset does not move.
    pub fn propagate<A: AsRef<[u8]>>(&mut self, db: u32, argv: &[A]) {
        if self.backlog.is_none() || argv.is_empty() {
            return;
        }
        self.select(db);
        self.append_command(argv);
    }

    /// Propagates a transaction: `MULTI`, the commands (each with its database, `SELECT`
    /// inserted where it changes), `EXEC`, kept together in the stream; a single command goes
    /// bare, and `SELECT` comes before `MULTI`, as Redis 7.0 does.
    pub fn propagate_transaction<A: AsRef<[u8]>, C: AsRef<[A]>>(&mut self, cmds: &[(u32, C)]) {
        let Some((first_db, _)) = cmds.first() else {
            return;
        };
        if self.backlog.is_none() {
            return;
        }
        if let [(db, argv)] = cmds {
            // One write: Redis 7 propagates it bare.
            self.select(*db);
            self.append_command(argv.as_ref());
            return;
        }
        self.select(*first_db);
        self.append_command(&[b"MULTI"]);
        for (db, c) in cmds {
            self.select(*db);
            self.append_command(c.as_ref());
        }
        self.append_command(&[b"EXEC"]);
    }

    fn select(&mut self, db: u32) {
        if self.stream_db != Some(db) {
            let mut buf = itoa_u32(db);
            let arg: &[u8] = buf.as_bytes_mut();
            self.append_command(&[&b"SELECT"[..], arg]);
            self.stream_db = Some(db);
        }
    }

    fn append_command<A: AsRef<[u8]>>(&mut self, argv: &[A]) {
        let before = self.pending.len();
        encode_command(argv, &mut self.pending);
        self.offset = self.offset.add((self.pending.len() - before) as u64);
        if self.pending.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// `REPLCONF GETACK *` into the stream, so that every replica acknowledges soon (what
    /// `WAIT` asks for once per event-loop turn).
    pub fn request_acks(&mut self) {
        if self.backlog.is_none() || self.links.values().all(|s| !s.state.is_replica()) {
            return;
        }
        self.append_command(&[&b"REPLCONF"[..], b"GETACK", b"*"]);
    }

    fn ping_replicas(&mut self) {
        // Fed "in the current database": never preceded by SELECT.
        self.append_command(&[b"ping"]);
    }

    fn flushed_backlog(&mut self) -> Option<&Backlog> {
        self.flush();
        self.backlog.as_ref()
    }

    /// Moves pending propagated bytes into the backlog, then applies the output-buffer limits.
    fn flush(&mut self) {
        if std::mem::take(&mut self.getack_wanted) && self.backlog.is_some() {
            self.append_command(&[&b"REPLCONF"[..], b"GETACK", b"*"]);
        }
        if self.pending.is_empty() {
            return;
        }
        let chunk = self.pending.split().freeze();
        if self.backlog.is_none() {
            return;
        }
        // Replicas' read positions move on every poll; the backlog needs the slowest one only
        // when it may trim, that is here, before an append (once per flush, not per poll).
        self.update_retain();
        if let Some(b) = &mut self.backlog {
            b.append(chunk);
        }
        self.check_output_limits(false);
    }

    /// `clock_fresh`: whether `self.now` is the current time (inside a `handle_*` call given
    /// `now`), not the last call's.
    fn check_output_limits(&mut self, clock_fresh: bool) {
        let lim = self.config.output_buffer_limit;
        let end = self.offset;
        let hard = if lim.hard == 0 {
            0
        } else {
            lim.hard.max(self.config.backlog_size)
        };
        let now = self.now;
        let mut victims = Vec::new();
        for s in self.links.values_mut() {
            if !s.pins_stream() {
                continue;
            }
            // A limit is reached at `>=`, as in Redis. Only the stream counts: the snapshot
            // bytes queued ahead of it are bounded by the producer's pacing
            // (`snapshot_buffered`), and counting them would drop every replica whose diskless
            // transfer is larger than the limit.
            let unsent = u64::try_from(end.value() - s.pos.value() + 1).unwrap_or(0);
            if hard > 0 && unsent >= hard {
                victims.push((
                    s.link,
                    CloseReason::OutputBufferHard {
                        pending: unsent,
                        limit: hard,
                    },
                ));
            } else if lim.soft > 0 && unsent >= lim.soft {
                let since = *s.soft_since.get_or_insert(now);
                // Redis drops only once the limit has been exceeded for *more* than the duration.
                if now.saturating_duration_since(since) > lim.soft_duration {
                    victims.push((
                        s.link,
                        CloseReason::OutputBufferSoft {
                            pending: unsent,
                            limit: lim.soft,
                        },
                    ));
                }
            } else {
                s.soft_since = None;
            }
        }
        // A Valkey rdb connection's pin counts like a replica's output buffer: past the hard
        // limit the pin goes, and the rdb connection with it.
        let lost: Vec<(LinkId, u64)> = self
            .psync_waits
            .iter()
            .map(|(b, w)| {
                (
                    *b,
                    u64::try_from(end.value() - w.pos.value() + 1).unwrap_or(0),
                )
            })
            .filter(|(_, unsent)| hard > 0 && *unsent >= hard)
            .collect();
        for (b, unsent) in lost {
            self.psync_waits.remove(&b);
            if self.links.contains_key(&b) {
                victims.push((
                    b,
                    CloseReason::OutputBufferHard {
                        pending: unsent,
                        limit: hard,
                    },
                ));
            }
        }
        let replicaless = self.no_replicas_since.is_some();
        for (link, reason) in victims {
            self.stats.output_buffer_drops += 1;
            self.drop_link(link, reason);
        }
        if !clock_fresh && !replicaless && self.no_replicas_since.is_some() {
            // The last replica went at `self.now`, the last call's clock, maybe well before
            // now: the next cron tick stamps it instead.
            self.no_replicas_since = None;
            self.replicaless_unstamped = true;
        }
    }

    /// The session of `link`, created if missing. Callers reach it only for a link whose
    /// session they just created or checked, so the insertion never happens in practice; it
    /// keeps the node consistent instead of panicking if that ever changed.
    fn link_mut(&mut self, now: Instant, link: LinkId) -> &mut MasterSession {
        let limits = self.config.replica_input_limits;
        self.links
            .entry(link)
            .or_insert_with(|| MasterSession::new(link, now, limits))
    }

    /// Closes every replica link (sub-replicas must learn a new history).
    fn drop_replica_links(&mut self, reason: CloseReason) {
        let links: Vec<LinkId> = self
            .links
            .values()
            .filter(|s| s.state.is_replica())
            .map(|s| s.link)
            .collect();
        for link in links {
            self.drop_link(link, reason.clone());
        }
    }

    fn drop_link(&mut self, link: LinkId, reason: CloseReason) {
        if let Some(s) = self.links.remove(&link) {
            self.events.push_back(NodeEvent::Close { link, reason });
            self.link_removed(&s);
        }
    }

    /// A session is gone: a Valkey rdb connection's pin starts its grace period, and a Redis 8
    /// main connection whose rdb connection died before its snapshot ended is dropped too.
    fn link_removed(&mut self, s: &MasterSession) {
        if let Some(w) = self.psync_waits.get_mut(&s.link) {
            w.closed_at.get_or_insert(self.now);
        }
        if let (Some(a), false) = (s.main_channel, s.state == ReplicaState::RdbTransmitted) {
            self.drop_main_channel(a);
        }
        self.after_link_removed();
    }

    /// Drops Redis 8 main connection `a` if it still depends on its rdb connection.
    fn drop_main_channel(&mut self, a: LinkId) {
        let waiting = self.links.get(&a).is_some_and(|m| {
            matches!(
                m.state,
                ReplicaState::WaitRdbChannel | ReplicaState::SendBulkAndStream
            )
        });
        if waiting {
            self.drop_link(a, CloseReason::RdbChannelClosed);
        }
    }

    fn after_link_removed(&mut self) {
        if let Some(snap) = &self.snapshot {
            if snap.offset.is_some() && self.attached(snap.id).is_empty() {
                let id = snap.id;
                // A disk snapshot keeps going for replicas that may still attach to it only
                // while someone waits; a socket one is useless now.
                self.snapshot = None;
                self.events
                    .push_back(NodeEvent::SnapshotAbandoned { snapshot: id });
                self.maybe_request_snapshot(self.now);
            }
        }
        if self.no_replicas_since.is_none() && self.replicas().next().is_none() {
            self.no_replicas_since = Some(self.now);
        }
        self.update_retain();
    }

    /// Keeps the bytes every replica still has to be sent.
    fn update_retain(&mut self) {
        let min = self
            .links
            .values()
            .filter(|s| s.pins_stream())
            .map(|s| s.pos)
            .chain(self.psync_waits.values().map(|w| w.pos))
            .min();
        if let Some(b) = &mut self.backlog {
            if b.retain_from() != min {
                b.set_retain_from(min);
            }
        }
    }

    // ---------------------------------------------------------------- links

    /// Bytes read from replica link `link` (`REPLCONF ACK`s and `\n` keepalives).
    ///
    /// A replica that breaks the protocol is closed ([`NodeEvent::Close`] with
    /// [`CloseReason::Protocol`]).
    pub fn handle_input(&mut self, now: Instant, link: LinkId, data: &[u8]) {
        let now = self.clamp(now);
        let Some(s) = self.links.get_mut(&link) else {
            return;
        };
        s.inbuf.extend_from_slice(data);
        loop {
            let Some(s) = self.links.get_mut(&link) else {
                return;
            };
            let cmd = match s.decoder.decode_request(&mut s.inbuf) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => return,
                Err(e) => {
                    self.drop_link(link, CloseReason::Protocol(e));
                    return;
                }
            };
            let Some(name) = cmd.argv.first() else {
                // An empty line: a replica busy loading says it is alive.
                s.ack_time = now;
                continue;
            };
            if name.eq_ignore_ascii_case(b"REPLCONF") {
                let caller = Caller::default();
                self.replconf(now, link, &caller, &cmd.argv, true);
            } else {
                // A replica must stay silent but for ACKs (protocol.md §7.5): Redis drops a
                // replica whose command would make it reply.
                let name = name.clone();
                self.events.push_back(NodeEvent::UnexpectedCommand {
                    link,
                    name: name.clone(),
                });
                self.drop_link(link, CloseReason::UnexpectedCommand(name));
                return;
            }
        }
    }

    /// The next bytes to write to link `link`, or `None` when it has nothing to send now.
    ///
    /// Stream bytes are zero-copy slices of the node's backlog.
    pub fn poll_transmit(&mut self, link: LinkId) -> Option<Transmit> {
        self.flush();
        let s = self.links.get_mut(&link)?;
        if let Some(b) = s.take_queued() {
            return Some(Transmit::Bytes(b));
        }
        if s.state == ReplicaState::SendBulk {
            if let (Some(len), false) = (s.file, s.file_in_flight) {
                s.file_in_flight = true;
                let snapshot = SnapshotId(s.snapshot.map_or(0, |(id, _)| id));
                return Some(Transmit::File { snapshot, len });
            }
            return None;
        }
        if !s.state.streams() || s.rdb_only {
            return None;
        }
        if s.pos > self.offset {
            return None; // up to date
        }
        let chunk = self.backlog.as_ref()?.range(s.pos)?.next()?;
        if chunk.is_empty() {
            return None;
        }
        s.pos = s.pos.add(chunk.len() as u64);
        self.stats.repl_output_bytes += chunk.len() as u64;
        Some(Transmit::Bytes(chunk))
    }

    /// Links that have something to send now (for event loops that poll only those).
    pub fn links_with_output(&mut self) -> Vec<LinkId> {
        self.flush();
        let end = self.offset;
        self.links
            .values()
            .filter(|s| {
                s.out_len > 0
                    || (s.file.is_some() && !s.file_in_flight)
                    || (s.state.streams() && !s.rdb_only && s.pos <= end)
            })
            .map(|s| s.link)
            .collect()
    }

    /// The connection closed (or the application closed it): forget its session.
    pub fn handle_disconnect(&mut self, now: Instant, link: LinkId) {
        self.clamp(now);
        if let Some(s) = self.links.remove(&link) {
            self.link_removed(&s);
        }
    }

    // ---------------------------------------------------------------- time

    /// The next instant [`handle_timeout`](Self::handle_timeout) has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waits = self.waits.iter().filter_map(|w| w.deadline).min();
        let failover = self.failover.as_ref().and_then(|f| f.deadline);
        [Some(self.next_tick), waits, failover]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the 1 Hz replication cron when due: PINGs every `repl-ping-replica-period`,
    /// `\n` keepalives to replicas waiting for a snapshot, `repl-timeout`, the soft
    /// output-buffer limit, the diskless delay and `repl-backlog-ttl`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clamp(now);
        self.check_waits(now);
        self.check_failover(now);
        if now < self.next_tick {
            return;
        }
        // The next whole second after `now`, in constant time whatever the gap.
        let late = now.saturating_duration_since(self.next_tick).as_secs();
        self.next_tick += Duration::from_secs(late.saturating_add(1));
        self.ticks += 1;
        let any_replica = self.replicas().next().is_some();
        let period = self.config.ping_period.as_secs().max(1);
        if any_replica && self.ticks.is_multiple_of(period) && !self.replica_of_master {
            self.ping_replicas();
        }
        let disk_snapshot = matches!(&self.snapshot, Some(s) if s.target == SnapshotTarget::Disk);
        let timeout = self.config.repl_timeout;
        let mut timed_out = Vec::new();
        for s in self.links.values_mut() {
            match s.state {
                ReplicaState::WaitBgsaveStart => s.queue(Bytes::from_static(b"\n")),
                ReplicaState::WaitBgsaveEnd if disk_snapshot => s.queue(Bytes::from_static(b"\n")),
                ReplicaState::Online | ReplicaState::WaitFirstAck
                    if !s.pre_psync && now.saturating_duration_since(s.ack_time) > timeout =>
                {
                    timed_out.push(s.link)
                }
                _ => {}
            }
        }
        for link in timed_out {
            self.stats.timeout_drops += 1;
            self.drop_link(link, CloseReason::Timeout);
        }
        // Valkey frees an rdb connection's pin once its grace period is over.
        let before = self.psync_waits.len();
        self.psync_waits.retain(|_, w| {
            w.closed_at
                .is_none_or(|t| now.saturating_duration_since(t) <= RDB_CLIENT_GRACE)
        });
        if self.psync_waits.len() != before {
            self.update_retain();
        }
        self.flush();
        self.check_output_limits(true);
        self.maybe_request_snapshot(now);
        let ttl = self.config.backlog_ttl;
        if std::mem::take(&mut self.replicaless_unstamped)
            && self.no_replicas_since.is_none()
            && self.replicas().next().is_none()
        {
            self.no_replicas_since = Some(now);
        }
        if !self.replica_of_master && !ttl.is_zero() && self.backlog.is_some() {
            if let Some(since) = self.no_replicas_since {
                // Strictly more than the TTL, as Redis compares.
                if self.links.values().all(|s| !s.state.is_replica())
                    && self.psync_waits.is_empty()
                    && now.saturating_duration_since(since) > ttl
                {
                    // Nobody can resume this history any more: forget it.
                    self.backlog = None;
                    self.pending.clear();
                    self.ids = ReplicationIds::new(self.rng.next_id());
                }
            }
        }
    }

    /// Events for the application; drain after every `handle_*` call.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    // ---------------------------------------------------------------- replica role

    /// Marks this node as following a master (`true`) or as a master (`false`), and whether
    /// the link to that master is up. A replica serves sub-replicas only while its link is up
    /// (`-NOMASTERLINK` otherwise), never PINGs them itself, and never frees its backlog.
    pub fn set_upstream(&mut self, following: bool, link_up: bool) {
        self.replica_of_master = following;
        self.upstream_up = following && link_up;
    }

    /// `REPLICAOF host port`: this node starts following a master. As in Redis 7.0 its
    /// sub-replicas stay connected (they are closed only when the history changes: a
    /// `+CONTINUE` with another id, or a full sync loaded), and its ids, offset and backlog stay
    /// as they are, so that its first `PSYNC` can continue its own history with the new master
    /// (a demoted master continues with the replica that replaced it). It stops PINGing and
    /// propagating: from now on its stream comes from upstream. A snapshot in progress is
    /// abandoned ([`NodeEvent::SnapshotAbandoned`]) and the replicas that were receiving it are
    /// closed ([`CloseReason::SnapshotFailed`]): their transfer cannot be resumed. Clients
    /// blocked in `WAIT` are unblocked with an error ([`NodeEvent::WaitUnblocked`]), as Redis
    /// unblocks them when it becomes a replica.
    pub fn follow(&mut self) {
        self.flush();
        self.unblock_waits();
        self.replica_of_master = true;
        self.upstream_up = false;
        if let Some(snap) = self.snapshot.take() {
            self.events
                .push_back(NodeEvent::SnapshotAbandoned { snapshot: snap.id });
            // Replicas attached to it already have their `+FULLRESYNC` (and maybe part of the
            // transfer): they cannot be given another one, so they are closed and resync (the
            // two-connection syncs as after a change of history). Those still waiting for a
            // snapshot to start wait for the next one.
            for link in self.attached(snap.id) {
                self.psync_waits.remove(&link);
                let reason = if self.links.get(&link).is_some_and(|s| s.rdb_channel) {
                    CloseReason::HistoryChanged
                } else {
                    CloseReason::SnapshotFailed
                };
                self.drop_link(link, reason);
            }
        }
    }

    /// `REPLICAOF NO ONE`: this replica becomes a master. As Redis does, it keeps its data,
    /// offset and backlog, moves its master's id to `replid2` (valid up to the current offset)
    /// under a fresh id, and closes its sub-replicas so they continue partially with the new
    /// id. The next write is preceded by `SELECT`. `repl-backlog-ttl` counts from `now` while
    /// it has no replica.
    pub fn promote(&mut self, now: Instant) {
        self.clamp(now);
        self.become_master();
    }

    /// [`Node::promote`] at the node's current time (inside a `handle_*` call).
    fn become_master(&mut self) {
        self.flush();
        let fresh = self.rng.next_id();
        self.ids.shift(fresh, self.offset);
        self.replica_of_master = false;
        self.upstream_up = false;
        self.stream_db = None;
        if self.backlog.is_none() {
            self.backlog = Some(Backlog::new(self.config.backlog_size, self.offset));
        }
        self.drop_replica_links(CloseReason::HistoryChanged);
        self.no_replicas_since = Some(self.now);
    }

    /// The database this replica's stream is in at its offset: its master link's
    /// [`ReplicaSession::db`](crate::replica::ReplicaSession::db), given after each
    /// [`handle_upstream_stream`](Self::handle_upstream_stream). A snapshot this node serves
    /// its own sub-replicas records it ([`SnapshotStart::stream_db`], the `repl-stream-db` aux
    /// field), as Redis records its master client's database: the stream passes through
    /// unparsed, so without it a sub-replica's full sync would start in the database of this
    /// node's own last full sync and apply writes to the wrong one until the next `SELECT`.
    /// Ignored on a master (its stream's database is the one [`propagate`](Self::propagate)
    /// tracks).
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::Bytes;
    /// use respsync::ids::{ReplId, ReplOffset};
    /// use respsync::node::{Caller, LinkId, Node, NodeConfig, NodeEvent};
    ///
    /// let now = Instant::now();
    /// let mut node = Node::new(NodeConfig { diskless_sync: false, ..NodeConfig::default() }, now);
    /// node.follow();
    /// let id = ReplId::parse(&[b'a'; 40]).unwrap();
    /// node.handle_upstream_full_sync(id, ReplOffset::new(100), 0);
    /// node.set_upstream(true, true);
    /// node.handle_upstream_stream(Bytes::from_static(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"));
    /// node.set_upstream_db(3);
    /// let psync: [&[u8]; 3] = [b"PSYNC", b"?", b"-1"];
    /// node.handle_command(now, LinkId(1), &Caller::default(), &psync);
    /// let Some(NodeEvent::SnapshotRequested { snapshot, .. }) = node.poll_event() else { panic!() };
    /// assert_eq!(node.handle_snapshot_started(now, snapshot).unwrap().stream_db, 3);
    /// ```
    pub fn set_upstream_db(&mut self, db: u32) {
        if self.replica_of_master {
            self.stream_db = Some(db);
        }
    }

    /// Whether this node follows a master.
    pub fn is_replica(&self) -> bool {
        self.replica_of_master
    }

    /// A full sync from this node's master finished loading: the node adopts its history
    /// (`replid`, `offset`, `stream_db`), starts an empty backlog there and closes its own
    /// sub-replicas, which must resync against the new history.
    pub fn handle_upstream_full_sync(
        &mut self,
        replid: ReplId,
        offset: ReplOffset,
        stream_db: u32,
    ) {
        self.ids = ReplicationIds::new(replid);
        self.offset = offset;
        self.pending.clear();
        self.backlog = Some(Backlog::new(self.config.backlog_size, offset));
        self.stream_db = Some(stream_db);
        self.snapshot = None;
        self.psync_waits.clear();
        self.drop_replica_links(CloseReason::HistoryChanged);
    }

    /// A partial resync with this node's master succeeded. If the master's id changed, the
    /// node shifts its ids (the old one stays valid up to its offset) and closes its
    /// sub-replicas so they learn the new id (they continue partially through `replid2`).
    pub fn handle_upstream_continue(&mut self, replid: ReplId) {
        if self.backlog.is_none() {
            self.backlog = Some(Backlog::new(self.config.backlog_size, self.offset));
        }
        if replid != self.ids.id {
            self.flush();
            self.ids.shift(replid, self.offset);
            self.drop_replica_links(CloseReason::HistoryChanged);
        }
    }

    /// Stream bytes applied from this node's master (from
    /// [`ReplicaSession::poll_stream`](crate::replica::ReplicaSession::poll_stream)): appended
    /// to the backlog as they are, and so passed on byte for byte to sub-replicas.
    pub fn handle_upstream_stream(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.flush();
        let len = bytes.len() as u64;
        self.update_retain();
        let (size, offset) = (self.config.backlog_size, self.offset);
        self.backlog
            .get_or_insert_with(|| Backlog::new(size, offset))
            .append(bytes);
        self.offset = self.offset.add(len);
        self.check_output_limits(false);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Failover,
    Replconf,
    Psync,
    Sync,
    Role,
}

fn reply_static(b: &'static [u8]) -> Handled {
    Handled::Reply(Bytes::from_static(b))
}

fn reply_error(msg: &str) -> Handled {
    Handled::Reply(Bytes::from(format!("-{msg}\r\n")))
}

/// A `0|1` REPLCONF value: an integer first, then the range, as Redis's
/// `getRangeLongFromObjectOrReply`.
fn parse_flag(val: &[u8]) -> Result<bool, Handled> {
    match parse_i64(val) {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        Some(_) => Err(reply_static(
            b"-ERR value is out of range, value must between 0 and 1\r\n",
        )),
        None => Err(reply_static(
            b"-ERR value is not an integer or out of range\r\n",
        )),
    }
}

/// Whether `v` is a version Valkey accepts in `REPLCONF version`: three dot-separated decimal
/// parts (possibly empty), each at most 255.
fn valid_version(v: &[u8]) -> bool {
    let parts: Vec<&[u8]> = v.split(|b| *b == b'.').collect();
    !v.is_empty()
        && parts.len() == 3
        && parts.iter().all(|p| {
            p.iter().all(u8::is_ascii_digit)
                && p.iter()
                    .try_fold(0u32, |n, d| {
                        let n = n * 10 + u32::from(d - b'0');
                        (n <= 255).then_some(n)
                    })
                    .is_some()
        })
}

/// A small decimal buffer for a database number.
struct DbDigits([u8; 10], usize);

impl DbDigits {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.0[self.1..]
    }
}

fn itoa_u32(mut v: u32) -> DbDigits {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    DbDigits(buf, i)
}

#[cfg(test)]
mod tests;
