//! The replica role: one thread that keeps a link to our master and drives the crate's sans-IO
//! [`ReplicaSession`] over a blocking `TcpStream`.
//!
//! The loop is the crate's drive rule made concrete: write what `poll_transmit` gives, act on
//! every `poll_event`, sleep in `read` no longer than `poll_timeout` allows, then feed what was
//! read to `handle_input` (or call `handle_timeout`). The snapshot is parsed into a fresh store
//! outside the server lock and swapped in when complete; stream commands go through the same
//! [`commands::execute`] as client commands, with a muted reply sink and the master's flags.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use respsync::ids::{ReplId, ReplOffset};
use respsync::replica::{
    CachedMaster, CommandKind, MasterAuth, ReplicaConfig, ReplicaEvent, ReplicaSession,
};

use crate::app::commands;
use crate::app::loader::Background;
use crate::app::reply::Out;
use crate::app::server::{Client, LinkState, Server};
use crate::app::Shared;

/// Longest wait between reconnection attempts (Redis retries from its 1 s cron).
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Longest sleep in `read`, so that a REPLICAOF change is noticed promptly.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// What the replication thread needs to know about the current master.
struct Target {
    generation: u64,
    host: String,
    port: u16,
    config: ReplicaConfig,
    databases: usize,
    resume: Option<CachedMaster>,
    /// This link is the second half of our FAILOVER: `PSYNC … FAILOVER`.
    failover: bool,
}

fn target(srv: &Server) -> Option<Target> {
    let u = srv.upstream.as_ref().filter(|u| u.stopped.is_none())?;
    let cfg = &srv.cfg;
    let auth = cfg.masterauth.as_ref().map(|p| MasterAuth {
        user: cfg.masteruser.clone(),
        password: p.clone(),
    });
    let seed = u64::from_str_radix(&srv.run_id[..16], 16).unwrap_or(0);
    let config = ReplicaConfig {
        listening_port: cfg.port,
        auth,
        repl_timeout: Duration::from_secs(cfg.repl_timeout),
        handshake_timeout: Duration::from_secs(cfg.repl_timeout),
        backlog_size: cfg.repl_backlog_size,
        databases: u32::try_from(cfg.databases).unwrap_or(16),
        id_seed: seed,
        // The node keeps the one backlog of this server: the session hands the stream over.
        stream_handoff: true,
        // The stream arrives as one batch per read: no allocation or reference count per
        // command.
        batch_commands: true,
        rdb_channel: cfg.repl_rdb_channel,
        dual_channel: cfg.dual_channel,
        ..ReplicaConfig::default()
    };
    // After REPLICAOF or a restart, try to continue our own history (PSYNC2).
    let resume = srv.has_history.then(|| CachedMaster {
        replid: srv.node.ids().id,
        offset: srv.node.offset(),
        db: srv.resume_db,
    });
    Some(Target {
        generation: srv.repl_generation,
        host: u.host.clone(),
        port: u.port,
        config,
        databases: cfg.databases,
        resume,
        failover: srv.failover_psync,
    })
}

/// Starts the replication thread. It idles while the server is a master.
pub fn spawn(shared: Arc<Shared>) {
    std::thread::Builder::new()
        .name("replication".into())
        .spawn(move || run(&shared))
        .map(drop)
        .unwrap_or_else(|e| crate::log!("cannot start the replication thread: {e}"));
}

