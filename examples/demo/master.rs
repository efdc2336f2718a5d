//! THE DEMO'S STAND-IN MASTER.
//!
//! respsync does not have its master side yet (`MasterSession` / `Node` come in a later
//! release). Until then this module plays the master with the pieces the crate already has:
//! [`IdGenerator`] and [`ReplicationIds`] for the replication ids and the PSYNC rule,
//! [`Backlog`] for partial resyncs, [`rdb::Writer`] for the snapshot (sent diskless, framed with
//! `$EOF:<mark>`), and the RESP encoders and decoder for every byte on the wire. It is
//! deliberately minimal: one database, no WAIT, no timeouts, no GETACK, no periodic PING, and the
//! snapshot is written while holding the lock (fine for a few keys, not for a real server).
//!
//! The exact bytes follow protocol.md §1.4 (handshake replies), §2 (PSYNC decision and
//! replies), §3.3 (diskless payload) and §4–§5 (offsets and backlog).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use respsync::backlog::Backlog;
use respsync::ids::{IdGenerator, PsyncCheck, ReplId, ReplOffset, ReplicationIds};
use respsync::rdb::{self, AuxFields, KeyOptions, ReplInfo, WriterConfig};
use respsync::resp;

use crate::net;
use crate::store::{self, Db, Reply};

/// A replica attached to the master (Redis state `online`).
struct Attached {
    /// Connection number, to detach the right one.
    conn: u64,
    /// A handle on the replica's socket for the command stream.
    sock: TcpStream,
    /// Port announced with `REPLCONF listening-port`.
    port: u16,
    /// Last offset acknowledged with `REPLCONF ACK` (0 before the first).
    ack: i64,
}

/// What INFO's `# Stats` section would count.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncStats {
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
}

struct State {
    gen: IdGenerator,
    ids: ReplicationIds,
    /// Created when the first replica arrives (Redis 7.0: no backlog, no offset movement).
    backlog: Option<Backlog>,
    /// `repl-backlog-size`.
    backlog_size: u64,
    /// Database last selected in the stream; `None` forces a SELECT before the next write.
    stream_db: Option<u32>,
    data: Db,
    replicas: Vec<Attached>,
    stats: SyncStats,
    /// The last `PSYNC` received and the first line of the answer.
    last_psync: Option<String>,
    next_conn: u64,
}

impl State {
    fn offset(&self) -> ReplOffset {
        self.backlog
            .as_ref()
            .map_or(ReplOffset::new(0), Backlog::end)
    }

    /// Feeds stream bytes to the backlog and to every attached replica (`replicationFeedSlaves`).
    /// A replica whose socket fails is dropped; it will come back with PSYNC.
    fn feed(&mut self, argv: &[Bytes]) {
        let Some(backlog) = self.backlog.as_mut() else {
            return; // no replica ever attached: Redis 7.0 does not move the offset
        };
        let mut out = BytesMut::new();
        if self.stream_db != Some(0) {
            resp::encode_command(&["SELECT", "0"], &mut out);
            self.stream_db = Some(0);
        }
        resp::encode_command(argv, &mut out);
        let bytes = out.freeze();
        backlog.append(bytes.clone());
        self.replicas
            .retain_mut(|r| r.sock.write_all(&bytes).is_ok());
    }
}

/// The stand-in master: a listening socket and shared state.
#[derive(Clone)]
pub struct Master {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
}

/// A snapshot of the master's replication state, INFO-style.
#[derive(Debug, Clone)]
pub struct MasterInfo {
    pub replid: ReplId,
    pub replid2: ReplId,
    pub offset: ReplOffset,
    pub second_offset: ReplOffset,
    pub backlog: Option<(ReplOffset, u64)>,
    pub backlog_size: u64,
    /// `(port, ack offset)` per attached replica.
    pub replicas: Vec<(u16, i64)>,
    pub stats: SyncStats,
    /// The last `PSYNC` received and the first line of the answer, e.g.
    /// `PSYNC ? -1 -> +FULLRESYNC <id> 0`.
    pub last_psync: Option<String>,
}

