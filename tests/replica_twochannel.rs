//! Two-connection full syncs on the replica side, against scripted masters: Redis 8's rdb
//! channel (rdb-channel.md §2, the bytes of captures capA and capAuth) and Valkey 8's dual
//! channel (protocol.md §11).
//!
//! Checked: the bytes sent on both connections, the events and offsets; the same results for
//! any split of either connection's input and any interleaving of the two; every failure on
//! either connection before the snapshot is complete abandons the attempt (and the retry ends
//! equal); the one-connection fallbacks; the back-pressure flag; garbage in the new replies
//! and headers never panics and gives the same outcome for any split.

mod support;

use std::time::{Duration, Instant};

use proptest::prelude::*;
use respsync::replica::{
    ApiMisuse, CachedMaster, LinkState, MasterAuth, ProtocolError, ReplicaConfig, ReplicaError,
    ReplicaSession,
};
use support::replica::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// Redis 8: `+RDBCHANNELSYNC <id>`, `+FULLRESYNC` on B, the stream on A unasked.
    Redis,
    /// Valkey 8: `+DUALCHANNELSYNC`, `$ENDOFF:` on B, `set-rdb-client-id` + `PSYNC` on A.
    Valkey,
}

const PORT: u16 = 17002;
/// Valkey's rdb client id in `$ENDOFF:` (Redis's is A's id, 5 in capA).
const B_ID: u64 = 6;
/// The snapshot's offset (capA: `+FULLRESYNC … 75`).
const SNAP: i64 = 75;

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const PORT_CONF: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$5\r\n17002\r\n";
const AUTH: &[u8] = b"*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n";
/// capA, A: the capabilities of a Redis 8.2 replica.
const CAPA_RDB: &[u8] = b"*7\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n$4\r\ncapa\r\n$16\r\nrdb-channel-repl\r\n";
/// Valkey 8.1 with `dual-channel-replication-enabled yes` (rdb-channel.md §4 (b)).
const CAPA_DUAL: &[u8] = b"*7\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n$4\r\ncapa\r\n$12\r\ndual-channel\r\n";
/// capE1: `repl-rdb-channel no`.
const CAPA_CLASSIC: &[u8] =
    b"*5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n";
const PSYNC_FRESH: &[u8] = b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n";
/// capA, B: the 11-element REPLCONF, argument order fixed.
const B_CONF_REDIS: &[u8] = b"*11\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n$11\r\nrdb-channel\r\n$1\r\n1\r\n$17\r\nmain-ch-client-id\r\n$1\r\n5\r\n$14\r\nlistening-port\r\n$5\r\n17002\r\n";
/// protocol.md §11 step 3: the 9-element REPLCONF.
const B_CONF_VALKEY: &[u8] = b"*9\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n$11\r\nrdb-channel\r\n$1\r\n1\r\n$14\r\nlistening-port\r\n$5\r\n17002\r\n";
const SYNC_INLINE: &[u8] = b"SYNC\r\n";
const SET_RDB_CLIENT_ID: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$17\r\nset-rdb-client-id\r\n$1\r\n6\r\n";

fn cfg(p: Proto) -> ReplicaConfig {
    ReplicaConfig {
        listening_port: PORT,
        rdb_channel: p == Proto::Redis,
        dual_channel: p == Proto::Valkey,
        ..ReplicaConfig::default()
    }
}

fn with_auth(mut c: ReplicaConfig) -> ReplicaConfig {
    c.auth = Some(MasterAuth {
        user: None,
        password: "s3cret".into(),
    });
    c
}

fn psync_resume() -> Vec<u8> {
    resp(&[b"PSYNC", ID_A.as_bytes(), (SNAP + 1).to_string().as_bytes()])
}

/// `$EOF:<mark>\r\n` + RDB + mark.
fn eof_snapshot(body: &[u8]) -> Vec<u8> {
    let mut m = b"$EOF:".to_vec();
    m.extend_from_slice(MARK);
    m.extend_from_slice(b"\r\n");
    m.extend_from_slice(body);
    m.extend_from_slice(MARK);
    m
}

/// The stream from the snapshot's offset on: writes in two dbs, a keepalive, a PING, a
/// GETACK, a transaction (as capA's writes during and after the transfer).
fn stream() -> Vec<u8> {
    let mut s = resp(&[b"SELECT", b"0"]);
    s.extend(resp(&[b"SET", b"during1", b"v1"]));
    s.extend(resp(&[b"SELECT", b"3"]));
    s.extend(resp(&[b"SET", b"db3key", b"x"]));
    s.extend(b"\n");
    s.extend(resp(&[b"SELECT", b"0"]));
    s.extend(resp(&[b"INCR", b"counter"]));
    s.extend(resp(&[b"ping"]));
    s.extend(resp(&[b"REPLCONF", b"GETACK", b"*"]));
    s.extend(resp(&[b"MULTI"]));
    s.extend(resp(&[b"SET", b"after1", b"v2"]));
    s.extend(resp(&[b"EXEC"]));
    s
}

/// One part of the master's output, released when the replica has sent `trigger` on the
/// given connection (all earlier parts for the same connection first).
#[derive(Debug, Clone)]
struct Part {
    trigger_on_b: bool,
    trigger: Vec<u8>,
    to_b: bool,
    bytes: Vec<u8>,
}

fn part(trigger_on_b: bool, trigger: &[u8], to_b: bool, bytes: &[u8]) -> Part {
    Part {
        trigger_on_b,
        trigger: trigger.to_vec(),
        to_b,
        bytes: bytes.to_vec(),
    }
}

