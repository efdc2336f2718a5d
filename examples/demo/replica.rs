//! The replica node: a `respsync::replica::ReplicaSession` driven by a std thread over a real
//! TCP socket, loading the snapshot through `SnapshotLoader` + `Collector` and applying the
//! command stream to an in-memory dataset. It also serves clients on its own port, refusing
//! writes the way a read-only Redis replica does.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use respsync::ids::{ReplId, ReplOffset};
use respsync::rdb::{Checksum, Collector, ParserConfig};
use respsync::replica::{
    CommandKind, LinkState, ReplicaConfig, ReplicaEvent, ReplicaSession, SnapshotLoader,
};
use respsync::resp;

use crate::net;
use crate::store::{self, Db, Reply};

/// Largest value the collector gathers into memory (the demo's values are tiny).
const MAX_VALUE_BYTES: u64 = 64 << 20;

/// What the replica thread publishes after every turn of its loop.
#[derive(Debug, Clone)]
pub struct ReplicaInfo {
    /// `master_link_status:up`.
    pub link_up: bool,
    /// The session's state name (`connecting`, `handshake`, `transfer`, `connected`, ...).
    pub state: String,
    /// `master_replid`: the replica's own replication id, adopted from its master.
    pub replid: ReplId,
    /// `slave_repl_offset`: applied offset.
    pub offset: Option<ReplOffset>,
    /// `slave_read_repl_offset`: read offset.
    pub read_offset: Option<ReplOffset>,
    /// Full syncs completed (snapshot loaded) and partial resyncs accepted.
    pub full_syncs: u64,
    pub partial_syncs: u64,
    /// Size of the last snapshot and whether its CRC-64 checked out.
    pub last_rdb: Option<(u64, bool)>,
    /// A fatal error, if the link failed for good.
    pub failed: Option<String>,
}

struct Shared {
    data: Db,
    info: ReplicaInfo,
    /// The live link's socket, so the demo can cut it.
    link: Option<TcpStream>,
    /// While true the replica does not reconnect (the demo's "cable unplugged").
    hold: bool,
}

/// The replica node.
#[derive(Clone)]
pub struct Replica {
    shared: Arc<Mutex<Shared>>,
    addr: SocketAddr,
}

