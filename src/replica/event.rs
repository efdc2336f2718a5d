//! What a [`ReplicaSession`](super::ReplicaSession) reports to the application.

use bytes::Bytes;

use super::error::ReplicaError;
use crate::ids::{ReplId, ReplOffset};

/// What a command received from the master is, for the commands the replication protocol
/// itself gives meaning to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandKind {
    /// An empty line or `*0`: counted in the offset, nothing to do.
    Empty,
    /// `EXEC`: end of a transaction.
    Exec,
    /// `MULTI`: start of a transaction.
    Multi,
    /// Any other command: apply it.
    Other,
    /// The master's `PING`: counted, nothing to apply.
    Ping,
    /// `REPLCONF` other than `GETACK`: counted, nothing to apply.
    Replconf,
    /// `REPLCONF GETACK`: counted; the session has already answered it.
    ReplconfGetack,
    /// `SELECT`: the session tracks the database itself.
    Select,
}

impl CommandKind {
    /// Whether the command changes data (anything but the replication protocol's own
    /// commands and transaction markers).
    pub fn is_data(self) -> bool {
        matches!(self, CommandKind::Other)
    }
}

/// One command of the replication stream, as a zero-copy slice of the received bytes.
///
/// ```
/// # use respsync::replica::{ReplicaSession, ReplicaConfig, ReplicaEvent};
/// # use std::time::Instant;
/// # let now = Instant::now();
/// # let mut s = ReplicaSession::new(ReplicaConfig::default(), now).unwrap();
/// # s.connected(now).unwrap();
/// # let id = "a".repeat(40);
/// # let mut hs = format!("+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC {id} 1000\r\n$18\r\nREDIS0010").into_bytes();
/// # hs.extend_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
/// # s.handle_input(now, &hs).unwrap();
/// s.handle_input(now, b"*3\r\n$3\r\nset\r\n$3\r\nfoo\r\n$3\r\nbar\r\n").unwrap();
/// while let Some(ev) = s.poll_event() {
///     if let ReplicaEvent::Command(cmd) = ev {
///         let args: Vec<&[u8]> = cmd.args().collect();
///         assert_eq!(args, [&b"set"[..], b"foo", b"bar"]);
///         assert_eq!((cmd.db(), cmd.offset().value()), (0, 1031));
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub(crate) frame: Bytes,
    pub(crate) db: u32,
    pub(crate) offset: ReplOffset,
    pub(crate) kind: CommandKind,
    pub(crate) argc: u32,
}

impl Command {
    /// The database the command applies to (after any `SELECT` before it).
    pub fn db(&self) -> u32 {
        self.db
    }

    /// The replication offset just after this command.
    ///
    /// Inside `MULTI` this is the command's own position in the stream; the offset the
    /// session acknowledges only moves when `EXEC` arrives, as in Redis.
    pub fn offset(&self) -> ReplOffset {
        self.offset
    }

    /// The replication offset of the command's first byte minus one (where it starts).
    pub fn start_offset(&self) -> ReplOffset {
        ReplOffset::new(self.offset.value() - self.frame.len() as i64)
    }

    /// What kind of command this is.
    pub fn kind(&self) -> CommandKind {
        self.kind
    }

    /// The command exactly as received (RESP bytes), e.g. for proxying to sub-replicas.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// Number of arguments, the command name included.
    pub fn argc(&self) -> usize {
        self.argc as usize
    }

    /// The command name (first argument), empty for [`CommandKind::Empty`].
    pub fn name(&self) -> &[u8] {
        self.args().next().unwrap_or(b"")
    }

    /// The arguments, the command name first, as slices of [`Command::frame`].
    pub fn args(&self) -> Args<'_> {
        Args {
            frame: &self.frame,
            pos: header_end(&self.frame),
            left: self.argc,
        }
    }

    /// The arguments as zero-copy [`Bytes`] slices of [`Command::frame`].
    pub fn args_bytes(&self) -> impl Iterator<Item = Bytes> + '_ {
        let base = self.frame.as_ptr() as usize;
        self.args().map(move |a| {
            let start = a.as_ptr() as usize - base;
            self.frame.slice(start..start + a.len())
        })
    }
}

/// One command of a [`CommandBatch`], borrowed from the batch's bytes.
#[derive(Debug, Clone, Copy)]
pub struct CommandRef<'a> {
    chunk: &'a Bytes,
    item: &'a Item,
}

impl<'a> CommandRef<'a> {
    /// The database the command applies to.
    pub fn db(&self) -> u32 {
        self.item.db
    }

    /// The replication offset just after this command (see [`Command::offset`]).
    pub fn offset(&self) -> ReplOffset {
        self.item.offset
    }

    /// What kind of command this is.
    pub fn kind(&self) -> CommandKind {
        self.item.kind
    }

    /// Number of arguments, the command name included.
    pub fn argc(&self) -> usize {
        self.item.argc as usize
    }

    /// The command exactly as received.
    pub fn frame(&self) -> &'a [u8] {
        &self.chunk[self.item.start..self.item.end]
    }

    /// The arguments, the command name first.
    pub fn args(&self) -> Args<'a> {
        let frame = self.frame();
        Args {
            frame,
            pos: header_end(frame),
            left: self.item.argc,
        }
    }

    /// An owned [`Command`] sharing the batch's bytes (no copy).
    pub fn to_command(&self) -> Command {
        Command {
            frame: self.chunk.slice(self.item.start..self.item.end),
            db: self.item.db,
            offset: self.item.offset,
            kind: self.item.kind,
            argc: self.item.argc,
        }
    }
}

