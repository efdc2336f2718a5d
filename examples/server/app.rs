//! A small Redis-compatible server built on respsync: in-memory, 16 databases, in both roles:
//! a master that real Redis and Valkey replicas follow, and with `--replicaof HOST PORT` a
//! replica of a real Redis or Valkey master.
//!
//! Layout, one concern per module:
//! - `config`: redis-server-style flags and CONFIG GET/SET;
//! - `store`: the keyspace (every Redis type, expiries);
//! - `commands`: the command table; one `execute` for clients and for the master's stream;
//! - `info`: INFO and ROLE;
//! - `net`: client connections (a thread each, blocking sockets);
//! - `replication`: the link to our master, driving the crate's sans-IO `ReplicaSession`;
//! - `loader`: the master's snapshot, parsed by `rdb::Parser` on its own threads;
//! - `reply`: RESP replies through the crate's encoders;
//! - `master`: the master role, driving the crate's sans-IO `Node` (replica links, snapshots);
//! - `propagate`: writes rewritten into the deterministic forms a Redis master propagates;
//! - `snapshot`: the keyspace written as RDB by `rdb::Writer`, on its own thread, from a
//!   copy-on-write view taken at the replication offset;
//! - `persist`: SAVE/BGSAVE.
//!
//! Nothing here parses RESP or RDB by hand: requests, the replication stream and the snapshot all
//! go through the crate.
//!
//! `main.rs` starts one server from the command line; the demo starts several in one process
//! through [`start`].

pub mod commands;
pub mod config;
mod info;
mod loader;
mod master;
mod net;
mod persist;
mod propagate;
mod replication;
mod reply;
pub mod server;
mod snapshot;
mod store;

use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub use config::Config;
use server::Server;

/// Set to silence the server's log lines (the demo runs several servers in one process and
/// tells its own story on stdout).
pub static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A log line on stderr, as redis-server writes its log (unless [`QUIET`]).
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        if !$crate::app::QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($arg)*);
        }
    };
}

/// The state every thread shares. Commands run one at a time under this lock, as in Redis.
pub struct Shared {
    state: Mutex<Server>,
    /// Set while the server plays dead (the demo's \"failed master\"): connections are refused.
    pub down: std::sync::atomic::AtomicBool,
    /// Signalled when replica links may have something to send.
    pub repl_cv: Condvar,
}

impl Shared {
    /// Locks the server. A thread that panicked while holding the lock leaves the data as it
    /// was; the server keeps serving rather than cascading the panic into every thread.
    pub fn lock(&self) -> MutexGuard<'_, Server> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Releases the lock until [`Shared::repl_cv`] is signalled or `timeout` passes.
    pub fn wait<'a>(
        &'a self,
        guard: MutexGuard<'a, Server>,
        timeout: Duration,
    ) -> MutexGuard<'a, Server> {
        match self.repl_cv.wait_timeout(guard, timeout) {
            Ok((g, _)) => g,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }
}

/// Active expiry, ten times a second like Redis's `hz 10`: removes keys whose TTL has passed,
/// then hash fields whose TTL has passed. Only a master expires; a replica waits for the
/// master's `DEL`/`HDEL`. Each key removed is propagated as `DEL`, each field as its own
/// `HDEL key field`, as Redis 8.2 does (a hash left empty is deleted without a `DEL`: the
/// `HDEL`s empty it on the replicas too).
fn cron(shared: &Arc<Shared>) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let mut srv = shared.lock();
        master::cron(shared, &mut srv);
        if srv.is_replica() {
            continue;
        }
        let now = store::now_ms();
        let mut expired = 0;
        for i in 0..srv.store.dbs.len() {
            for key in srv.store.dbs[i].expire_due(now, 1000) {
                expired += 1;
                let argv = [
                    bytes::Bytes::from_static(b"DEL"),
                    bytes::Bytes::from(key.into_vec()),
                ];
                master::propagate(&mut srv, i, &argv);
            }
            for (key, fields) in srv.store.dbs[i].expire_fields_due(now, 1000) {
                for field in fields {
                    master::propagate(&mut srv, i, &propagate::hdel(&key, &field));
                }
            }
        }
        srv.stats.expired_keys += expired;
        master::drain_events(shared, &mut srv);
    }
}

/// Starts a server: binds its port and spawns its threads (accept loop, cron, replication).
pub fn start(cfg: Config) -> std::io::Result<Arc<Shared>> {
    let addr = format!("{}:{}", cfg.bind, cfg.port);
    let listener = TcpListener::bind(&addr)?;
    let mut server = Server::new(cfg);
    server.load_own_rdb();
    let shared = Arc::new(Shared {
        state: Mutex::new(server),
        down: std::sync::atomic::AtomicBool::new(false),
        repl_cv: Condvar::new(),
    });
    crate::log!("Ready to accept connections on {addr}");
    {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("cron".into())
            .spawn(move || cron(&shared))?;
    }
    replication::spawn(Arc::clone(&shared));
    {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || net::accept_loop(shared, listener))?;
    }
    Ok(shared)
}

impl Shared {
    /// Plays a crashed server (`down = true`): every connection is cut, new ones are closed at
    /// once, and the link to its master (if any) is cut; the data stays in memory. `false`
    /// brings it back.
    #[allow(dead_code)] // the demo's "failed master"; the server binary never plays dead
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            let mut srv = self.lock();
            for c in srv.clients.values() {
                let _ = c.sock.shutdown(std::net::Shutdown::Both);
            }
            if let Some(u) = &mut srv.upstream {
                u.kill_link();
            }
        }
    }

    /// Runs one command as an in-process client (the demo writes to a master it has cut off
    /// from the network); returns the reply's RESP bytes.
    #[allow(dead_code)] // the demo's in-process client
    pub fn execute(self: &Arc<Self>, argv: &[&str]) -> Vec<u8> {
        let argv: Vec<bytes::Bytes> = argv
            .iter()
            .map(|a| bytes::Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let mut out = reply::Out::new();
        let mut srv = self.lock();
        let mut cl = server::Client::new(0, true);
        commands::execute(&mut srv, &mut cl, &argv, &mut out);
        master::drain_events(self, &mut srv);
        out.take().to_vec()
    }

    /// Whether it plays dead.
    pub fn is_down(&self) -> bool {
        self.down.load(std::sync::atomic::Ordering::SeqCst)
    }
}
