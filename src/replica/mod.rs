//! The replica side of a replication link: [`ReplicaSession`].
//!
//! One session is one replica's view of its master, across reconnections. The application
//! owns the socket and the clock; the session turns bytes and time into bytes to send, events
//! and a deadline.
//!
//! ```text
//!            connected()                 +FULLRESYNC              $len / $EOF: ... mark
//!   Idle ──────────────► Handshake ───────────────────► Transfer ────────────────────┐
//!    ▲   PING, AUTH, REPLCONF, PSYNC │ +CONTINUE [id]                                  ▼
//!    │                              └───────────────────────────────────────────► Connected
//!    │  disconnected() (caches replid, offset, db when Connected)                    │
//!    └────────────── LinkDown(error) ◄── timeout, -LOADING, protocol error ◄─────────┘
//!                    Failed(error)   ◄── auth refused (sticky)
//! ```
//!
//! Wire facts follow Redis 7.0 (`syncWithMaster`, `slaveTryPartialResynchronization`,
//! `readSyncBulkPayload`, `replicationSendAck` in `src/replication.c`): see protocol.md §1–§4.
//!
//! ```
//! use std::time::Instant;
//! use respsync::replica::{ReplicaConfig, ReplicaEvent, ReplicaSession};
//!
//! let now = Instant::now();
//! let mut link = ReplicaSession::new(ReplicaConfig::default(), now).unwrap();
//! link.connected(now).unwrap();
//! assert_eq!(&link.poll_transmit().unwrap()[..], b"*1\r\n$4\r\nPING\r\n");
//! link.handle_input(now, b"+PONG\r\n").unwrap();
//! let sent = link.poll_transmit().unwrap(); // REPLCONF listening-port, REPLCONF capa
//! assert!(sent.starts_with(b"*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n"));
//! link.handle_input(now, b"+OK\r\n+OK\r\n").unwrap();
//! assert_eq!(&link.poll_transmit().unwrap()[..], b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n");
//! let id = "a".repeat(40);
//! link.handle_input(now, format!("\n+FULLRESYNC {id} 1000\r\n").as_bytes()).unwrap();
//! assert!(matches!(link.poll_event(), Some(ReplicaEvent::FullResync { .. })));
//! ```

mod aux;
mod channel;
mod config;
mod error;
mod event;
mod snapshot;
mod timer;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use self::aux::AuxScan;
pub use self::config::{ConfigError, MasterAuth, ReplicaConfig};
pub use self::error::{ApiMisuse, Phase, ProtocolError, ReplicaError};
use self::event::Item;
pub use self::event::{Args, Command, CommandBatch, CommandKind, CommandRef, ReplicaEvent};
pub use self::snapshot::{SnapshotError, SnapshotLoader};
use self::timer::{Timer, TimerTable};
use crate::backlog::Backlog;
use crate::ids::{IdGenerator, ReplId, ReplOffset, ReplicationIds};
use crate::resp::line::{self, Transfer as Header};
use crate::resp::{CommandScanner, DecodeErrorKind, Limits};

/// Length of the `$EOF:` mark (`RDB_EOF_MARK_SIZE`).
const EOF_MARK_LEN: usize = 40;

/// What the replica remembers of a master to resume with `PSYNC <replid> <offset + 1>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedMaster {
    /// The master's replication id.
    pub replid: ReplId,
    /// Offset of the last stream byte applied.
    pub offset: ReplOffset,
    /// Database the stream was in.
    pub db: u32,
}

/// The state of the link, named as Redis's `ROLE` reply names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// No connection (`connect`): call [`ReplicaSession::connected`] once a socket is up.
    Connect,
    /// Handshake in progress (`handshake`).
    Handshake,
    /// Receiving the snapshot (`sync`).
    Sync,
    /// Streaming (`connected`).
    Connected,
    /// The link failed; call [`ReplicaSession::disconnected`] and reconnect.
    Down,
    /// The session failed for good.
    Failed,
}

impl LinkState {
    /// The word `ROLE` prints for this state.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connect | LinkState::Down | LinkState::Failed => "connect",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Pong,
    /// `REPLCONF set-rdb-client-id` on the main connection of a Valkey dual-channel sync.
    RdbClientId,
    Auth,
    Port,
    Ip,
    Capa,
    Psync,
}

#[derive(Debug)]
struct Handshake {
    expect: VecDeque<Step>,
}

#[derive(Debug)]
enum Body {
    Header,
    Len {
        total: u64,
    },
    Eof {
        mark: [u8; EOF_MARK_LEN],
        held: Vec<u8>,
    },
}

#[derive(Debug)]
struct Transfer {
    /// `None` for a legacy `SYNC`.
    sync: Option<(ReplId, ReplOffset)>,
    body: Body,
    done: u64,
    aux: AuxScan,
}

#[derive(Debug, Clone, Copy)]
struct Multi {
    db: u32,
    getack: bool,
}

#[derive(Debug)]
struct Streaming {
    replid: ReplId,
    /// Applied offset (`reploff`): what ACKs and PSYNC use.
    reploff: ReplOffset,
    /// Offset after the last complete command received (moves inside MULTI too).
    read: ReplOffset,
    db: u32,
    multi: Option<Multi>,
    /// Complete commands received inside an open MULTI, not yet credited.
    pending: Vec<Bytes>,
    scanner: CommandScanner,
    legacy: bool,
    forget: bool,
}

#[derive(Debug)]
enum State {
    Idle,
    Handshake(Handshake),
    Transfer(Transfer),
    Streaming(Streaming),
    LinkDown(ReplicaError),
    Failed(ReplicaError),
}

