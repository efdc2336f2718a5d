//! Server state shared by every connection, and the per-connection client state.

use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Instant;

use crate::app::config::Config;
use crate::app::store::Store;

/// Counters reported by INFO stats.
#[derive(Default, Debug)]
pub struct Stats {
    pub total_connections_received: u64,
    pub total_commands_processed: u64,
    pub total_net_input_bytes: u64,
    pub total_net_output_bytes: u64,
    pub total_net_repl_input_bytes: u64,
    pub expired_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub rejected_connections: u64,
    /// Commands from our master this server could not apply (policy `continue`), or the one
    /// that stopped replication (policy `stop`).
    pub unapplied_master_commands: u64,
}

/// The state of the link to our master, as INFO replication and ROLE show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting to (re)connect.
    Connect,
    /// TCP connect in progress.
    Connecting,
    /// PING/AUTH/REPLCONF/PSYNC exchange.
    Handshake,
    /// Receiving the snapshot.
    Transfer,
    /// Streaming commands.
    Connected,
}

impl LinkState {
    /// The state name ROLE reports.
    pub fn role_name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// What this server knows about its master while it is a replica.
#[derive(Debug)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    /// Last time bytes arrived from the master.
    pub last_io: Option<Instant>,
    /// When the link went down (None while up, or if it never came up).
    pub down_since: Option<Instant>,
    /// Offset of the bytes read from the master's stream.
    pub read_offset: i64,
    /// Offset of the commands applied.
    pub applied_offset: i64,
    /// Snapshot transfer progress: total bytes (-1 unknown, 0 for EOF-marked) and bytes read.
    pub sync_total: i64,
    pub sync_read: i64,
    /// The live link, so that `CLIENT KILL TYPE master` and REPLICAOF can cut it.
    pub sock: Option<TcpStream>,
    /// Replication stopped because the master sent something this server cannot apply (the
    /// reason, for INFO and the log); `REPLICAOF` again retries.
    pub stopped: Option<String>,
}

impl Upstream {
    pub fn new(host: String, port: u16) -> Upstream {
        Upstream {
            stopped: None,
            host,
            port,
            state: LinkState::Connect,
            last_io: None,
            down_since: None,
            // What Redis prints while it has no master and no cached master.
            read_offset: 1,
            applied_offset: 1,
            sync_total: -1,
            sync_read: 0,
            sock: None,
        }
    }

    /// Cuts the live link, if any; the replication thread notices and reconnects.
    pub fn kill_link(&mut self) -> bool {
        match self.sock.take() {
            Some(s) => {
                let _ = s.shutdown(Shutdown::Both);
                true
            }
            None => false,
        }
    }
}

/// A connected client as the registry sees it (for CLIENT KILL and INFO clients).
pub struct ClientEntry {
    pub addr: SocketAddr,
    pub sock: TcpStream,
}