/// The master's side of a whole two-connection sync, in parts.
fn script(p: Proto, body: &[u8], stream: &[u8]) -> Vec<Part> {
    let mut b_tail = b"\n\n".to_vec();
    let reply = match p {
        Proto::Redis => "+RDBCHANNELSYNC 5\r\n",
        Proto::Valkey => "+DUALCHANNELSYNC\r\n",
    };
    let mut parts = vec![
        part(false, PING, false, b"+PONG\r\n"),
        part(false, CAPA_OF[p as usize], false, b"+OK\r\n+OK\r\n"),
        part(false, PSYNC_FRESH, false, reply.as_bytes()),
    ];
    match p {
        Proto::Redis => {
            b_tail.extend(format!("+FULLRESYNC {ID_A} {SNAP}\r\n").as_bytes());
            b_tail.extend(eof_snapshot(body));
            parts.extend([
                part(true, B_CONF_REDIS, true, b"+OK\r\n"),
                part(true, PSYNC_FRESH, true, &b_tail),
                // The stream starts on A at the fork, unasked.
                part(true, PSYNC_FRESH, false, stream),
            ]);
        }
        Proto::Valkey => {
            b_tail.extend(format!("$ENDOFF:{SNAP} {ID_A} 0 {B_ID}\r\n").as_bytes());
            b_tail.extend(eof_snapshot(body));
            let mut cont = format!("+CONTINUE {ID_A}\r\n").into_bytes();
            cont.extend_from_slice(stream);
            parts.extend([
                part(true, B_CONF_VALKEY, true, b"+OK\r\n"),
                part(true, SYNC_INLINE, true, &b_tail),
                part(false, SET_RDB_CLIENT_ID, false, b"+OK\r\n"),
                part(false, &psync_resume(), false, &cont),
            ]);
        }
    }
    parts
}

const CAPA_OF: [&[u8]; 2] = [CAPA_RDB, CAPA_DUAL];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A scripted master on two connections and what it saw.
struct Master {
    parts: Vec<(Part, bool)>,
    a: Vec<u8>,
    b: Vec<u8>,
    a_fed: usize,
    b_fed: usize,
    a_sent: Vec<u8>,
    b_sent: Vec<u8>,
    b_open: bool,
    b_closed: bool,
}

impl Master {
    fn new(parts: Vec<Part>) -> Master {
        Master {
            parts: parts.into_iter().map(|p| (p, false)).collect(),
            a: Vec::new(),
            b: Vec::new(),
            a_fed: 0,
            b_fed: 0,
            a_sent: Vec::new(),
            b_sent: Vec::new(),
            b_open: false,
            b_closed: false,
        }
    }

    fn release(&mut self) {
        let mut blocked = [false, false];
        for (p, done) in &mut self.parts {
            if *done {
                continue;
            }
            let seen = if p.trigger_on_b {
                &self.b_sent
            } else {
                &self.a_sent
            };
            if !blocked[p.to_b as usize] && contains(seen, &p.trigger) {
                *done = true;
                if p.to_b {
                    self.b.extend_from_slice(&p.bytes);
                } else {
                    self.a.extend_from_slice(&p.bytes);
                }
            } else {
                blocked[p.to_b as usize] = true;
            }
        }
    }

    fn a_left(&self) -> usize {
        self.a.len() - self.a_fed
    }

    fn b_left(&self) -> usize {
        if self.b_open && !self.b_closed {
            self.b.len() - self.b_fed
        } else {
            0
        }
    }
}

/// Everything the session produced: main connection (in `t`) and second connection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Both {
    t: Transcript,
    b_sent: Vec<u8>,
}

/// Drains both connections' output and the events, reacting as an application does: opens
/// B on `RdbChannelOpen`, closes it on `RdbChannelClose`.
fn pump(s: &mut ReplicaSession, now: Instant, m: &mut Master, out: &mut Both) {
    loop {
        let seen = out.t.events.len();
        let sent = out.t.sent.len();
        drain(s, &mut out.t);
        m.a_sent.extend_from_slice(&out.t.sent[sent..]);
        while let Some(b) = s.poll_rdb_channel_transmit() {
            assert!(
                m.b_open && !m.b_closed,
                "bytes for a second connection not open"
            );
            m.b_sent.extend_from_slice(&b);
            out.b_sent.extend_from_slice(&b);
        }
        let mut again = false;
        for ev in &out.t.events[seen..] {
            match ev.as_str() {
                "RdbChannelOpen" => {
                    assert!(!m.b_open, "second connection asked twice");
                    m.b_open = true;
                    s.rdb_channel_connected(now).unwrap();
                    again = true;
                }
                "RdbChannelClose" => {
                    m.b_closed = true;
                    // Closing it after the snapshot is complete is no failure.
                    s.rdb_channel_disconnected(now);
                    again = true;
                }
                _ => {}
            }
        }
        if !again {
            return;
        }
    }
}

/// Feeds the master's output as it is released: each step takes the connection and chunk
/// size from `schedule` (then whole chunks, A first), until nothing is left.
fn run(
    s: &mut ReplicaSession,
    now: Instant,
    m: &mut Master,
    schedule: &[(bool, usize)],
    out: &mut Both,
) {
    run_steps(s, now, m, schedule, usize::MAX, out);
}

/// [`run`], stopping after `max` feeds.
fn run_steps(
    s: &mut ReplicaSession,
    now: Instant,
    m: &mut Master,
    schedule: &[(bool, usize)],
    max: usize,
    out: &mut Both,
) {
    pump(s, now, m, out);
    let mut steps = schedule.iter().copied();
    for _ in 0..max {
        m.release();
        let (a, b) = (m.a_left(), m.b_left());
        if a == 0 && b == 0 {
            return;
        }
        let (want_b, size) = steps.next().unwrap_or((false, usize::MAX));
        let on_b = (want_b && b > 0) || a == 0;
        let left = if on_b { b } else { a };
        let n = if size == usize::MAX {
            left
        } else {
            1 + size % left
        };
        if on_b {
            let chunk = m.b[m.b_fed..m.b_fed + n].to_vec();
            m.b_fed += n;
            let _ = s.handle_rdb_channel_input(now, &chunk);
        } else {
            let chunk = m.a[m.a_fed..m.a_fed + n].to_vec();
            m.a_fed += n;
            let _ = s.handle_input(now, &chunk);
        }
        pump(s, now, m, out);
        if matches!(s.state(), LinkState::Down | LinkState::Failed) {
            return;
        }
    }
}

