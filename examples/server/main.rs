//! A small Redis-compatible server built on respsync: in-memory, 16 databases, and (for now) the
//! replica role — `--replicaof HOST PORT` makes it follow a real Redis or Valkey master.
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
mod net;
mod persist;
mod replication;
mod reply;
mod server;
mod store;

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use config::Config;
use server::Server;

/// The state every thread shares. Commands run one at a time under this lock, as in Redis.
pub struct Shared {
    state: Mutex<Server>,
}

impl Shared {
    /// Locks the server. A thread that panicked while holding the lock leaves the data as it
    /// was; the server keeps serving rather than cascading the panic into every thread.
    pub fn lock(&self) -> MutexGuard<'_, Server> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Active expiry, ten times a second like Redis's `hz 10`: removes keys whose TTL has passed.
/// Only a master expires keys; a replica waits for the master's DEL.
fn cron(shared: &Shared) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let mut srv = shared.lock();
        if srv.is_replica() {
            continue;
        }
        let now = store::now_ms();
        let mut expired = 0;
        for db in &mut srv.store.dbs {
            expired += db.expire_due(now, 1000).len() as u64;
        }
        srv.stats.expired_keys += expired;
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
    });
    eprintln!("Ready to accept connections on {addr}");
    {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || cron(&shared));
    }
    replication::spawn(Arc::clone(&shared));
    net::accept_loop(shared, listener);
}