/// Everything shared, behind one mutex: like Redis, commands run one at a time.
pub struct Server {
    pub cfg: Config,
    pub store: Store,
    pub stats: Stats,
    pub started: Instant,
    pub run_id: String,
    /// Replication state: ids, offset, the one backlog, and every replica link.
    pub node: respsync::node::Node,
    /// Snapshots being written for replicas, their files, links closing.
    pub snapshots: crate::app::master::Snapshots,
    /// Snapshots started for replicas (one serves every replica waiting then).
    pub snapshots_started: u64,
    /// Disk snapshot files a replica writer must send after the bytes it is writing.
    pub pending_files: BTreeMap<respsync::node::LinkId, u64>,
    /// Something for replica writers to send: wake them after this batch.
    pub repl_dirty: bool,
    /// The master stream's database at the node's offset: resumed with our history, and
    /// saved as `repl-stream-db` by a replica.
    pub resume_db: u32,
    /// Whether the node's ids and offset are a history others may share (restored from our
    /// RDB, synced with a master, or we were a master): a new link to a master then resumes it
    /// with `PSYNC <replid> <offset+1>`, even at offset 0, as Redis does with its cached master.
    /// A server started with `--replicaof` and no RDB asks `PSYNC ? -1`.
    pub has_history: bool,
    /// Answers to blocked `WAIT`s, picked up by their client threads.
    /// `None`: unblocked with `-UNBLOCKED` (this server started following a master).
    pub wait_results: BTreeMap<respsync::node::WaitId, Option<usize>>,
    /// The next link to our master sends `PSYNC … FAILOVER` (we run FAILOVER).
    pub failover_psync: bool,
    /// Writes of the EXEC being run, propagated together inside MULTI/EXEC.
    pub tx_propagate: Option<Vec<(u32, Vec<bytes::Bytes>)>>,
    /// `Some` while this server is a replica.
    pub upstream: Option<Upstream>,
    /// Bumped whenever the master changes, so the replication thread restarts.
    pub repl_generation: u64,
    pub clients: BTreeMap<u64, ClientEntry>,
    pub next_client_id: u64,
    /// Changes since the last save.
    pub dirty: u64,
    pub loading: bool,
    pub last_load_keys: u64,
    pub last_save: i64,
    /// The time (Unix ms) every command runs at while set: a replica applying a burst of its
    /// master's stream reads the clock once for the burst, not once per command.
    pub batch_now: Option<i64>,
}

/// 40 hex characters from the process's random state (for run ids and replication ids).
pub fn random_hex40() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::with_capacity(40);
    let mut i = 0u64;
    while s.len() < 40 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(Instant::now().elapsed().as_nanos());
        s.push_str(&format!("{:016x}", h.finish()));
        i += 1;
    }
    s.truncate(40);
    s
}

impl Server {
    pub fn new(cfg: Config) -> Server {
        let upstream = cfg
            .replicaof
            .as_ref()
            .map(|(h, p)| Upstream::new(h.clone(), *p));
        let following = upstream.is_some();
        let node_config =
            cfg.node_config(u64::from_str_radix(&random_hex40()[..16], 16).unwrap_or(0));
        let mut srv = Server {
            store: Store::new(cfg.databases),
            cfg,
            stats: Stats::default(),
            started: Instant::now(),
            run_id: random_hex40(),
            node: respsync::node::Node::new(node_config, Instant::now()),
            snapshots: crate::app::master::Snapshots::default(),
            snapshots_started: 0,
            pending_files: BTreeMap::new(),
            repl_dirty: false,
            resume_db: 0,
            has_history: false,
            wait_results: BTreeMap::new(),
            failover_psync: false,
            tx_propagate: None,
            batch_now: None,
            upstream,
            repl_generation: 0,
            clients: BTreeMap::new(),
            next_client_id: 1,
            dirty: 0,
            loading: false,
            last_load_keys: 0,
            last_save: crate::app::store::now_ms() / 1000,
        };
        srv.node.set_upstream(following, false);
        srv
    }

    /// Loads `dir/dbfilename` if it exists, as redis-server does at start-up, and resumes the
    /// replication history saved in it (`repl-id`, `repl-offset`): a replica's first PSYNC
    /// continues from there, and a master's replicas can continue with it (it keeps the saved
    /// id as `replid2`).
    pub fn load_own_rdb(&mut self) {
        let path = std::path::Path::new(&self.cfg.dir).join(&self.cfg.dbfilename);
        if !path.exists() {
            return;
        }
        let started = Instant::now();
        match crate::app::loader::load_file(&path, self.cfg.databases) {
            Ok(loaded) => {
                crate::log!(
                    "DB loaded from disk: {} keys in {:.3} seconds",
                    loaded.keys,
                    started.elapsed().as_secs_f64()
                );
                self.store = loaded.store;
                self.last_load_keys = loaded.keys;
                let id = loaded
                    .repl
                    .id
                    .as_deref()
                    .and_then(|i| respsync::ids::ReplId::parse(i.as_bytes()).ok());
                if let (Some(id), Some(off)) = (id, loaded.repl.offset) {
                    let off = respsync::ids::ReplOffset::new(off);
                    let config = self.node.config().clone();
                    self.node = if self.upstream.is_some() {
                        self.resume_db = loaded.repl.stream_db.unwrap_or(0);
                        respsync::node::Node::restored_replica(config, Instant::now(), id, off)
                    } else {
                        respsync::node::Node::restored(config, Instant::now(), id, off)
                    };
                    self.has_history = true;
                    crate::log!("Replication history restored from the RDB: {id}:{off}");
                }
            }
            Err(e) => crate::log!("Failed loading {}: {e}", path.display()),
        }
    }