fn new_session(c: ReplicaConfig, now: Instant) -> ReplicaSession {
    let mut s = ReplicaSession::new(c, now).unwrap();
    s.connected(now).unwrap();
    s
}

/// A whole sync of `p` with `schedule`; the session and what it produced.
fn sync(p: Proto, schedule: &[(bool, usize)]) -> (ReplicaSession, Both) {
    let now = Instant::now();
    let mut s = new_session(cfg(p), now);
    let mut m = Master::new(script(p, &rdb(None, 3), &stream()));
    let mut out = Both::default();
    run(&mut s, now, &mut m, schedule, &mut out);
    (s, out)
}

fn stream_events() -> Vec<String> {
    let mut off = SNAP;
    let mut ev = Vec::new();
    let mut db = 0;
    for (args, kind) in [
        (vec!["SELECT", "0"], "Select"),
        (vec!["SET", "during1", "v1"], "Other"),
        (vec!["SELECT", "3"], "Select"),
        (vec!["SET", "db3key", "x"], "Other"),
        (vec![], "keepalive"),
        (vec!["SELECT", "0"], "Select"),
        (vec!["INCR", "counter"], "Other"),
        (vec!["ping"], "Ping"),
        (vec!["REPLCONF", "GETACK", "*"], "ReplconfGetack"),
        (vec!["MULTI"], "Multi"),
        (vec!["SET", "after1", "v2"], "Other"),
        (vec!["EXEC"], "Exec"),
    ] {
        if args.is_empty() {
            off += 1;
            continue;
        }
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        off += resp(&bytes).len() as i64;
        if kind == "Select" {
            db = args[1].parse().unwrap();
        }
        ev.push(format!("cmd db={db} off={off} kind={kind} {args:?}"));
    }
    ev
}

/// The offset just before the GETACK in [`stream`] (what the replica's answer carries).
fn getack_ack() -> i64 {
    let s = stream();
    let getack = resp(&[b"REPLCONF", b"GETACK", b"*"]);
    let at = s.windows(getack.len()).position(|w| w == getack).unwrap();
    SNAP + at as i64
}

fn expected(p: Proto) -> Both {
    let body = rdb(None, 3);
    let mut events = vec![
        "RdbChannelOpen".to_string(),
        format!("FullResync {{ replid: ReplId({ID_A}), offset: ReplOffset({SNAP}) }}"),
        "RdbBegin { len: None }".to_string(),
        format!("RdbEnd {{ len: {}, stream_db: 0 }}", body.len()),
        "RdbChannelClose".to_string(),
    ];
    let mut sent = [PING, PORT_CONF, CAPA_OF[p as usize], PSYNC_FRESH].concat();
    let b_sent = match p {
        Proto::Redis => [B_CONF_REDIS, PSYNC_FRESH].concat(),
        Proto::Valkey => {
            events.push(format!(
                "Continue {{ replid: ReplId({ID_A}), offset: ReplOffset({SNAP}), replid_changed: false }}"
            ));
            sent.extend_from_slice(SET_RDB_CLIENT_ID);
            sent.extend(psync_resume());
            [B_CONF_VALKEY, SYNC_INLINE].concat()
        }
    };
    // The first ACK carries the snapshot's offset, before the kept stream is applied.
    sent.extend(ack(SNAP));
    sent.extend(ack(getack_ack()));
    events.extend(stream_events());
    Both {
        t: Transcript {
            sent,
            rdb: body,
            events,
        },
        b_sent,
    }
}

fn show(b: &Both) -> String {
    format!(
        "A sent: {}\nB sent: {}\nevents:\n{}",
        b.t.sent.escape_ascii(),
        b.b_sent.escape_ascii(),
        b.t.events.join("\n")
    )
}

fn assert_both(got: &Both, want: &Both) {
    assert!(got == want, "got\n{}\n\nwanted\n{}", show(got), show(want));
}

fn end_offset() -> i64 {
    SNAP + stream().len() as i64
}

#[test]
fn redis_rdb_channel_bytes_events_offsets() {
    // A first: the stream on A is kept while the snapshot is still to come on B.
    let (s, out) = sync(Proto::Redis, &[]);
    assert_both(&out, &expected(Proto::Redis));
    assert_eq!(s.state(), LinkState::Connected);
    assert_eq!(s.offset(), Some(off(end_offset())));
    assert!(!s.rdb_channel_active());
    assert_eq!(s.master_replid().unwrap().as_str(), ID_A);
    // B first: the snapshot completes before any stream byte was read.
    let (_, out) = sync(Proto::Redis, &[(true, usize::MAX); 8]);
    assert_both(&out, &expected(Proto::Redis));
}

#[test]
fn valkey_dual_channel_bytes_events_offsets() {
    let (s, out) = sync(Proto::Valkey, &[]);
    assert_both(&out, &expected(Proto::Valkey));
    assert_eq!(s.state(), LinkState::Connected);
    assert_eq!(s.offset(), Some(off(end_offset())));
    // B first: `+OK` and `+CONTINUE` are read only after the snapshot.
    let (s, out) = sync(Proto::Valkey, &[(true, usize::MAX); 8]);
    assert_both(&out, &expected(Proto::Valkey));
    assert_eq!(s.offset(), Some(off(end_offset())));
}

