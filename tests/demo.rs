//! `cargo run --example demo`, as a user would run it: the binary must exit 0 and print every
//! step of the story, and exit 1 naming the step when a check fails.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

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
    let steps = [
        find("step 1: full sync A -> B: 8 keys, equal; A says sync_full:1 respsync_repl_snapshots:1"),
        find("step 2: SET news on A; GET news on B -> fresh;"),
        find("step 3: SET news on B -> (error) READONLY You can't write against a read only replica."),
        find("step 4: link cut at offset"),
        find("step 5: A fails at offset"),
        find("step 6: REPLICAOF NO ONE on B; SET leader B -> OK; B says role:master"),
        find("step 7: A back, REPLICAOF B: B says sync_full:0 sync_partial_ok:1"),
        find("step 8: C follows B, A switches to C: C says sync_full:0 sync_partial_ok:1;"),
        find("done: every check held."),
    ];
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "steps out of order:\n{out}"
    );
    assert!(!out.contains("FAILED"), "{out}");
    // Step 4 healed partially; step 5's replica offset is step 4's master offset; step 6's
    // second_repl_offset is one more.
    let l4 = lines[steps[3]];
    assert!(l4.contains("sync_full:1 sync_partial_ok:1"), "{l4}");
    let num_after = |line: &str, key: &str| -> i64 {
        let rest = &line[line
            .find(key)
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            + key.len()..];
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let off = num_after(l4, "master_repl_offset:");
    assert_eq!(num_after(lines[steps[4]], "slave_repl_offset:"), off);
    assert_eq!(num_after(lines[steps[5]], "second_repl_offset:"), off + 1);
    assert!(
        out.lines().count() <= 24,
        "the story must fit one screen:\n{out}"
    );
}

#[test]
fn demo_fails_when_the_backlog_cannot_serve_the_resync() {
    // 16 KiB cannot hold the 23 KB written while the link is down: the cut heals with a full
    // resync, and the demo must say so and exit 1.
    let (status, out) = run_demo(&["--repl-backlog-size", "16kb"]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("step 3: "), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert_eq!(
        last, "FAILED: step 4: the cut was healed by a full resync",
        "{out}"
    );
    assert!(!out.contains("done: every check held"), "{out}");
}
