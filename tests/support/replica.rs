//! Helpers shared by the replica session tests: a scripted master and an applying app.

use std::time::{Duration, Instant};

use bytes::Bytes;
use respsync::ids::ReplOffset;
use respsync::replica::{CommandKind, ReplicaConfig, ReplicaEvent, ReplicaSession};

pub const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
pub const MARK: &[u8; 40] = b"0123456789abcdef0123456789abcdef01234567";

/// One command in RESP, encoded by the crate.
pub fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    respsync::resp::encode_command(args, &mut out);
    out.to_vec()
}

/// A minimal RDB 10 with an optional `repl-stream-db` aux field and some filler aux data.
pub fn rdb(stream_db: Option<u8>, filler: usize) -> Vec<u8> {
    let mut out = b"REDIS0010".to_vec();
    out.extend_from_slice(&[0xFA, 9]);
    out.extend_from_slice(b"redis-ver");
    out.extend_from_slice(&[6]);
    out.extend_from_slice(b"7.0.15");
    if let Some(db) = stream_db {
        out.extend_from_slice(&[0xFA, 14]);
        out.extend_from_slice(b"repl-stream-db");
        out.extend_from_slice(&[0xC0, db]);
    }
    out.extend_from_slice(&[0xFE, 0]); // SELECTDB 0
    for i in 0..filler {
        // string key "k<i>" -> value of 20 bytes
        let k = format!("k{i}");
        out.push(0);
        out.push(k.len() as u8);
        out.extend_from_slice(k.as_bytes());
        out.push(20);
        out.extend_from_slice(&[b'v'; 20]);
    }
    out.push(0xFF);
    out.extend_from_slice(&[0; 8]);
    out
}

/// A replica with Redis 7.0's capabilities (`capa eof capa psync2`), as in the captures of
/// protocol.md that the session tests replay.
pub fn config() -> ReplicaConfig {
    ReplicaConfig {
        listening_port: 7002,
        rdb_channel: false,
        ..ReplicaConfig::default()
    }
}

/// Master bytes up to and including the PSYNC reply for a plain config (no auth, no ip).
pub fn handshake_replies(psync_reply: &str) -> Vec<u8> {
    format!("+PONG\r\n+OK\r\n+OK\r\n{psync_reply}\r\n").into_bytes()
}

/// The replica's expected transmit for a plain config, up to and including PSYNC.
pub fn expected_handshake(port: u16, psync: (&str, &str)) -> Vec<u8> {
    let mut out = resp(&[b"PING"]);
    out.extend(resp(&[
        b"REPLCONF",
        b"listening-port",
        port.to_string().as_bytes(),
    ]));
    out.extend(resp(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]));
    out.extend(resp(&[b"PSYNC", psync.0.as_bytes(), psync.1.as_bytes()]));
    out
}

pub fn ack(off: i64) -> Vec<u8> {
    resp(&[b"REPLCONF", b"ACK", off.to_string().as_bytes()])
}

/// Everything a session produced, normalised so that different input splits compare equal.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub sent: Vec<u8>,
    pub rdb: Vec<u8>,
    pub events: Vec<String>,
}

/// One applied command as a transcript line.
fn command_line<'a>(
    db: u32,
    offset: impl std::fmt::Display,
    kind: CommandKind,
    args: impl Iterator<Item = &'a [u8]>,
) -> String {
    let args: Vec<_> = args
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    format!("cmd db={db} off={offset} kind={kind:?} {args:?}")
}

pub fn drain(s: &mut ReplicaSession, t: &mut Transcript) {
    while let Some(b) = s.poll_transmit() {
        t.sent.extend_from_slice(&b);
    }
    while let Some(ev) = s.poll_event() {
        match ev {
            ReplicaEvent::RdbChunk { data, done, .. } => {
                t.rdb.extend_from_slice(&data);
                assert_eq!(done, t.rdb.len() as u64, "progress counts every byte");
            }
            ReplicaEvent::Command(c) => {
                t.events
                    .push(command_line(c.db(), c.offset(), c.kind(), c.args()))
            }
            ReplicaEvent::Commands(batch) => {
                assert!(!batch.is_empty());
                for c in batch.iter() {
                    let owned = c.to_command();
                    assert_eq!(owned.frame().as_ref(), c.frame());
                    t.events
                        .push(command_line(c.db(), c.offset(), c.kind(), c.args()));
                }
            }
            other => t.events.push(format!("{other:?}")),
        }
    }
}

/// Feeds `input` in pieces cut at `cuts` (sorted positions), draining after each.
pub fn feed_split(
    s: &mut ReplicaSession,
    now: Instant,
    input: &[u8],
    cuts: &[usize],
    t: &mut Transcript,
) {
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        let c = c.clamp(prev, input.len());
        let _ = s.handle_input(now, &input[prev..c]);
        drain(s, t);
        prev = c;
    }
}

/// An application that applies the stream the way a store would: transactions are buffered
/// until EXEC and dropped on `TransactionDiscarded`; a full resync clears everything.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct App {
    pub applied: Vec<(u32, Bytes)>,
    pub multi: Option<Vec<(u32, Bytes)>>,
    pub full_syncs: usize,
    pub continues: usize,
    pub rdb: Vec<u8>,
    pub last_rdb: Vec<u8>,
}

impl App {
    pub fn handle(&mut self, s: &mut ReplicaSession) {
        while let Some(ev) = s.poll_event() {
            match ev {
                ReplicaEvent::FullResync { .. } | ReplicaEvent::LegacySync => {
                    self.full_syncs += 1;
                    self.rdb.clear();
                }
                ReplicaEvent::RdbChunk { data, .. } => self.rdb.extend_from_slice(&data),
                ReplicaEvent::RdbEnd { .. } => {
                    self.applied.clear();
                    self.last_rdb = std::mem::take(&mut self.rdb);
                }
                ReplicaEvent::Continue { .. } => self.continues += 1,
                ReplicaEvent::TransactionDiscarded => self.multi = None,
                ReplicaEvent::Command(c) => match c.kind() {
                    CommandKind::Multi => self.multi = Some(Vec::new()),
                    CommandKind::Exec => {
                        if let Some(m) = self.multi.take() {
                            self.applied.extend(m);
                        }
                    }
                    k if k.is_data() => match &mut self.multi {
                        Some(m) => m.push((c.db(), c.frame().clone())),
                        None => self.applied.push((c.db(), c.frame().clone())),
                    },
                    _ => {}
                },
                _ => {}
            }
        }
    }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn off(n: i64) -> ReplOffset {
    ReplOffset::new(n)
}