#[test]
fn valkey_psync_only_after_set_rdb_client_id_ok() {
    let now = Instant::now();
    let mut s = new_session(cfg(Proto::Valkey), now);
    s.handle_input(now, b"+PONG\r\n+OK\r\n+OK\r\n+DUALCHANNELSYNC\r\n")
        .unwrap();
    while s.poll_transmit().is_some() {}
    s.rdb_channel_connected(now).unwrap();
    assert_eq!(&s.poll_rdb_channel_transmit().unwrap()[..], B_CONF_VALKEY);
    s.handle_rdb_channel_input(now, b"+OK\r\n").unwrap();
    assert_eq!(&s.poll_rdb_channel_transmit().unwrap()[..], SYNC_INLINE);
    s.handle_rdb_channel_input(
        now,
        format!("$ENDOFF:{SNAP} {ID_A} 0 {B_ID}\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(&s.poll_transmit().unwrap()[..], SET_RDB_CLIENT_ID);
    assert!(s.poll_transmit().is_none(), "PSYNC waits for +OK");
    s.handle_input(now, b"+O").unwrap();
    assert!(s.poll_transmit().is_none());
    s.handle_input(now, b"K\r\n").unwrap();
    assert_eq!(&s.poll_transmit().unwrap()[..], &psync_resume()[..]);
}

#[test]
fn redis_auth_is_pipelined_on_both_connections() {
    // capAuth: AUTH and REPLCONF leave together on each connection, before any reply.
    let now = Instant::now();
    let mut s = new_session(with_auth(cfg(Proto::Redis)), now);
    assert_eq!(&s.poll_transmit().unwrap()[..], PING);
    s.handle_input(now, b"-NOAUTH Authentication required.\r\n")
        .unwrap();
    assert_eq!(
        &s.poll_transmit().unwrap()[..],
        &[AUTH, PORT_CONF, CAPA_RDB].concat()[..]
    );
    s.handle_input(now, b"+OK\r\n+OK\r\n+OK\r\n").unwrap();
    assert_eq!(&s.poll_transmit().unwrap()[..], PSYNC_FRESH);
    s.handle_input(now, b"+RDBCHANNELSYNC 5\r\n").unwrap();
    assert!(
        s.poll_rdb_channel_transmit().is_none(),
        "nothing before connected"
    );
    s.rdb_channel_connected(now).unwrap();
    assert_eq!(
        &s.poll_rdb_channel_transmit().unwrap()[..],
        &[AUTH, B_CONF_REDIS].concat()[..]
    );
    s.handle_rdb_channel_input(now, b"+OK\r\n").unwrap();
    assert!(
        s.poll_rdb_channel_transmit().is_none(),
        "one +OK per command"
    );
    s.handle_rdb_channel_input(now, b"+OK\r\n").unwrap();
    assert_eq!(&s.poll_rdb_channel_transmit().unwrap()[..], PSYNC_FRESH);
    // The same for Valkey, with the 9-element REPLCONF and inline SYNC.
    let mut s = new_session(with_auth(cfg(Proto::Valkey)), now);
    s.handle_input(now, b"+PONG\r\n+OK\r\n+OK\r\n+OK\r\n+DUALCHANNELSYNC\r\n")
        .unwrap();
    s.rdb_channel_connected(now).unwrap();
    assert_eq!(
        &s.poll_rdb_channel_transmit().unwrap()[..],
        &[AUTH, B_CONF_VALKEY].concat()[..]
    );
    s.handle_rdb_channel_input(now, b"+OK\r\n+OK\r\n").unwrap();
    assert_eq!(&s.poll_rdb_channel_transmit().unwrap()[..], SYNC_INLINE);
    // A refused AUTH on B is the same refusal as on A.
    let mut s = new_session(with_auth(cfg(Proto::Redis)), now);
    s.handle_input(now, b"+PONG\r\n+OK\r\n+OK\r\n+OK\r\n+RDBCHANNELSYNC 5\r\n")
        .unwrap();
    s.rdb_channel_connected(now).unwrap();
    let e = s
        .handle_rdb_channel_input(now, b"-WRONGPASS invalid username-password pair\r\n")
        .unwrap_err();
    assert!(matches!(e, ReplicaError::AuthRejected { .. }), "{e:?}");
}

#[test]
fn capabilities_and_fallbacks() {
    let now = Instant::now();
    let handshake = |c: ReplicaConfig| {
        let mut s = new_session(c, now);
        assert_eq!(&s.poll_transmit().unwrap()[..], PING);
        s.handle_input(now, b"+PONG\r\n").unwrap();
        let mut sent = Vec::new();
        while let Some(b) = s.poll_transmit() {
            sent.extend_from_slice(&b);
        }
        (s, sent)
    };
    // Capabilities off: the classic capa line exactly (capE1).
    let off_cfg = ReplicaConfig {
        rdb_channel: false,
        dual_channel: false,
        ..cfg(Proto::Redis)
    };
    let (_, sent) = handshake(off_cfg.clone());
    assert_eq!(sent, [PORT_CONF, CAPA_CLASSIC].concat());
    // Both on: one line, Redis's word first.
    let both = ReplicaConfig {
        dual_channel: true,
        ..cfg(Proto::Redis)
    };
    let (_, sent) = handshake(both.clone());
    let line = resp(&[
        b"REPLCONF",
        b"capa",
        b"eof",
        b"capa",
        b"psync2",
        b"capa",
        b"rdb-channel-repl",
        b"capa",
        b"dual-channel",
    ]);
    assert_eq!(sent, [PORT_CONF, &line].concat());
    // Without `capa eof` neither is offered (both need a diskless transfer).
    let (_, sent) = handshake(ReplicaConfig {
        capa_eof: false,
        ..both.clone()
    });
    assert_eq!(
        sent,
        [PORT_CONF, &resp(&[b"REPLCONF", b"capa", b"psync2"])].concat()
    );

    // A two-connection reply to a replica that did not offer it is a protocol error.
    for (c, reply) in [
        (off_cfg.clone(), "+RDBCHANNELSYNC 5"),
        (off_cfg.clone(), "+DUALCHANNELSYNC"),
        (cfg(Proto::Redis), "+DUALCHANNELSYNC"),
        (cfg(Proto::Valkey), "+RDBCHANNELSYNC 5"),
        (
            ReplicaConfig {
                capa_eof: false,
                ..both.clone()
            },
            "+RDBCHANNELSYNC 5",
        ),
        (cfg(Proto::Redis), "+RDBCHANNELSYNC"),
        (cfg(Proto::Redis), "+RDBCHANNELSYNC x"),
        (cfg(Proto::Redis), "+RDBCHANNELSYNC -5"),
    ] {
        let mut s = new_session(c, now);
        let e = s
            .handle_input(
                now,
                format!("+PONG\r\n+OK\r\n+OK\r\n{reply}\r\n").as_bytes(),
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                ReplicaError::Protocol {
                    error: ProtocolError::BadPsyncReply,
                    ..
                }
            ),
            "{reply}: {e:?}"
        );
        assert!(!s.rdb_channel_active());
        assert_eq!(s.state(), LinkState::Down);
    }

    // A master that ignores the capability (Redis 7.0, capB; Valkey, capV2) answers
    // +FULLRESYNC on A: a classic one-connection sync, with the same events as without it.
    let classic = |c: ReplicaConfig| {
        let mut s = new_session(c, now);
        let mut t = Transcript::default();
        let mut m = format!("+PONG\r\n+OK\r\n+OK\r\n\n\n+FULLRESYNC {ID_A} 56\r\n").into_bytes();
        m.extend(eof_snapshot(&rdb(None, 2)));
        feed_split(&mut s, now, &m, &[], &mut t);
        assert!(!s.rdb_channel_active());
        assert!(s.poll_rdb_channel_transmit().is_none());
        feed_split(&mut s, now, &stream(), &[], &mut t);
        assert_eq!(s.offset(), Some(off(56 + stream().len() as i64)));
        t
    };
    let plain = classic(off_cfg.clone());
    for c in [cfg(Proto::Redis), cfg(Proto::Valkey), both.clone()] {
        let t = classic(c);
        assert_eq!(t.events, plain.events);
        assert_eq!(t.rdb, plain.rdb);
        assert!(t.events.iter().all(|e| !e.starts_with("RdbChannel")));
        // Only the capa line differs.
        assert!(contains(&t.sent, &[PSYNC_FRESH, &ack(56)].concat()));
    }

    // A partial resync with the capability on opens nothing (capD).
    let mut s = new_session(cfg(Proto::Redis), now);
    s.set_cached_master(CachedMaster {
        replid: ID_A.parse().unwrap(),
        offset: off(123),
        db: 0,
    });
    s.handle_input(
        now,
        format!("+PONG\r\n+OK\r\n+OK\r\n+CONTINUE {ID_A}\r\n").as_bytes(),
    )
    .unwrap();
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert!(t
        .sent
        .ends_with(format!("*3\r\n$5\r\nPSYNC\r\n$40\r\n{ID_A}\r\n$3\r\n124\r\n").as_bytes()));
    assert_eq!(s.state(), LinkState::Connected);
    assert!(!s.rdb_channel_active());
    assert!(t.events.iter().all(|e| !e.starts_with("RdbChannel")));
}

/// The master's bytes of one whole sync, with the failure `fail` applied after `cut` bytes
/// of the connection it concerns.
#[derive(Debug, Clone, Copy)]
enum Fail {
    /// The second connection closes.
    CloseB,
    /// The main connection closes (the application closes both).
    CloseA,
}

/// Runs the sync of `p` until `cut` bytes of the failing connection were fed, fails it, and
/// checks the attempt is abandoned; then the retry on the same session ends equal.
fn fail_then_retry(p: Proto, fail: Fail, cut: usize) {
    let now = Instant::now();
    let mut s = new_session(cfg(p), now);
    let body = rdb(None, 3);
    let mut m = Master::new(script(p, &body, &stream()));
    let mut out = Both::default();
    pump(&mut s, now, &mut m, &mut out);
    // Feed A and B byte by byte (B first when it has something) until the cut.
    let mut fed = 0;
    let complete = loop {
        m.release();
        let on_b = m.b_left() > 0;
        if !on_b && m.a_left() == 0 {
            break true;
        }
        let counts = match fail {
            Fail::CloseB => on_b,
            Fail::CloseA => !on_b,
        };
        if counts && fed == cut {
            break false;
        }
        if on_b {
            let b = m.b[m.b_fed];
            m.b_fed += 1;
            s.handle_rdb_channel_input(now, &[b]).unwrap();
        } else {
            let b = m.a[m.a_fed];
            m.a_fed += 1;
            s.handle_input(now, &[b]).unwrap();
        }
        fed += counts as usize;
        pump(&mut s, now, &mut m, &mut out);
    };
    let snapshot_done = out.t.events.iter().any(|e| e == "RdbChannelClose");
    match fail {
        Fail::CloseB => {
            s.rdb_channel_disconnected(now);
            let mut t = Transcript::default();
            drain(&mut s, &mut t);
            if snapshot_done || !m.b_open {
                // After the snapshot (or before B exists) closing B changes nothing.
                assert!(t.events.is_empty(), "cut {cut}: {:?}", t.events);
                assert_ne!(s.state(), LinkState::Down);
                return;
            }
            assert_eq!(
                t.events,
                vec![format!("LinkLost({:?})", ReplicaError::RdbChannelLost)],
                "cut {cut}"
            );
            assert_eq!(s.state(), LinkState::Down);
            assert_eq!(
                s.handle_rdb_channel_input(now, b"+OK\r\n"),
                Err(ReplicaError::RdbChannelLost)
            );
            assert_eq!(
                s.handle_input(now, b"\n"),
                Err(ReplicaError::RdbChannelLost)
            );
        }
        Fail::CloseA => {
            if complete {
                return;
            }
        }
    }
    s.disconnected(now);
    assert!(!s.rdb_channel_active());
    assert!(s.poll_rdb_channel_transmit().is_none());
    assert_eq!(s.full_sync_buffered(), 0);
    assert_eq!(
        s.handle_rdb_channel_input(now, b"+OK\r\n"),
        Err(ApiMisuse::NotConnected.into()),
        "cut {cut}"
    );
    if snapshot_done && matches!(fail, Fail::CloseA) {
        // The snapshot was loaded: the retry resumes from it (a partial resync).
        let c = s.cached_master().expect("a loaded snapshot is kept");
        assert_eq!(c.replid.as_str(), ID_A);
        assert!(c.offset >= off(SNAP), "cut {cut}");
        return;
    }
    assert_eq!(s.cached_master(), None, "cut {cut}");
    // The retry starts over with a fresh full sync, and ends like a first sync.
    s.connected(now).unwrap();
    let mut m = Master::new(script(p, &body, &stream()));
    let mut out = Both::default();
    run(&mut s, now, &mut m, &[], &mut out);
    assert_both(&out, &expected(p));
    assert_eq!(s.offset(), Some(off(end_offset())), "cut {cut}");
}

/// Bytes the master sends on B / on A in one whole sync.
fn totals(p: Proto) -> (usize, usize) {
    let parts = script(p, &rdb(None, 3), &stream());
    let b = parts.iter().filter(|x| x.to_b).map(|x| x.bytes.len()).sum();
    let a = parts
        .iter()
        .filter(|x| !x.to_b)
        .map(|x| x.bytes.len())
        .sum();
    (b, a)
}

#[test]
fn second_connection_closed_at_every_byte() {
    for p in [Proto::Redis, Proto::Valkey] {
        let (b, _) = totals(p);
        for cut in 0..=b {
            fail_then_retry(p, Fail::CloseB, cut);
        }
    }
}

#[test]
fn main_connection_closed_at_every_byte() {
    for p in [Proto::Redis, Proto::Valkey] {
        let (_, a) = totals(p);
        for cut in 0..=a {
            fail_then_retry(p, Fail::CloseA, cut);
        }
    }
}

/// Runs `p`'s script with the reply part `index` replaced by `bytes`; returns what came out.
fn with_part(
    p: Proto,
    index: usize,
    bytes: &[u8],
    schedule: &[(bool, usize)],
) -> (ReplicaSession, Both) {
    let now = Instant::now();
    let mut s = new_session(cfg(p), now);
    let mut parts = script(p, &rdb(None, 3), &stream());
    parts[index].bytes = bytes.to_vec();
    let mut m = Master::new(parts);
    let mut out = Both::default();
    run(&mut s, now, &mut m, schedule, &mut out);
    (s, out)
}

fn lost(out: &Both) -> Option<&str> {
    out.t
        .events
        .iter()
        .find(|e| e.starts_with("LinkLost") || e.starts_with("Failed"))
        .map(|e| e.as_str())
}

#[test]
fn error_replies_on_either_connection_abandon_the_attempt() {
    let id = ID_A;
    let cases: Vec<(Proto, usize, String)> = vec![
        // B's REPLCONF refused (rdb-channel.md §2 step 2 error texts).
        (
            Proto::Redis,
            3,
            "-ERR Unrecognized RDB client id: 5\r\n".into(),
        ),
        (
            Proto::Redis,
            3,
            "-ERR value is out of range, value must between 0 and 1\r\n".into(),
        ),
        // B's PSYNC answered with something else than +FULLRESYNC.
        (Proto::Redis, 4, "-ERR no\r\n".into()),
        (Proto::Redis, 4, format!("+CONTINUE {id}\r\n")),
        (Proto::Redis, 4, "+FULLRESYNC\r\n".into()),
        (
            Proto::Redis,
            4,
            format!("+FULLRESYNC {id} 75\r\n-ERR x\r\n"),
        ),
        (
            Proto::Redis,
            4,
            format!("+FULLRESYNC {id} 75\r\n$ENDOFF:75\r\n"),
        ),
        (Proto::Redis, 4, format!("$ENDOFF:75 {id} 0 6\r\n")),
        (Proto::Valkey, 3, "-ERR unknown\r\n".into()),
        (Proto::Valkey, 4, format!("+FULLRESYNC {id} 75\r\n")),
        (Proto::Valkey, 4, format!("$ENDOFF:75 {id} 0\r\n")),
        (Proto::Valkey, 4, format!("$ENDOFF:x {id} 0 6\r\n")),
        (
            Proto::Valkey,
            4,
            format!("$ENDOFF:75 {id} 0 6\r\n-ERR x\r\n"),
        ),
        // On A: set-rdb-client-id refused (the master dropped B), PSYNC not continued.
        (
            Proto::Valkey,
            5,
            "-ERR Unrecognized RDB client id 6\r\n".into(),
        ),
        (Proto::Valkey, 6, format!("+FULLRESYNC {id} 75\r\n")),
        (Proto::Valkey, 6, "-ERR no\r\n".into()),
    ];
    for (p, index, bytes) in cases {
        for schedule in [&[][..], &[(true, usize::MAX); 8][..]] {
            let (s, out) = with_part(p, index, bytes.as_bytes(), schedule);
            let what = format!("{p:?} part {index} {bytes:?} schedule {schedule:?}");
            let e = lost(&out).unwrap_or_else(|| panic!("{what}: not abandoned\n{}", show(&out)));
            assert!(e.starts_with("LinkLost"), "{what}: {e}");
            assert_eq!(s.state(), LinkState::Down, "{what}");
            assert!(!s.rdb_channel_active(), "{what}");
            assert!(
                out.t.events.iter().all(|e| !e.starts_with("cmd")),
                "{what}: nothing applied"
            );
            // A loaded snapshot is kept: the retry may resume from it (Redis does too).
            let loaded = out.t.events.iter().any(|e| e.starts_with("RdbEnd"));
            let cached = s
                .cached_master()
                .map(|c| (c.replid.as_str().to_string(), c.offset));
            let want = loaded.then(|| (ID_A.to_string(), off(SNAP)));
            assert_eq!(cached, want, "{what}");
        }
    }
}

#[test]
fn silence_while_waiting_for_the_second_connection_times_out() {
    for p in [Proto::Redis, Proto::Valkey] {
        let t0 = Instant::now();
        let c = ReplicaConfig {
            handshake_timeout: Duration::from_secs(5),
            ..cfg(p)
        };
        let mut s = new_session(c, t0);
        let reply = match p {
            Proto::Redis => "+RDBCHANNELSYNC 5",
            Proto::Valkey => "+DUALCHANNELSYNC",
        };
        s.handle_input(t0, format!("+PONG\r\n+OK\r\n+OK\r\n{reply}\r\n").as_bytes())
            .unwrap();
        // The application never opens B: the attempt times out.
        let deadline = s.poll_timeout().unwrap();
        assert_eq!(deadline, t0 + secs(5));
        s.handle_timeout(deadline);
        assert_eq!(s.state(), LinkState::Down);
        assert!(!s.rdb_channel_active());
        // B open, answered, then the master waits for its fork: `\n` on B keeps it alive.
        let c = ReplicaConfig {
            handshake_timeout: Duration::from_secs(5),
            ..cfg(p)
        };
        let mut s = new_session(c, t0);
        s.handle_input(t0, format!("+PONG\r\n+OK\r\n+OK\r\n{reply}\r\n").as_bytes())
            .unwrap();
        s.rdb_channel_connected(t0).unwrap();
        s.handle_rdb_channel_input(t0, b"+OK\r\n").unwrap();
        while s.poll_event().is_some() {}
        for i in 1..=10 {
            let t = t0 + secs(4 * i);
            s.handle_timeout(t);
            s.handle_rdb_channel_input(t, b"\n").unwrap();
        }
        assert!(s.rdb_channel_active());
        let last = t0 + secs(40);
        assert_eq!(s.poll_timeout(), Some(last + secs(5)));
        s.handle_timeout(last + secs(5));
        let mut t = Transcript::default();
        drain(&mut s, &mut t);
        assert_eq!(t.events.len(), 1, "{:?}", t.events);
        assert!(
            t.events[0].starts_with("LinkLost(Timeout("),
            "{:?}",
            t.events
        );
        assert!(!s.rdb_channel_active());
    }
}

#[test]
fn main_read_paused_against_the_limit() {
    for p in [Proto::Redis, Proto::Valkey] {
        let now = Instant::now();
        let limit = 64usize;
        let c = ReplicaConfig {
            full_sync_buffer_limit: limit as u64,
            ..cfg(p)
        };
        let mut s = new_session(c, now);
        assert!(!s.main_read_paused());
        let reply = match p {
            Proto::Redis => "+RDBCHANNELSYNC 5",
            Proto::Valkey => "+DUALCHANNELSYNC",
        };
        s.handle_input(
            now,
            format!("+PONG\r\n+OK\r\n+OK\r\n{reply}\r\n").as_bytes(),
        )
        .unwrap();
        assert!(!s.main_read_paused());
        assert_eq!(s.full_sync_buffered(), 0);
        s.rdb_channel_connected(now).unwrap();
        s.handle_rdb_channel_input(now, b"+OK\r\n").unwrap();
        let header = match p {
            Proto::Redis => format!("+FULLRESYNC {ID_A} {SNAP}\r\n"),
            Proto::Valkey => format!("$ENDOFF:{SNAP} {ID_A} 0 {B_ID}\r\n"),
        };
        s.handle_rdb_channel_input(now, header.as_bytes()).unwrap();
        let mut main = Vec::new();
        if p == Proto::Valkey {
            main.extend(b"+OK\r\n");
            main.extend(format!("+CONTINUE {ID_A}\r\n").as_bytes());
        }
        let kept_before = main.len();
        main.extend(stream());
        assert!(main.len() > 2 * limit);
        let mut fed = 0;
        for b in &main {
            s.handle_input(now, &[*b]).unwrap();
            fed += 1;
            let buffered = s.full_sync_buffered();
            // Only the stream counts; the replies before it are consumed as they come.
            assert!(buffered <= fed && buffered + kept_before >= fed, "{p:?}");
            assert_eq!(s.main_read_paused(), buffered >= limit, "{p:?} at {fed}");
        }
        assert!(s.main_read_paused());
        // The snapshot ends: the kept stream is applied and the flag drops.
        s.handle_rdb_channel_input(now, &eof_snapshot(&rdb(None, 1)))
            .unwrap();
        assert!(!s.main_read_paused());
        assert_eq!(s.full_sync_buffered(), 0);
        assert_eq!(s.offset(), Some(off(end_offset())));
    }
}

/// Reply lines built to hit the new parsers: the two-connection replies and headers with
/// every kind of field damage.
fn garbage_line() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        Just(&b"+RDBCHANNELSYNC"[..]),
        Just(&b"+RDBCHANNELSYNC "[..]),
        Just(&b"+DUALCHANNELSYNC"[..]),
        Just(&b"$ENDOFF:"[..]),
        Just(&b"+FULLRESYNC "[..]),
        Just(&b"+CONTINUE"[..]),
        Just(&b"$EOF:"[..]),
        Just(&b"+OK"[..]),
        Just(&b""[..]),
    ];
    let field = prop_oneof![
        Just(ID_A.to_string()),
        Just("75".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("9223372036854775807".to_string()),
        Just("0".to_string()),
        "[ -~]{0,12}",
    ];
    let raw = proptest::collection::vec(any::<u8>(), 0..24);
    (
        prefix,
        proptest::collection::vec(field, 0..6),
        raw,
        any::<bool>(),
    )
        .prop_map(|(p, fields, raw, use_raw)| {
            let mut l = p.to_vec();
            if use_raw {
                l.extend(raw);
            } else {
                l.extend(fields.join(" ").into_bytes());
            }
            l.extend(b"\r\n");
            l
        })
}

