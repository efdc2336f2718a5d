//! `cargo run --example demo` — replication in one process, over loopback TCP, with nothing else
//! installed.
//!
//! Two nodes run in this process, each on its own 127.0.0.1 port:
//!
//! - a **master** — for now the demo's own stand-in (`master.rs`), assembled from respsync's
//!   ids, backlog, RDB writer and RESP codec, because the crate's master side (`MasterSession`,
//!   `Node`) is not written yet;
//! - a **replica** driven by `respsync::replica::ReplicaSession` (`replica.rs`).
//!
//! The story, each step checked:
//!
//! 1. full sync of a small dataset of several types (diskless `$EOF:` snapshot);
//! 2. a write on the master seen on the replica, offsets equal;
//! 3. a write refused on the replica (`READONLY`);
//! 4. the link cut while the master keeps writing, healed by `PSYNC` → `+CONTINUE` from the
//!    backlog, without a full resync.
//!
//! Promotion of the replica and the old master following it with PSYNC2 need the crate's master
//! side; they join the story when it exists. Exit status 0 only if every check held.

mod master;
mod net;
mod replica;
mod store;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use respsync::backlog::DEFAULT_BACKLOG_SIZE;
use respsync::resp::Frame;

use master::Master;
use net::Client;
use replica::Replica;

