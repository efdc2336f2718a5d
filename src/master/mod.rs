//! `MasterSession`: one replica as its master sees it.
//!
//! A [`MasterSession`] is created by [`Node`](crate::node::Node) for a client connection the
//! first time it sends `REPLCONF`, `PSYNC` or `SYNC`, and lives until the connection closes. It
//! records what the replica announced during the handshake (listening port, address,
//! capabilities, `rdb-only`, `rdb-filter-only`) and, once the connection has become a replica
//! link, where it stands: the state Redis names (`wait_bgsave`, `send_bulk`, `online`), the
//! offset it acknowledged and when, and the position in the node's shared backlog from which
//! its stream continues.
//!
//! Sessions are read through [`Node::replica`](crate::node::Node::replica) and
//! [`Node::replicas`](crate::node::Node::replicas); everything that changes them goes through
//! the node, which owns the one backlog every replica reads from.
//!
//! ```
//! use std::time::Instant;
//! use respsync::node::{Caller, Handled, LinkId, Node, NodeConfig};
//! use respsync::master::ReplicaState;
//!
//! let now = Instant::now();
//! let mut node = Node::new(NodeConfig::default(), now);
//! let link = LinkId(7);
//! let caller = Caller::default();
//! let argv: Vec<&[u8]> = vec![b"REPLCONF", b"listening-port", b"6380", b"capa", b"eof"];
//! assert!(matches!(node.handle_command(now, link, &caller, &argv), Handled::Reply(r) if &r[..] == b"+OK\r\n"));
//! let session = node.replica(link).unwrap();
//! assert_eq!(session.listening_port(), 6380);
//! assert!(session.capabilities().eof);
//! assert_eq!(session.state(), ReplicaState::Handshake);
//! ```

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::ids::ReplOffset;
use crate::resp::{Decoder, Limits};

/// An opaque handle naming one client connection to a [`Node`](crate::node::Node). The
/// application chooses it (a connection counter, a slab index, a file descriptor) and keeps it
/// unique among the node's live connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// The replica's state, as its master sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaState {
    /// The connection sent `REPLCONF` but not yet `PSYNC` or `SYNC`: not a replica yet.
    Handshake,
    /// Waiting for a snapshot to start (`WAIT_BGSAVE_START`, INFO `wait_bgsave`).
    WaitBgsaveStart,
    /// Attached to a snapshot being produced (`WAIT_BGSAVE_END`, INFO `wait_bgsave`).
    WaitBgsaveEnd,
    /// Receiving the snapshot file (`SEND_BULK`, INFO `send_bulk`).
    SendBulk,
    /// Diskless snapshot sent; the stream starts at the replica's first `REPLCONF ACK`
    /// (INFO `online`, as Redis 7 shows it).
    WaitFirstAck,
    /// Streaming (`ONLINE`, INFO `online`).
    Online,
    /// An `rdb-only` client got its snapshot; the node closes it.
    RdbTransmitted,
    /// Redis 8 rdb channel, main connection: `+RDBCHANNELSYNC <id>` was sent and the replica's
    /// rdb connection has not had its snapshot started yet (`SLAVE_STATE_WAIT_RDB_CHANNEL`,
    /// INFO `wait_bgsave`). Nothing at all is sent on it, not even keepalives.
    WaitRdbChannel,
    /// Redis 8 rdb channel, main connection: the snapshot goes over the rdb connection while
    /// the stream flows here from the snapshot's offset + 1 (INFO `send_bulk_and_stream`).
    /// Online when the snapshot ends or at the first `REPLCONF ACK`.
    SendBulkAndStream,
    /// Valkey dual channel, main connection: its `PSYNC` continued from the `$ENDOFF` offset
    /// while the replica loads the snapshot; the stream flows, online at the first
    /// `REPLCONF ACK` (Valkey's `bg_transfer`).
    BgRdbLoad,
}

impl ReplicaState {
    /// The word INFO's `slaveN:` line prints (`None` for states INFO does not list).
    pub fn info_name(self) -> Option<&'static str> {
        match self {
            ReplicaState::Handshake | ReplicaState::RdbTransmitted => None,
            ReplicaState::WaitBgsaveStart
            | ReplicaState::WaitBgsaveEnd
            | ReplicaState::WaitRdbChannel => Some("wait_bgsave"),
            ReplicaState::SendBulk => Some("send_bulk"),
            ReplicaState::WaitFirstAck | ReplicaState::Online => Some("online"),
            ReplicaState::SendBulkAndStream => Some("send_bulk_and_stream"),
            ReplicaState::BgRdbLoad => Some("bg_transfer"),
        }
    }

    /// Whether the replica is sent the stream in this state (when it is not `rdb-only`).
    pub fn streams(self) -> bool {
        matches!(
            self,
            ReplicaState::Online | ReplicaState::SendBulkAndStream | ReplicaState::BgRdbLoad
        )
    }

    /// Whether the connection has become a replica link (`PSYNC` or `SYNC` was accepted).
    pub fn is_replica(self) -> bool {
        !matches!(self, ReplicaState::Handshake)
    }
}