impl Replica {
    /// Starts the node: a client port on 127.0.0.1 and a thread replicating from `master`.
    pub fn start(master: SocketAddr, seed: u64) -> io::Result<Replica> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let replica = Replica {
            shared: Arc::new(Mutex::new(Shared {
                data: Db::new(),
                info: ReplicaInfo {
                    link_up: false,
                    state: String::new(),
                    replid: ReplId::ZERO,
                    offset: None,
                    read_offset: None,
                    full_syncs: 0,
                    partial_syncs: 0,
                    last_rdb: None,
                    failed: None,
                },
                link: None,
                hold: false,
            })),
            addr,
        };
        let config = ReplicaConfig {
            listening_port: addr.port(),
            // ACK every 100 ms instead of Redis's 1 s, so the master's view catches up quickly.
            ack_period: Duration::from_millis(100),
            repl_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            id_seed: seed,
            ..ReplicaConfig::default()
        };
        let session = ReplicaSession::new(config, Instant::now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let r = replica.clone();
        std::thread::spawn(move || r.replicate(master, session));
        let r = replica.clone();
        net::accept_loop(listener, move |sock| r.serve(sock));
        Ok(replica)
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic in another demo thread is a demo bug; keep going with the data as it is.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the dataset.
    pub fn data(&self) -> Db {
        self.lock().data.clone()
    }

    /// The latest published replication state.
    pub fn info(&self) -> ReplicaInfo {
        self.lock().info.clone()
    }

    /// Cuts the link to the master (socket shutdown) and keeps it down until [`Self::reconnect`].
    pub fn cut_link(&self) {
        let mut s = self.lock();
        s.hold = true;
        if let Some(sock) = s.link.take() {
            let _ = sock.shutdown(Shutdown::Both);
        }
    }

    /// Lets the replica reconnect after [`Self::cut_link`].
    pub fn reconnect(&self) {
        self.lock().hold = false;
    }

    /// Client connections: reads are served from the replicated data, writes are refused with
    /// Redis's READONLY error (`replica-read-only yes`, the default; protocol.md §8).
    fn serve(&self, sock: TcpStream) {
        net::request_loop(sock, |sock, argv| {
            let name = argv[0].to_ascii_lowercase();
            let mut out = BytesMut::new();
            if store::is_write(&name) {
                resp::encode_error(
                    b"READONLY You can't write against a read only replica.",
                    &mut out,
                );
            } else {
                match name.as_slice() {
                    b"ping" => resp::encode_simple(b"PONG", &mut out),
                    b"get" if argv.len() == 2 => match self.lock().data.get(&argv[1]) {
                        Some(respsync::rdb::Value::String(v)) => resp::encode_bulk(v, &mut out),
                        Some(_) => resp::encode_error(
                            b"WRONGTYPE Operation against a key holding the wrong kind of value",
                            &mut out,
                        ),
                        None => resp::encode_null_bulk(&mut out),
                    },
                    b"info" => {
                        let i = self.info();
                        let off = |o: Option<ReplOffset>| o.map_or("1".into(), |o| o.to_string());
                        let fields = [
                            ("role", "slave".to_string()),
                            (
                                "master_link_status",
                                if i.link_up { "up" } else { "down" }.into(),
                            ),
                            ("slave_read_repl_offset", off(i.read_offset)),
                            ("slave_repl_offset", off(i.offset)),
                            ("slave_read_only", "1".into()),
                            ("master_replid", i.replid.to_string()),
                            ("master_repl_offset", off(i.offset)),
                        ];
                        net::info_reply("Replication", &fields, &mut out);
                    }
                    _ => Reply::Err(format!(
                        "ERR unknown command '{}'",
                        String::from_utf8_lossy(&argv[0])
                    ))
                    .encode(&mut out),
                }
            }
            sock.write_all(&out).is_ok()
        });
    }

    /// The replication thread: connect, drive the session until the link drops, reconnect.
    fn replicate(&self, master: SocketAddr, mut s: ReplicaSession) {
        loop {
            if self.lock().hold {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            match TcpStream::connect_timeout(&master, Duration::from_secs(2)) {
                Ok(sock) => {
                    let fatal = self.run_link(&mut s, sock);
                    s.disconnected(Instant::now());
                    self.publish(&s, None);
                    if let Some(e) = fatal {
                        self.lock().info.failed = Some(e);
                        return;
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Copies the session's state into the shared info.
    fn publish(&self, s: &ReplicaSession, rdb: Option<(u64, bool)>) {
        let mut sh = self.lock();
        let i = &mut sh.info;
        i.link_up = s.state() == LinkState::Connected;
        i.state = s.state().as_str().to_string();
        i.replid = s.ids().id;
        i.offset = s.offset();
        i.read_offset = s.read_offset();
        if rdb.is_some() {
            i.last_rdb = rdb;
        }
    }

    /// Drives one connection. Returns `Some(error)` if the session failed for good.
    fn run_link(&self, s: &mut ReplicaSession, mut sock: TcpStream) -> Option<String> {
        let _ = sock.set_nodelay(true);
        match sock.try_clone() {
            Ok(handle) => self.lock().link = Some(handle),
            Err(e) => return Some(format!("socket: {e}")),
        }
        if let Err(e) = s.connected(Instant::now()) {
            return Some(e.to_string());
        }
        let mut buf = vec![0u8; 64 * 1024];
        // The snapshot being loaded, and the dataset it builds.
        let mut loading: Option<(SnapshotLoader, Collector, Db)> = None;
        loop {
            while let Some(bytes) = s.poll_transmit() {
                if sock.write_all(&bytes).is_err() {
                    return None;
                }
            }
            let mut rdb_done = None;
            while let Some(ev) = s.poll_event() {
                match ev {
                    ReplicaEvent::FullResync { .. } => {
                        let loader = SnapshotLoader::new(ParserConfig::default());
                        loading = Some((loader, Collector::new(MAX_VALUE_BYTES), Db::new()));
                    }
                    ReplicaEvent::RdbChunk { data, .. } => {
                        let Some((loader, collector, db)) = loading.as_mut() else {
                            return Some("snapshot bytes without FULLRESYNC".into());
                        };
                        loader.push_bytes(data);
                        if let Err(e) = drain(loader, collector, db) {
                            return Some(e);
                        }
                    }
                    ReplicaEvent::RdbEnd { len, .. } => {
                        let Some((mut loader, mut collector, mut db)) = loading.take() else {
                            return Some("snapshot end without FULLRESYNC".into());
                        };
                        loader.finish();
                        if let Err(e) = drain(&mut loader, &mut collector, &mut db) {
                            return Some(e);
                        }
                        let crc_ok = matches!(loader.checksum(), Some(Checksum::Verified(_)));
                        let mut sh = self.lock();
                        sh.data = db; // the loaded snapshot replaces the dataset
                        sh.info.full_syncs += 1;
                        rdb_done = Some((len, crc_ok));
                    }
                    ReplicaEvent::Continue { .. } => self.lock().info.partial_syncs += 1,
                    ReplicaEvent::Command(c) if c.kind() == CommandKind::Other && c.db() == 0 => {
                        let argv: Vec<Bytes> = c.args_bytes().collect();
                        // Errors applying a master command are ignored, as Redis does.
                        let _ = store::apply(&mut self.lock().data, &argv);
                    }
                    ReplicaEvent::LinkLost(_) => return None,
                    ReplicaEvent::Failed(e) => return Some(e.to_string()),
                    _ => {}
                }
            }
            self.publish(s, rdb_done);
            let now = Instant::now();
            let wait = s
                .poll_timeout()
                .map_or(Duration::from_millis(50), |t| {
                    t.saturating_duration_since(now)
                })
                .clamp(Duration::from_millis(1), Duration::from_millis(50));
            let _ = sock.set_read_timeout(Some(wait));
            match sock.read(&mut buf) {
                Ok(0) => return None, // the master closed, or the demo cut the link
                Ok(n) => {
                    // Errors come back as LinkLost / Failed events, handled above.
                    let _ = s.handle_input(Instant::now(), &buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    s.handle_timeout(Instant::now());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
}

/// Feeds parsed snapshot events to the collector, storing each whole key of database 0.
fn drain(
    loader: &mut SnapshotLoader,
    collector: &mut Collector,
    db: &mut Db,
) -> Result<(), String> {
    while let Some(ev) = loader
        .poll_event()
        .map_err(|e| format!("bad snapshot: {e}"))?
    {
        if let Some((key, value)) = collector
            .handle_event(ev)
            .map_err(|e| format!("bad snapshot: {e}"))?
        {
            if key.db == 0 {
                db.insert(key.key, value);
            }
        }
    }
    Ok(())
}
