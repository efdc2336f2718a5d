//! `cargo run --example demo`, as a user would run it: the binary must exit 0 and print every
//! step of the story with its checks. Also unit tests of the demo's dataset helpers.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use respsync::rdb::Value;

mod support;

#[path = "../examples/demo/store.rs"]
#[allow(dead_code)]
mod store;

/// Kills the child process on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the demo with `args`; returns its exit status and stdout. Fails the test if it takes
/// longer than 30 s.
fn run_demo(args: &[&str]) -> (std::process::ExitStatus, String) {
    let child = Command::new(support::example_binary("demo"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let mut child = Kill(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the demo did not finish within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.is_empty() || !status.success(), "stderr: {err}");
    (status, out)
}

#[test]
fn demo_runs_every_step_and_exits_zero() {
    let (status, out) = run_demo(&[]);
    assert!(status.success(), "demo failed ({status}):\n{out}");

    let lines: Vec<&str> = out.lines().collect();
    let find = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
    };
    // The steps come in order, each followed by its passed check.
    let steps = [
        find("step 1: full sync: 7 keys"),
        find("step 2: SET news on the master; GET news on the replica -> \"written on the master\""),
        find("step 3: SET news on the replica -> (error) READONLY You can't write against a read only replica."),
        find("step 4: link cut at offset 100;"),
        find("done: every check held."),
    ];
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "steps out of order:\n{out}"
    );
    let checks = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("check  :") && l.ends_with(": ok"))
        .count();
    assert_eq!(checks, 4, "expected four passed checks:\n{out}");
    assert!(!out.contains("FAILED"), "{out}");

    // The full sync was a FULLRESYNC from offset 0, the heal a CONTINUE from offset 101, and
    // both sides report the same replid and offsets at the end.
    let sync = lines[find("    sync   :")];
    assert!(sync.contains("PSYNC ? -1 -> +FULLRESYNC "), "{sync}");
    let healed = lines[find("    healed :")];
    assert!(healed.contains(" 101 -> +CONTINUE "), "{healed}");
    let last_master = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("    master :"))
        .unwrap();
    let last_replica = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("    replica:"))
        .unwrap();
    let field = |line: &str, name: &str| -> String {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    assert_eq!(
        field(last_master, "master_repl_offset"),
        field(last_replica, "slave_repl_offset")
    );
    assert_eq!(
        field(last_master, "master_replid"),
        field(last_replica, "master_replid")
    );
    assert_eq!(field(last_master, "sync_full"), "1");
    assert_eq!(field(last_master, "sync_partial_ok"), "1");
    assert_eq!(field(last_replica, "master_link_status"), "up");
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn run(db: &mut store::Db, argv: &[&str]) -> store::Reply {
    let argv: Vec<Bytes> = argv.iter().map(|a| b(a)).collect();
    store::apply(db, &argv)
}

#[test]
fn apply_follows_redis_replies() {
    let mut db = store::Db::new();
    assert_eq!(run(&mut db, &["SET", "k", "1"]), store::Reply::Ok);
    assert_eq!(run(&mut db, &["INCR", "k"]), store::Reply::Int(2));
    assert_eq!(
        run(&mut db, &["SADD", "s", "a", "b", "a"]),
        store::Reply::Int(2)
    );
    assert_eq!(run(&mut db, &["SADD", "s", "a", "c"]), store::Reply::Int(1));
    assert_eq!(
        run(&mut db, &["RPUSH", "l", "x", "y"]),
        store::Reply::Int(2)
    );
    assert_eq!(
        run(&mut db, &["HSET", "h", "f", "1", "g", "2"]),
        store::Reply::Int(2)
    );
    assert_eq!(run(&mut db, &["HSET", "h", "f", "3"]), store::Reply::Int(0));
    assert_eq!(
        run(&mut db, &["ZADD", "z", "1.5", "m"]),
        store::Reply::Int(1)
    );
    assert!(matches!(
        run(&mut db, &["ZADD", "z", "x", "m"]),
        store::Reply::Err(_)
    ));
    assert!(
        matches!(run(&mut db, &["RPUSH", "s", "x"]), store::Reply::Err(e) if e.starts_with("WRONGTYPE"))
    );
    assert!(matches!(run(&mut db, &["INCR", "l"]), store::Reply::Err(_)));
    assert_eq!(run(&mut db, &["DEL", "k", "nope"]), store::Reply::Int(1));
    assert_eq!(db.len(), 4);
    assert_eq!(db[&b("l")], Value::List(vec![b("x"), b("y")]));
    assert!(store::is_write(b"SeT") && !store::is_write(b"get"));
}

#[test]
fn compare_ignores_set_order_and_finds_differences() {
    let mut a = store::Db::new();
    run(&mut a, &["SADD", "s", "b", "a"]);
    run(&mut a, &["HSET", "h", "f", "1", "g", "2"]);
    let mut b2 = store::Db::new();
    run(&mut b2, &["SADD", "s", "a", "b"]);
    run(&mut b2, &["HSET", "h", "g", "2", "f", "1"]);
    assert_eq!(store::compare(&a, &b2), Ok(()));
    run(&mut b2, &["HSET", "h", "g", "3"]);
    assert!(store::compare(&a, &b2).is_err());
    run(&mut b2, &["HSET", "h", "g", "2"]);
    run(&mut b2, &["SET", "extra", "1"]);
    assert!(store::compare(&a, &b2)
        .unwrap_err()
        .contains("only on the replica"));
    run(&mut a, &["SET", "extra", "1"]);
    run(&mut a, &["SET", "more", "1"]);
    assert!(store::compare(&a, &b2).unwrap_err().contains("missing"));
}

#[test]
fn demo_fails_when_the_backlog_cannot_serve_the_resync() {
    // 64 bytes cannot hold the 182 bytes written while the link is down: the master answers
    // FULLRESYNC, and the demo must say so and exit 1.
    let (status, out) = run_demo(&["--repl-backlog-size", "64"]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("step 3: "), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("FAILED: step 4: expected PSYNC ") && last.contains("+FULLRESYNC"),
        "{out}"
    );
    assert!(!out.contains("done: every check held"), "{out}");
}