impl Master {
    /// Listens on 127.0.0.1 (a free port) and serves clients and replicas. `backlog_size` is
    /// `repl-backlog-size` (`DEFAULT_BACKLOG_SIZE` in Redis).
    pub fn start(seed: u64, backlog_size: u64) -> std::io::Result<Master> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut gen = IdGenerator::new(seed);
        let ids = ReplicationIds::new(gen.next_id());
        let master = Master {
            state: Arc::new(Mutex::new(State {
                gen,
                ids,
                backlog: None,
                backlog_size,
                stream_db: None,
                data: Db::new(),
                replicas: Vec::new(),
                stats: SyncStats::default(),
                last_psync: None,
                next_conn: 0,
            })),
            addr: listener.local_addr()?,
        };
        let m = master.clone();
        net::accept_loop(listener, move |sock| m.serve(sock));
        Ok(master)
    }

    /// The address clients and replicas connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another demo thread is a demo bug; keep going with the data as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the dataset.
    pub fn data(&self) -> Db {
        self.lock().data.clone()
    }

    /// The replication state, as `INFO replication` and `INFO stats` report it.
    pub fn info(&self) -> MasterInfo {
        let s = self.lock();
        MasterInfo {
            replid: s.ids.id,
            replid2: s.ids.id2,
            offset: s.offset(),
            second_offset: s.ids.second_offset,
            backlog: s.backlog.as_ref().map(Backlog::window),
            backlog_size: s.backlog_size,
            replicas: s.replicas.iter().map(|r| (r.port, r.ack)).collect(),
            stats: s.stats,
            last_psync: s.last_psync.clone(),
        }
    }

    /// One client or replica connection.
    fn serve(&self, sock: TcpStream) {
        let conn = {
            let mut s = self.lock();
            s.next_conn += 1;
            s.next_conn
        };
        let mut port = 0u16;
        net::request_loop(sock, |sock, argv| {
            let name = argv[0].to_ascii_lowercase();
            let mut out = BytesMut::new();
            match name.as_slice() {
                b"ping" => resp::encode_simple(b"PONG", &mut out),
                b"replconf" => {
                    let opt = argv.get(1).map(|o| o.to_ascii_lowercase());
                    match opt.as_deref() {
                        // `REPLCONF ACK <offset>`: never answered (protocol.md §4.4).
                        Some(b"ack") => {
                            let off = argv.get(2).and_then(|o| ReplOffset::parse(o));
                            let mut s = self.lock();
                            if let (Some(off), Some(r)) =
                                (off, s.replicas.iter_mut().find(|r| r.conn == conn))
                            {
                                r.ack = r.ack.max(off.value());
                            }
                            return true;
                        }
                        Some(b"listening-port") => {
                            port = argv
                                .get(2)
                                .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
                                .unwrap_or(0);
                            resp::encode_ok(&mut out);
                        }
                        _ => resp::encode_ok(&mut out), // capa eof, capa psync2, ...
                    }
                }
                b"psync" if argv.len() >= 3 => {
                    return self.psync(sock, conn, port, &argv[1], &argv[2]);
                }
                b"get" if argv.len() == 2 => {
                    let s = self.lock();
                    match s.data.get(&argv[1]) {
                        Some(rdb::Value::String(v)) => resp::encode_bulk(v, &mut out),
                        Some(_) => resp::encode_error(
                            b"WRONGTYPE Operation against a key holding the wrong kind of value",
                            &mut out,
                        ),
                        None => resp::encode_null_bulk(&mut out),
                    }
                }
                b"info" => {
                    let i = self.info();
                    let mut fields = vec![
                        ("role", "master".to_string()),
                        ("connected_slaves", i.replicas.len().to_string()),
                    ];
                    let slaves: Vec<(String, String)> = i
                        .replicas
                        .iter()
                        .enumerate()
                        .map(|(n, (port, ack))| {
                            (
                                format!("slave{n}"),
                                format!("ip=127.0.0.1,port={port},state=online,offset={ack},lag=0"),
                            )
                        })
                        .collect();
                    let (first, histlen) = i.backlog.unwrap_or((ReplOffset::new(0), 0));
                    let tail = [
                        ("master_replid", i.replid.to_string()),
                        ("master_replid2", i.replid2.to_string()),
                        ("master_repl_offset", i.offset.to_string()),
                        ("second_repl_offset", i.second_offset.to_string()),
                        (
                            "repl_backlog_active",
                            u8::from(i.backlog.is_some()).to_string(),
                        ),
                        ("repl_backlog_size", i.backlog_size.to_string()),
                        ("repl_backlog_first_byte_offset", first.to_string()),
                        ("repl_backlog_histlen", histlen.to_string()),
                        ("sync_full", i.stats.sync_full.to_string()),
                        ("sync_partial_ok", i.stats.sync_partial_ok.to_string()),
                        ("sync_partial_err", i.stats.sync_partial_err.to_string()),
                    ];
                    let slaves: Vec<(&str, String)> = slaves
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.clone()))
                        .collect();
                    fields.extend(slaves);
                    fields.extend(tail);
                    net::info_reply("Replication", &fields, &mut out);
                }
                _ if store::is_write(&name) => {
                    // A client write: apply it, then propagate it (call + propagate in Redis).
                    let mut s = self.lock();
                    let reply = store::apply(&mut s.data, argv);
                    if !matches!(reply, Reply::Err(_)) {
                        s.feed(argv);
                    }
                    reply.encode(&mut out);
                }
                _ => Reply::Err(format!(
                    "ERR unknown command '{}'",
                    String::from_utf8_lossy(&argv[0])
                ))
                .encode(&mut out),
            }
            sock.write_all(&out).is_ok()
        });
        // The connection ended: a replica on it is no longer attached.
        self.lock().replicas.retain(|r| r.conn != conn);
    }

    /// `PSYNC <replid> <offset>`: partial resync from the backlog when the ids and the backlog
    /// allow it (protocol.md §2.1), otherwise a full resync with a diskless snapshot.
    fn psync(&self, sock: &mut TcpStream, conn: u64, port: u16, id: &[u8], off: &[u8]) -> bool {
        let mut s = self.lock();
        let asked = ReplOffset::parse(off).unwrap_or(ReplOffset::NONE);
        let window = s.backlog.as_ref().map(Backlog::window);
        let check = s.ids.can_continue(id, asked, window);
        let mut out = BytesMut::new();
        if check == PsyncCheck::Continue {
            // `+CONTINUE <replid>` then the backlog from the asked offset (§2.2).
            let Some(range) = s.backlog.as_ref().and_then(|b| b.range(asked)) else {
                return false; // can_continue said the window serves it; treat a miss as fatal
            };
            resp::encode_simple(format!("CONTINUE {}", s.ids.id).as_bytes(), &mut out);
            for chunk in range {
                out.extend_from_slice(&chunk);
            }
            s.stats.sync_partial_ok += 1;
        } else {
            if id != b"?" {
                s.stats.sync_partial_err += 1;
            }
            if s.backlog.is_none() {
                // First replica ever: new replid, no replid2, a backlog (§2.3).
                let fresh = s.gen.next_id();
                s.ids = ReplicationIds::new(fresh);
                s.backlog = Some(Backlog::new(s.backlog_size, ReplOffset::new(0)));
            }
            let offset = s.offset();
            // Force a SELECT before the next write, so the new replica's stream names its db.
            s.stream_db = None;
            resp::encode_simple(
                format!("FULLRESYNC {} {}", s.ids.id, offset).as_bytes(),
                &mut out,
            );
            let rdb = match snapshot(&s.data, s.ids.id, offset) {
                Ok(rdb) => rdb,
                Err(e) => {
                    eprintln!("demo master: cannot write the snapshot: {e}");
                    return false;
                }
            };
            let mark = s.gen.next_id();
            let mut mark_bytes = [0u8; 40];
            mark_bytes.copy_from_slice(mark.as_bytes());
            resp::encode_transfer_eof(&mark_bytes, &mut out);
            out.extend_from_slice(&rdb);
            out.extend_from_slice(&mark_bytes);
            s.stats.sync_full += 1;
        }
        let first_line = out
            .iter()
            .position(|&b| b == b'\r')
            .map_or(&out[..], |end| &out[..end]);
        s.last_psync = Some(format!(
            "PSYNC {} {} -> {}",
            String::from_utf8_lossy(id),
            String::from_utf8_lossy(off),
            String::from_utf8_lossy(first_line)
        ));
        let Ok(stream) = sock.try_clone() else {
            return false;
        };
        // A replica that stops reading must not block the master (and its lock) forever: its
        // writes fail after this and it is dropped (Redis: client-output-buffer-limit).
        if stream
            .set_write_timeout(Some(std::time::Duration::from_secs(2)))
            .is_err()
        {
            return false;
        }
        if sock.write_all(&out).is_err() {
            return false;
        }
        // Attached under the same lock that produced the payload: no write can fall between.
        s.replicas.push(Attached {
            conn,
            sock: stream,
            port,
            ack: 0,
        });
        true
    }
}

/// The dataset as an RDB file (version 10, what Redis 7.0 writes), with the replication aux
/// fields a master puts in a snapshot for its replicas.
fn snapshot(data: &Db, id: ReplId, offset: ReplOffset) -> Result<Bytes, rdb::WriteError> {
    let config = WriterConfig {
        aux: AuxFields {
            repl: Some(ReplInfo {
                stream_db: 0,
                id: Bytes::copy_from_slice(id.as_bytes()),
                offset: offset.value(),
            }),
            ..AuxFields::default()
        },
        ..WriterConfig::default()
    };
    let mut w = rdb::Writer::new(config)?;
    w.select_db(0, data.len() as u64, 0)?;
    for (k, v) in data {
        w.key(k, v, KeyOptions::default())?;
    }
    w.finish()
}
