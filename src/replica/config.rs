//! Configuration of a [`ReplicaSession`](super::ReplicaSession).

use std::time::Duration;

use thiserror::Error;

use crate::backlog::DEFAULT_BACKLOG_SIZE;

/// Credentials sent to the master with `AUTH [user] password` (`masteruser`, `masterauth`).
#[derive(Clone, PartialEq, Eq)]
pub struct MasterAuth {
    /// ACL user name (`masteruser`); `None` sends the one-argument `AUTH password`.
    pub user: Option<String>,
    /// Password (`masterauth`).
    pub password: String,
}

impl std::fmt::Debug for MasterAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Settings of the replica side of a replication link. Defaults are Redis 7.0's.
///
/// ```
/// use std::time::Duration;
/// use respsync::replica::{MasterAuth, ReplicaConfig};
///
/// let config = ReplicaConfig {
///     listening_port: 6380,
///     auth: Some(MasterAuth { user: None, password: "sekret".into() }),
///     repl_timeout: Duration::from_secs(30),
///     ..ReplicaConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// Port announced with `REPLCONF listening-port` (`replica-announce-port` or `port`).
    pub listening_port: u16,
    /// Address announced with `REPLCONF ip-address` (`replica-announce-ip`); not sent if `None`.
    pub announce_ip: Option<String>,
    /// `AUTH` credentials; no `AUTH` is sent if `None`.
    pub auth: Option<MasterAuth>,
    /// Declare `capa eof` (diskless transfers). Redis replicas always do.
    pub capa_eof: bool,
    /// `repl-timeout`: silence from the master tolerated during the transfer and while
    /// streaming (default 60 s).
    pub repl_timeout: Duration,
    /// Silence tolerated while waiting for a handshake reply, measured from the last byte
    /// received (Redis uses `repl-timeout` here too; default 60 s).
    pub handshake_timeout: Duration,
    /// Period of `REPLCONF ACK` while streaming (Redis's 1 s replication cron).
    pub ack_period: Duration,
    /// Minimum spacing of `\n` keepalives sent with
    /// [`ReplicaSession::keepalive`](super::ReplicaSession::keepalive) (Redis: 1 s).
    pub keepalive_period: Duration,
    /// Size of the session's own backlog (`repl-backlog-size`, default 1 MiB).
    pub backlog_size: u64,
    /// Hand the applied stream to the application instead of keeping a backlog of its own.
    ///
    /// Off (the default), the session keeps its own [`Backlog`](crate::backlog::Backlog), as a
    /// standalone tool such as a stream tailer wants. On, it keeps none and queues every stream
    /// byte it has credited (in offset order, `MULTI` blocks whole once `EXEC` arrived) for
    /// [`ReplicaSession::poll_stream`](super::ReplicaSession::poll_stream): that is how a
    /// [`Node`](crate::node::Node) keeps one backlog per server whatever its role.
    pub stream_handoff: bool,
    /// Offer Redis 8's two-connection full sync (`REPLCONF capa rdb-channel-repl`, Redis's
    /// `repl-rdb-channel`). Masters that do not know it ignore it. Default off: turn it on
    /// once the application handles [`ReplicaEvent::RdbChannelOpen`](super::ReplicaEvent)
    /// (opens the second connection), otherwise a Redis 8 master would wait for a connection
    /// that never comes. (Redis 8.2 itself has it on; `examples/server` turns it on.)
    pub rdb_channel: bool,
    /// Offer Valkey 8's two-connection full sync (`REPLCONF capa dual-channel`, Valkey's
    /// `dual-channel-replication-enabled`; default off, as in Valkey 8).
    pub dual_channel: bool,
    /// During a two-connection full sync, the stream received on the main connection is kept
    /// until the snapshot is loaded; above this many bytes
    /// [`main_read_paused`](super::ReplicaSession::main_read_paused) asks the application to
    /// stop reading it (Redis's `replica-full-sync-buffer-limit`, defaulting to the replica
    /// output-buffer hard limit, 256 MiB; 0 also means that).
    pub full_sync_buffer_limit: u64,
    /// Number of databases (`databases`, default 16): a `SELECT` outside the range is ignored,
    /// as Redis logs and ignores errors from its master.
    pub databases: u32,
    /// Longest handshake reply or header line accepted (`PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub max_line_len: usize,
    /// Longest argument accepted in the stream (`proto-max-bulk-len`, 512 MiB).
    pub max_bulk_len: u64,
    /// Most arguments accepted in one command (`INT_MAX`, as Redis allows its master).
    pub max_multibulk_len: u64,
    /// Most bytes one command, or one open `MULTI` … `EXEC` block, may take while it is being
    /// received (`client-query-buffer-limit`, 1 GiB).
    pub max_command_len: u64,
    /// Deliver the stream as [`ReplicaEvent::Commands`](super::ReplicaEvent::Commands)
    /// batches (one per `handle_input`) instead of one
    /// [`ReplicaEvent::Command`](super::ReplicaEvent::Command) per command. Faster; off by
    /// default.
    pub batch_commands: bool,
    /// Seed for the session's own replication id before its first sync (no OS randomness is
    /// used inside the crate).
    pub id_seed: u64,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            listening_port: 6379,
            announce_ip: None,
            auth: None,
            capa_eof: true,
            repl_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(60),
            ack_period: Duration::from_secs(1),
            keepalive_period: Duration::from_secs(1),
            backlog_size: DEFAULT_BACKLOG_SIZE,
            stream_handoff: false,
            rdb_channel: false,
            dual_channel: false,
            full_sync_buffer_limit: 256 * 1024 * 1024,
            databases: 16,
            max_line_len: 64 * 1024,
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as u64,
            max_command_len: 1024 * 1024 * 1024,
            batch_commands: false,
            id_seed: 0,
        }
    }
}

/// A [`ReplicaConfig`] value that cannot work; reported by
/// [`ReplicaSession::new`](super::ReplicaSession::new) before any I/O.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// `databases` is zero.
    #[error("databases must be at least 1")]
    NoDatabases,
    /// A limit is too small to hold the protocol's own frames.
    #[error("{0} is too small")]
    LimitTooSmall(&'static str),
    /// The announced address contains bytes that cannot be sent.
    #[error("announce ip must be shorter than 256 bytes")]
    AnnounceIp,
}

impl ReplicaConfig {
    /// Checks the values; [`ReplicaSession::new`](super::ReplicaSession::new) calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (d, name) in [
            (self.repl_timeout, "repl timeout"),
            (self.handshake_timeout, "handshake timeout"),
            (self.ack_period, "ack period"),
            (self.keepalive_period, "keepalive period"),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.databases == 0 {
            return Err(ConfigError::NoDatabases);
        }
        if self.max_line_len < 128 {
            return Err(ConfigError::LimitTooSmall("max line length"));
        }
        if self.max_command_len < 64 {
            return Err(ConfigError::LimitTooSmall("max command length"));
        }
        if self.announce_ip.as_ref().is_some_and(|ip| ip.len() >= 256) {
            return Err(ConfigError::AnnounceIp);
        }
        Ok(())
    }
}