fn schedule() -> impl Strategy<Value = Vec<(bool, usize)>> {
    proptest::collection::vec((any::<bool>(), any::<usize>()), 0..40)
}

/// What a run ended with, independent of how the input was split. A failed attempt is
/// compared by its events without its snapshot progress: an error on one connection may come
/// before or after the other connection's snapshot, depending on which was read first.
fn outcome(s: &ReplicaSession, out: &Both) -> (Both, LinkState, Option<i64>) {
    let mut out = out.clone();
    let mut offset = s.offset().map(|o| o.value());
    if s.state() != LinkState::Connected {
        // (A loaded snapshot is kept as the cached master.)
        offset = None;
        // Requests queued by the line before a bad one leave or not, depending on the split.
        out.t.sent.clear();
        out.b_sent.clear();
        out.t.rdb.clear();
        out.t.events.retain(|e| {
            !["RdbBegin", "RdbEnd", "RdbChannelClose"]
                .iter()
                .any(|p| e.starts_with(p))
        });
    }
    (out, s.state(), offset)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any split of either connection's input and any interleaving of the two: the same bytes
    /// sent, events and offsets as the reference run.
    #[test]
    fn same_results_for_any_split_and_interleaving(
        valkey in any::<bool>(),
        sched in schedule(),
    ) {
        let p = if valkey { Proto::Valkey } else { Proto::Redis };
        let (s, out) = sync(p, &sched);
        prop_assert!(out == expected(p), "got\n{}", show(&out));
        prop_assert_eq!(s.offset(), Some(off(end_offset())));
        prop_assert_eq!(s.state(), LinkState::Connected);
    }

    /// A garbage line in place of any reply or header of the two-connection protocols never
    /// panics, gives the same outcome for any split, and never completes a sync it should not.
    #[test]
    fn garbage_replies_and_headers(
        valkey in any::<bool>(),
        index in 2usize..7,
        line in garbage_line(),
        tail in proptest::collection::vec(any::<u8>(), 0..16),
        sched_a in schedule(),
        sched_b in schedule(),
    ) {
        let p = if valkey { Proto::Valkey } else { Proto::Redis };
        let parts = script(p, &rdb(None, 3), &stream());
        let index = index.min(parts.len() - 1);
        let mut bytes = line;
        bytes.extend(tail);
        let (s1, o1) = with_part(p, index, &bytes, &sched_a);
        let (s2, o2) = with_part(p, index, &bytes, &sched_b);
        prop_assert!(outcome(&s1, &o1) == outcome(&s2, &o2), "{}\n---\n{}", show(&o1), show(&o2));
        if s1.state() == LinkState::Connected {
            // Only a reply the protocol accepts can have let it through.
            prop_assert!(o1.t.events.iter().any(|e| e.starts_with("RdbEnd") || e.starts_with("Continue")));
        }
    }

    /// Arbitrary bytes on either connection at any point of the protocol never panic, and
    /// every error leaves no second connection behind.
    #[test]
    fn arbitrary_bytes_on_both_connections(
        valkey in any::<bool>(),
        stop in 0usize..60,
        junk_a in proptest::collection::vec(any::<u8>(), 0..64),
        junk_b in proptest::collection::vec(any::<u8>(), 0..64),
        sched in proptest::collection::vec((any::<bool>(), any::<usize>()), 0..400),
    ) {
        let p = if valkey { Proto::Valkey } else { Proto::Redis };
        let now = Instant::now();
        let mut s = new_session(ReplicaConfig { max_line_len: 128, ..cfg(p) }, now);
        let mut m = Master::new(script(p, &rdb(None, 3), &stream()));
        let mut out = Both::default();
        // Play the script for `stop` steps, then throw the junk in on both connections.
        run_steps(&mut s, now, &mut m, &sched, stop, &mut out);
        let _ = s.handle_rdb_channel_input(now, &junk_b);
        pump(&mut s, now, &mut m, &mut out);
        let _ = s.handle_input(now, &junk_a);
        pump(&mut s, now, &mut m, &mut out);
        if matches!(s.state(), LinkState::Down | LinkState::Failed) {
            prop_assert!(!s.rdb_channel_active());
            prop_assert!(!s.main_read_paused());
        }
        s.disconnected(now);
        prop_assert!(!s.rdb_channel_active());
    }
}

#[test]
fn long_lines_are_refused_whatever_the_split() {
    // A reply line longer than `max_line_len` on either connection, whole or in pieces.
    for (p, index) in [
        (Proto::Redis, 3),
        (Proto::Redis, 4),
        (Proto::Valkey, 4),
        (Proto::Valkey, 5),
    ] {
        let mut line = b"+".to_vec();
        line.extend(std::iter::repeat_n(b'x', 300));
        line.extend(b"\r\n");
        let now = Instant::now();
        let mut results = Vec::new();
        for schedule in [vec![], vec![(true, 7); 200], vec![(false, 7); 200]] {
            let mut s = new_session(
                ReplicaConfig {
                    max_line_len: 128,
                    ..cfg(p)
                },
                now,
            );
            let mut parts = script(p, &rdb(None, 3), &stream());
            parts[index].bytes = line.clone();
            let mut m = Master::new(parts);
            let mut out = Both::default();
            run(&mut s, now, &mut m, &schedule, &mut out);
            assert_eq!(
                s.state(),
                LinkState::Down,
                "{p:?} part {index}\n{}",
                show(&out)
            );
            results.push(lost(&out).map(str::to_string));
        }
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "{p:?} part {index}: {results:?}"
        );
    }
}
