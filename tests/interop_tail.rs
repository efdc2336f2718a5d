//! Interop: `ReplicaSession` (and `examples/tail`) against real redis-server 7.0 and
//! valkey-server 8.1 masters started on 127.0.0.1 with free ports and temp dirs.
//!
//! The servers are required: if one is missing the test fails (never skips).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use respsync::ids::ReplOffset;
use respsync::rdb::{Checksum, KeyRef, ParserConfig, RdbEvent, Visitor};
use respsync::replica::{
    CommandKind, LinkState, MasterAuth, ReplicaConfig, ReplicaError, ReplicaEvent, ReplicaSession,
    SnapshotLoader,
};
use respsync::resp::Frame;

mod support;
use support::{example_binary, redis_binary, valkey_binary, Conn, Proc};

// ---------------------------------------------------------------- servers

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Redis,
    Valkey,
}

/// A master of `kind` with `extra` options (and `DEBUG` enabled), killed on drop.
fn start(kind: Kind, extra: &[&str]) -> Proc {
    let bin = match kind {
        Kind::Redis => redis_binary(),
        Kind::Valkey => valkey_binary(),
    };
    let mut args = vec!["--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    Proc::peer(&bin, &args)
}

// ---------------------------------------------------------------- replica driver

/// What the test replica applied: (db, args) of data commands, and sync counts.
#[derive(Default)]
struct Seen {
    commands: Vec<(u32, Vec<Vec<u8>>)>,
    rdb: Vec<u8>,
    rdb_ends: usize,
    full: usize,
    cont: usize,
    lost: Vec<ReplicaError>,
    failed: Option<ReplicaError>,
}

struct Replica {
    s: ReplicaSession,
    sock: Option<TcpStream>,
    seen: Seen,
    port: u16,
}

impl Replica {
    fn new(port: u16, cfg: ReplicaConfig) -> Replica {
        Replica {
            s: ReplicaSession::new(cfg, Instant::now()).unwrap(),
            sock: None,
            seen: Seen::default(),
            port,
        }
    }

    fn connect(&mut self) {
        let sock = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        sock.set_nodelay(true).unwrap();
        self.sock = Some(sock);
        self.s.connected(Instant::now()).unwrap();
    }

    fn disconnect(&mut self) {
        self.sock = None;
        self.s.disconnected(Instant::now());
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(b) = self.s.poll_transmit() {
            if let Some(sock) = &mut self.sock {
                let _ = sock.write_all(&b);
            }
        }
        while let Some(ev) = self.s.poll_event() {
            match ev {
                ReplicaEvent::FullResync { .. } | ReplicaEvent::LegacySync => {
                    self.seen.full += 1;
                    self.seen.rdb.clear();
                }
                ReplicaEvent::Continue { .. } => self.seen.cont += 1,
                ReplicaEvent::RdbChunk { data, .. } => self.seen.rdb.extend_from_slice(&data),
                ReplicaEvent::RdbEnd { .. } => self.seen.rdb_ends += 1,
                ReplicaEvent::Command(c) if c.kind() == CommandKind::Other => self
                    .seen
                    .commands
                    .push((c.db(), c.args().map(<[u8]>::to_vec).collect())),
                ReplicaEvent::LinkLost(e) => {
                    self.seen.lost.push(e);
                    self.sock = None;
                }
                ReplicaEvent::Failed(e) => {
                    self.seen.failed = Some(e);
                    self.sock = None;
                }
                _ => {}
            }
        }
    }

    /// Pumps the link until `done` holds or `limit` passes; false on timeout.
    fn pump_until(&mut self, limit: Duration, mut done: impl FnMut(&Replica) -> bool) -> bool {
        let end = Instant::now() + limit;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            self.drain();
            if done(self) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            let Some(sock) = &mut self.sock else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            match sock.read(&mut buf) {
                Ok(0) => {
                    self.sock = None;
                    self.s.disconnected(Instant::now());
                }
                Ok(n) => {
                    let _ = self.s.handle_input(Instant::now(), &buf[..n]);
                }
                Err(_) => {}
            }
            self.s.handle_timeout(Instant::now());
        }
    }

    fn offset(&self) -> i64 {
        self.s.offset().unwrap_or(ReplOffset::NONE).value()
    }

    /// Pumps until our applied offset equals the master's `master_repl_offset`.
    fn catch_up(&mut self, master: &mut Conn) {
        let want = master.info_i64("all", "master_repl_offset");
        let ok = self.pump_until(Duration::from_secs(20), |r| r.offset() >= want);
        assert!(
            ok,
            "replica offset {} never reached master offset {want}",
            self.offset()
        );
        assert_eq!(self.offset(), want, "offset must be exact");
    }
}

