//! [`NodeConfig`]: the master-side settings of a [`Node`](super::Node), with Redis's names and
//! defaults.

use std::time::Duration;

use crate::backlog::DEFAULT_BACKLOG_SIZE;
use crate::resp::Limits;

/// Redis's smallest `repl-backlog-size` (`CONFIG_REPL_BACKLOG_MIN_SIZE`, 16 KiB).
pub const MIN_BACKLOG_SIZE: u64 = 16 * 1024;

/// `client-output-buffer-limit replica <hard> <soft> <soft-seconds>`.
///
/// A replica whose unsent stream reaches `hard` bytes, or stays at `soft` or more for longer
/// than `soft_duration`, is disconnected (Redis compares with `>=` too). As in Redis, the hard
/// limit is never applied below the backlog size, so a partial resync just accepted is not cut
/// at once. A zero limit is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBufferLimit {
    /// Hard limit in bytes (Redis: 256 MiB).
    pub hard: u64,
    /// Soft limit in bytes (Redis: 64 MiB).
    pub soft: u64,
    /// How long the soft limit may be exceeded (Redis: 60 s).
    pub soft_duration: Duration,
}

impl Default for OutputBufferLimit {
    fn default() -> Self {
        OutputBufferLimit {
            hard: 256 * 1024 * 1024,
            soft: 64 * 1024 * 1024,
            soft_duration: Duration::from_secs(60),
        }
    }
}

/// Master-side settings of a [`Node`](super::Node). Defaults are Redis 7.0's, plus the
/// two-connection full syncs of Redis 8 and Valkey 8 (both on).
///
/// ```
/// use std::time::Duration;
/// use respsync::node::NodeConfig;
///
/// let config = NodeConfig {
///     diskless_sync: false,
///     backlog_size: 64 * 1024 * 1024,
///     ..NodeConfig::default()
/// };
/// assert_eq!(config.clone().normalized().backlog_size, 64 * 1024 * 1024);
/// assert_eq!(config.repl_timeout, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `repl-backlog-size` (1 MiB).
    pub backlog_size: u64,
    /// `repl-backlog-ttl` (3600 s): a master with no replica for longer than this frees its
    /// backlog and takes a new replication id (checked by the 1 Hz cron, as in Redis). Zero
    /// keeps it forever.
    pub backlog_ttl: Duration,
    /// `repl-ping-replica-period` (10 s).
    pub ping_period: Duration,
    /// `repl-timeout` (60 s): an online replica silent this long is dropped.
    pub repl_timeout: Duration,
    /// `repl-diskless-sync` (yes): send snapshots over the socket (`$EOF:` framing) to
    /// replicas that declared `capa eof`.
    pub diskless_sync: bool,
    /// `repl-rdb-channel` (yes, as in Redis 8.2): honour a replica's `capa rdb-channel-repl`
    /// (Redis 8's two-connection full sync, answered `+RDBCHANNELSYNC <link id>`). Applied, as
    /// Redis does, only together with `diskless_sync`, and read when the `REPLCONF` arrives.
    pub rdb_channel: bool,
    /// `dual-channel-replication-enabled` (yes here; Valkey's default is no): honour a
    /// replica's `capa dual-channel` (Valkey 8's two-connection full sync, answered
    /// `+DUALCHANNELSYNC`), only together with `diskless_sync`. Valkey replicas offer it only
    /// when their own setting is on, so accepting it as a master changes nothing for the
    /// others.
    pub dual_channel: bool,
    /// `repl-diskless-sync-delay` (5 s): wait this long for more replicas before starting a
    /// diskless snapshot.
    pub diskless_sync_delay: Duration,
    /// `repl-diskless-sync-max-replicas` (0 = off): start a diskless snapshot at once when this
    /// many replicas wait.
    pub diskless_sync_max_replicas: usize,
    /// `client-output-buffer-limit replica 256mb 64mb 60`.
    pub output_buffer_limit: OutputBufferLimit,
    /// `min-replicas-to-write` (0 = off).
    pub min_replicas_to_write: usize,
    /// `min-replicas-max-lag` (10 s).
    pub min_replicas_max_lag: Duration,
    /// Limits on what a replica may send its master (ACKs and keepalives are tiny, so these
    /// are far below a client's).
    pub replica_input_limits: Limits,
    /// Seed for replication ids and `$EOF:` marks (the crate uses no OS randomness).
    pub id_seed: u64,
    /// The RDB version of snapshots for replicas that do not say which versions they load
    /// (Redis replicas never do). Default 9, the newest that every supported replica loads:
    /// Redis 6.2 loads up to 9, 7.0 up to 10, 7.2 up to 11, 7.4 and 8.x up to 12, Valkey 7.2
    /// and 8.x up to 11. A replica that announces its version (`REPLCONF version`, as Valkey
    /// does) gets at most what that version loads ([`max_rdb_version_for`]). Replicas that
    /// need different versions never share a snapshot.
    ///
    /// This is how a node in the middle bridges versions (a Redis 8.2 master, older
    /// sub-replicas): the snapshot is written in a version each one loads, and the stream is
    /// passed on unchanged. What an older sub-replica cannot apply is what its version does not
    /// know: a command added later (e.g. Redis 7.4's `HSETEX`/`HPEXPIREAT`) reaches it as is,
    /// and it reports it as an error from its master, exactly as directly behind the newer
    /// master; values its RDB version cannot hold (hash-field TTLs below RDB 12) are the
    /// snapshot writer's to refuse or report.
    pub snapshot_rdb_version: u8,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            backlog_size: DEFAULT_BACKLOG_SIZE,
            backlog_ttl: Duration::from_secs(3600),
            ping_period: Duration::from_secs(10),
            repl_timeout: Duration::from_secs(60),
            diskless_sync: true,
            rdb_channel: true,
            dual_channel: true,
            diskless_sync_delay: Duration::from_secs(5),
            diskless_sync_max_replicas: 0,
            output_buffer_limit: OutputBufferLimit::default(),
            min_replicas_to_write: 0,
            min_replicas_max_lag: Duration::from_secs(10),
            replica_input_limits: Limits {
                max_bulk_len: 64 * 1024,
                max_array_len: 1024,
                max_inline_len: 64 * 1024,
                max_depth: 4,
                max_buffered: 1024 * 1024,
            },
            id_seed: 0,
            snapshot_rdb_version: 9,
        }
    }
}

impl NodeConfig {
    /// The settings as the node applies them: Redis raises a `repl-backlog-size` below 16 KiB to
    /// 16 KiB, and periods are at least one second.
    pub fn normalized(mut self) -> NodeConfig {
        self.backlog_size = self.backlog_size.max(MIN_BACKLOG_SIZE);
        self.ping_period = self.ping_period.max(Duration::from_secs(1));
        self.repl_timeout = self.repl_timeout.max(Duration::from_secs(1));
        self
    }
}

/// The newest RDB version a server that announced `version` (`REPLCONF version x.y.z`, sent by
/// Valkey 8 replicas) loads, if known. Redis replicas announce nothing.
///
/// ```
/// use respsync::node::max_rdb_version_for;
///
/// assert_eq!(max_rdb_version_for("8.1.8"), Some(11)); // Valkey 8.1
/// assert_eq!(max_rdb_version_for("7.2.5"), Some(11));
/// assert_eq!(max_rdb_version_for("banana"), None);
/// ```
pub fn max_rdb_version_for(version: &str) -> Option<u8> {
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    // Only Valkey sends REPLCONF version: 7.2 (its first release) and 8.x load RDB 11.
    match (major, minor) {
        (7, 2..) | (8, _) => Some(11),
        _ => None,
    }
}