/// The whole demo must finish within this.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(20);
/// Any single wait.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let backlog_size = match parse_args() {
        Some(size) => size,
        None => {
            eprintln!("usage: demo [--repl-backlog-size BYTES]");
            return ExitCode::from(2);
        }
    };
    // Never hang: whatever is stuck, the process ends after TOTAL_TIMEOUT.
    std::thread::spawn(|| {
        std::thread::sleep(TOTAL_TIMEOUT);
        println!(
            "FAILED: the demo did not finish within {} s",
            TOTAL_TIMEOUT.as_secs()
        );
        std::process::exit(1);
    });
    match run(backlog_size) {
        Ok(()) => {
            println!(
                "done: every check held. Next in the story, once respsync has its master side: \
                 promoting the replica and the old master following it with PSYNC2 continuation."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `[--repl-backlog-size BYTES]`: the master's backlog size, default Redis's 1 MiB. Unlike
/// Redis (16 KiB minimum) any size is taken, so that a backlog too small for step 4 can be tried:
/// the link then heals with a full resync, and the demo says which check failed.
fn parse_args() -> Option<u64> {
    let mut size = DEFAULT_BACKLOG_SIZE;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--repl-backlog-size" => size = it.next()?.parse().ok().filter(|&n| n > 0)?,
            _ => return None,
        }
    }
    Some(size)
}

/// Waits until `cond` holds, polling every few milliseconds; an error names what did not
/// happen in time.
fn wait_for(deadline: Instant, what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let limit = deadline.min(Instant::now() + STEP_TIMEOUT);
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() >= limit {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Fails with `msg` unless `ok`.
fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Selected `INFO replication` fields as `name=value`, in the order asked.
fn fields(info: &[(String, String)], names: &[&str]) -> String {
    names
        .iter()
        .filter_map(|n| info.iter().find(|(k, _)| k == n))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

const MASTER_FIELDS: &[&str] = &[
    "master_replid",
    "master_repl_offset",
    "connected_slaves",
    "slave0",
    "sync_full",
    "sync_partial_ok",
];
const REPLICA_FIELDS: &[&str] = &["master_link_status", "master_replid", "slave_repl_offset"];

/// Prints both sides' INFO lines.
fn report(m: &mut Client, r: &mut Client) -> Result<(), String> {
    println!("    master : {}", fields(&m.info()?, MASTER_FIELDS));
    println!("    replica: {}", fields(&r.info()?, REPLICA_FIELDS));
    Ok(())
}

/// Sends a write to the master and checks it was accepted.
fn write(m: &mut Client, argv: &[&str]) -> Result<(), String> {
    match m.call(argv)? {
        Frame::Error(e) => Err(format!(
            "{argv:?} refused by the master: {}",
            String::from_utf8_lossy(&e)
        )),
        _ => Ok(()),
    }
}

/// The master's offset equals the replica's applied offset.
fn offsets_equal(master: &Master, replica: &Replica) -> bool {
    replica.info().offset == Some(master.info().offset)
}

fn run(backlog_size: u64) -> Result<(), String> {
    let deadline = Instant::now() + TOTAL_TIMEOUT;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());

    println!(
        "respsync demo: a master and a replica in this process, over loopback TCP \
         (the master is the demo's stand-in until respsync has its master side)"
    );
    let master = Master::start(seed, backlog_size).map_err(|e| format!("master: {e}"))?;
    let mut mc = Client::connect(master.addr(), STEP_TIMEOUT)
        .map_err(|e| format!("connect to master: {e}"))?;
    // A small dataset of several types, written before any replica exists.
    let dataset: &[&[&str]] = &[
        &["SET", "greeting", "hello from the master"],
        &["SET", "visits", "41"],
        &["RPUSH", "queue", "job:1", "job:2", "job:3"],
        &["SADD", "primes", "2", "3", "5", "7"],
        &["SADD", "tags", "redis", "valkey", "rust"],
        &["HSET", "user:1", "name", "Ada", "lang", "rust"],
        &["ZADD", "board", "30", "carol", "10", "alice", "20", "bob"],
    ];
    for argv in dataset {
        write(&mut mc, argv)?;
    }
    println!(
        "master  listening on {} ({} keys)",
        master.addr(),
        master.data().len()
    );

    let replica = Replica::start(master.addr(), seed.rotate_left(17) ^ 0x5eed)
        .map_err(|e| format!("replica: {e}"))?;
    println!(
        "replica listening on {}, replicating from {}",
        replica.addr(),
        master.addr()
    );
    let mut rc = Client::connect(replica.addr(), STEP_TIMEOUT)
        .map_err(|e| format!("connect to replica: {e}"))?;

    // ---------------------------------------------------------------- 1. full sync
    wait_for(deadline, "the full sync", || {
        let i = replica.info();
        i.full_syncs == 1 && i.link_up
    })?;
    wait_for(deadline, "equal offsets after the full sync", || {
        offsets_equal(&master, &replica)
    })?;
    let (ri, mi) = (replica.info(), master.info());
    let (rdb_len, crc_ok) = ri.last_rdb.unwrap_or((0, false));
    println!(
        "step 1: full sync: {} keys of types {} sent as a diskless RDB of {rdb_len} bytes",
        master.data().len(),
        {
            let mut types: Vec<&str> = master.data().values().map(store::type_name).collect();
            types.sort();
            types.dedup();
            types.join(",")
        }
    );
    let psync = mi.last_psync.clone().unwrap_or_default();
    println!("    sync   : {psync}, then $EOF:<mark> + RDB + <mark>");
    report(&mut mc, &mut rc)?;
    let expected = format!("PSYNC ? -1 -> +FULLRESYNC {} 0", mi.replid);
    check(psync == expected, || {
        format!("step 1: expected {expected}, got {psync}")
    })?;
    check(crc_ok, || {
        "step 1: the snapshot's CRC-64 did not verify".into()
    })?;
    check(mi.stats.sync_full == 1, || {
        format!("step 1: master sync_full is {}", mi.stats.sync_full)
    })?;
    check(ri.replid == mi.replid, || {
        "step 1: replica and master replids differ".into()
    })?;
    store::compare(&master.data(), &replica.data()).map_err(|e| format!("step 1: {e}"))?;
    println!(
        "    check  : datasets equal ({} keys), offsets equal ({}), CRC-64 verified: ok",
        replica.data().len(),
        mi.offset
    );

    // ---------------------------------------------------------------- 2. a write seen on the replica
    write(&mut mc, &["SET", "news", "written on the master"])?;
    write(&mut mc, &["INCR", "visits"])?;
    wait_for(deadline, "the write to reach the replica", || {
        offsets_equal(&master, &replica)
    })?;
    // The master learns the replica's offset from its REPLCONF ACKs.
    let target = master.info().offset.value();
    wait_for(deadline, "the replica's ACK of the write", || {
        master
            .info()
            .replicas
            .first()
            .is_some_and(|r| r.1 == target)
    })?;
    let seen = rc.call(&["GET", "news"])?;
    println!(
        "step 2: SET news on the master; GET news on the replica -> {}",
        show(&seen)
    );
    report(&mut mc, &mut rc)?;
    check(
        matches!(&seen, Frame::BulkString(b) if &b[..] == b"written on the master"),
        || format!("step 2: GET news on the replica returned {}", show(&seen)),
    )?;
    store::compare(&master.data(), &replica.data()).map_err(|e| format!("step 2: {e}"))?;
    println!("    check  : replica has the write, offsets equal ({target}), master's ACK offset equal: ok");

    // ---------------------------------------------------------------- 3. a write refused on the replica
    let before = replica.info().offset;
    let refused = rc.call(&["SET", "news", "written on the replica"])?;
    println!("step 3: SET news on the replica -> {}", show(&refused));
    report(&mut mc, &mut rc)?;
    const READONLY: &[u8] = b"READONLY You can't write against a read only replica.";
    check(
        matches!(&refused, Frame::Error(e) if &e[..] == READONLY),
        || {
            format!(
                "step 3: expected the READONLY error, got {}",
                show(&refused)
            )
        },
    )?;
    store::compare(&master.data(), &replica.data()).map_err(|e| format!("step 3: {e}"))?;
    check(replica.info().offset == before, || {
        "step 3: the replica's offset moved".into()
    })?;
    println!("    check  : refused with READONLY, replica's data and offset unchanged: ok");

    // ---------------------------------------------------------------- 4. link cut, healed by partial resync
    let cut_at = master.info().offset;
    replica.cut_link();
    wait_for(deadline, "the replica to see the link down", || {
        !replica.info().link_up
    })?;
    wait_for(deadline, "the master to drop the replica", || {
        master.info().replicas.is_empty()
    })?;
    let writes: &[&[&str]] = &[
        &["RPUSH", "queue", "job:4"],
        &["HSET", "user:1", "lang", "rust and c"],
        &["SET", "after-cut", "written while the link was down"],
        &["INCR", "visits"],
    ];
    for argv in writes {
        write(&mut mc, argv)?;
    }
    let behind = master.info().offset;
    println!(
        "step 4: link cut at offset {cut_at}; the master wrote {} more commands while it was down (offset {behind})",
        writes.len()
    );
    report(&mut mc, &mut rc)?;
    check(replica.info().offset == Some(cut_at), || {
        "step 4: replica offset moved while cut".into()
    })?;
    replica.reconnect();
    wait_for(deadline, "the resync", || {
        let i = replica.info();
        i.partial_syncs == 1 || i.full_syncs > 1
    })?;
    wait_for(deadline, "equal offsets after the resync", || {
        offsets_equal(&master, &replica)
    })?;
    let target = behind.value();
    wait_for(deadline, "the replica's ACK after the resync", || {
        master
            .info()
            .replicas
            .first()
            .is_some_and(|r| r.1 == target)
    })?;
    let (ri, mi) = (replica.info(), master.info());
    let psync = mi.last_psync.clone().unwrap_or_default();
    if psync.contains("+CONTINUE") {
        println!(
            "    healed : {psync}, {} bytes replayed from the backlog",
            behind.value() - cut_at.value()
        );
    } else {
        println!(
            "    healed : {psync} (the backlog no longer held offset {})",
            cut_at.next()
        );
    }
    let expected = format!(
        "PSYNC {} {} -> +CONTINUE {}",
        mi.replid,
        cut_at.next(),
        mi.replid
    );
    check(psync == expected, || {
        format!("step 4: expected {expected}, got {psync}")
    })?;
    report(&mut mc, &mut rc)?;
    check(ri.full_syncs == 1 && mi.stats.sync_full == 1, || {
        format!(
            "step 4: a full resync happened (replica {}, master {})",
            ri.full_syncs, mi.stats.sync_full
        )
    })?;
    check(mi.stats.sync_partial_ok == 1, || {
        format!(
            "step 4: master sync_partial_ok is {}",
            mi.stats.sync_partial_ok
        )
    })?;
    check(ri.replid == mi.replid, || {
        "step 4: replids differ after the resync".into()
    })?;
    store::compare(&master.data(), &replica.data()).map_err(|e| format!("step 4: {e}"))?;
    println!(
        "    check  : partial resync (sync_partial_ok=1, still sync_full=1), datasets equal ({} keys), offsets equal ({}): ok",
        replica.data().len(),
        mi.offset
    );
    Ok(())
}

/// A reply as redis-cli would print it.
fn show(f: &Frame) -> String {
    match f {
        Frame::BulkString(b) | Frame::SimpleString(b) => format!("\"{}\"", b.escape_ascii()),
        Frame::Error(e) => format!("(error) {}", String::from_utf8_lossy(e)),
        Frame::NullBulk => "(nil)".into(),
        Frame::Integer(i) => format!("(integer) {i}"),
        other => format!("{other:?}"),
    }
}
