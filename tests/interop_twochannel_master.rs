//! The example server as the master of real replicas that full-sync over two connections:
//! Redis 8.2 with its rdb channel (on by default) and Valkey 8.1 with
//! `dual-channel-replication-enabled yes`; and the one-connection fallback for Redis 7.0 and 6.2.
//!
//! Each replica reaches the master through a small loopback proxy in this file that records
//! what the master sends on every connection (and when), can hold one connection's master →
//! replica direction, and can cut a connection. A client writes throughout the transfer of a
//! 200k-key snapshot; at the end the replica's offsets equal the master's and the data is equal
//! key by key.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{
    assert_same_data, check_and_drop_bulk, load_bulk, offsets_equal, populate, run, s, wait_for,
    Conn, Peer, Proc,
};

// ------------------------------------------------------------------ the proxy

/// Bytes kept per connection and direction (the rest is only counted).
const KEEP: usize = 64 * 1024;

#[derive(Default)]
struct Dir {
    head: Vec<u8>,
    total: u64,
    /// When each kept byte range arrived: (time, total after the chunk).
    times: Vec<(Instant, u64)>,
    eof: Option<Instant>,
}

struct ProxyConn {
    client: TcpStream,
    upstream: TcpStream,
    /// Master → replica, replica → master.
    down: Mutex<Dir>,
    up: Mutex<Dir>,
    /// Hold the master → replica direction once this many bytes went through (0 = never).
    hold_after: AtomicU64,
    released: AtomicBool,
}

struct Proxy {
    port: u16,
    conns: Arc<Mutex<Vec<Arc<ProxyConn>>>>,
    /// Hold applied to the connection with this index when it is accepted.
    hold: Arc<Mutex<Option<(usize, u64)>>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<Arc<ProxyConn>>>> = Arc::default();
        let hold: Arc<Mutex<Option<(usize, u64)>>> = Arc::default();
        let (c2, h2) = (Arc::clone(&conns), Arc::clone(&hold));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                let mut list = c2.lock().unwrap();
                let hold_after = match *h2.lock().unwrap() {
                    Some((i, n)) if i == list.len() => n,
                    _ => 0,
                };
                let conn = Arc::new(ProxyConn {
                    client: client.try_clone().unwrap(),
                    upstream: upstream.try_clone().unwrap(),
                    down: Mutex::default(),
                    up: Mutex::default(),
                    hold_after: AtomicU64::new(hold_after),
                    released: AtomicBool::new(false),
                });
                list.push(Arc::clone(&conn));
                drop(list);
                let c = Arc::clone(&conn);
                let (u1, c1) = (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || pump(&c, u1, c1, true));
                let c = Arc::clone(&conn);
                std::thread::spawn(move || pump(&c, client, upstream, false));
            }
        });
        Proxy { port, conns, hold }
    }

    fn conn(&self, i: usize) -> Option<Arc<ProxyConn>> {
        self.conns.lock().unwrap().get(i).cloned()
    }

    fn count(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Cuts connection `i` (both sides see it close) and releases every held connection.
    fn cut(&self, i: usize) {
        let c = self.conn(i).expect("connection to cut");
        let _ = c.client.shutdown(Shutdown::Both);
        let _ = c.upstream.shutdown(Shutdown::Both);
        for c in self.conns.lock().unwrap().iter() {
            c.released.store(true, Ordering::Relaxed);
        }
    }
}

