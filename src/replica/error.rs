//! Errors of the replica side of a link.

use thiserror::Error;

use crate::ids::ReplOffset;

/// Phase of the link in which something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Between `connected` and the PSYNC reply.
    Handshake,
    /// Receiving the RDB snapshot.
    Transfer,
    /// Receiving the command stream.
    Streaming,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Handshake => "handshake",
            Phase::Transfer => "transfer",
            Phase::Streaming => "streaming",
        })
    }
}

/// The master broke the replication protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A reply or header line is longer than `max_line_len`.
    #[error("line too long")]
    LineTooLong,
    /// The PSYNC reply could not be understood.
    #[error("malformed psync reply")]
    BadPsyncReply,
    /// The first byte of the transfer header is not `$`, `-` or a newline.
    #[error("bad protocol from master, the first byte is not '$'")]
    BadBulkHeader,
    /// A length or count is not a decimal integer.
    #[error("invalid length")]
    BadLength,
    /// An argument is longer than `max_bulk_len`.
    #[error("bulk length {0} over limit")]
    BulkTooLong(u64),
    /// A command has more arguments than `max_multibulk_len`.
    #[error("multibulk length {0} over limit")]
    MultibulkTooLong(u64),
    /// A command is longer than `max_command_len`.
    #[error("command too long")]
    CommandTooLong,
    /// An open `MULTI` block grew beyond `max_command_len` before its `EXEC`.
    #[error("transaction too long")]
    TransactionTooLong,
    /// An array element does not start with `$`.
    #[error("expected '$', got byte {0:#04x}")]
    ExpectedBulk(u8),
    /// An argument is not followed by CRLF.
    #[error("missing crlf after bulk")]
    MissingCrlf,
    /// Inline (non-RESP) input in the stream; Redis drops the link and the cached master.
    #[error("inline command in replication stream")]
    InlineCommand,
}

/// Why a replica link stopped. Returned by the `handle_*` calls and reported once as
/// [`ReplicaEvent::LinkLost`](super::ReplicaEvent::LinkLost) or
/// [`ReplicaEvent::Failed`](super::ReplicaEvent::Failed).
///
/// Errors stick: after one, the session answers every `handle_*` call with the same error
/// until [`disconnected`](super::ReplicaSession::disconnected) is called, or forever when
/// [`is_fatal`](ReplicaError::is_fatal) is true.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The master refused our `AUTH` (wrong password or user). Fatal.
    #[error("master refused auth: {reply}")]
    AuthRejected {
        /// The error line the master sent.
        reply: String,
    },
    /// The master requires authentication and none is configured. Fatal.
    #[error("master requires auth: {reply}")]
    AuthRequired {
        /// The error line the master sent.
        reply: String,
    },
    /// The master cannot serve a sync now (`-LOADING`, `-NOMASTERLINK`, `-MASTERDOWN`);
    /// reconnect later.
    #[error("master asks to retry later: {reply}")]
    TryLater {
        /// The error line the master sent.
        reply: String,
    },
    /// The master answered with an error where none is tolerated (PING, transfer header).
    #[error("master error: {reply}")]
    MasterError {
        /// The error line the master sent.
        reply: String,
    },
    /// The new master answered `PSYNC … FAILOVER` with something other than `+CONTINUE` or
    /// `+FULLRESYNC`: the failover that sent it must be aborted (protocol.md §6.7).
    #[error("failover refused by the target: {reply}")]
    FailoverRefused {
        /// The reply line.
        reply: String,
    },
    /// The application could not apply a command of the stream and refused it with
    /// [`ReplicaSession::refuse_command`](super::ReplicaSession::refuse_command): the link is
    /// stopped and the cached master ends just before that command, so nothing after it was
    /// acknowledged and a later `PSYNC` sends it again.
    #[error("command '{name}' at offset {offset} could not be applied")]
    CommandRefused {
        /// The offset just before the command.
        offset: ReplOffset,
        /// The command name, printable.
        name: String,
    },
    /// The second connection of a two-connection full sync failed or closed before the
    /// snapshot was complete: the whole attempt is abandoned (close both connections and
    /// reconnect), as Redis and Valkey do.
    #[error("rdb channel lost before the snapshot was complete")]
    RdbChannelLost,
    /// Nothing was received for longer than the phase's timeout.
    #[error("timed out during {0}")]
    Timeout(Phase),
    /// The master broke the protocol. The cached master is discarded (the next sync is full),
    /// as Redis does.
    #[error("protocol error at byte {offset} of the link: {error}")]
    Protocol {
        /// Byte offset in the data received on this link.
        offset: u64,
        /// What was wrong.
        error: ProtocolError,
    },
    /// The caller used the API wrongly. Not sticky and not reported as an event.
    #[error(transparent)]
    Misuse(#[from] ApiMisuse),
}

impl ReplicaError {
    /// Whether reconnecting cannot help (authentication problems).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ReplicaError::AuthRejected { .. } | ReplicaError::AuthRequired { .. }
        )
    }
}

/// A call that is not valid in the session's current state (a caller bug, not a peer fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// `handle_input` before `connected`.
    #[error("input received while not connected")]
    NotConnected,
    /// `connected` while a link is already up.
    #[error("already connected")]
    AlreadyConnected,
}
