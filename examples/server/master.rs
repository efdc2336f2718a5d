//! The master role: the crate's sans-IO [`Node`] inside the server, driven by threads.
//!
//! - The command table hands `REPLCONF`, `PSYNC`, `SYNC` and `ROLE` to [`Node::handle_command`]
//!   and every write it executes to [`propagate`] (with Redis's rewrites into deterministic
//!   forms, see [`crate::app::propagate`]).
//! - When a connection becomes a replica link its reader thread keeps feeding what it reads to
//!   [`Node::handle_input`] ([`replica_input`]), and a writer thread ([`spawn_writer`]) writes
//!   what [`Node::poll_transmit`] gives: slices of the node's one backlog, or the snapshot file.
//!   Writer threads sleep on a condition variable that every batch of writes signals.
//! - Node events are handled in [`drain_events`], always under the server lock: a snapshot is
//!   started at once (the keyspace view is taken under the same lock that orders writes with
//!   `propagate`, so it is exactly the state at the `+FULLRESYNC` offset) and written on its
//!   own thread by [`crate::app::snapshot`]; links the node drops are shut down.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use respsync::node::{LinkId, NodeEvent, SnapshotId, SnapshotTarget, Transmit};
use respsync::rdb::ReplInfo;

use crate::app::server::Server;
use crate::app::snapshot::{self, Spec};
use crate::app::Shared;

/// A replica writer that just sent less than this sleeps [`COALESCE_FOR`] before looking again.
const COALESCE_BELOW: u64 = 64 * 1024;
const COALESCE_FOR: Duration = Duration::from_micros(500);

/// Diskless snapshot bytes queued for the slowest replica before the producer waits.
const MAX_SNAPSHOT_BUFFER: u64 = 8 << 20;

/// Snapshots being produced, by id.
#[derive(Default)]
pub struct Snapshots {
    /// Set when the node abandons a snapshot: its producer stops.
    running: BTreeMap<u64, Arc<AtomicBool>>,
    /// Files of disk snapshots, kept until a newer one is complete.
    files: BTreeMap<u64, PathBuf>,
    /// Links to close once their last bytes are written.
    closing: BTreeMap<LinkId, ()>,
}

/// The link id of a client connection.
pub fn link(client_id: u64) -> LinkId {
    LinkId(client_id)
}

/// Propagates one executed write (already rewritten) to the replicas.
pub fn propagate(srv: &mut Server, db: usize, argv: &[Bytes]) {
    if srv.is_replica() {
        return; // a replica passes on its master's stream, byte for byte
    }
    if let Some(tx) = &mut srv.tx_propagate {
        tx.push((db as u32, argv.to_vec()));
        return;
    }
    srv.node.propagate(db as u32, argv);
    srv.repl_dirty = true;
}

/// Acts on every node event. Call after any node call, under the lock.
pub fn drain_events(shared: &Arc<Shared>, srv: &mut Server) {
    while let Some(ev) = srv.node.poll_event() {
        match ev {
            NodeEvent::SnapshotRequested {
                snapshot,
                target,
                filter,
                rdb_version,
                ..
            } => start_snapshot(shared, srv, snapshot, target, filter.data, rdb_version),
            NodeEvent::SnapshotAbandoned { snapshot } => {
                if let Some(flag) = srv.snapshots.running.remove(&snapshot.0) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            NodeEvent::Close { link, reason } => {
                crate::log!("Closing replica {link}: {reason:?}");
                if reason.flush_first() {
                    srv.snapshots.closing.insert(link, ());
                } else if let Some(c) = srv.clients.get(&link.0) {
                    let _ = c.sock.shutdown(Shutdown::Both);
                }
            }
            NodeEvent::WaitDone { wait, replicas } => {
                srv.wait_results.insert(wait, Some(replicas));
                srv.repl_dirty = true;
            }
            NodeEvent::WaitUnblocked { wait } => {
                srv.wait_results.insert(wait, None);
                srv.repl_dirty = true;
            }
            NodeEvent::FailoverDemote { host, port } => {
                crate::log!("FAILOVER: following {host}:{port} with PSYNC FAILOVER");
                srv.replicate(host, port);
                srv.failover_psync = true;
            }
            NodeEvent::PromotedByFailover => {
                crate::log!("FAILOVER: our master handed us the master role");
                srv.drop_upstream();
            }
            NodeEvent::FailoverAborted { reason } => {
                crate::log!("FAILOVER aborted: {reason}");
                srv.drop_upstream();
                srv.repl_dirty = true;
            }
            NodeEvent::UnexpectedCommand { link, name } => crate::log!(
                "replica {link} sent {} on its replication link: not run",
                String::from_utf8_lossy(&name)
            ),
            other => crate::log!("replication: unhandled node event {other:?}"),
        }
    }
    if std::mem::take(&mut srv.repl_dirty) {
        shared.repl_cv.notify_all();
    }
}

fn start_snapshot(
    shared: &Arc<Shared>,
    srv: &mut Server,
    id: SnapshotId,
    target: SnapshotTarget,
    data: bool,
    rdb_version: u8,
) {
    let start = match srv.node.handle_snapshot_started(Instant::now(), id) {
        Ok(s) => s,
        Err(e) => {
            crate::log!("snapshot {}: {e}", id.0);
            return;
        }
    };
    crate::log!(
        "Starting BGSAVE for SYNC with target: {} (offset {})",
        if target == SnapshotTarget::Disk {
            "disk"
        } else {
            "replicas sockets"
        },
        start.offset
    );
    srv.snapshots_started += 1;
    let dbs = srv.store.snapshot();
    let spec = Spec {
        version: rdb_version,
        repl: Some(ReplInfo {
            stream_db: u64::from(start.stream_db),
            id: Bytes::copy_from_slice(start.replid.as_bytes()),
            offset: start.offset.value(),
        }),
        data,
    };
    let abandoned = Arc::new(AtomicBool::new(false));
    srv.snapshots.running.insert(id.0, Arc::clone(&abandoned));
    let dir = PathBuf::from(&srv.cfg.dir);
    let shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || match target {
            SnapshotTarget::Disk => disk_snapshot(&shared, id, dbs, &spec, &dir),
            _ => socket_snapshot(&shared, id, dbs, &spec, &abandoned),
        });
    if let Err(e) = spawned {
        crate::log!("cannot start the snapshot thread: {e}");
        srv.node.handle_snapshot_failed(Instant::now(), id);
    }
}