fn pump(conn: &ProxyConn, mut from: TcpStream, mut to: TcpStream, down: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let dir = if down { &conn.down } else { &conn.up };
        if n == 0 {
            dir.lock().unwrap().eof = Some(Instant::now());
            let _ = to.shutdown(Shutdown::Write);
            return;
        }
        let total = {
            let mut d = dir.lock().unwrap();
            let room = KEEP.saturating_sub(d.head.len()).min(n);
            d.head.extend_from_slice(&buf[..room]);
            d.total += n as u64;
            let t = d.total;
            d.times.push((Instant::now(), t));
            t
        };
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
        let hold = conn.hold_after.load(Ordering::Relaxed);
        if down && hold > 0 && total >= hold {
            while !conn.released.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl ProxyConn {
    fn down_head(&self) -> Vec<u8> {
        self.down.lock().unwrap().head.clone()
    }

    fn up_head(&self) -> Vec<u8> {
        self.up.lock().unwrap().head.clone()
    }

    fn down_total(&self) -> u64 {
        self.down.lock().unwrap().total
    }

    /// When the master → replica direction had carried more than `n` bytes.
    fn down_time_past(&self, n: u64) -> Option<Instant> {
        let d = self.down.lock().unwrap();
        d.times.iter().find(|(_, t)| *t > n).map(|(i, _)| *i)
    }

    fn down_eof(&self) -> Option<Instant> {
        self.down.lock().unwrap().eof
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ------------------------------------------------------------------ servers and data

const N: usize = 200_000;

fn master() -> Proc {
    Proc::example(&[
        "--repl-diskless-sync-delay",
        "0",
        "--dual-channel-replication-enabled",
        "yes",
    ])
}

/// A real replica of `peer` following `port` (the proxy).
fn replica(peer: Peer, port: u16) -> Proc {
    let port = port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    if peer == Peer::Valkey81 {
        args.extend(["--dual-channel-replication-enabled", "yes"]);
    }
    Proc::start(peer, &args)
}

/// A client writing in dbs 0, 1 and 3 until `stop`; returns how many rounds it wrote.
fn writer(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut c = Conn::open(port);
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let k = n.to_string();
            let cmds: Vec<Vec<Vec<u8>>> = [
                "INCR w:count".to_string(),
                format!("RPUSH w:log {k}"),
                format!("SET w:key:{} {k}", n % 500),
                "SELECT 3".to_string(),
                format!("HSET w:hash f{} {k}", n % 50),
                "SELECT 1".to_string(),
                format!("SET bulk:{} rewritten-{k}", n * 7919 % N as u64),
                "SELECT 0".to_string(),
            ]
            .iter()
            .map(|l| s(&l.split(' ').collect::<Vec<_>>()))
            .collect();
            run(&mut c, &cmds);
            n += 1;
        }
        n
    })
}

/// Everything the writer wrote arrived, the bulk keys are equal (then dropped), and the rest
/// is equal key by key.
fn same_data(peer: Peer, m: &Proc, r: &Proc, written: u64) {
    let mut rc = r.conn();
    assert_eq!(
        rc.bulk_text(&["GET", "w:count"]),
        written.to_string(),
        "[{peer}]"
    );
    assert_eq!(rc.int(&["LLEN", "w:log"]), written as i64, "[{peer}]");
    check_and_drop_bulk(peer, m, &[r], 1, N);
    offsets_equal(peer, m, r, "after FLUSHDB of the bulk keys");
    assert_same_data(m, r);
}

struct Run {
    m: Proc,
    r: Proc,
    proxy: Proxy,
    stop: Arc<AtomicBool>,
    writer: std::thread::JoinHandle<u64>,
}

/// Master with data, proxy, a writer running, and the replica started; `hold` holds the
/// master → replica direction of connection `i` after `n` bytes.
fn start(peer: Peer, hold: Option<(usize, u64)>) -> Run {
    let m = master();
    let mut mc = m.conn();
    populate(&mut mc);
    load_bulk(&mut mc, 1, N);
    let proxy = Proxy::start(m.port);
    *proxy.hold.lock().unwrap() = hold;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = writer(m.port, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(50));
    let r = replica(peer, proxy.port);
    Run {
        m,
        r,
        proxy,
        stop,
        writer,
    }
}

/// Lets the writer go on a little after the link is up, stops it, checks offsets and data.
fn finish(peer: Peer, run: Run, step: &str) -> (Proc, Proc, Proxy) {
    let Run {
        m,
        r,
        proxy,
        stop,
        writer,
    } = run;
    wait_for(60, "the replica's link to come up", || {
        r.info("replication", "master_link_status").as_deref() == Some("up")
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    offsets_equal(peer, &m, &r, step);
    same_data(peer, &m, &r, written);
    (m, r, proxy)
}

fn stat(p: &Proc, field: &str) -> i64 {
    p.info_i64("stats", field)
}

/// Checks one Redis 8.2 rdb-channel attempt on proxy connections `a` and `b`: the exact
/// replies, the stream on A from the FULLRESYNC offset + 1 starting with SELECT, and (if
/// `overlap`) stream bytes on A before B's snapshot ended.
fn check_rdb_channel_attempt(proxy: &Proxy, a: usize, b: usize, overlap: bool) {
    let (ca, cb) = (proxy.conn(a).unwrap(), proxy.conn(b).unwrap());
    let a_down = text(&ca.down_head());
    let rest = a_down
        .strip_prefix("+PONG\r\n+OK\r\n+OK\r\n+RDBCHANNELSYNC ")
        .unwrap_or_else(|| panic!("A got {:?}", &a_down[..a_down.len().min(200)]));
    let (id, stream) = rest.split_once("\r\n").expect("RDBCHANNELSYNC line");
    id.parse::<u64>().expect("a client id");
    assert!(
        text(&ca.up_head()).contains("$16\r\nrdb-channel-repl\r\n"),
        "A offered the rdb channel"
    );
    let b_up = text(&cb.up_head());
    let replconf = format!(
        "*11\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n$11\r\nrdb-channel\r\n$1\r\n1\r\n$17\r\nmain-ch-client-id\r\n${}\r\n{id}\r\n",
        id.len()
    );
    assert!(b_up.starts_with(&replconf), "B sent {b_up:?}");
    assert!(
        b_up.ends_with("*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"),
        "B sent {b_up:?}"
    );
    let b_down = cb.down_head();
    let b_text = text(&b_down[..b_down.len().min(200)]);
    let after_ok = b_text.strip_prefix("+OK\r\n").expect("B's +OK");
    let after_nl = after_ok.trim_start_matches('\n');
    let full = after_nl
        .strip_prefix("+FULLRESYNC ")
        .expect("B's +FULLRESYNC");
    let (line, tail) = full.split_once("\r\n").unwrap();
    assert!(tail.starts_with("$EOF:"), "B: {b_text:?}");
    assert_eq!(&tail[47..56], "REDIS0009", "B's snapshot is RDB 9");
    let (replid, off) = line.split_once(' ').unwrap();
    assert_eq!(replid.len(), 40);
    off.parse::<u64>().expect("offset");
    if !stream.is_empty() {
        // The first stream byte on A is FULLRESYNC offset + 1: a SELECT (or the 1 Hz ping).
        assert!(
            stream.starts_with("*2\r\n$6\r\nSELECT\r\n")
                || stream.starts_with("*1\r\n$4\r\nping\r\n"),
            "A's stream starts with {:?}",
            &stream[..stream.len().min(40)]
        );
    }
    if overlap {
        let header = (a_down.len() - stream.len()) as u64;
        let first_stream = ca.down_time_past(header).expect("stream bytes on A");
        let b_end = cb.down_eof().expect("the master closed B");
        assert!(
            first_stream < b_end,
            "no stream on A while the snapshot went over B"
        );
    }
}

/// Checks one Valkey dual-channel attempt on proxy connections `a` and `b`.
fn check_dual_channel_attempt(proxy: &Proxy, a: usize, b: usize, overlap: bool) {
    let (ca, cb) = (proxy.conn(a).unwrap(), proxy.conn(b).unwrap());
    let b_up = text(&cb.up_head());
    assert!(
        b_up.starts_with("*9\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n$11\r\nrdb-channel\r\n$1\r\n1\r\n$14\r\nlistening-port\r\n")
            && b_up.ends_with("SYNC\r\n"),
        "B sent {b_up:?}"
    );
    let b_down = cb.down_head();
    let b_text = text(&b_down[..b_down.len().min(300)]);
    let endoff = b_text
        .strip_prefix("+OK\r\n")
        .map(|t| t.trim_start_matches('\n'))
        .and_then(|t| t.strip_prefix("$ENDOFF:"))
        .unwrap_or_else(|| panic!("B got {b_text:?}"));
    let (line, tail) = endoff.split_once("\r\n").unwrap();
    assert!(tail.starts_with("$EOF:"), "B: {b_text:?}");
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 4, "{line}");
    let off: u64 = f[0].parse().unwrap();
    assert_eq!(f[1].len(), 40);
    assert_eq!(f[2], "0");
    let a_down = text(&ca.down_head());
    assert!(
        a_down.starts_with("+PONG\r\n+OK\r\n+OK\r\n+OK\r\n+DUALCHANNELSYNC\r\n"),
        "A got {:?}",
        &a_down[..a_down.len().min(200)]
    );
    let a_up = text(&ca.up_head());
    let set_id = format!(
        "*3\r\n$8\r\nREPLCONF\r\n$17\r\nset-rdb-client-id\r\n${}\r\n{}\r\n",
        f[3].len(),
        f[3]
    );
    assert!(a_up.contains(&set_id), "A sent {a_up:?}");
    let next = (off + 1).to_string();
    let psync = format!(
        "*3\r\n$5\r\nPSYNC\r\n$40\r\n{}\r\n${}\r\n{next}\r\n",
        f[1],
        next.len()
    );
    assert!(a_up.contains(&psync), "A sent {a_up:?}");
    let cont = format!("+DUALCHANNELSYNC\r\n+OK\r\n+CONTINUE {}\r\n", f[1]);
    let at = a_down.find(&cont).expect("+CONTINUE on A") + cont.len();
    if overlap {
        let first_stream = ca.down_time_past(at as u64).expect("stream bytes on A");
        let b_end = cb.down_eof().expect("the master closed B");
        assert!(
            first_stream < b_end,
            "no stream on A while the snapshot went over B"
        );
    }
}

fn two_connection_sync(peer: Peer) {
    let run = start(peer, None);
    let (m, r, proxy) = finish(peer, run, "writes during a two-connection full sync");
    assert_eq!(proxy.count(), 2, "[{peer}] one main and one rdb connection");
    match peer {
        Peer::Redis82 => check_rdb_channel_attempt(&proxy, 0, 1, true),
        _ => check_dual_channel_attempt(&proxy, 0, 1, true),
    }
    assert_eq!(stat(&m, "sync_full"), 1, "[{peer}]");
    // One replica in INFO, online.
    let info = m.conn().bulk_text(&["INFO", "replication"]);
    assert!(info.contains("connected_slaves:1\r\n"), "{info}");
    assert!(info.contains("state=online"), "{info}");
    drop(r);
}

/// Cuts connection `which` (0: main, 1: rdb) of the first attempt while the snapshot is
/// held half-way in the proxy; the replica starts over and ends equal.
fn cut_mid_transfer(peer: Peer, which: usize) {
    let run = start(peer, Some((1, 2 << 20)));
    wait_for(30, "the snapshot to be half-way", || {
        run.proxy.conn(1).is_some_and(|c| c.down_total() >= 2 << 20)
    });
    // Writes flow on the main connection meanwhile.
    std::thread::sleep(Duration::from_millis(100));
    run.proxy.cut(which);
    let (m, _r, proxy) = finish(peer, run, "after a cut mid-transfer");
    assert!(proxy.count() >= 4, "[{peer}] a second attempt");
    let n = proxy.count();
    match peer {
        Peer::Redis82 => check_rdb_channel_attempt(&proxy, n - 2, n - 1, false),
        _ => check_dual_channel_attempt(&proxy, n - 2, n - 1, false),
    }
    assert!(stat(&m, "sync_full") >= 2, "[{peer}]");
}

/// Replicas that do not offer a two-connection sync get the classic one, on one connection.
fn classic_fallback(peer: Peer) {
    let run = start(peer, None);
    let (_m, _r, proxy) = finish(peer, run, "classic full sync");
    assert_eq!(proxy.count(), 1, "[{peer}] one connection");
    let a = text(&proxy.conn(0).unwrap().down_head());
    let after = a
        .strip_prefix("+PONG\r\n+OK\r\n+OK\r\n")
        .unwrap_or_else(|| panic!("[{peer}] {:?}", &a[..a.len().min(100)]));
    assert!(
        after.trim_start_matches('\n').starts_with("+FULLRESYNC "),
        "[{peer}] {after:.100}"
    );
}

#[test]
fn redis82_rdb_channel_full_sync_with_writes() {
    two_connection_sync(Peer::Redis82);
}

#[test]
fn valkey81_dual_channel_full_sync_with_writes() {
    two_connection_sync(Peer::Valkey81);
}

#[test]
fn redis82_main_connection_cut_mid_transfer() {
    cut_mid_transfer(Peer::Redis82, 0);
}

#[test]
fn redis82_rdb_connection_cut_mid_transfer() {
    cut_mid_transfer(Peer::Redis82, 1);
}

#[test]
fn valkey81_main_connection_cut_mid_transfer() {
    cut_mid_transfer(Peer::Valkey81, 0);
}

#[test]
fn valkey81_rdb_connection_cut_mid_transfer() {
    cut_mid_transfer(Peer::Valkey81, 1);
}

#[test]
fn redis70_gets_the_classic_full_sync() {
    classic_fallback(Peer::Redis70);
}

#[test]
fn redis62_gets_the_classic_full_sync() {
    classic_fallback(Peer::Redis62);
}
