//! `tail HOST PORT [--user U] [--auth PW] [--raw-stream]`
//!
//! Connects to a Redis/Valkey master as a replica and prints one line per command of the
//! replication stream: `<db> <offset> <args>`, where `<offset>` is the replication offset just
//! after the command and `<args>` are quoted and comma-separated as `redis-cli --replica`
//! prints them. PING, REPLCONF and SELECT are counted but only printed with `--raw-stream`.
//! The snapshot is received, counted and its CRC-64 checked, then discarded. After a dropped
//! link it resumes with PSYNC, backing off between attempts.
//!
//! Blocking `std::net` I/O; the protocol is entirely in `respsync::replica::ReplicaSession`.

use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use respsync::replica::{CommandKind, MasterAuth, ReplicaConfig, ReplicaEvent, ReplicaSession};

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

/// Appends `arg` quoted the way redis-cli's `sdscatrepr` does.
fn quote(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'"');
    for &b in arg {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// CRC-64/Jones as Redis computes it (reflected, init 0, no final xor).
struct Crc64 {
    table: [u64; 256],
    crc: u64,
}

impl Crc64 {
    fn new() -> Crc64 {
        let mut table = [0u64; 256];
        for (i, t) in table.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x95ac_9329_ac4b_c9b5
                } else {
                    c >> 1
                };
            }
            *t = c;
        }
        Crc64 { table, crc: 0 }
    }

    fn update(&mut self, data: &[u8]) {
        let mut c = self.crc;
        for &b in data {
            c = self.table[((c ^ u64::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
        self.crc = c;
    }
}

/// Counts the snapshot and checks its trailing checksum without keeping it.
struct RdbCheck {
    crc: Crc64,
    /// The last 8 bytes seen (the checksum once the RDB ends); excluded from the CRC.
    tail: Vec<u8>,
    len: u64,
}

impl RdbCheck {
    fn new() -> RdbCheck {
        RdbCheck {
            crc: Crc64::new(),
            tail: Vec::with_capacity(16),
            len: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        self.tail.extend_from_slice(data);
        if self.tail.len() > 8 {
            let n = self.tail.len() - 8;
            self.crc.update(&self.tail[..n]);
            self.tail.drain(..n);
        }
    }

    /// `Ok(true)` checksum verified, `Ok(false)` checksum disabled (zero).
    fn finish(&self) -> Result<bool, String> {
        let stored: [u8; 8] = self
            .tail
            .as_slice()
            .try_into()
            .map_err(|_| "rdb too short".to_string())?;
        let stored = u64::from_le_bytes(stored);
        if stored == 0 {
            return Ok(false);
        }
        if stored != self.crc.crc {
            return Err(format!(
                "rdb checksum mismatch: stored {stored:016x}, computed {:016x}",
                self.crc.crc
            ));
        }
        Ok(true)
    }
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
    let mut rdb = RdbCheck::new();
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
                    for (i, arg) in c.args().enumerate() {
                        if i > 0 {
                            line.push(b',');
                        }
                        quote(&mut line, arg);
                    }
                    line.push(b'\n');
                    if out.write_all(&line).is_err() {
                        return Outcome::Fatal; // stdout closed
                    }
                }
                ReplicaEvent::FullResync { replid, offset } => {
                    eprintln!("tail: full resync from {replid} at offset {offset}");
                    rdb = RdbCheck::new();
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
                ReplicaEvent::RdbChunk { data, .. } => rdb.push(&data),
                ReplicaEvent::RdbEnd { len, stream_db } => {
                    *backoff = Duration::from_millis(100);
                    match rdb.finish() {
                        Ok(true) => {
                            eprintln!("tail: rdb {len} bytes, checksum ok, stream db {stream_db}")
                        }
                        Ok(false) => {
                            eprintln!("tail: rdb {len} bytes, no checksum, stream db {stream_db}")
                        }
                        Err(e) => {
                            eprintln!("tail: {e}");
                            s.forget_master();
                            return Outcome::Retry;
                        }
                    }
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