/// The replica side of a replication link (see the [module docs](self)).
///
/// Drive it with the crate's rule: after `connected`, `handle_input`, `handle_timeout`,
/// `keepalive`, `disconnected` or `forget_master`, drain [`poll_transmit`], [`poll_event`]
/// and [`poll_timeout`].
///
/// A blocking driver (see `examples/tail.rs` for a complete one with reconnection):
///
/// ```no_run
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use std::time::Instant;
/// use respsync::replica::{ReplicaConfig, ReplicaEvent, ReplicaSession};
///
/// let mut sock = TcpStream::connect("127.0.0.1:6379")?;
/// let mut link = ReplicaSession::new(ReplicaConfig::default(), Instant::now())?;
/// link.connected(Instant::now())?;
/// let mut buf = vec![0u8; 64 * 1024];
/// loop {
///     while let Some(bytes) = link.poll_transmit() {
///         sock.write_all(&bytes)?;
///     }
///     while let Some(ev) = link.poll_event() {
///         match ev {
///             ReplicaEvent::RdbChunk { data, .. } => { /* feed a SnapshotLoader */ }
///             ReplicaEvent::Command(cmd) => println!("db {} {:?}", cmd.db(), cmd.name()),
///             ReplicaEvent::LinkLost(e) | ReplicaEvent::Failed(e) => return Err(e.into()),
///             _ => {}
///         }
///     }
///     let wait = link.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
///     sock.set_read_timeout(wait.map(|w| w.max(std::time::Duration::from_millis(1))))?;
///     match sock.read(&mut buf) {
///         Ok(0) => break,
///         Ok(n) => link.handle_input(Instant::now(), &buf[..n])?,
///         Err(_) => link.handle_timeout(Instant::now()),
///     }
/// }
/// link.disconnected(Instant::now()); // the next connection resumes with PSYNC
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`poll_transmit`]: ReplicaSession::poll_transmit
/// [`poll_event`]: ReplicaSession::poll_event
/// [`poll_timeout`]: ReplicaSession::poll_timeout
#[derive(Debug)]
pub struct ReplicaSession {
    config: ReplicaConfig,
    limits: Limits,
    state: State,
    now: Instant,
    cached: Option<CachedMaster>,
    ids: ReplicationIds,
    backlog: Option<Backlog>,
    /// Credited stream bytes waiting for [`ReplicaSession::poll_stream`] (stream handoff).
    stream_out: VecDeque<Bytes>,
    /// The next PSYNC carries `FAILOVER` (see [`ReplicaSession::set_psync_failover`]).
    psync_failover: bool,
    /// The second connection of a two-connection full sync in progress.
    chan: Option<channel::Channel>,
    /// Valkey dual channel, replies arriving after the snapshot: `PSYNC <replid> <off+1>` is
    /// (or is about to be) sent, and anything but `+CONTINUE` fails the attempt.
    strict_psync: Option<(ReplId, ReplOffset)>,
    buf: BytesMut,
    out: BytesMut,
    events: VecDeque<ReplicaEvent>,
    scratch: Vec<Item>,
    /// Bytes of this link already consumed from `buf` (error offsets are link-relative).
    consumed: u64,
    last_rx: Instant,
    last_keepalive: Option<Instant>,
    timers: TimerTable,
}

impl ReplicaSession {
    /// A session with no link yet, no cached master and an id generated from
    /// `config.id_seed`.
    pub fn new(config: ReplicaConfig, now: Instant) -> Result<ReplicaSession, ConfigError> {
        config.validate()?;
        let limits = Limits {
            max_bulk_len: config.max_bulk_len,
            max_array_len: config.max_multibulk_len,
            // A command is bounded as a whole by max_command_len.
            max_buffered: usize::try_from(config.max_command_len).unwrap_or(usize::MAX),
            ..Limits::default()
        };
        let ids = ReplicationIds::new(IdGenerator::new(config.id_seed).next_id());
        Ok(ReplicaSession {
            config,
            limits,
            state: State::Idle,
            now,
            cached: None,
            ids,
            backlog: None,
            stream_out: VecDeque::new(),
            psync_failover: false,
            chan: None,
            strict_psync: None,
            buf: BytesMut::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            consumed: 0,
            last_rx: now,
            last_keepalive: None,
            timers: TimerTable::default(),
        })
    }

    /// Sets the master to resume from, e.g. restored from a saved RDB's `repl-id`,
    /// `repl-offset` and `repl-stream-db` (the next PSYNC asks for `offset + 1`).
    pub fn set_cached_master(&mut self, master: CachedMaster) {
        self.cached = Some(master);
    }

    /// Forgets the cached master so the next sync is a full one (`PSYNC ? -1`). If the link
    /// is streaming, its master is not cached when it goes down; the application should also
    /// close the socket to resync at once.
    pub fn forget_master(&mut self) {
        self.cached = None;
        if let State::Streaming(s) = &mut self.state {
            s.forget = true;
        }
    }

    /// Call when the TCP connection to the master is established: the handshake starts with
    /// `PING`.
    pub fn connected(&mut self, now: Instant) -> Result<(), ReplicaError> {
        self.touch(now);
        match &self.state {
            State::Idle => {}
            State::Failed(e) => return Err(e.clone()),
            _ => return Err(ApiMisuse::AlreadyConnected.into()),
        }
        self.buf.clear();
        self.out.clear();
        self.consumed = 0;
        self.last_rx = self.now;
        self.last_keepalive = None;
        self.timers.stop_all();
        put_array(&mut self.out, &[b"PING"]);
        self.state = State::Handshake(Handshake {
            expect: VecDeque::from([Step::Pong]),
        });
        self.arm_silence();
        Ok(())
    }

    /// Call when the connection is closed, for any reason. A streaming link's master is
    /// cached (replid, applied offset, db) for the next PSYNC; unsent output is dropped.
    /// A failed session stays failed.
    pub fn disconnected(&mut self, now: Instant) {
        self.touch(now);
        self.chan = None;
        self.strict_psync = None;
        self.drop_link();
        if !matches!(self.state, State::Failed(_)) {
            self.state = State::Idle;
        }
        self.buf = BytesMut::new();
        self.out.clear();
        self.timers.stop_all();
    }

