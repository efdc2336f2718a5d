//! Arbitrary master bytes and timings against `ReplicaSession`: it must never panic, never
//! exceed its limits, and keep its offsets consistent.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use respsync::ids::{ReplId, ReplOffset};
use respsync::replica::{CachedMaster, MasterAuth, ReplicaConfig, ReplicaEvent, ReplicaSession};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = ReplicaConfig {
        auth: (flags & 1 != 0).then(|| MasterAuth { user: None, password: "pw".into() }),
        announce_ip: (flags & 2 != 0).then(|| "10.0.0.1".into()),
        max_line_len: 256,
        max_bulk_len: 4096,
        max_command_len: 16 * 1024,
        max_multibulk_len: 64,
        backlog_size: 1024,
        ..ReplicaConfig::default()
    };
    let mut now = Instant::now();
    let Ok(mut s) = ReplicaSession::new(cfg, now) else {
        return;
    };
    if flags & 4 != 0 {
        s.set_cached_master(CachedMaster {
            replid: ReplId::parse(&[b'a'; 40]).unwrap(),
            offset: ReplOffset::new(100),
            db: 0,
        });
    }
    let _ = s.connected(now);
    if flags & 8 != 0 {
        // Jump past the handshake so the fuzzer spends its time on transfer and stream.
        let id = [b'a'; 40];
        let mut pre = b"+PONG\r\n+OK\r\n+OK\r\n+OK\r\n+FULLRESYNC ".to_vec();
        pre.extend_from_slice(&id);
        pre.extend_from_slice(b" 0\r\n");
        let _ = s.handle_input(now, &pre);
    }
    let mut sent = 0usize;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 8 {
            0..=3 => {
                let n = usize::from(op / 8).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                let _ = s.handle_input(now, chunk);
            }
            4 => {
                now += Duration::from_millis(u64::from(op) * 250);
                s.handle_timeout(now);
            }
            5 => {
                s.disconnected(now);
                let _ = s.connected(now);
            }
            6 => s.keepalive(now),
            _ => s.forget_master(),
        }
        while let Some(b) = s.poll_transmit() {
            sent += b.len();
        }
        while let Some(ev) = s.poll_event() {
            if let ReplicaEvent::Command(c) = ev {
                assert!(c.argc() <= 64);
                assert!(c.frame().len() <= 16 * 1024);
                assert_eq!(c.args().count(), c.argc());
            }
        }
        if let (Some(a), Some(r)) = (s.offset(), s.read_offset()) {
            assert!(a <= r);
        }
        if let Some(b) = s.backlog() {
            assert!(b.histlen() <= 1024);
        }
        if let Some(t) = s.poll_timeout() {
            let _ = t;
        }
    }
    let _ = sent;
});