/// Parses the received snapshot with the crate's loader: magic/version, key count, checksum.
fn check_rdb(rdb: &[u8], version: &[u8], keys: usize) {
    assert!(rdb.starts_with(b"REDIS"), "rdb magic");
    assert_eq!(&rdb[5..9], version);
    let mut loader = SnapshotLoader::new(ParserConfig::default());
    let mut n = 0;
    for chunk in rdb.chunks(7919) {
        loader.push(chunk);
        while let Some(ev) = loader.poll_event().unwrap() {
            n += usize::from(matches!(ev, RdbEvent::KeyStart(_)));
        }
    }
    loader.finish();
    while let Some(ev) = loader.poll_event().unwrap() {
        n += usize::from(matches!(ev, RdbEvent::KeyStart(_)));
    }
    assert!(loader.is_done());
    let checksum = loader.checksum();
    assert!(
        matches!(checksum, Some(Checksum::Verified(_))),
        "checksum verified"
    );
    assert_eq!(n, keys);
    // The visitor fast path agrees.
    struct Count(usize);
    impl Visitor for Count {
        fn event(&mut self, _event: RdbEvent) {}
        fn key_start(&mut self, _key: KeyRef<'_>) {
            self.0 += 1;
        }
    }
    let mut loader = SnapshotLoader::new(ParserConfig::default());
    let mut count = Count(0);
    for chunk in rdb.chunks(7919) {
        loader.push_bytes(Bytes::copy_from_slice(chunk));
        loader.parse_with(&mut count).unwrap();
    }
    loader.finish();
    loader.parse_with(&mut count).unwrap();
    assert!(loader.is_done());
    assert_eq!((count.0, loader.checksum()), (keys, checksum));
}

fn cfg() -> ReplicaConfig {
    ReplicaConfig {
        listening_port: 0,
        ..ReplicaConfig::default()
    }
}

fn write_some(master: &mut Conn, tag: &str, n: usize) {
    for i in 0..n {
        assert_eq!(
            master.cmd(&["SET", &format!("{tag}:{i}"), &format!("v{i}\r\n\x01")]),
            Frame::simple("OK")
        );
    }
    master.cmd(&["SELECT", "5"]);
    master.cmd(&["INCR", &format!("{tag}:counter")]);
    master.cmd(&["MULTI"]);
    master.cmd(&["INCR", "a"]);
    master.cmd(&["RPUSH", "l", "x", "y"]);
    master.cmd(&["EXEC"]);
    master.cmd(&["SELECT", "0"]);
}

fn full_sync_then_stream(kind: Kind, diskless: &str) {
    let server = start(kind, &["--repl-diskless-sync", diskless]);
    let mut m = server.conn();
    assert_eq!(
        m.cmd(&["DEBUG", "POPULATE", "2000", "pop", "50"]),
        Frame::simple("OK")
    );
    let mut r = Replica::new(server.port, cfg());
    r.connect();
    assert!(r.pump_until(Duration::from_secs(20), |r| r.s.state()
        == LinkState::Connected));
    assert_eq!((r.seen.full, r.seen.rdb_ends), (1, 1));
    check_rdb(
        &r.seen.rdb,
        if kind == Kind::Redis {
            b"0010"
        } else {
            b"0011"
        },
        2000,
    );
    write_some(&mut m, "k", 50);
    r.catch_up(&mut m);
    assert_eq!(r.seen.commands.len(), 53);
    assert_eq!(
        r.seen.commands[0],
        (
            0,
            vec![b"SET".to_vec(), b"k:0".to_vec(), b"v0\r\n\x01".to_vec()]
        )
    );
    assert_eq!(r.seen.commands[50].0, 5, "INCR after SELECT 5 is in db 5");
    // Inside MULTI/EXEC (Redis 7.0 puts SELECT before MULTI, Valkey 8 inside it).
    assert_eq!(
        r.seen.commands[51],
        (5, vec![b"INCR".to_vec(), b"a".to_vec()])
    );
    assert_eq!(r.seen.commands[52].0, 5);
    assert_eq!(r.seen.commands[52].1[0], b"RPUSH");
    // A WAIT makes the master send GETACK; our answer must satisfy it.
    m.cmd(&["SET", "w", "1"]);
    let done = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let mut c = server.conn();
            c.cmd(&["WAIT", "1", "5000"])
        });
        r.pump_until(Duration::from_secs(10), |_| h.is_finished());
        h.join().unwrap()
    });
    assert_eq!(done, Frame::Integer(1));
    r.catch_up(&mut m);
    // The master sees our ACKed offset.
    let want = m.info_i64("all", "master_repl_offset");
    let ok = r.pump_until(Duration::from_secs(5), |_| {
        let mut c = server.conn();
        let line = c.info("all", "slave0").expect("INFO slave0");
        line.contains(&format!("offset={want},"))
    });
    assert!(ok, "master never saw ACK {want}");
    // The session's own backlog ends where the stream is.
    assert_eq!(r.s.backlog().unwrap().end().value(), want);
}