enum SinkError {
    Io(std::io::Error),
    Write(respsync::rdb::WriteError),
    Abandoned,
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Io(e) => write!(f, "{e}"),
            SinkError::Write(e) => write!(f, "{e}"),
            SinkError::Abandoned => f.write_str("abandoned: no replica waits for it"),
        }
    }
}

impl From<respsync::rdb::WriteError> for SinkError {
    fn from(e: respsync::rdb::WriteError) -> Self {
        SinkError::Write(e)
    }
}

fn disk_snapshot(
    shared: &Arc<Shared>,
    id: SnapshotId,
    dbs: Vec<crate::app::store::DbSnapshot>,
    spec: &Spec,
    dir: &std::path::Path,
) {
    let path = dir.join(format!("temp-repl-{}-{}.rdb", std::process::id(), id.0));
    let result = File::create(&path).map_err(SinkError::Io).and_then(|f| {
        let mut f = BufWriter::with_capacity(1 << 20, f);
        let w =
            snapshot::write::<SinkError>(dbs, spec, |c| f.write_all(&c).map_err(SinkError::Io))?;
        f.flush().map_err(SinkError::Io)?;
        Ok(w)
    });
    let mut srv = shared.lock();
    srv.snapshots.running.remove(&id.0);
    match result {
        Ok(w) => {
            crate::log!(
                "DB saved on disk for replication: {} keys, {} bytes",
                w.keys,
                w.bytes
            );
            // Files of older snapshots are no longer handed to anyone.
            let old: Vec<u64> = srv.snapshots.files.keys().copied().collect();
            for o in old {
                if let Some(p) = srv.snapshots.files.remove(&o) {
                    let _ = std::fs::remove_file(p);
                }
            }
            srv.snapshots.files.insert(id.0, path);
            if let Err(e) = srv.node.handle_snapshot_file(Instant::now(), id, w.bytes) {
                crate::log!("snapshot {}: {e}", id.0);
            }
        }
        Err(e) => {
            crate::log!("Background saving for replication failed: {e}");
            let _ = std::fs::remove_file(&path);
            srv.node.handle_snapshot_failed(Instant::now(), id);
        }
    }
    srv.repl_dirty = true;
    drain_events(shared, &mut srv);
}

fn socket_snapshot(
    shared: &Arc<Shared>,
    id: SnapshotId,
    dbs: Vec<crate::app::store::DbSnapshot>,
    spec: &Spec,
    abandoned: &AtomicBool,
) {
    let result = snapshot::write::<SinkError>(dbs, spec, |chunk| {
        let mut srv = shared.lock();
        // Pace the producer by the slowest replica, as Redis reads its child's pipe only
        // when every replica socket has drained.
        while srv.node.snapshot_buffered(id) > MAX_SNAPSHOT_BUFFER {
            if abandoned.load(Ordering::Relaxed) {
                return Err(SinkError::Abandoned);
            }
            shared.repl_cv.notify_all();
            srv = shared.wait(srv, Duration::from_millis(50));
        }
        if abandoned.load(Ordering::Relaxed) {
            return Err(SinkError::Abandoned);
        }
        srv.node
            .handle_snapshot_chunk(Instant::now(), id, chunk)
            .map_err(|_| SinkError::Abandoned)?;
        shared.repl_cv.notify_all();
        Ok(())
    });
    let mut srv = shared.lock();
    srv.snapshots.running.remove(&id.0);
    match result {
        Ok(w) => {
            crate::log!("Diskless snapshot sent: {} keys, {} bytes", w.keys, w.bytes);
            let _ = srv.node.handle_snapshot_end(Instant::now(), id);
        }
        Err(SinkError::Abandoned) => crate::log!("Diskless snapshot {} abandoned", id.0),
        Err(e) => {
            crate::log!("Diskless snapshot failed: {e}");
            srv.node.handle_snapshot_failed(Instant::now(), id);
        }
    }
    srv.repl_dirty = true;
    drain_events(shared, &mut srv);
}

