//! `tokio-replica HOST PORT [--auth PW]`: the crate's sans-IO `ReplicaSession` driven under
//! tokio, printing the replication stream like `tail` (`<db> <offset> <args>`).
//!
//! One task owns the socket and the session. Each turn it writes what `poll_transmit` gives,
//! handles every `poll_event`, then waits with `select!` for whichever comes first: bytes from
//! the master or the session's deadline (`poll_timeout`). A dropped link is retried after a
//! short pause, resuming with `PSYNC` from the cached master. The snapshot's bytes are counted
//! and dropped (a real application feeds them to `rdb::Parser`). Two-connection full syncs are
//! left off here to keep the loop to one socket (see `examples/server/replication.rs`).

use std::time::{Duration, Instant};

use respsync::replica::{CommandKind, MasterAuth, ReplicaConfig, ReplicaEvent, ReplicaSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How one connection ended.
enum End {
    /// Reconnect (after a pause).
    Retry,
    /// Give up: the master refused us for good.
    Fatal,
}

async fn run_link(addr: &str, link: &mut ReplicaSession) -> End {
    let Ok(mut sock) = TcpStream::connect(addr).await else {
        eprintln!("tokio-replica: cannot connect to {addr}");
        return End::Retry;
    };
    let _ = sock.set_nodelay(true);
    if link.connected(Instant::now()).is_err() {
        return End::Fatal;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut rdb_bytes = 0u64;
    let mut line = Vec::new();
    loop {
        // The drive rule: after any handle_* call, drain the polls.
        while let Some(bytes) = link.poll_transmit() {
            if sock.write_all(&bytes).await.is_err() {
                return End::Retry;
            }
        }
        while let Some(ev) = link.poll_event() {
            match ev {
                ReplicaEvent::Command(cmd) if cmd.kind() == CommandKind::Other => {
                    line.clear();
                    line.extend_from_slice(format!("{} {} ", cmd.db(), cmd.offset()).as_bytes());
                    respsync::resp::quote_args(cmd.args(), &mut line);
                    println!("{}", String::from_utf8_lossy(&line));
                }
                ReplicaEvent::FullResync { replid, offset } => {
                    eprintln!("tokio-replica: full resync from {replid} at offset {offset}")
                }
                ReplicaEvent::RdbChunk { data, .. } => rdb_bytes += data.len() as u64,
                ReplicaEvent::RdbEnd { len, .. } => {
                    eprintln!(
                        "tokio-replica: snapshot of {len} bytes received ({rdb_bytes} counted)"
                    )
                }
                ReplicaEvent::Continue { offset, .. } => {
                    eprintln!("tokio-replica: partial resync from offset {offset}")
                }
                ReplicaEvent::LinkLost(e) => {
                    eprintln!("tokio-replica: link lost: {e}");
                    return End::Retry;
                }
                ReplicaEvent::Failed(e) => {
                    eprintln!("tokio-replica: failed: {e}");
                    return End::Fatal;
                }
                _ => {}
            }
        }
        let deadline = link
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            read = sock.read(&mut buf) => match read {
                Ok(0) | Err(_) => return End::Retry,
                // Errors come back as LinkLost/Failed events, handled above.
                Ok(n) => { let _ = link.handle_input(Instant::now(), &buf[..n]); }
            },
            _ = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
        }
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (host, port, auth) = match args.as_slice() {
        [h, p] => (h.clone(), p.clone(), None),
        [h, p, flag, pw] if flag == "--auth" => (h.clone(), p.clone(), Some(pw.clone())),
        _ => {
            eprintln!("usage: tokio-replica HOST PORT [--auth PW]");
            return std::process::ExitCode::from(2);
        }
    };
    let config = ReplicaConfig {
        listening_port: 0,
        auth: auth.map(|password| MasterAuth {
            user: None,
            password,
        }),
        rdb_channel: false,
        ..ReplicaConfig::default()
    };
    let Ok(mut link) = ReplicaSession::new(config, Instant::now()) else {
        return std::process::ExitCode::FAILURE;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio-replica: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = format!("{host}:{port}");
    rt.block_on(async {
        loop {
            match run_link(&addr, &mut link).await {
                End::Fatal => return std::process::ExitCode::FAILURE,
                End::Retry => {
                    link.disconnected(Instant::now()); // keeps the cached master for PSYNC
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })
}