fn run(shared: &Shared) {
    let mut session: Option<(u64, ReplicaSession)> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(t) = target(&shared.lock()) else {
            session = None;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let stale = match &session {
            Some((g, s)) => *g != t.generation || s.state() == respsync::replica::LinkState::Failed,
            None => true,
        };
        if stale {
            // A failed session (refused AUTH) is retried with a fresh one, keeping the cached
            // master, as Redis keeps retrying every second.
            let keep = session
                .as_ref()
                .filter(|(g, _)| *g == t.generation)
                .and_then(|(_, s)| s.cached_master().copied());
            let mut s = match ReplicaSession::new(t.config.clone(), Instant::now()) {
                Ok(s) => s,
                Err(e) => {
                    crate::log!("replication: bad configuration: {e}");
                    std::thread::sleep(MAX_BACKOFF);
                    continue;
                }
            };
            if let Some(c) = keep.or(t.resume) {
                s.set_cached_master(c);
            }
            s.set_psync_failover(t.failover);
            session = Some((t.generation, s));
        }
        let Some((_, sess)) = session.as_mut() else {
            continue;
        };
        set_state(shared, t.generation, LinkState::Connecting);
        crate::log!("Connecting to MASTER {}:{}", t.host, t.port);
        let addr = (t.host.as_str(), t.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next());
        let sock = addr.and_then(|a| {
            TcpStream::connect_timeout(
                &a,
                Duration::from_secs(t.config.repl_timeout.as_secs().max(1)),
            )
            .ok()
        });
        let Some(sock) = sock else {
            crate::log!("Error condition on socket for SYNC: connection refused");
            set_state(shared, t.generation, LinkState::Connect);
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        let mut link = Link::new(shared, &t, sess);
        link.addr = addr;
        let reached = link.run(sock);
        if reached {
            backoff = Duration::from_millis(50);
        } else {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Sets the link state if the master did not change meanwhile.
fn set_state(shared: &Shared, generation: u64, state: LinkState) {
    let mut srv = shared.lock();
    if srv.repl_generation != generation {
        return;
    }
    if let Some(u) = &mut srv.upstream {
        if state != LinkState::Connected && u.state == LinkState::Connected {
            u.down_since = Some(Instant::now());
        }
        u.state = state;
    }
}

/// One TCP connection to the master.
struct Link<'a> {
    shared: &'a Shared,
    generation: u64,
    databases: usize,
    sess: &'a mut ReplicaSession,
    loader: Option<Background>,
    master: Client,
    out: Out,
    reached_connected: bool,
    sync_started: Option<Instant>,
    /// The `+FULLRESYNC` id and offset of the transfer in progress.
    full_sync: Option<(ReplId, ReplOffset)>,
    /// The master's address (a two-connection sync opens a second connection to it).
    addr: Option<std::net::SocketAddr>,
    /// The second connection of a two-connection full sync, and what its reader thread read.
    chan: Option<(TcpStream, Receiver<Option<Bytes>>)>,
}

impl<'a> Link<'a> {
    fn new(shared: &'a Shared, t: &Target, sess: &'a mut ReplicaSession) -> Link<'a> {
        Link {
            shared,
            generation: t.generation,
            databases: t.databases,
            sess,
            loader: None,
            master: Client::master(),
            out: Out::muted(),
            reached_connected: false,
            sync_started: None,
            full_sync: None,
            addr: None,
            chan: None,
        }
    }

    /// Runs the link until it drops; returns whether it reached the streaming state.
    fn run(mut self, mut sock: TcpStream) -> bool {
        let _ = sock.set_nodelay(true);
        {
            let mut srv = self.shared.lock();
            if srv.repl_generation != self.generation {
                return false;
            }
            if let Some(u) = &mut srv.upstream {
                u.sock = sock.try_clone().ok();
                u.state = LinkState::Handshake;
            }
        }
        crate::log!("MASTER <-> REPLICA sync started");
        let mut buf = vec![0u8; 256 * 1024];
        if self.sess.connected(Instant::now()).is_ok() {
            loop {
                if !self.flush(&mut sock) || !self.events() {
                    break;
                }
                let now = Instant::now();
                let wait = self
                    .sess
                    .poll_timeout()
                    .map_or(MAX_WAIT, |t| t.saturating_duration_since(now))
                    .clamp(Duration::from_millis(1), MAX_WAIT);
                if self.chan.is_some() {
                    // A two-connection sync: the snapshot comes on the second connection, and
                    // the main one is read only as long as its kept stream is within bounds.
                    if !self.drive_chan(&mut sock, &mut buf, wait) {
                        break;
                    }
                    continue;
                }
                let _ = sock.set_read_timeout(Some(wait));
                match sock.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        // Errors come back as LinkLost/Failed events, handled in `events`.
                        let _ = self.sess.handle_input(Instant::now(), &buf[..n]);
                        self.note_input(n);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break,
                }
                let now = Instant::now();
                if self.sess.poll_timeout().is_some_and(|t| t <= now) {
                    self.sess.handle_timeout(now);
                }
            }
        }
        let _ = sock.shutdown(std::net::Shutdown::Both);
        self.close_chan();
        self.sess.disconnected(Instant::now());
        // Drain what `disconnected` reported (a MULTI cut short).
        self.events();
        self.master.multi = None;
        crate::log!("Connection with master lost.");
        let mut srv = self.shared.lock();
        if srv.repl_generation == self.generation {
            self.publish(&mut srv);
            if let Some(u) = &mut srv.upstream {
                u.sock = None;
                if u.state == LinkState::Connected
                    || u.down_since.is_none() && self.reached_connected
                {
                    u.down_since = Some(Instant::now());
                }
                u.state = LinkState::Connect;
            }
        }
        self.reached_connected
    }

    /// Opens the second connection of a two-connection full sync, with a reader thread.
    fn open_chan(&mut self) -> bool {
        let Some(addr) = self.addr else {
            return false;
        };
        let Ok(b) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
            crate::log!("rdb channel: cannot connect to {addr}");
            self.sess.rdb_channel_disconnected(Instant::now());
            return true;
        };
        let _ = b.set_nodelay(true);
        let Ok(mut reader) = b.try_clone() else {
            return false;
        };
        let (tx, rx) = sync_channel::<Option<Bytes>>(64);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Some(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        crate::log!("rdb channel: second connection to {addr} open");
        let _ = self.sess.rdb_channel_connected(Instant::now());
        self.chan = Some((b, rx));
        true
    }

    /// One turn while the second connection is open: its input (blocking up to `wait`), then
    /// whatever the main connection has, without blocking.
    fn drive_chan(&mut self, sock: &mut TcpStream, buf: &mut [u8], wait: Duration) -> bool {
        let Some((_, rx)) = &self.chan else {
            return true;
        };
        match rx.recv_timeout(wait) {
            Ok(Some(data)) => {
                let _ = self.sess.handle_rdb_channel_input(Instant::now(), &data);
                self.note_input(data.len());
            }
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                self.chan = None;
                self.sess.rdb_channel_disconnected(Instant::now());
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if !self.sess.main_read_paused() {
            let _ = sock.set_nonblocking(true);
            let r = sock.read(buf);
            let _ = sock.set_nonblocking(false);
            match r {
                Ok(0) => return false,
                Ok(n) => {
                    let _ = self.sess.handle_input(Instant::now(), &buf[..n]);
                    self.note_input(n);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(_) => return false,
            }
        }
        let now = Instant::now();
        if self.sess.poll_timeout().is_some_and(|t| t <= now) {
            self.sess.handle_timeout(now);
        }
        true
    }

    fn close_chan(&mut self) {
        if let Some((b, _)) = self.chan.take() {
            let _ = b.shutdown(std::net::Shutdown::Both);
        }
    }

    fn flush(&mut self, sock: &mut TcpStream) -> bool {
        if let Some((b, _)) = &mut self.chan {
            while let Some(bytes) = self.sess.poll_rdb_channel_transmit() {
                if b.write_all(&bytes).is_err() {
                    self.sess.rdb_channel_disconnected(Instant::now());
                    break;
                }
            }
        }
        while let Some(bytes) = self.sess.poll_transmit() {
            if sock.write_all(&bytes).is_err() {
                return false;
            }
        }
        true
    }

    fn note_input(&mut self, n: usize) {
        let mut srv = self.shared.lock();
        srv.stats.total_net_repl_input_bytes += n as u64;
        if let Some(u) = &mut srv.upstream {
            u.last_io = Some(Instant::now());
        }
    }

    /// Hands the applied stream to the node (its backlog, its sub-replicas) and copies the
    /// link's offsets into what INFO shows.
    fn publish(&mut self, srv: &mut Server) {
        let mut passed_on = false;
        while let Some(bytes) = self.sess.poll_stream() {
            srv.node.handle_upstream_stream(bytes);
            passed_on = true;
        }
        if passed_on {
            self.shared.repl_cv.notify_all();
        }
        let connected = self.sess.state() == respsync::replica::LinkState::Connected;
        // Only while this server still follows a master: a FAILOVER refused by its target has
        // already made it a master again.
        if srv.upstream.is_some() && srv.repl_generation == self.generation {
            srv.node.set_upstream(true, connected);
        }
        if let Some(db) = self.sess.db() {
            srv.resume_db = db;
            // A snapshot this replica serves starts its sub-replicas in this database.
            srv.node.set_upstream_db(db);
        }
        let (applied, read) = (self.sess.offset(), self.sess.read_offset());
        if let Some(u) = &mut srv.upstream {
            if let (Some(applied), Some(read)) = (applied, read) {
                u.applied_offset = applied.value();
                u.read_offset = read.value();
            }
        }
    }

    /// A command of the master's stream this server cannot apply. Nothing is dropped
    /// silently: it is counted, and either the link stops right before it
    /// (`replica-unknown-command-policy stop`, the default; returns false) or it is skipped
    /// with a log line (`continue`).
    fn unknown_command(&mut self, srv: &mut Server, cmd: &respsync::replica::Command) -> bool {
        srv.stats.unapplied_master_commands += 1;
        let name = String::from_utf8_lossy(cmd.name()).into_owned();
        if srv.cfg.replica_unknown_command_stop {
            let reason = format!(
                "master sent '{name}' at offset {}, which this server cannot apply",
                cmd.start_offset()
            );
            crate::log!("# Replication stopped: {reason}");
            if let Some(u) = &mut srv.upstream {
                u.stopped = Some(reason);
            }
            self.sess.refuse_command(Instant::now(), cmd);
            return false;
        }
        crate::log!(
            "# CRITICAL: master sent '{name}', which this server cannot apply: skipped (replica-unknown-command-policy continue)"
        );
        true
    }

    /// Acts on every pending event; returns false when the link must be closed.
    fn events(&mut self) -> bool {
        let shared = self.shared;
        let mut guard: Option<MutexGuard<'_, Server>> = None;
        let mut touched = false;
        let mut keep = true;
        while let Some(ev) = self.sess.poll_event() {
            touched = true;
            match ev {
                ReplicaEvent::Commands(batch) => {
                    let srv = guard.get_or_insert_with(|| shared.lock());
                    // One clock read for the burst (the session emits one batch per read).
                    srv.batch_now = Some(crate::app::store::now_ms());
                    for cmd in batch.iter() {
                        if !matches!(
                            cmd.kind(),
                            CommandKind::Other | CommandKind::Multi | CommandKind::Exec
                        ) {
                            continue;
                        }
                        self.master.db = cmd.db() as usize;
                        let applied = commands::execute_from_master(
                            srv,
                            &mut self.master,
                            &cmd,
                            &mut self.out,
                        );
                        if !applied && !self.unknown_command(srv, &cmd.to_command()) {
                            keep = false;
                            break;
                        }
                    }
                    srv.batch_now = None;
                    if !keep {
                        break;
                    }
                }
                ReplicaEvent::FullResync { replid, offset } => {
                    crate::log!("Full resync from master: {replid}:{offset}");
                    self.full_sync = Some((replid, offset));
                    let srv = guard.get_or_insert_with(|| shared.lock());
                    // A FAILOVER's PSYNC answered with a full resync (FORCE to a lagging
                    // target) is done too.
                    failover_done(srv, true);
                    if let Some(u) = &mut srv.upstream {
                        u.state = LinkState::Transfer;
                        u.sync_total = -1;
                        u.sync_read = 0;
                    }
                }
                ReplicaEvent::LegacySync => {
                    crate::log!("Master does not support PSYNC: using SYNC")
                }
                ReplicaEvent::RdbBegin { len } => {
                    crate::log!(
                        "MASTER <-> REPLICA sync: receiving {}",
                        len.map_or("streamed RDB".into(), |l| format!("{l} bytes"))
                    );
                    self.loader = Some(Background::start(self.databases));
                    self.sync_started = Some(Instant::now());
                    let srv = guard.get_or_insert_with(|| shared.lock());
                    if let Some(u) = &mut srv.upstream {
                        u.state = LinkState::Transfer;
                        u.sync_total = len.map_or(0, |l| l as i64);
                    }
                }
                ReplicaEvent::RdbChunk { data, done, .. } => {
                    guard = None;
                    if let Some(l) = &self.loader {
                        if !l.push(data) {
                            let e = self.loader.take().map(|l| l.finish().err());
                            if let Some(Some(e)) = e {
                                crate::log!(
                                    "MASTER <-> REPLICA sync: failed to parse the snapshot: {e}"
                                );
                            }
                            self.sess.forget_master();
                            keep = false;
                            break;
                        }
                    }
                    let mut srv = shared.lock();
                    if let Some(u) = &mut srv.upstream {
                        u.sync_read = done as i64;
                    }
                }
                ReplicaEvent::RdbEnd { len, stream_db } => {
                    guard = None;
                    let Some(loader) = self.loader.take() else {
                        continue;
                    };
                    match loader.finish() {
                        Ok(crate::app::loader::Loaded { store, keys, .. }) => {
                            crate::log!(
                                "MASTER <-> REPLICA sync: loaded {keys} keys from {len} bytes"
                            );
                            let srv = guard.get_or_insert_with(|| shared.lock());
                            // The old dataset is dropped on another thread: freeing millions
                            // of keys would otherwise stall every client.
                            let old = std::mem::replace(&mut srv.store, store);
                            std::thread::spawn(move || drop(old));
                            srv.last_load_keys = keys;
                            srv.dirty = 0;
                            self.master.multi = None;
                            // A new history: the node adopts it and drops its sub-replicas.
                            if let Some((replid, offset)) = self.full_sync.take() {
                                srv.node
                                    .handle_upstream_full_sync(replid, offset, stream_db);
                                srv.has_history = true;
                            }
                        }
                        Err(e) => {
                            crate::log!(
                                "MASTER <-> REPLICA sync: failed to load the snapshot: {e}"
                            );
                            self.sess.forget_master();
                            keep = false;
                            break;
                        }
                    }
                }
                ReplicaEvent::Continue {
                    replid,
                    offset,
                    replid_changed,
                } => {
                    let srv = guard.get_or_insert_with(|| shared.lock());
                    srv.node.handle_upstream_continue(replid);
                    srv.has_history = true;
                    failover_done(srv, true);
                    crate::log!(
                        "MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization ({replid}:{offset}{})",
                        if replid_changed { ", new replication id" } else { "" }
                    );
                }
                ReplicaEvent::TransactionDiscarded => self.master.multi = None,
                ReplicaEvent::RdbChannelOpen => {
                    crate::log!("PSYNC is not possible, initialize RDB channel.");
                    if !self.open_chan() {
                        keep = false;
                    }
                }
                ReplicaEvent::RdbChannelClose => self.close_chan(),
                ReplicaEvent::LinkLost(e) => {
                    crate::log!("replication link lost: {e}");
                    if matches!(e, respsync::replica::ReplicaError::FailoverRefused { .. }) {
                        let srv = guard.get_or_insert_with(|| shared.lock());
                        failover_done(srv, false);
                    }
                    keep = false;
                }
                ReplicaEvent::Failed(e) => {
                    crate::log!("replication failed: {e}");
                    keep = false;
                }
                _ => {}
            }
        }
        if touched {
            let mut srv = guard.unwrap_or_else(|| shared.lock());
            if srv.repl_generation != self.generation {
                return false;
            }
            self.publish(&mut srv);
            let connected = self.sess.state() == respsync::replica::LinkState::Connected;
            if let Some(u) = &mut srv.upstream {
                if connected && u.state != LinkState::Connected {
                    crate::log!("MASTER <-> REPLICA sync: Finished with success");
                    u.state = LinkState::Connected;
                    u.down_since = None;
                    self.reached_connected = true;
                }
            }
        }
        keep
    }
}

/// The `PSYNC … FAILOVER` of our FAILOVER got its answer: the node finishes or aborts.
fn failover_done(srv: &mut Server, succeeded: bool) {
    if std::mem::take(&mut srv.failover_psync) {
        srv.node.handle_failover_result(Instant::now(), succeeded);
        crate::log!(
            "FAILOVER {}",
            if succeeded {
                "done: this node follows the new master"
            } else {
                "aborted by the target"
            }
        );
    }
}