/// Bytes read from a replica link (ACKs, keepalives).
pub fn replica_input(shared: &Arc<Shared>, client_id: u64, data: &[u8]) {
    let mut srv = shared.lock();
    srv.stats.total_net_input_bytes += data.len() as u64;
    srv.node.handle_input(Instant::now(), link(client_id), data);
    srv.repl_dirty = true;
    drain_events(shared, &mut srv);
}

/// Starts the thread that writes to replica link `client_id` until the node forgets it.
pub fn spawn_writer(shared: &Arc<Shared>, client_id: u64, sock: TcpStream) {
    let shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("replica-writer".into())
        .spawn(move || writer(&shared, client_id, sock));
    if let Err(e) = spawned {
        crate::log!("cannot start a replica writer thread: {e}");
    }
}

enum Work {
    Bytes(Vec<Bytes>),
    File(PathBuf),
    Close,
    Gone,
    Idle,
}

fn writer(shared: &Arc<Shared>, client_id: u64, mut sock: TcpStream) {
    let link = link(client_id);
    let mut srv = shared.lock();
    loop {
        let work = next_work(&mut srv, link);
        match work {
            Work::Idle => {
                srv = shared.wait(srv, Duration::from_millis(100));
                continue;
            }
            Work::Gone => break,
            Work::Close => {
                srv.snapshots.closing.remove(&link);
                let _ = sock.shutdown(Shutdown::Both);
                break;
            }
            Work::Bytes(chunks) => {
                drop(srv);
                let mut n = 0;
                let mut ok = true;
                for c in &chunks {
                    if sock.write_all(c).is_err() {
                        ok = false;
                        break;
                    }
                    n += c.len() as u64;
                }
                if n < COALESCE_BELOW {
                    // Little to send: let writes accumulate a moment, so that a busy master
                    // wakes its replica writers (and takes its lock for them) a few thousand
                    // times a second at most rather than once per client batch.
                    std::thread::sleep(COALESCE_FOR);
                }
                srv = shared.lock();
                srv.stats.total_net_output_bytes += n;
                if !ok {
                    break;
                }
            }
            Work::File(path) => {
                drop(srv);
                let sent = File::open(&path).and_then(|mut f| std::io::copy(&mut f, &mut sock));
                srv = shared.lock();
                match sent {
                    Ok(n) => {
                        srv.stats.total_net_output_bytes += n;
                        srv.node.handle_file_sent(Instant::now(), link);
                        drain_events(shared, &mut srv);
                    }
                    Err(e) => {
                        crate::log!("sending the snapshot file to {link}: {e}");
                        break;
                    }
                }
            }
        }
    }
    drop(srv);
    let _ = sock.shutdown(Shutdown::Both);
}

/// What the writer of `link` should do next (under the lock).
fn next_work(srv: &mut Server, link: LinkId) -> Work {
    if srv.node.replica(link).is_none() {
        return Work::Gone;
    }
    let mut chunks = Vec::new();
    let mut size = 0;
    while size < (4 << 20) {
        match srv.node.poll_transmit(link) {
            Some(Transmit::Bytes(b)) => {
                size += b.len();
                chunks.push(b);
            }
            Some(Transmit::File { snapshot, .. }) => {
                if !chunks.is_empty() {
                    // Write what precedes the file first; the file comes next time.
                    srv.pending_files.insert(link, snapshot.0);
                    return Work::Bytes(chunks);
                }
                return match srv.snapshots.files.get(&snapshot.0) {
                    Some(p) => Work::File(p.clone()),
                    None => Work::Gone,
                };
            }
            None => break,
        }
    }
    if chunks.is_empty() {
        if let Some(id) = srv.pending_files.remove(&link) {
            return match srv.snapshots.files.get(&id) {
                Some(p) => Work::File(p.clone()),
                None => Work::Gone,
            };
        }
        if srv.snapshots.closing.contains_key(&link) {
            return Work::Close;
        }
        return Work::Idle;
    }
    Work::Bytes(chunks)
}

/// The replication part of the 1 Hz-ish cron: the node's timers.
pub fn cron(shared: &Arc<Shared>, srv: &mut Server) {
    let now = Instant::now();
    if srv.node.poll_timeout().is_some_and(|t| t <= now) {
        srv.node.handle_timeout(now);
        srv.repl_dirty = true;
    }
    drain_events(shared, srv);
}