/// Where a command sits in a batch (crate-internal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) kind: CommandKind,
    pub(crate) db: u32,
    pub(crate) offset: ReplOffset,
    pub(crate) argc: u32,
}

/// The commands found in one `handle_input` call, sharing one buffer
/// ([`ReplicaConfig::batch_commands`](super::ReplicaConfig::batch_commands)).
///
/// Iterating costs no allocation and no reference counting per command, which is what a
/// store applying millions of small writes wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandBatch {
    pub(crate) chunk: Bytes,
    pub(crate) items: Vec<Item>,
}

impl CommandBatch {
    /// Number of commands.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch is empty (never true for a batch the session emits).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The commands in stream order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = CommandRef<'_>> + '_ {
        self.items.iter().map(move |item| CommandRef {
            chunk: &self.chunk,
            item,
        })
    }

    /// The stream bytes of every command in the batch, contiguous (for proxying).
    pub fn bytes(&self) -> &Bytes {
        &self.chunk
    }
}

/// Position after the `*<n>\r\n` header (0 for an empty line).
fn header_end(frame: &[u8]) -> usize {
    if frame.first() != Some(&b'*') {
        return frame.len();
    }
    frame
        .iter()
        .position(|&b| b == b'\n')
        .map_or(frame.len(), |p| p + 1)
}

/// Iterator over the arguments of a [`Command`].
#[derive(Debug, Clone)]
pub struct Args<'a> {
    frame: &'a [u8],
    pos: usize,
    left: u32,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        // The frame was validated when it was received; this re-walk only reads `$<len>\r\n`.
        let rest = self.frame.get(self.pos..)?;
        let mut len = 0usize;
        let mut i = 1;
        while let Some(&b) = rest.get(i) {
            if b == b'\r' {
                break;
            }
            len = len
                .wrapping_mul(10)
                .wrapping_add(usize::from(b.wrapping_sub(b'0')));
            i += 1;
        }
        let start = i + 2;
        let arg = rest.get(start..start.checked_add(len)?)?;
        self.pos += start + len + 2;
        self.left -= 1;
        Some(arg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

/// Something the application must know or act on. Drain with
/// [`ReplicaSession::poll_event`](super::ReplicaSession::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaEvent {
    /// The master starts a full resynchronization: discard the dataset; an RDB follows.
    FullResync {
        /// The master's replication id.
        replid: ReplId,
        /// The offset the stream resumes from after the snapshot.
        offset: ReplOffset,
    },
    /// The master did not understand PSYNC; a legacy `SYNC` full sync follows (no offsets,
    /// no ACKs, no partial resync later).
    LegacySync,
    /// Partial resynchronization accepted: the stream continues from the cached offset.
    Continue {
        /// The master's current replication id.
        replid: ReplId,
        /// Offset of the last byte already held; the stream continues after it.
        offset: ReplOffset,
        /// The id differs from the cached one: the session shifted its ids.
        replid_changed: bool,
    },
    /// The master wants a two-connection full sync (Redis 8 `+RDBCHANNELSYNC`, Valkey 8
    /// `+DUALCHANNELSYNC`): open a second connection to the same master address, call
    /// [`rdb_channel_connected`](super::ReplicaSession::rdb_channel_connected), feed what it
    /// sends to [`handle_rdb_channel_input`](super::ReplicaSession::handle_rdb_channel_input)
    /// and write what [`poll_rdb_channel_transmit`](super::ReplicaSession::poll_rdb_channel_transmit)
    /// gives. The snapshot arrives there; the stream keeps arriving on the main connection.
    RdbChannelOpen,
    /// The snapshot of a two-connection sync is complete: close the second connection.
    RdbChannelClose,
    /// The snapshot starts. `len` is `None` for a diskless (`$EOF:`) transfer.
    RdbBegin {
        /// Announced size in bytes, if known.
        len: Option<u64>,
    },
    /// A piece of the snapshot (the RDB file bytes, in order).
    RdbChunk {
        /// The bytes.
        data: Bytes,
        /// RDB bytes received so far, this chunk included.
        done: u64,
        /// Total size, if announced.
        total: Option<u64>,
    },
    /// The snapshot is complete; the command stream follows.
    RdbEnd {
        /// RDB size in bytes.
        len: u64,
        /// The stream's starting database (`repl-stream-db` aux field, 0 without it).
        stream_db: u32,
    },
    /// A command from the stream.
    Command(Command),
    /// Several commands from the stream, in order (only with
    /// [`ReplicaConfig::batch_commands`](super::ReplicaConfig::batch_commands)).
    Commands(CommandBatch),
    /// The link went down inside `MULTI`: drop the commands received since `MULTI`; the
    /// next partial resync sends them again.
    TransactionDiscarded,
    /// The link failed but can be retried: close the socket, call
    /// [`disconnected`](super::ReplicaSession::disconnected) and reconnect after a backoff.
    LinkLost(ReplicaError),
    /// The link failed for good (see [`ReplicaError::is_fatal`]).
    Failed(ReplicaError),
}