#[test]
fn redis_full_sync_disk() {
    full_sync_then_stream(Kind::Redis, "no");
}

#[test]
fn redis_full_sync_diskless() {
    full_sync_then_stream(Kind::Redis, "yes");
}

#[test]
fn valkey_full_sync_diskless() {
    full_sync_then_stream(Kind::Valkey, "yes");
}

#[test]
fn valkey_full_sync_disk() {
    full_sync_then_stream(Kind::Valkey, "no");
}

fn client_kill_heals_with_psync(kind: Kind) {
    let server = start(kind, &[]);
    let mut m = server.conn();
    let mut r = Replica::new(server.port, cfg());
    r.connect();
    assert!(r.pump_until(Duration::from_secs(20), |r| r.s.state()
        == LinkState::Connected));
    write_some(&mut m, "a", 20);
    r.catch_up(&mut m);
    let full = m.info_i64("all", "sync_full");
    let ok = m.info_i64("all", "sync_partial_ok");
    let before = r.seen.commands.len();
    m.cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
    // Writes while we are away stay in the master's backlog.
    write_some(&mut m, "b", 20);
    assert!(r.pump_until(Duration::from_secs(10), |r| r.sock.is_none()));
    r.disconnect();
    assert!(r.s.cached_master().is_some());
    r.connect();
    assert!(r.pump_until(Duration::from_secs(20), |r| r.s.state()
        == LinkState::Connected));
    r.catch_up(&mut m);
    assert_eq!(r.seen.cont, 1);
    assert_eq!(m.info_i64("all", "sync_partial_ok"), ok + 1);
    assert_eq!(m.info_i64("all", "sync_full"), full);
    assert_eq!(
        r.seen.commands.len(),
        before + 23,
        "every command exactly once"
    );
}

#[test]
fn redis_client_kill_heals_with_psync() {
    client_kill_heals_with_psync(Kind::Redis);
}

#[test]
fn valkey_client_kill_heals_with_psync() {
    client_kill_heals_with_psync(Kind::Valkey);
}

#[test]
fn redis_backlog_overflow_forces_full_sync() {
    backlog_overflow_forces_full_sync(Kind::Redis);
}

#[test]
fn valkey_backlog_overflow_forces_full_sync() {
    backlog_overflow_forces_full_sync(Kind::Valkey);
}

fn backlog_overflow_forces_full_sync(kind: Kind) {
    let server = start(kind, &["--repl-backlog-size", "16kb"]);
    let mut m = server.conn();
    let mut r = Replica::new(server.port, cfg());
    r.connect();
    assert!(r.pump_until(Duration::from_secs(20), |r| r.s.state()
        == LinkState::Connected));
    write_some(&mut m, "a", 5);
    r.catch_up(&mut m);
    let full = m.info_i64("all", "sync_full");
    r.disconnect();
    let big = "x".repeat(1024);
    for i in 0..64 {
        m.cmd(&["SET", &format!("big:{i}"), &big]);
    }
    r.connect();
    assert!(r.pump_until(Duration::from_secs(20), |r| r.s.state()
        == LinkState::Connected));
    r.catch_up(&mut m);
    assert_eq!((r.seen.full, r.seen.cont), (2, 0));
    assert_eq!(m.info_i64("all", "sync_full"), full + 1);
    assert!(m.info_i64("all", "sync_partial_err") >= 1);
}

#[test]
fn redis_masterauth_right_and_wrong() {
    masterauth_right_and_wrong(Kind::Redis);
}

#[test]
fn valkey_masterauth_right_and_wrong() {
    masterauth_right_and_wrong(Kind::Valkey);
}

