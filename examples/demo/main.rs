//! `cargo run --example demo` — Redis replication told from end to end, in one process, over
//! loopback TCP, with nothing else installed.
//!
//! Three nodes run in this process, each the example `server` (the same store, commands and
//! replication glue, included from `examples/server`) on its own 127.0.0.1 port, each built on
//! the crate's `Node` (master side) and `ReplicaSession` (replica side):
//!
//! 1. **full sync**: B becomes a replica of A and receives A's dataset (a diskless snapshot);
//! 2. a write on A is seen on B, offsets equal;
//! 3. a write on B is refused (`READONLY`);
//! 4. the link A–B is cut while A keeps writing, and healed by a **partial resync**;
//! 5. A **fails**; B's link goes down;
//! 6. B is **promoted** (`REPLICAOF NO ONE`) and takes writes;
//! 7. A comes back and **follows B**: a partial resync through PSYNC2 (B's `replid2` is A's
//!    old id), no full sync, and A gets B's new writes;
//! 8. C, a replica of B, and A **switches master** to C (`REPLICAOF host port`): again a
//!    partial resync, now along the chain B → C → A, one replication id end to end.
//!
//! Each step prints what INFO says; the demo exits non-zero if any check fails.

#[path = "../server/app.rs"]
#[allow(dead_code)] // the demo uses part of the server's surface
mod app;
mod net;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use respsync::resp::Frame;

use net::Client;

/// The whole demo must finish within this.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Any single wait.
const STEP_TIMEOUT: Duration = Duration::from_secs(8);