/// Capabilities a replica declared with `REPLCONF capa`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `capa eof`: it can read a diskless (`$EOF:`) transfer.
    pub eof: bool,
    /// `capa psync2`: it understands `+CONTINUE <replid>`.
    pub psync2: bool,
    /// `capa rdb-channel-repl` (Redis 8), recorded only when the node honoured it: its
    /// [`NodeConfig::rdb_channel`](crate::node::NodeConfig::rdb_channel) and
    /// [`diskless_sync`](crate::node::NodeConfig::diskless_sync) were on when the `REPLCONF`
    /// arrived. A full sync is then answered `+RDBCHANNELSYNC <link id>`.
    pub rdb_channel_repl: bool,
    /// `capa dual-channel` (Valkey 8), recorded only when the node honoured it
    /// ([`NodeConfig::dual_channel`](crate::node::NodeConfig::dual_channel) and
    /// `diskless_sync` on). A full sync is then answered `+DUALCHANNELSYNC`.
    pub dual_channel: bool,
}

/// What a snapshot must contain (`REPLCONF rdb-filter-only`). Replicas with different filters
/// never share a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RdbFilter {
    /// Keys and values are included.
    pub data: bool,
    /// Function libraries are included.
    pub functions: bool,
}

impl RdbFilter {
    /// Everything: what a replica gets.
    pub const ALL: RdbFilter = RdbFilter {
        data: true,
        functions: true,
    };

    /// Whether this is a filtered request (always sent diskless, never from a disk file).
    pub fn is_filtered(self) -> bool {
        self != RdbFilter::ALL
    }
}

/// One replica as its master sees it (see the [module docs](self)).
#[derive(Debug)]
pub struct MasterSession {
    pub(crate) link: LinkId,
    pub(crate) state: ReplicaState,
    pub(crate) listening_port: i64,
    pub(crate) announced_ip: Option<String>,
    pub(crate) peer_ip: Option<String>,
    pub(crate) capa: Capabilities,
    pub(crate) rdb_only: bool,
    pub(crate) filter: RdbFilter,
    pub(crate) version: Option<String>,
    /// Came in with legacy `SYNC` (no `+FULLRESYNC`, exempt from the ACK timeout).
    pub(crate) pre_psync: bool,
    /// `REPLCONF rdb-channel 1`: the second connection of a two-connection full sync.
    pub(crate) rdb_channel: bool,
    /// `REPLCONF main-ch-client-id <id>` (Redis 8): the main connection this rdb connection
    /// serves.
    pub(crate) main_channel: Option<LinkId>,
    /// `REPLCONF set-rdb-client-id <id>` (Valkey 8): the rdb connection whose `$ENDOFF` this
    /// main connection continues from.
    pub(crate) rdb_client: Option<LinkId>,
    pub(crate) ack_offset: ReplOffset,
    pub(crate) ack_time: Instant,
    /// Since when it has waited for a snapshot (`WaitBgsaveStart`).
    pub(crate) waiting_since: Instant,
    /// The snapshot it is attached to, and that snapshot's offset.
    pub(crate) snapshot: Option<(u64, ReplOffset)>,
    /// Next stream byte to send once streaming (`offset + 1` of the last byte sent).
    pub(crate) pos: ReplOffset,
    /// Control bytes and snapshot chunks queued ahead of the stream.
    pub(crate) out: VecDeque<Bytes>,
    pub(crate) out_len: u64,
    /// A disk snapshot file to hand to the application (`SendBulk`), not yet handed.
    pub(crate) file: Option<u64>,
    /// The file was handed over; waiting for [`Node::handle_file_sent`](crate::node::Node::handle_file_sent).
    pub(crate) file_in_flight: bool,
    /// Since when the output buffer has been over the soft limit.
    pub(crate) soft_since: Option<Instant>,
    pub(crate) inbuf: BytesMut,
    pub(crate) decoder: Decoder,
    pub(crate) created: Instant,
}

impl MasterSession {
    pub(crate) fn new(link: LinkId, now: Instant, limits: Limits) -> MasterSession {
        MasterSession {
            link,
            state: ReplicaState::Handshake,
            listening_port: 0,
            announced_ip: None,
            peer_ip: None,
            capa: Capabilities::default(),
            rdb_only: false,
            filter: RdbFilter::ALL,
            version: None,
            pre_psync: false,
            rdb_channel: false,
            main_channel: None,
            rdb_client: None,
            ack_offset: ReplOffset::new(0),
            ack_time: now,
            waiting_since: now,
            snapshot: None,
            pos: ReplOffset::new(0),
            out: VecDeque::new(),
            out_len: 0,
            file: None,
            file_in_flight: false,
            soft_since: None,
            inbuf: BytesMut::new(),
            decoder: Decoder::new(limits),
            created: now,
        }
    }

    /// The application's handle for this connection.
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// The replica's state.
    pub fn state(&self) -> ReplicaState {
        self.state
    }

    /// The port announced with `REPLCONF listening-port` (0 if none).
    pub fn listening_port(&self) -> i64 {
        self.listening_port
    }

