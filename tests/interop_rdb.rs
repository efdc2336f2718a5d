//! Interop: a varied dataset written into a real `redis-server` 7.0 (RDB 10) and
//! `valkey-server` 8.1 (RDB 11), saved, parsed, and compared with what the server returns.
//! Both servers must be installed: these tests fail (never skip) when one is missing.

use std::collections::{BTreeMap, BTreeSet};

use std::path::Path;

use respsync::rdb::{Collector, Parser, ParserConfig, RdbEvent, Value};

use respsync::resp::Frame;

mod support;
use support::{redis_binary, valkey_binary, Conn, FrameExt, Proc};

/// Writes the dataset: every type, small and large encodings, expiries, several dbs.
fn load_dataset(c: &mut Conn) {
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
    c.must(&[b"SET", b"str:binary", b"\x00\xff\xfe\r\n\x01"]);
    c.must(&[b"SET", b"str:compressible", "ab".repeat(500).as_bytes()]);
    let random: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    c.must(&[b"SET", b"str:random", &random]);
    c.must(&[b"SET", b"str:empty", b""]);
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
        c.must(&args);
    }
    c.must(&[
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
    c.must(&args);
    let nums: Vec<String> = (0..600).map(|i| (i * 7).to_string()).collect();
    let mut args: Vec<&[u8]> = vec![b"SADD", b"set:big-ints"];
    args.extend(nums.iter().map(|s| s.as_bytes()));
    c.must(&args);
    // Zsets: listpack and skiplist, with infinities and fractions.
    c.run("ZADD zset:small 1 one 2.5 two-and-half -inf ninf +inf pinf 0.1 tenth");
    let mut zargs: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), b"zset:big".to_vec()];
    for i in 0..300 {
        zargs.push(format!("{}", f64::from(i) / 3.0).into_bytes());
        zargs.push(format!("m{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = zargs.iter().map(Vec::as_slice).collect();
    c.must(&refs);
    // Hashes: listpack and hashtable (many fields and a long value).
    c.run("HSET hash:small f1 v1 n 12 neg -5 empty x");
    let mut hargs: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"hash:big".to_vec()];
    for i in 0..300 {
        hargs.push(format!("field-{i}").into_bytes());
        hargs.push(format!("value-{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = hargs.iter().map(Vec::as_slice).collect();
    c.must(&refs);
    c.must(&[
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
fn compare(c: &mut Conn, parsed: &Parsed) -> usize {
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
            let pexp = c.must(&[b"PEXPIRETIME", &key]).int();
            assert_eq!(*expire, (pexp >= 0).then_some(pexp), "{ctx}: expiry");
            let t = c.must(&[b"TYPE", &key]).bytes();
            match (t.as_slice(), value) {
                (b"string", Value::String(v)) => {
                    assert_eq!(c.must(&[b"GET", &key]).bytes(), v.to_vec(), "{ctx}")
                }
                (b"list", Value::List(v)) => {
                    let want: Vec<Vec<u8>> = c
                        .must(&[b"LRANGE", &key, b"0", b"-1"])
                        .array()
                        .iter()
                        .map(Frame::bytes)
                        .collect();
                    let got: Vec<Vec<u8>> = v.iter().map(|b| b.to_vec()).collect();
                    assert_eq!(got, want, "{ctx}");
                }
                (b"set", Value::Set(v)) => {
                    let mut want: Vec<Vec<u8>> = c
                        .must(&[b"SMEMBERS", &key])
                        .array()
                        .iter()
                        .map(Frame::bytes)
                        .collect();
                    let mut got: Vec<Vec<u8>> = v.iter().map(|b| b.to_vec()).collect();
                    want.sort();
                    got.sort();
                    assert_eq!(got, want, "{ctx}");
                }
                (b"zset", Value::Zset(v)) => {
                    let r = c.must(&[b"ZRANGE", &key, b"0", b"-1", b"WITHSCORES"]);
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
                    let r = c.must(&[b"HGETALL", &key]);
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
                    let r = c.must(&[b"XRANGE", &key, b"-", b"+"]);
                    let want: Vec<(String, Vec<Vec<u8>>)> = r
                        .array()
                        .iter()
                        .map(|e| {
                            let e = e.array();
                            let fields = e[1].array().iter().map(Frame::bytes).collect();
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
                    assert_eq!(
                        s.meta.length,
                        c.must(&[b"XLEN", &key]).int() as u64,
                        "{ctx}"
                    );
                    let groups = c.must(&[b"XINFO", b"GROUPS", &key]);
                    assert_eq!(groups.array().len(), s.groups.len(), "{ctx}");
                    for (g, mine) in groups.array().iter().zip(&s.groups) {
                        let fields: BTreeMap<String, Frame> = g
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
                        let cons = c.must(&[b"XINFO", b"CONSUMERS", &key, &mine.info.name]);
                        for (cr, mc) in cons.array().iter().zip(&mine.consumers) {
                            let f: BTreeMap<String, Frame> = cr
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
    let server = Proc::peer(binary, extra);
    let mut c = server.conn();
    load_dataset(&mut c);
    c.run("SAVE");
    let dump = server.dir.0.join("dump.rdb");
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
        &redis_binary(),
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
        &redis_binary(),
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
        &valkey_binary(),
        &[],
        b"REDIS0011",
        &[0, 2, 4, 5, 11, 16, 17, 18, 20, 21],
    );
}

#[test]
fn valkey_8_1_big_encodings() {
    round_trip(
        &valkey_binary(),
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