fn main() -> ExitCode {
    let backlog = match parse_args() {
        Some(b) => b,
        None => {
            eprintln!("usage: demo [--repl-backlog-size BYTES]");
            return ExitCode::from(2);
        }
    };
    std::thread::spawn(|| {
        std::thread::sleep(TOTAL_TIMEOUT);
        println!(
            "FAILED: the demo did not finish within {} s",
            TOTAL_TIMEOUT.as_secs()
        );
        std::process::exit(1);
    });
    app::QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
    match run(backlog) {
        Ok(()) => {
            println!("done: every check held.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `[--repl-backlog-size BYTES]` (default 1 MiB, minimum 16 KiB as in Redis).
fn parse_args() -> Option<String> {
    let mut size = "1mb".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--repl-backlog-size" => size = it.next()?,
            _ => return None,
        }
    }
    Some(size)
}

/// One server of the story.
struct Node {
    name: &'static str,
    addr: SocketAddr,
    shared: Arc<app::Shared>,
}

impl Node {
    fn start(name: &'static str, backlog: &str) -> Result<Node, String> {
        // A free port: bind to 0, note it, release it for the server.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?;
        let mut cfg = app::Config::default();
        let words = |s: &str| vec![s.to_string()];
        for (k, v) in [
            ("port", addr.port().to_string()),
            ("dir", std::env::temp_dir().display().to_string()),
            ("repl-diskless-sync-delay", "0".into()),
            ("repl-backlog-size", backlog.into()),
        ] {
            cfg.set(k, &words(&v), true)
                .map_err(|e| format!("{name}: --{k} {v}: {e}"))?;
        }
        let shared = app::start(cfg).map_err(|e| format!("{name}: cannot start: {e}"))?;
        Ok(Node { name, addr, shared })
    }

    fn client(&self) -> Result<Client, String> {
        Client::connect(self.addr, STEP_TIMEOUT).map_err(|e| format!("{}: connect: {e}", self.name))
    }

    fn call(&self, argv: &[&str]) -> Result<Frame, String> {
        self.client()?.call(argv)
    }

    fn info(&self, section: &str) -> Result<BTreeMap<String, String>, String> {
        Ok(self.client()?.info(section)?.into_iter().collect())
    }

    fn field(&self, section: &str, name: &str) -> Result<String, String> {
        self.info(section)?
            .remove(name)
            .ok_or_else(|| format!("{}: INFO has no {name}", self.name))
    }

    fn num(&self, section: &str, name: &str) -> Result<i64, String> {
        let v = self.field(section, name)?;
        v.parse()
            .map_err(|_| format!("{}: {name} is not a number: {v}", self.name))
    }

    fn replicaof(&self, master: Option<&Node>) -> Result<(), String> {
        let port = master.map(|m| m.addr.port().to_string());
        let argv: Vec<&str> = match &port {
            Some(p) => vec!["REPLICAOF", "127.0.0.1", p],
            None => vec!["REPLICAOF", "NO", "ONE"],
        };
        expect_ok(self.call(&argv)?, &format!("{}: {argv:?}", self.name))
    }

    /// Every key of every database, rendered canonically, read with ordinary commands.
    fn dataset(&self) -> Result<BTreeMap<(usize, String), String>, String> {
        let mut c = self.client()?;
        let mut out = BTreeMap::new();
        for db in 0..16 {
            c.call(&["SELECT", &db.to_string()])?;
            let Frame::Array(keys) = c.call(&["KEYS", "*"])? else {
                return Err(format!("{}: KEYS failed", self.name));
            };
            for k in keys {
                let k = text(&k);
                let t = text(&c.call(&["TYPE", &k])?);
                let v = match t.as_str() {
                    "string" => c.call(&["GET", &k])?,
                    "list" => c.call(&["LRANGE", &k, "0", "-1"])?,
                    "set" => sorted(c.call(&["SMEMBERS", &k])?),
                    "hash" => sorted(c.call(&["HGETALL", &k])?),
                    "zset" => c.call(&["ZRANGE", &k, "0", "-1", "WITHSCORES"])?,
                    "stream" => c.call(&["XRANGE", &k, "-", "+"])?,
                    _ => Frame::Null,
                };
                out.insert((db, k), format!("{t} {}", text(&v)));
            }
        }
        Ok(out)
    }
}

fn text(f: &Frame) -> String {
    match f {
        Frame::BulkString(b) | Frame::SimpleString(b) => String::from_utf8_lossy(b).into_owned(),
        Frame::Error(b) => format!("(error) {}", String::from_utf8_lossy(b)),
        Frame::Integer(i) => i.to_string(),
        Frame::Array(items) => {
            format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(","))
        }
        Frame::Null | Frame::NullBulk | Frame::NullArray => "(nil)".into(),
        other => format!("{other:?}"),
    }
}

fn sorted(f: Frame) -> Frame {
    match f {
        Frame::Array(mut items) => {
            items.sort_by_key(text);
            Frame::Array(items)
        }
        other => other,
    }
}

fn expect_ok(f: Frame, what: &str) -> Result<(), String> {
    match &f {
        Frame::SimpleString(s) if s.starts_with(b"OK") => Ok(()),
        other => Err(format!("{what}: expected OK, got {}", text(other))),
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> Result<bool, String>) -> Result<(), String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if cond()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Waits until `replica` is up with `master` and at its offset, then checks equal data.
fn in_sync(step: &str, master: &Node, replica: &Node) -> Result<i64, String> {
    wait_for(
        &format!("{step}: {} in sync with {}", replica.name, master.name),
        || {
            let r = replica.info("replication")?;
            let up = r.get("master_link_status").map(String::as_str) == Some("up");
            let off = master.num("replication", "master_repl_offset")?;
            Ok(up && r.get("slave_repl_offset").map(String::as_str) == Some(&off.to_string()))
        },
    )?;
    let (m, r) = (master.dataset()?, replica.dataset()?);
    check(m == r, || {
        format!(
            "{step}: {} and {} hold different data ({} vs {} keys)",
            master.name,
            replica.name,
            m.len(),
            r.len()
        )
    })?;
    master.num("replication", "master_repl_offset")
}

/// `name:value` of the INFO fields that tell the step, on one line.
fn says(node: &Node, names: &[&str]) -> Result<String, String> {
    let mut all = node.info("replication")?;
    all.extend(node.info("stats")?);
    Ok(names
        .iter()
        .map(|n| format!("{n}:{}", all.get(*n).map_or("?", String::as_str)))
        .collect::<Vec<_>>()
        .join(" "))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn run(backlog: String) -> Result<(), String> {
    let a = Node::start("A", &backlog)?;
    let b = Node::start("B", &backlog)?;
    println!(
        "respsync demo: three example servers in this process (A {}, B {}, C later), every one \
         built on the crate's Node and ReplicaSession",
        a.addr, b.addr
    );

    // 1. Full sync of a dataset of several types, in two databases.
    let mut c = a.client()?;
    for cmd in [
        &["SET", "greeting", "hello"][..],
        &["RPUSH", "queue", "a", "b", "c"],
        &["SADD", "tags", "x", "y"],
        &["HSET", "user:1", "name", "ada", "lang", "rust"],
        &["ZADD", "board", "1", "one", "2", "two"],
        &["XADD", "events", "*", "kind", "start"],
        &["SET", "session", "s1", "EX", "300"],
        &["SELECT", "1"],
        &["SET", "other-db", "1"],
        &["SELECT", "0"],
    ] {
        c.call(cmd)?;
    }
    b.replicaof(Some(&a))?;
    let off = in_sync("step 1", &a, &b)?;
    println!(
        "step 1: full sync A -> B: {} keys, equal; A says {}",
        b.dataset()?.len(),
        says(
            &a,
            &["sync_full", "respsync_repl_snapshots", "master_repl_offset"]
        )?
    );
    check(a.num("stats", "sync_full")? == 1, || {
        "step 1: A sync_full is not 1".into()
    })?;
    check(
        b.field("replication", "master_replid")? == a.field("replication", "master_replid")?,
        || "step 1: A and B have different replids".into(),
    )?;

    // 2. A write on A, seen on B.
    c.call(&["SET", "news", "fresh"])?;
    drop(c); // step 4 cuts A's connections
    let off2 = in_sync("step 2", &a, &b)?;
    println!(
        "step 2: SET news on A; GET news on B -> {}; offsets {off} -> {off2} on both",
        text(&b.call(&["GET", "news"])?)
    );

    // 3. A write on B refused.
    let refused = b.call(&["SET", "news", "stale"])?;
    println!("step 3: SET news on B -> {}", text(&refused));
    check(
        matches!(&refused, Frame::Error(e) if e.starts_with(b"READONLY")),
        || "step 3: the replica accepted a write".into(),
    )?;

    // 4. Link cut while A writes; healed by a partial resync. A is cut off from the network
    // (its connections dropped, new ones refused) and written to in-process meanwhile, so the
    // 100 writes certainly happen while B is away.
    let partial_before = a.num("stats", "sync_partial_ok")?;
    let cut_at = a.num("replication", "master_repl_offset")?;
    a.shared.set_down(true);
    let entry = "x".repeat(400);
    for i in 0..50 {
        a.shared.execute(&["INCR", "counter"]);
        a.shared.execute(&["LPUSH", "log", &format!("{i}:{entry}")]);
    }
    a.shared.set_down(false);
    let healed_at = in_sync("step 4", &a, &b)?;
    println!(
        "step 4: link cut at offset {cut_at}, {} bytes of writes on A meanwhile, healed: A says {}",
        healed_at - cut_at,
        says(&a, &["sync_full", "sync_partial_ok", "master_repl_offset"])?
    );
    check(a.num("stats", "sync_full")? == 1, || {
        "step 4: the cut was healed by a full resync".into()
    })?;
    check(
        a.num("stats", "sync_partial_ok")? == partial_before + 1,
        || "step 4: no partial resync".into(),
    )?;

    // 5. A fails.
    let a_id = a.field("replication", "master_replid")?;
    let a_off = a.num("replication", "master_repl_offset")?;
    a.shared.set_down(true);
    wait_for("step 5: B's link down", || {
        Ok(b.field("replication", "master_link_status")? == "down")
    })?;
    println!(
        "step 5: A fails at offset {a_off}; B says {}",
        says(&b, &["master_link_status", "slave_repl_offset"])?
    );

    // 6. B is promoted and takes writes.
    b.replicaof(None)?;
    let promoted = b.call(&["SET", "leader", "B"])?;
    expect_ok(promoted, "step 6: SET on the promoted B")?;
    b.call(&["SADD", "tags", "z"])?;
    let id2 = b.field("replication", "master_replid2")?;
    println!(
        "step 6: REPLICAOF NO ONE on B; SET leader B -> OK; B says role:{} master_replid2:{}.. second_repl_offset:{}",
        b.field("replication", "role")?,
        short(&id2),
        b.field("replication", "second_repl_offset")?
    );
    check(id2 == a_id, || {
        "step 6: B's replid2 is not A's replid".into()
    })?;
    check(
        b.num("replication", "second_repl_offset")? == a_off + 1,
        || "step 6: B's second_repl_offset is not A's offset + 1".into(),
    )?;

    // 7. A comes back and follows B with a partial resync.
    a.shared.set_down(false);
    a.replicaof(Some(&b))?;
    in_sync("step 7", &b, &a)?;
    println!(
        "step 7: A back, REPLICAOF B: B says {}; A has leader={}",
        says(&b, &["sync_full", "sync_partial_ok", "connected_slaves"])?,
        text(&a.call(&["GET", "leader"])?)
    );
    check(b.num("stats", "sync_full")? == 0, || {
        "step 7: A needed a full sync to follow B".into()
    })?;
    check(b.num("stats", "sync_partial_ok")? == 1, || {
        "step 7: B did not serve a partial resync".into()
    })?;

    // 8. C joins as B's replica; A switches master to C: a chain B -> C -> A.
    let c_node = Node::start("C", &backlog)?;
    c_node.replicaof(Some(&b))?;
    in_sync("step 8", &b, &c_node)?;
    a.replicaof(Some(&c_node))?;
    b.call(&["SET", "chain", "B->C->A"])?;
    in_sync("step 8", &c_node, &a)?;
    in_sync("step 8", &b, &a)?;
    let ids: Vec<String> = [&b, &c_node, &a]
        .iter()
        .map(|n| n.field("replication", "master_replid"))
        .collect::<Result<_, _>>()?;
    println!(
        "step 8: C follows B, A switches to C: C says {}; replid {}.. on B, C and A",
        says(&c_node, &["sync_full", "sync_partial_ok"])?,
        short(&ids[0])
    );
    check(ids.iter().all(|i| *i == ids[0]), || {
        "step 8: the chain does not share one replid".into()
    })?;
    check(c_node.num("stats", "sync_partial_ok")? == 1, || {
        "step 8: A did not continue partially with C".into()
    })?;
    check(c_node.num("stats", "sync_full")? == 0, || {
        "step 8: A needed a full sync from C".into()
    })?;
    Ok(())
}