    /// Applies the replication options to the node after CONFIG SET.
    pub fn apply_repl_config(&mut self) {
        let seed = self.node.config().id_seed;
        let fresh = self.cfg.node_config(seed);
        self.node.set_backlog_size(fresh.backlog_size);
        *self.node.config_mut() = respsync::node::NodeConfig {
            backlog_size: self.node.config().backlog_size,
            ..fresh
        };
    }

    pub fn is_replica(&self) -> bool {
        self.upstream.is_some()
    }

    /// Becomes a replica of `host:port` (or changes master).
    pub fn replicate(&mut self, host: String, port: u16) {
        match &mut self.upstream {
            Some(u) => {
                u.kill_link();
            }
            // A master that follows continues its own history (Redis caches itself).
            None => self.has_history = true,
        }
        self.cfg.replicaof = Some((host.clone(), port));
        self.upstream = Some(Upstream::new(host, port));
        self.node.follow();
        self.repl_generation += 1;
    }

    /// Stops replicating (REPLICAOF NO ONE): keeps the data, shifts the replication ids as
    /// Redis does so that former siblings could continue from us later.
    pub fn stop_replicating(&mut self) {
        if self.upstream.is_some() {
            self.node.promote(Instant::now());
        }
        self.drop_upstream();
    }

    /// Forgets the master without touching the node (which already promoted itself, after a
    /// FAILOVER handed it the role or aborted).
    pub fn drop_upstream(&mut self) {
        if let Some(mut u) = self.upstream.take() {
            u.kill_link();
        }
        self.cfg.replicaof = None;
        self.failover_psync = false;
        self.repl_generation += 1;
    }

    /// Registers a connection; returns its id.
    pub fn add_client(&mut self, addr: SocketAddr, sock: TcpStream) -> u64 {
        let id = self.next_client_id;
        self.next_client_id += 1;
        self.stats.total_connections_received += 1;
        self.clients.insert(id, ClientEntry { addr, sock });
        id
    }

    pub fn remove_client(&mut self, id: u64) {
        self.clients.remove(&id);
    }
}

/// Per-connection state.
pub struct Client {
    pub id: u64,
    pub db: usize,
    pub authed: bool,
    /// Commands queued by MULTI (None outside a transaction).
    pub multi: Option<Vec<Vec<bytes::Bytes>>>,
    /// A command was refused while queuing: EXEC must abort.
    pub multi_failed: bool,
    /// This is the link from our master: never refused, never replied to, never expires keys.
    pub is_master: bool,
    pub name: Vec<u8>,
    /// Set by QUIT: close after the reply.
    pub close: bool,
    /// PSYNC or SYNC made this connection a replica link (the node writes to it from now on).
    pub replica_link: bool,
    /// The node's offset after this client's last command (what its `WAIT` waits for).
    pub woff: respsync::ids::ReplOffset,
    /// A `WAIT` this client is blocked in.
    pub blocked_wait: Option<respsync::node::WaitId>,
}

impl Client {
    pub fn new(id: u64, authed: bool) -> Client {
        Client {
            id,
            db: 0,
            authed,
            multi: None,
            multi_failed: false,
            is_master: false,
            name: Vec::new(),
            close: false,
            replica_link: false,
            woff: respsync::ids::ReplOffset::new(0),
            blocked_wait: None,
        }
    }

    /// The pseudo-client that applies the master's stream.
    #[allow(dead_code)] // used by the replication driver
    pub fn master() -> Client {
        Client {
            is_master: true,
            ..Client::new(0, true)
        }
    }
}
