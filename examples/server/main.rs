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
//! ```text
//! cargo run --example server -- --port 6380 --replicaof 127.0.0.1 6379
//! ```

mod commands;
mod config;
mod info;
mod loader;
mod master;
mod net;
mod persist;
mod propagate;
mod replication;
mod reply;
mod server;
mod snapshot;
mod store;

use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use config::Config;
use server::Server;

/// The state every thread shares. Commands run one at a time under this lock, as in Redis.
pub struct Shared {
    state: Mutex<Server>,
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

/// Active expiry, ten times a second like Redis's `hz 10`: removes keys whose TTL has passed.
/// Only a master expires keys; a replica waits for the master's DEL.
/// The keys it removes are propagated as `DEL`, as Redis does, so replicas stay equal.
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
        }
        srv.stats.expired_keys += expired;
        master::drain_events(shared, &mut srv);
    }
}

fn main() {
    let cfg = match Config::from_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("*** FATAL CONFIG FILE ERROR ***\n{e}");
            std::process::exit(1);
        }
    };
    let addr = format!("{}:{}", cfg.bind, cfg.port);
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Could not create server TCP listening socket {addr}: {e}");
            std::process::exit(1);
        }
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(Server::new(cfg)),
        repl_cv: Condvar::new(),
    });
    eprintln!("Ready to accept connections on {addr}");
    {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || cron(&shared));
    }
    replication::spawn(Arc::clone(&shared));
    net::accept_loop(shared, listener);
}