    /// The address INFO prints: the one announced with `REPLCONF ip-address`, else the peer
    /// address the application gave in [`Caller`](crate::node::Caller).
    pub fn ip(&self) -> &str {
        self.announced_ip
            .as_deref()
            .or(self.peer_ip.as_deref())
            .unwrap_or("")
    }

    /// Declared capabilities.
    pub fn capabilities(&self) -> Capabilities {
        self.capa
    }

    /// Whether it asked for the snapshot only (`REPLCONF rdb-only 1`, e.g. `redis-cli --rdb`).
    pub fn rdb_only(&self) -> bool {
        self.rdb_only
    }

    /// What its snapshot must contain (`REPLCONF rdb-filter-only`).
    pub fn filter(&self) -> RdbFilter {
        self.filter
    }

    /// The server version it announced with `REPLCONF version` (Valkey 8 sends it).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Whether it came in with legacy `SYNC`.
    pub fn is_legacy_sync(&self) -> bool {
        self.pre_psync
    }

    /// Whether it is the rdb connection of a two-connection full sync (`REPLCONF rdb-channel 1`).
    pub fn is_rdb_channel(&self) -> bool {
        self.rdb_channel
    }

    /// For a Redis 8 rdb connection: its main connection (`REPLCONF main-ch-client-id`).
    pub fn main_channel(&self) -> Option<LinkId> {
        self.main_channel
    }

    /// Whether this is a Valkey dual-channel rdb connection: it gets `$ENDOFF:` instead of
    /// `+FULLRESYNC`, and its main connection continues with `PSYNC` on its own.
    pub(crate) fn is_valkey_rdb_channel(&self) -> bool {
        self.rdb_channel && self.pre_psync && self.main_channel.is_none()
    }

    /// An rdb connection that can read `$EOF:`: served by socket snapshots only, as the
    /// servers do (an rdb connection without `capa eof` is treated as a plain `rdb-only`
    /// client).
    pub(crate) fn needs_socket(&self) -> bool {
        self.rdb_channel && self.capa.eof
    }

    /// The last offset it acknowledged (`REPLCONF ACK`), 0 before the first.
    pub fn ack_offset(&self) -> ReplOffset {
        self.ack_offset
    }

    /// When it last acknowledged (or sent a `\n` keepalive); the connection time before that.
    pub fn ack_time(&self) -> Instant {
        self.ack_time
    }

    /// Whole seconds since its last ACK, as INFO's `lag=` prints it (0 unless online).
    pub fn lag(&self, now: Instant) -> u64 {
        match self.state {
            ReplicaState::Online | ReplicaState::WaitFirstAck => {
                now.saturating_duration_since(self.ack_time).as_secs()
            }
            _ => 0,
        }
    }

    /// The next stream offset it will be sent (meaningful once a sync has started).
    pub fn stream_position(&self) -> ReplOffset {
        self.pos
    }

    /// When the connection first spoke the replication protocol.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Whether it reads the shared stream: bytes from [`stream_position`](Self::stream_position)
    /// on must stay in the backlog for it.
    pub(crate) fn pins_stream(&self) -> bool {
        !self.rdb_only
            && (self.state.streams()
                || matches!(
                    self.state,
                    ReplicaState::WaitBgsaveEnd
                        | ReplicaState::SendBulk
                        | ReplicaState::WaitFirstAck
                ))
    }

    pub(crate) fn queue(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.out_len += bytes.len() as u64;
        self.out.push_back(bytes);
    }

    pub(crate) fn take_queued(&mut self) -> Option<Bytes> {
        let b = self.out.pop_front()?;
        self.out_len -= b.len() as u64;
        Some(b)
    }
}

/// Parses a decimal integer argument as Redis's `string2ll` does (no sign `+`, no leading
/// zeros, no spaces).
pub(crate) fn parse_i64(arg: &[u8]) -> Option<i64> {
    ReplOffset::parse(arg).map(ReplOffset::value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_names_follow_redis() {
        assert_eq!(ReplicaState::Handshake.info_name(), None);
        assert_eq!(
            ReplicaState::WaitBgsaveStart.info_name(),
            Some("wait_bgsave")
        );
        assert_eq!(ReplicaState::WaitBgsaveEnd.info_name(), Some("wait_bgsave"));
        assert_eq!(ReplicaState::SendBulk.info_name(), Some("send_bulk"));
        assert_eq!(ReplicaState::WaitFirstAck.info_name(), Some("online"));
        assert_eq!(ReplicaState::Online.info_name(), Some("online"));
        assert_eq!(ReplicaState::RdbTransmitted.info_name(), None);
        assert_eq!(
            ReplicaState::WaitRdbChannel.info_name(),
            Some("wait_bgsave")
        );
        assert_eq!(
            ReplicaState::SendBulkAndStream.info_name(),
            Some("send_bulk_and_stream")
        );
        assert_eq!(ReplicaState::BgRdbLoad.info_name(), Some("bg_transfer"));
    }

    #[test]
    fn integers_parse_like_string2ll() {
        assert_eq!(parse_i64(b"6380"), Some(6380));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b" 1"), None);
    }
}