fn masterauth_right_and_wrong(kind: Kind) {
    let server = start(kind, &["--requirepass", "sekret"]);
    let mut m = server.conn();
    assert_eq!(m.cmd(&["AUTH", "sekret"]), Frame::simple("OK"));
    let auth = |pw: &str| ReplicaConfig {
        auth: Some(MasterAuth {
            user: None,
            password: pw.into(),
        }),
        ..cfg()
    };
    let mut good = Replica::new(server.port, auth("sekret"));
    good.connect();
    assert!(good.pump_until(Duration::from_secs(20), |r| r.s.state()
        == LinkState::Connected));
    write_some(&mut m, "x", 3);
    good.catch_up(&mut m);

    let mut bad = Replica::new(server.port, auth("wrong"));
    bad.connect();
    assert!(bad.pump_until(Duration::from_secs(10), |r| r.seen.failed.is_some()));
    assert!(
        matches!(bad.seen.failed, Some(ReplicaError::AuthRejected { ref reply }) if reply.starts_with("-WRONGPASS"))
    );
    assert_eq!(bad.s.state(), LinkState::Failed);

    let mut none = Replica::new(server.port, cfg());
    none.connect();
    assert!(none.pump_until(Duration::from_secs(10), |r| r.seen.failed.is_some()));
    assert!(matches!(
        none.seen.failed,
        Some(ReplicaError::AuthRequired { .. })
    ));

    // ACL user + password.
    m.cmd(&[
        "ACL",
        "SETUSER",
        "repl",
        "on",
        ">pw",
        "+psync",
        "+replconf",
        "+ping",
    ]);
    let mut user = Replica::new(
        server.port,
        ReplicaConfig {
            auth: Some(MasterAuth {
                user: Some("repl".into()),
                password: "pw".into(),
            }),
            ..cfg()
        },
    );
    user.connect();
    assert!(user.pump_until(Duration::from_secs(20), |r| r.s.state()
        == LinkState::Connected));
}

// ---------------------------------------------------------------- examples/tail

/// Kills the child process on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tail_prints_the_stream_and_resumes() {
    let server = start(Kind::Redis, &[]);
    let mut m = server.conn();
    m.cmd(&["SET", "before", "1"]);
    m.cmd(&["RPUSH", "list", "a", "b"]);
    m.cmd(&["HSET", "hash", "f", "v"]);
    let mut child = Kill(
        Command::new(example_binary("tail"))
            .args(["127.0.0.1", &server.port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = |pipe: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let rx = lines(Box::new(child.0.stdout.take().unwrap()));
    let log = lines(Box::new(child.0.stderr.take().unwrap()));
    // Wait until tail is an online replica.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !m
        .info("all", "slave0")
        .is_some_and(|l| l.contains("state=online"))
    {
        assert!(Instant::now() < deadline, "tail never came online");
        std::thread::sleep(Duration::from_millis(20));
    }
    m.cmd(&["SET", "k", "a\r\nb\"\\\x01"]);
    m.cmd(&["SELECT", "2"]);
    m.cmd(&["INCR", "n"]);
    let want = m.info_i64("all", "master_repl_offset");
    let next = |rx: &std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(10)).expect("tail line")
    };
    let l1 = next(&rx);
    assert!(
        l1.starts_with("0 ") && l1.ends_with(r#" "SET","k","a\r\nb\"\\\x01""#),
        "{l1}"
    );
    let l2 = next(&rx);
    assert_eq!(l2, format!("2 {want} \"INCR\",\"n\""));
    // Kill the link; tail resumes with PSYNC and prints only new commands.
    let ok = m.info_i64("all", "sync_partial_ok");
    m.cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
    m.cmd(&["SELECT", "0"]);
    m.cmd(&["DEL", "k"]);
    let l3 = next(&rx);
    let want = m.info_i64("all", "master_repl_offset");
    assert_eq!(l3, format!("0 {want} \"DEL\",\"k\""));
    assert_eq!(m.info_i64("all", "sync_partial_ok"), ok + 1);
    // The snapshot's keys were counted and its checksum checked.
    let logged: Vec<String> = log.try_iter().collect();
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("tail: rdb ") && l.contains(" bytes, 3 keys, checksum ok")),
        "{logged:?}"
    );
}

#[test]
fn tail_raw_stream_prints_protocol_commands() {
    let server = start(Kind::Redis, &[]);
    let mut m = server.conn();
    let mut child = Kill(
        Command::new(example_binary("tail"))
            .args(["127.0.0.1", &server.port.to_string(), "--raw-stream"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !m
        .info("all", "slave0")
        .is_some_and(|l| l.contains("state=online"))
    {
        assert!(Instant::now() < deadline, "tail never came online");
        std::thread::sleep(Duration::from_millis(20));
    }
    m.cmd(&["SET", "a", "1"]);
    assert_eq!(m.cmd(&["WAIT", "1", "5000"]), Frame::Integer(1));
    let want = m.info_i64("all", "master_repl_offset");
    let mut got = Vec::new();
    while !got
        .last()
        .is_some_and(|l: &String| l.starts_with(&format!("0 {want} ")))
    {
        got.push(lines.next().expect("tail output").unwrap());
    }
    let joined = got.join("\n");
    assert!(joined.contains(r#""SELECT","0""#), "{joined}");
    assert!(joined.contains(r#""SET","a","1""#), "{joined}");
    // The last line is the GETACK sent for WAIT, at the master's offset.
    assert!(
        got.last().unwrap().ends_with(r#""REPLCONF","GETACK","*""#),
        "{joined}"
    );
}