    /// Feeds bytes read from the master.
    ///
    /// Errors are also reported once as [`ReplicaEvent::LinkLost`] or
    /// [`ReplicaEvent::Failed`], and repeated by every later call until
    /// [`disconnected`](ReplicaSession::disconnected) (forever when fatal).
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), ReplicaError> {
        self.touch(now);
        match &self.state {
            State::Failed(e) | State::LinkDown(e) => return Err(e.clone()),
            State::Idle => return Err(ApiMisuse::NotConnected.into()),
            _ => {}
        }
        if data.is_empty() {
            return Ok(());
        }
        self.last_rx = self.now;
        if let Some(ch) = &mut self.chan {
            // During a two-connection sync the main connection carries the stream (and, for
            // Valkey, two replies before it): kept until the snapshot is loaded.
            ch.main.extend_from_slice(data);
            if let Err(e) = self.process_main_replies() {
                self.fail(e.clone());
                return Err(e);
            }
            self.arm_silence();
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        if let Err(e) = self.process() {
            self.fail(e.clone());
            return Err(e);
        }
        self.arm_silence();
        Ok(())
    }

    /// Call when the deadline from [`poll_timeout`](ReplicaSession::poll_timeout) passes.
    /// Harmless when called early or twice.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.touch(now);
        for timer in Timer::VALUES {
            if !self.timers.is_expired(timer, self.now) {
                continue;
            }
            match timer {
                Timer::Silence => {
                    let phase = match self.state {
                        State::Handshake(_) => Phase::Handshake,
                        State::Transfer(_) => Phase::Transfer,
                        _ => Phase::Streaming,
                    };
                    self.fail(ReplicaError::Timeout(phase));
                    return;
                }
                Timer::Ack => {
                    if let State::Streaming(s) = &self.state {
                        let off = s.reploff;
                        self.send_ack(off);
                        self.timers
                            .set(Timer::Ack, self.now + self.config.ack_period);
                    } else {
                        self.timers.stop(Timer::Ack);
                    }
                }
            }
        }
    }

    /// Sends a `\n` keepalive to the master if none was sent in the last
    /// `keepalive_period`. Call it periodically while a long RDB load keeps you from reading
    /// the socket (Redis's `replicationSendNewlineToMaster`).
    pub fn keepalive(&mut self, now: Instant) {
        self.touch(now);
        if !matches!(self.state, State::Transfer(_) | State::Streaming(_)) {
            return;
        }
        if self
            .last_keepalive
            .is_some_and(|t| self.now < t + self.config.keepalive_period)
        {
            return;
        }
        self.last_keepalive = Some(self.now);
        self.out.put_u8(b'\n');
    }

    /// Bytes to write to the master, if any. Call after every `handle_*` call until `None`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        Some(self.out.split().freeze())
    }

    /// The next event, if any. Call after every `handle_*` call until `None`.
    pub fn poll_event(&mut self) -> Option<ReplicaEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](ReplicaSession::handle_timeout) must be called next: the
    /// phase's silence timeout or the next periodic ACK. Changes after any input, timeout or
    /// state change.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// The link's state.
    pub fn state(&self) -> LinkState {
        match &self.state {
            State::Idle => LinkState::Connect,
            State::Handshake(_) => LinkState::Handshake,
            State::Transfer(_) => LinkState::Sync,
            State::Streaming(_) => LinkState::Connected,
            State::LinkDown(_) => LinkState::Down,
            State::Failed(_) => LinkState::Failed,
        }
    }

    /// The error that stopped the link, while it is down or failed.
    pub fn error(&self) -> Option<&ReplicaError> {
        match &self.state {
            State::LinkDown(e) | State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The applied replication offset (`slave_repl_offset`): of the live link when
    /// streaming, else of the cached master.
    pub fn offset(&self) -> Option<ReplOffset> {
        match &self.state {
            State::Streaming(s) => Some(s.reploff),
            _ => self.cached.map(|c| c.offset),
        }
    }

    /// Offset of all stream bytes received, complete commands or not
    /// (`slave_read_repl_offset`).
    pub fn read_offset(&self) -> Option<ReplOffset> {
        match &self.state {
            State::Streaming(s) => Some(s.read.add(self.buf.len() as u64)),
            _ => self.offset(),
        }
    }

    /// The database the stream is in at the applied [`offset`](Self::offset): inside an open
    /// `MULTI`, the one it began in (a `SELECT` received inside the block counts only once its
    /// `EXEC` arrived, as for the offset), so that `offset()` and `db()` always describe the
    /// same point, the one a cached master or a snapshot's `repl-stream-db` must record.
    pub fn db(&self) -> Option<u32> {
        match &self.state {
            State::Streaming(s) => Some(s.multi.map_or(s.db, |m| m.db)),
            _ => self.cached.map(|c| c.db),
        }
    }

    /// The master to resume from, if any.
    pub fn cached_master(&self) -> Option<&CachedMaster> {
        self.cached.as_ref()
    }

    /// The master's replication id, while streaming.
    pub fn master_replid(&self) -> Option<ReplId> {
        match &self.state {
            State::Streaming(s) if !s.legacy => Some(s.replid),
            _ => None,
        }
    }

    /// This node's own replication ids (adopted from the master, shifted on
    /// `+CONTINUE <new id>`), for a later promotion.
    pub fn ids(&self) -> &ReplicationIds {
        &self.ids
    }

    /// The application cannot apply `cmd` (an unknown command, a value it cannot hold): stop
    /// here rather than diverge silently. The link fails with
    /// [`ReplicaError::CommandRefused`] (a [`ReplicaEvent::LinkLost`] replaces every event still
    /// queued after `cmd`), nothing from `cmd` on is acknowledged, handed over by
    /// [`poll_stream`](Self::poll_stream) or kept in the backlog, and the cached master ends
    /// just before it, so a later `PSYNC` (after the application learned the command) resumes
    /// exactly there. Inside `MULTI` the whole transaction is dropped
    /// ([`ReplicaEvent::TransactionDiscarded`]): apply a transaction's commands only at `EXEC`.
    ///
    /// ```
    /// # use respsync::replica::{ReplicaSession, ReplicaConfig, ReplicaEvent, ReplicaError};
    /// # use std::time::Instant;
    /// # let now = Instant::now();
    /// # let mut s = ReplicaSession::new(ReplicaConfig::default(), now).unwrap();
    /// # s.connected(now).unwrap();
    /// # let id = "a".repeat(40);
    /// # let mut hs = format!("+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC {id} 1000\r\n$18\r\nREDIS0010").into_bytes();
    /// # hs.extend_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
    /// # s.handle_input(now, &hs).unwrap();
    /// # while s.poll_event().is_some() {}
    /// s.handle_input(now, b"*2\r\n$4\r\nincr\r\n$1\r\nk\r\n*4\r\n$6\r\nhsetex\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n").unwrap();
    /// while let Some(ev) = s.poll_event() {
    ///     if let ReplicaEvent::Command(cmd) = ev {
    ///         if cmd.name() == b"hsetex" {
    ///             s.refuse_command(now, &cmd);
    ///         }
    ///     } else {
    ///         assert!(matches!(ev, ReplicaEvent::LinkLost(ReplicaError::CommandRefused { .. })));
    ///     }
    /// }
    /// s.disconnected(now);
    /// assert_eq!(s.cached_master().unwrap().offset.value(), 1000 + 21); // after the INCR only
    /// ```
    pub fn refuse_command(&mut self, now: Instant, cmd: &Command) {
        self.touch(now);
        let start = cmd.start_offset();
        let State::Streaming(s) = &mut self.state else {
            return;
        };
        let credited = s.reploff;
        if s.multi.is_none() && start < s.reploff {
            s.reploff = start;
        }
        if start < s.read {
            s.read = start;
        }
        // Handed-over stream bytes past the refused command are withdrawn.
        let mut excess = u64::try_from(credited.value() - s.reploff.value()).unwrap_or(0);
        while excess > 0 {
            let Some(last) = self.stream_out.back_mut() else {
                break;
            };
            let len = last.len() as u64;
            if len <= excess {
                excess -= len;
                self.stream_out.pop_back();
            } else {
                last.truncate((len - excess) as usize);
                excess = 0;
            }
        }
        if let Some(b) = &mut self.backlog {
            if b.end() > s.reploff {
                // The own backlog took the chunk whole: restart it at the cached offset.
                b.reset(s.reploff);
            }
        }
        self.events
            .retain(|e| !matches!(e, ReplicaEvent::Command(_) | ReplicaEvent::Commands(_)));
        let name = String::from_utf8_lossy(cmd.name()).into_owned();
        self.fail(ReplicaError::CommandRefused {
            offset: start,
            name,
        });
    }

    /// Makes the next `PSYNC` a `PSYNC <replid> <offset> FAILOVER`: what a master that runs
    /// `FAILOVER` sends to its chosen replica, which then promotes itself and continues the
    /// demoted master partially. Any reply but `+CONTINUE`/`+FULLRESYNC` then fails the link with
    /// [`ReplicaError::FailoverRefused`]. Needs a cached master (the demoted master's own
    /// history, see [`set_cached_master`](Self::set_cached_master)); cleared once the reply came.
    pub fn set_psync_failover(&mut self, on: bool) {
        self.psync_failover = on;
    }

    /// The next piece of the applied stream, with [`ReplicaConfig::stream_handoff`] on: the
    /// exact bytes the master sent, credited to the offset (a `MULTI` block only once its
    /// `EXEC` arrived), in order. Always `None` with the handoff off.
    ///
    /// Drain it after each [`handle_input`](Self::handle_input), like the other polls.
    pub fn poll_stream(&mut self) -> Option<Bytes> {
        self.stream_out.pop_front()
    }

    /// The session's own backlog of the stream (created after the first sync).
    pub fn backlog(&self) -> Option<&Backlog> {
        self.backlog.as_ref()
    }

    /// RDB transfer progress: bytes received and total (`None` for diskless transfers).
    pub fn transfer_progress(&self) -> Option<(u64, Option<u64>)> {
        match &self.state {
            State::Transfer(t) => Some((
                t.done,
                match t.body {
                    Body::Len { total } => Some(total),
                    _ => None,
                },
            )),
            _ => None,
        }
    }

    // ---- internals ----

    fn touch(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Sets the silence deadline for the current phase from the last byte received.
    fn arm_silence(&mut self) {
        let timeout = match &self.state {
            State::Handshake(_) => self.config.handshake_timeout,
            State::Transfer(_) | State::Streaming(_) => self.config.repl_timeout,
            _ => return self.timers.stop(Timer::Silence),
        };
        self.timers.set(Timer::Silence, self.last_rx + timeout);
    }

    /// Leaves the live link: caches a streaming master, reports a discarded transaction.
    fn drop_link(&mut self) {
        if let State::Streaming(s) = &mut self.state {
            if let Some(m) = s.multi.take() {
                s.db = m.db;
                s.pending.clear();
                self.events.push_back(ReplicaEvent::TransactionDiscarded);
            }
            if !s.legacy && !s.forget {
                self.cached = Some(CachedMaster {
                    replid: s.replid,
                    offset: s.reploff,
                    db: s.db,
                });
            }
        }
    }

    fn fail(&mut self, e: ReplicaError) {
        if matches!(self.state, State::LinkDown(_) | State::Failed(_)) {
            return;
        }
        self.chan = None;
        self.drop_link();
        if matches!(e, ReplicaError::Protocol { .. }) {
            self.cached = None;
        }
        self.timers.stop_all();
        if e.is_fatal() {
            self.events.push_back(ReplicaEvent::Failed(e.clone()));
            self.state = State::Failed(e);
        } else {
            self.events.push_back(ReplicaEvent::LinkLost(e.clone()));
            self.state = State::LinkDown(e);
        }
    }

    fn protocol(&self, pos: usize, error: ProtocolError) -> ReplicaError {
        ReplicaError::Protocol {
            offset: self.consumed + pos as u64,
            error,
        }
    }

    fn process(&mut self) -> Result<(), ReplicaError> {
        loop {
            let progressed = match self.state {
                State::Handshake(_) => self.process_handshake()?,
                State::Transfer(_) => self.process_transfer()?,
                State::Streaming(_) => {
                    self.process_stream()?;
                    false
                }
                _ => false,
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Takes one `\n`-terminated line from the input, without its `\r\n`.
    fn take_line(&mut self) -> Result<Option<Bytes>, ReplicaError> {
        match split_line(&mut self.buf, self.config.max_line_len) {
            Ok(Some((line, used))) => {
                self.consumed += used as u64;
                Ok(Some(line))
            }
            Ok(None) => Ok(None),
            Err(()) => Err(self.protocol(0, ProtocolError::LineTooLong)),
        }
    }

    /// Returns true when the state changed and processing should continue.
    fn process_handshake(&mut self) -> Result<bool, ReplicaError> {
        loop {
            let Some(line) = self.take_line()? else {
                return Ok(false);
            };
            if line.is_empty() {
                continue; // keepalive
            }
            let step = match &mut self.state {
                State::Handshake(h) => h.expect.pop_front(),
                _ => return Ok(true),
            };
            let reply = || String::from_utf8_lossy(&line).into_owned();
            match step {
                Some(Step::Pong) => {
                    let ok = line.starts_with(b"+")
                        || line.starts_with(b"-NOAUTH")
                        || line.starts_with(b"-NOPERM")
                        || line.starts_with(b"-ERR operation not permitted");
                    if !ok {
                        return Err(if is_try_later(&line) {
                            ReplicaError::TryLater { reply: reply() }
                        } else {
                            ReplicaError::MasterError { reply: reply() }
                        });
                    }
                    self.send_handshake();
                }
                Some(Step::Auth) => {
                    if line.starts_with(b"-") {
                        return Err(ReplicaError::AuthRejected { reply: reply() });
                    }
                }
                Some(Step::Port) | Some(Step::Ip) => {} // errors are not critical
                Some(Step::RdbClientId) => {
                    if !line.starts_with(b"+") {
                        return Err(ReplicaError::MasterError { reply: reply() });
                    }
                    if let Some((replid, offset)) = self.strict_psync {
                        let off = offset.next().to_string();
                        put_array(
                            &mut self.out,
                            &[b"PSYNC", replid.as_bytes(), off.as_bytes()],
                        );
                    }
                }
                Some(Step::Capa) => self.send_psync(),
                Some(Step::Psync) => return self.psync_reply(&line).map(|()| true),
                None => return Err(self.protocol(0, ProtocolError::BadPsyncReply)),
            }
        }
    }

    fn send_handshake(&mut self) {
        let mut expect = VecDeque::new();
        if let Some(auth) = &self.config.auth {
            match &auth.user {
                Some(u) => put_array(
                    &mut self.out,
                    &[b"AUTH", u.as_bytes(), auth.password.as_bytes()],
                ),
                None => put_array(&mut self.out, &[b"AUTH", auth.password.as_bytes()]),
            }
            expect.push_back(Step::Auth);
        }
        let port = self.config.listening_port.to_string();
        put_array(
            &mut self.out,
            &[b"REPLCONF", b"listening-port", port.as_bytes()],
        );
        expect.push_back(Step::Port);
        if let Some(ip) = &self.config.announce_ip {
            put_array(&mut self.out, &[b"REPLCONF", b"ip-address", ip.as_bytes()]);
            expect.push_back(Step::Ip);
        }
        if self.config.capa_eof {
            let mut capa: Vec<&[u8]> = vec![b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"];
            if self.config.rdb_channel {
                capa.extend([&b"capa"[..], b"rdb-channel-repl"]);
            }
            if self.config.dual_channel {
                capa.extend([&b"capa"[..], b"dual-channel"]);
            }
            put_array(&mut self.out, &capa);
        } else {
            put_array(&mut self.out, &[b"REPLCONF", b"capa", b"psync2"]);
        }
        expect.push_back(Step::Capa);
        self.state = State::Handshake(Handshake { expect });
    }

    fn send_psync(&mut self) {
        match &self.cached {
            Some(c) if self.psync_failover => {
                let off = c.offset.next().to_string();
                put_array(
                    &mut self.out,
                    &[b"PSYNC", c.replid.as_bytes(), off.as_bytes(), b"FAILOVER"],
                );
            }
            Some(c) => {
                let off = c.offset.next().to_string();
                put_array(
                    &mut self.out,
                    &[b"PSYNC", c.replid.as_bytes(), off.as_bytes()],
                );
            }
            None => put_array(&mut self.out, &[b"PSYNC", b"?", b"-1"]),
        }
        if let State::Handshake(h) = &mut self.state {
            h.expect.push_back(Step::Psync);
        }
    }

    fn psync_reply(&mut self, line: &[u8]) -> Result<(), ReplicaError> {
        let reply = || String::from_utf8_lossy(line).into_owned();
        let reply_kind = psync_reply(line);
        let failover = std::mem::take(&mut self.psync_failover);
        let dual_channel = self.strict_psync.take().is_some();
        if dual_channel && !matches!(reply_kind, PsyncReply::Continue(_)) {
            return Err(ReplicaError::MasterError { reply: reply() });
        }
        if failover
            && !matches!(
                reply_kind,
                PsyncReply::FullResync(_) | PsyncReply::Continue(_)
            )
        {
            return Err(ReplicaError::FailoverRefused { reply: reply() });
        }
        if let PsyncReply::FullResync(fields) = reply_kind {
            let parsed = fields
                .and_then(|(id, off)| Some((ReplId::parse(id).ok()?, ReplOffset::parse(off)?)));
            let Some((replid, offset)) = parsed else {
                return Err(self.protocol(0, ProtocolError::BadPsyncReply));
            };
            self.events
                .push_back(ReplicaEvent::FullResync { replid, offset });
            self.state = State::Transfer(Transfer {
                sync: Some((replid, offset)),
                body: Body::Header,
                done: 0,
                aux: AuxScan::default(),
            });
            return Ok(());
        }
        if let Some(kind) = self.two_channel_reply(line) {
            return kind;
        }
        if let PsyncReply::Continue(id) = reply_kind {
            let Some(cached) = self.cached else {
                return Err(self.protocol(0, ProtocolError::BadPsyncReply));
            };
            let new_id = id.and_then(|p| ReplId::parse(p).ok());
            let replid = new_id.unwrap_or(cached.replid);
            let changed = replid != cached.replid;
            if self.ids.id != cached.replid {
                // Resuming a master set by `set_cached_master`: adopt its history first.
                self.ids = ReplicationIds::new(cached.replid);
            }
            if changed {
                self.ids.shift(replid, cached.offset);
            }
            match &mut self.backlog {
                _ if self.config.stream_handoff => {}
                Some(b) if b.end() == cached.offset => {}
                Some(b) => b.reset(cached.offset),
                None => self.backlog = Some(Backlog::new(self.config.backlog_size, cached.offset)),
            }
            self.events.push_back(ReplicaEvent::Continue {
                replid,
                offset: cached.offset,
                replid_changed: changed,
            });
            self.enter_streaming(replid, cached.offset, cached.db, false);
            if dual_channel {
                // The snapshot is loaded: acknowledge its offset at once (as after an `$EOF:`
                // transfer), which also puts the replica online on a Valkey master.
                self.send_ack(cached.offset);
            }
            return Ok(());
        }
        if is_try_later(line) {
            return Err(ReplicaError::TryLater { reply: reply() });
        }
        if line.starts_with(b"-NOAUTH") {
            return Err(ReplicaError::AuthRequired { reply: reply() });
        }
        if line.starts_with(b"-NOPERM") {
            return Err(ReplicaError::AuthRejected { reply: reply() });
        }
        // Anything else: the master does not know PSYNC; fall back to SYNC.
        self.out.extend_from_slice(b"SYNC\r\n");
        self.events.push_back(ReplicaEvent::LegacySync);
        self.state = State::Transfer(Transfer {
            sync: None,
            body: Body::Header,
            done: 0,
            aux: AuxScan::default(),
        });
        Ok(())
    }

    fn enter_streaming(&mut self, replid: ReplId, offset: ReplOffset, db: u32, legacy: bool) {
        self.state = State::Streaming(Streaming {
            replid,
            reploff: offset,
            read: offset,
            db,
            multi: None,
            pending: Vec::new(),
            scanner: CommandScanner::new(self.limits),
            legacy,
            forget: false,
        });
        match legacy {
            false => self
                .timers
                .set(Timer::Ack, self.now + self.config.ack_period),
            true => self.timers.stop(Timer::Ack),
        }
    }

    /// Returns true when the transfer finished and processing should continue.
    fn process_transfer(&mut self) -> Result<bool, ReplicaError> {
        if matches!(&self.state, State::Transfer(t) if matches!(t.body, Body::Header)) {
            loop {
                let Some(line) = self.take_line()? else {
                    return Ok(false);
                };
                if line.is_empty() {
                    continue; // keepalive
                }
                let body = match line::transfer(&line) {
                    Ok(Header::Keepalive) => continue,
                    Ok(Header::Error(_)) => {
                        return Err(ReplicaError::MasterError {
                            reply: String::from_utf8_lossy(&line).into_owned(),
                        })
                    }
                    Ok(Header::EofMark(mark)) => Body::Eof {
                        mark: *mark,
                        held: Vec::with_capacity(EOF_MARK_LEN),
                    },
                    Ok(Header::Len(total)) => Body::Len { total },
                    Err((DecodeErrorKind::BadTransferHeader(_), _)) => {
                        return Err(self.protocol(0, ProtocolError::BadBulkHeader))
                    }
                    Err(_) => return Err(self.protocol(0, ProtocolError::BadLength)),
                };
                let len = match body {
                    Body::Len { total } => Some(total),
                    _ => None,
                };
                self.events.push_back(ReplicaEvent::RdbBegin { len });
                if let State::Transfer(t) = &mut self.state {
                    t.body = body;
                }
                break;
            }
        }
        let State::Transfer(t) = &mut self.state else {
            return Ok(true);
        };
        let finished = match &mut t.body {
            Body::Header => false,
            Body::Len { total } => {
                let total = *total;
                let want = total - t.done;
                let n = usize::try_from(want)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len());
                if n > 0 {
                    let data = self.buf.split_to(n).freeze();
                    self.consumed += n as u64;
                    t.done += n as u64;
                    t.aux.feed(&data);
                    self.events.push_back(ReplicaEvent::RdbChunk {
                        data,
                        done: t.done,
                        total: Some(total),
                    });
                }
                t.done == total
            }
            Body::Eof { mark, held } => {
                let avail = held.len() + self.buf.len();
                let emit = avail.saturating_sub(EOF_MARK_LEN);
                let from_held = emit.min(held.len());
                let from_buf = emit - from_held;
                let mut chunks = [None, None];
                if from_held > 0 {
                    chunks[0] = Some(Bytes::copy_from_slice(&held[..from_held]));
                    held.drain(..from_held);
                }
                if from_buf > 0 {
                    chunks[1] = Some(self.buf.split_to(from_buf).freeze());
                }
                held.extend_from_slice(&self.buf);
                self.consumed += (from_buf + self.buf.len()) as u64;
                self.buf.clear();
                for data in chunks.into_iter().flatten() {
                    t.done += data.len() as u64;
                    t.aux.feed(&data);
                    self.events.push_back(ReplicaEvent::RdbChunk {
                        data,
                        done: t.done,
                        total: None,
                    });
                }
                held.as_slice() == mark.as_slice()
            }
        };
        if !finished {
            return Ok(false);
        }
        self.finish_transfer();
        Ok(true)
    }

    fn finish_transfer(&mut self) {
        let State::Transfer(t) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        let stream_db = t
            .aux
            .db()
            .filter(|&d| d < self.config.databases)
            .unwrap_or(0);
        self.events.push_back(ReplicaEvent::RdbEnd {
            len: t.done,
            stream_db,
        });
        self.cached = None;
        if self.finish_two_channel(t.sync, stream_db) {
            return;
        }
        match t.sync {
            Some((replid, offset)) => {
                self.ids = ReplicationIds::new(replid);
                self.stream_out.clear();
                if !self.config.stream_handoff {
                    self.backlog = Some(Backlog::new(self.config.backlog_size, offset));
                }
                self.enter_streaming(replid, offset, stream_db, false);
                if matches!(t.body, Body::Eof { .. }) {
                    // Redis 7 masters start the stream only after this ACK (protocol.md §3.1).
                    self.send_ack(offset);
                }
            }
            None => {
                self.stream_out.clear();
                if !self.config.stream_handoff {
                    self.backlog = Some(Backlog::new(self.config.backlog_size, ReplOffset::new(0)));
                }
                self.enter_streaming(self.ids.id, ReplOffset::new(0), stream_db, true);
            }
        }
    }

    fn send_ack(&mut self, offset: ReplOffset) {
        put_ack(&mut self.out, offset);
    }

    fn process_stream(&mut self) -> Result<(), ReplicaError> {
        let State::Streaming(s) = &mut self.state else {
            return Ok(());
        };
        let buf = &self.buf[..];
        let databases = self.config.databases;
        let mut base = 0usize;
        let mut credit_end = 0usize;
        self.scratch.clear();
        let mut err = None;
        while base < buf.len() {
            let rest = &buf[base..];
            let scanned = match rest[0] {
                // A keepalive newline between commands (never inside one).
                b'\n' if !s.scanner.in_progress() => Ok(Some((1, false))),
                b'\r' if !s.scanner.in_progress() => match rest.get(1) {
                    Some(b'\n') => Ok(Some((2, false))),
                    Some(_) => Err((ProtocolError::InlineCommand, 0)),
                    None => Ok(None),
                },
                _ => match s.scanner.scan(rest) {
                    Ok(found) => Ok(found.map(|n| (n, true))),
                    // Offsets are relative to `rest` and far below usize::MAX.
                    Err(e) => Err((stream_error(e.kind()), e.offset() as usize)),
                },
            };
            let (len, is_command) = match scanned {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err((e, p)) => {
                    err = Some((e, base + p));
                    break;
                }
            };
            let start = base;
            let end = base + len;
            base = end;
            s.read = s.read.add(len as u64);
            let argc = if is_command { s.scanner.argc() } else { 0 };
            let arg = |i: usize| {
                let r = s.scanner.arg(i).unwrap_or(0..0);
                &buf[start + r.start..start + r.end]
            };
            let kind = if argc == 0 {
                CommandKind::Empty
            } else {
                classify(arg(0), (argc > 1).then(|| arg(1)))
            };
            match kind {
                CommandKind::Select => {
                    let db = std::str::from_utf8(arg(1))
                        .ok()
                        .and_then(|t| t.parse::<u32>().ok());
                    if let Some(db) = db.filter(|&d| d < databases) {
                        s.db = db;
                    }
                }
                CommandKind::Multi if s.multi.is_none() => {
                    s.multi = Some(Multi {
                        db: s.db,
                        getack: false,
                    });
                }
                CommandKind::Exec => {
                    if let Some(m) = s.multi.take() {
                        if m.getack && !s.legacy {
                            // Answered at EXEC with the pre-MULTI offset, as Redis does.
                            put_ack(&mut self.out, s.reploff);
                        }
                    }
                }
                CommandKind::ReplconfGetack => match &mut s.multi {
                    Some(m) => m.getack = true,
                    None if !s.legacy => {
                        // The ACK reports the offset before the GETACK itself.
                        put_ack(&mut self.out, s.reploff);
                    }
                    None => {}
                },
                _ => {}
            }
            if kind != CommandKind::Empty {
                self.scratch.push(Item {
                    start,
                    end,
                    kind,
                    db: s.db,
                    offset: s.read,
                    argc: u32::try_from(argc).unwrap_or(u32::MAX),
                });
            }
            if s.multi.is_none() {
                s.reploff = s.read;
                credit_end = end;
            } else if (s.read.value() - s.reploff.value()) as u64 > self.config.max_command_len {
                // An open MULTI holds everything since it began; bound it like a command.
                err = Some((ProtocolError::TransactionTooLong, end));
                break;
            }
        }
        if base > 0 {
            let chunk = self.buf.split_to(base).freeze();
            self.consumed += base as u64;
            if self.config.batch_commands {
                if !self.scratch.is_empty() {
                    self.events.push_back(ReplicaEvent::Commands(CommandBatch {
                        chunk: chunk.clone(),
                        items: std::mem::take(&mut self.scratch),
                    }));
                }
            } else {
                for p in &self.scratch {
                    self.events.push_back(ReplicaEvent::Command(Command {
                        frame: chunk.slice(p.start..p.end),
                        db: p.db,
                        offset: p.offset,
                        kind: p.kind,
                        argc: p.argc,
                    }));
                }
            }
            if let Some(backlog) = &mut self.backlog {
                if credit_end > 0 {
                    for b in s.pending.drain(..) {
                        backlog.append(b);
                    }
                    backlog.append(chunk.slice(..credit_end));
                }
            } else if self.config.stream_handoff {
                if credit_end > 0 {
                    self.stream_out.extend(s.pending.drain(..));
                    self.stream_out.push_back(chunk.slice(..credit_end));
                }
            } else if credit_end > 0 {
                s.pending.clear();
            }
            if credit_end < base {
                s.pending.push(chunk.slice(credit_end..));
            }
        }
        if let Some((e, p)) = err {
            // `base` bytes were consumed above; `p` is relative to the old buffer start.
            return Err(ReplicaError::Protocol {
                offset: self.consumed - base as u64 + p as u64,
                error: e,
            });
        }
        Ok(())
    }
}

/// The replica's name for a command-stream error found by the codec's scanner.
fn stream_error(kind: &DecodeErrorKind) -> ProtocolError {
    match *kind {
        DecodeErrorKind::ExpectedArray(_) => ProtocolError::InlineCommand,
        DecodeErrorKind::ExpectedBulk(b) => ProtocolError::ExpectedBulk(b),
        DecodeErrorKind::MissingCrlf => ProtocolError::MissingCrlf,
        DecodeErrorKind::ArrayTooLong { len, .. } => ProtocolError::MultibulkTooLong(len),
        DecodeErrorKind::BulkTooLong { len, .. } => ProtocolError::BulkTooLong(len),
        DecodeErrorKind::BufferLimit { .. } => ProtocolError::CommandTooLong,
        _ => ProtocolError::BadLength,
    }
}

fn put_ack(out: &mut BytesMut, offset: ReplOffset) {
    let off = offset.to_string();
    put_array(out, &[b"REPLCONF", b"ACK", off.as_bytes()]);
}

/// The master's answer to `PSYNC`, split by a nom parser over the complete line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PsyncReply<'a> {
    /// `+FULLRESYNC <replid> <offset>`: the two fields, `None` when they are missing.
    FullResync(Option<(&'a [u8], &'a [u8])>),
    /// `+CONTINUE [<replid>]`.
    Continue(Option<&'a [u8]>),
    /// Anything else (errors, or a master without PSYNC).
    Other,
}

/// One space-separated field after at least one blank.
fn reply_field(i: &[u8]) -> nom::IResult<&[u8], &[u8]> {
    use nom::bytes::complete::take_till1;
    use nom::character::complete::space1;
    nom::sequence::preceded(space1, take_till1(|b| b == b' ' || b == b'\t'))(i)
}

/// Takes one line (without `\r\n` or `\n`) off the front of `buf`, with the bytes it used;
/// `Ok(None)` until a whole line is there; `Err` when a line is longer than `max`.
fn split_line(buf: &mut BytesMut, max: usize) -> Result<Option<(Bytes, usize)>, ()> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > max { Err(()) } else { Ok(None) };
    };
    if nl > max {
        return Err(());
    }
    let mut line = buf.split_to(nl + 1).freeze();
    line.truncate(nl);
    if line.last() == Some(&b'\r') {
        line.truncate(nl - 1);
    }
    Ok(Some((line, nl + 1)))
}

/// Splits a PSYNC reply line (without `\r\n`) like Redis's `slaveTryPartialResynchronization`.
/// Fields after the expected ones are ignored.
fn psync_reply(line: &[u8]) -> PsyncReply<'_> {
    use nom::bytes::complete::tag;
    use nom::combinator::{map, opt};
    use nom::sequence::{pair, preceded};
    let full = map(
        preceded(tag("+FULLRESYNC"), opt(pair(reply_field, reply_field))),
        PsyncReply::FullResync,
    );
    let cont = map(
        preceded(tag("+CONTINUE"), opt(reply_field)),
        PsyncReply::Continue,
    );
    let r: nom::IResult<&[u8], PsyncReply<'_>> = nom::branch::alt((full, cont))(line);
    r.map_or(PsyncReply::Other, |(_, p)| p)
}

fn is_try_later(line: &[u8]) -> bool {
    line.starts_with(b"-NOMASTERLINK")
        || line.starts_with(b"-LOADING")
        || line.starts_with(b"-MASTERDOWN")
}

#[inline]
fn classify(name: &[u8], arg1: Option<&[u8]>) -> CommandKind {
    match name.len() {
        4 if name.eq_ignore_ascii_case(b"ping") => CommandKind::Ping,
        4 if name.eq_ignore_ascii_case(b"exec") => CommandKind::Exec,
        5 if name.eq_ignore_ascii_case(b"multi") => CommandKind::Multi,
        6 if name.eq_ignore_ascii_case(b"select") && arg1.is_some() => CommandKind::Select,
        8 if name.eq_ignore_ascii_case(b"replconf") => {
            if arg1.is_some_and(|a| a.eq_ignore_ascii_case(b"getack")) {
                CommandKind::ReplconfGetack
            } else {
                CommandKind::Replconf
            }
        }
        _ => CommandKind::Other,
    }
}

/// Appends a RESP array of bulk strings.
fn put_array(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_u8(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.put_u8(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::{psync_reply, PsyncReply};

    #[test]
    fn psync_reply_lines() {
        let id = b"8de1787ba490483314a4d30f1c628bc5025eb761";
        let mut full = b"+FULLRESYNC ".to_vec();
        full.extend_from_slice(id);
        full.extend_from_slice(b" 1000");
        assert_eq!(
            psync_reply(&full),
            PsyncReply::FullResync(Some((&id[..], &b"1000"[..])))
        );
        assert_eq!(psync_reply(b"+FULLRESYNC"), PsyncReply::FullResync(None));
        assert_eq!(
            psync_reply(b"+FULLRESYNC onlyone"),
            PsyncReply::FullResync(None)
        );
        assert_eq!(psync_reply(b"+CONTINUE"), PsyncReply::Continue(None));
        let mut cont = b"+CONTINUE  ".to_vec();
        cont.extend_from_slice(id);
        assert_eq!(psync_reply(&cont), PsyncReply::Continue(Some(&id[..])));
        assert_eq!(psync_reply(b"-ERR unknown command"), PsyncReply::Other);
        assert_eq!(psync_reply(b"+OK"), PsyncReply::Other);
    }
}
