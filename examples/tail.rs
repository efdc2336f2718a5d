//! `tail HOST PORT [--user U] [--auth PW] [--raw-stream]`
//!
//! Connects to a Redis/Valkey master as a replica and prints one line per command of the
//! replication stream: `<db> <offset> <args>`, where `<offset>` is the replication offset just
//! after the command and `<args>` are quoted and comma-separated as `redis-cli --replica`
//! prints them. PING, REPLCONF and SELECT are counted but only printed with `--raw-stream`.
//! The snapshot is received, parsed with `SnapshotLoader::parse_with` (keys counted, values
//! left undecoded, CRC-64 checked), then discarded. After a dropped link it resumes with
//! PSYNC, backing off between attempts.
//!
//! Blocking `std::net` I/O; the protocol is entirely in `respsync::replica::ReplicaSession`.

use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use respsync::rdb::{Checksum, KeyRef, KeysOnly, ParserConfig};
use respsync::replica::{
    CommandKind, MasterAuth, ReplicaConfig, ReplicaEvent, ReplicaSession, SnapshotError,
    SnapshotLoader,
};

struct Args {
    host: String,
    port: u16,
    user: Option<String>,
    auth: Option<String>,
    raw: bool,
}

fn usage() -> ExitCode {
    eprintln!("usage: tail HOST PORT [--user U] [--auth PW] [--raw-stream]");
    ExitCode::from(2)
}

fn parse_args() -> Option<Args> {
    let mut it = std::env::args().skip(1);
    let host = it.next()?;
    let port = it.next()?.parse().ok()?;
    let mut a = Args {
        host,
        port,
        user: None,
        auth: None,
        raw: false,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--user" => a.user = Some(it.next()?),
            "--auth" => a.auth = Some(it.next()?),
            "--raw-stream" => a.raw = true,
            _ => return None,
        }
    }
    Some(a)
}

/// A loader for the next snapshot.
fn snapshot_loader() -> SnapshotLoader {
    let mut config = ParserConfig::default();
    config.lazy_values(true);
    SnapshotLoader::new(config)
}

/// A snapshot that does not parse: resync from scratch (Redis drops the link too).
fn bad_snapshot(s: &mut ReplicaSession, e: SnapshotError) -> Outcome {
    eprintln!("tail: bad snapshot: {e}");
    s.forget_master();
    Outcome::Retry
}

enum Outcome {
    Retry,
    Fatal,
}

fn run_link(
    a: &Args,
    s: &mut ReplicaSession,
    out: &mut impl Write,
    backoff: &mut Duration,
) -> Outcome {
    let addr = match (a.host.as_str(), a.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut i| i.next())
    {
        Some(addr) => addr,
        None => {
            eprintln!("tail: cannot resolve {}:{}", a.host, a.port);
            return Outcome::Fatal;
        }
    };
    let mut sock = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("tail: connect {addr}: {e}");
            return Outcome::Retry;
        }
    };
    let _ = sock.set_nodelay(true);
    if let Err(e) = s.connected(Instant::now()) {
        eprintln!("tail: {e}");
        return Outcome::Fatal;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut line = Vec::with_capacity(256);
    let mut rdb = snapshot_loader();
    // The snapshot's keys, counted; values are not looked at (nor decoded: lazy values).
    let mut keys = 0u64;
    loop {
        while let Some(bytes) = s.poll_transmit() {
            if let Err(e) = sock.write_all(&bytes) {
                eprintln!("tail: write: {e}");
                return Outcome::Retry;
            }
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                ReplicaEvent::Command(c) => {
                    let internal = matches!(
                        c.kind(),
                        CommandKind::Ping
                            | CommandKind::Replconf
                            | CommandKind::ReplconfGetack
                            | CommandKind::Select
                    );
                    if internal && !a.raw {
                        continue;
                    }
                    line.clear();
                    line.extend_from_slice(format!("{} {} ", c.db(), c.offset()).as_bytes());
                    respsync::resp::quote_args(c.args(), &mut line);
                    line.push(b'\n');
                    if out.write_all(&line).is_err() {
                        return Outcome::Fatal; // stdout closed
                    }
                }
                ReplicaEvent::FullResync { replid, offset } => {
                    eprintln!("tail: full resync from {replid} at offset {offset}");
                    rdb = snapshot_loader();
                    keys = 0;
                }
                ReplicaEvent::LegacySync => {
                    eprintln!("tail: master does not know PSYNC, using SYNC")
                }
                ReplicaEvent::Continue {
                    replid,
                    offset,
                    replid_changed,
                } => {
                    *backoff = Duration::from_millis(100);
                    eprintln!(
                        "tail: partial resync of {replid} from offset {}{}",
                        offset.next(),
                        if replid_changed {
                            " (new replication id)"
                        } else {
                            ""
                        }
                    );
                }
                ReplicaEvent::RdbChunk { data, .. } => {
                    rdb.push_bytes(data);
                    if let Err(e) = rdb.parse_with(&mut KeysOnly(|_: KeyRef<'_>| keys += 1)) {
                        return bad_snapshot(s, e);
                    }
                }
                ReplicaEvent::RdbEnd { len, stream_db } => {
                    *backoff = Duration::from_millis(100);
                    rdb.finish();
                    if let Err(e) = rdb.parse_with(&mut KeysOnly(|_: KeyRef<'_>| keys += 1)) {
                        return bad_snapshot(s, e);
                    }
                    let sum = match rdb.checksum() {
                        Some(Checksum::Verified(_)) => "checksum ok",
                        _ => "no checksum",
                    };
                    eprintln!(
                        "tail: rdb {len} bytes, {} keys, {sum}, stream db {stream_db}",
                        keys
                    );
                }
                ReplicaEvent::TransactionDiscarded => {}
                ReplicaEvent::LinkLost(e) => {
                    eprintln!("tail: link lost: {e}");
                    return Outcome::Retry;
                }
                ReplicaEvent::Failed(e) => {
                    eprintln!("tail: {e}");
                    return Outcome::Fatal;
                }
                _ => {}
            }
        }
        let _ = out.flush();
        let now = Instant::now();
        let wait = s
            .poll_timeout()
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
            .max(Duration::from_millis(1));
        let _ = sock.set_read_timeout(Some(wait));
        match sock.read(&mut buf) {
            Ok(0) => {
                eprintln!("tail: master closed the connection");
                return Outcome::Retry;
            }
            Ok(n) => {
                // Errors are reported again as events, handled above.
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
            Err(e) => {
                eprintln!("tail: read: {e}");
                return Outcome::Retry;
            }
        }
    }
}

fn main() -> ExitCode {
    let Some(a) = parse_args() else {
        return usage();
    };
    let config = ReplicaConfig {
        listening_port: 0,
        auth: a.auth.clone().map(|password| MasterAuth {
            user: a.user.clone(),
            password,
        }),
        // Seed only names this process's own history; the master's id replaces it.
        id_seed: u64::from(std::process::id()),
        // One connection only: a Redis 8 master would otherwise answer `+RDBCHANNELSYNC` and
        // wait for a second connection this tool does not open.
        rdb_channel: false,
        ..ReplicaConfig::default()
    };
    let mut s = match ReplicaSession::new(config, Instant::now()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tail: {e}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut backoff = Duration::from_millis(100);
    loop {
        let outcome = run_link(&a, &mut s, &mut out, &mut backoff);
        let _ = out.flush();
        s.disconnected(Instant::now());
        if let Outcome::Fatal = outcome {
            return ExitCode::FAILURE;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
