//! Scripted-master tests of `ReplicaSession`: exact bytes, offsets, errors, timeouts.

mod support;

use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;
use respsync::ids::ReplId;
use respsync::rdb::encoding::crc64::crc64;
use respsync::rdb::{Checksum, ParserConfig, RdbError, RdbEvent, Visitor};
use respsync::replica::{
    CachedMaster, LinkState, MasterAuth, Phase, ProtocolError, ReplicaConfig, ReplicaError,
    ReplicaSession, SnapshotError, SnapshotLoader,
};
use support::replica::*;

fn session(cfg: ReplicaConfig, now: Instant) -> ReplicaSession {
    let mut s = ReplicaSession::new(cfg, now).unwrap();
    s.connected(now).unwrap();
    s
}

fn full_sync_disk(stream: &[u8]) -> Vec<u8> {
    let body = rdb(None, 0);
    let mut m = format!(
        "+PONG\r\n+OK\r\n+OK\r\n\n\n+FULLRESYNC {ID_A} 1000\r\n\n${}\r\n",
        body.len()
    )
    .into_bytes();
    m.extend_from_slice(&body);
    m.extend_from_slice(stream);
    m
}

#[test]
fn handshake_matches_captured_redis_bytes() {
    // protocol.md §1.5: masteruser/masterauth, announce ip, cached own id at offset 0.
    let now = Instant::now();
    let cfg = ReplicaConfig {
        listening_port: 7002,
        announce_ip: Some("10.9.9.9".into()),
        auth: Some(MasterAuth {
            user: Some("repluser".into()),
            password: "sekret".into(),
        }),
        // A Redis 7.0 replica: no `capa rdb-channel-repl`.
        rdb_channel: false,
        ..ReplicaConfig::default()
    };
    let mut s = ReplicaSession::new(cfg, now).unwrap();
    let id = "7a81a83af48c8fb429245b3228cc826f9eed4370";
    s.set_cached_master(CachedMaster {
        replid: id.parse().unwrap(),
        offset: off(0),
        db: 0,
    });
    s.connected(now).unwrap();
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert_eq!(t.sent, b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(s.state(), LinkState::Handshake);
    s.handle_input(now, b"+PONG\r\n").unwrap();
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    let expect = b"*3\r\n$4\r\nAUTH\r\n$8\r\nrepluser\r\n$6\r\nsekret\r\n\
*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n7002\r\n\
*3\r\n$8\r\nREPLCONF\r\n$10\r\nip-address\r\n$8\r\n10.9.9.9\r\n\
*5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n";
    assert_eq!(
        String::from_utf8_lossy(&t.sent),
        String::from_utf8_lossy(expect)
    );
    // Nothing more until the last reply.
    s.handle_input(now, b"+OK\r\n+OK\r\n+OK\r\n").unwrap();
    assert!(s.poll_transmit().is_none());
    s.handle_input(now, b"+OK\r\n").unwrap();
    assert_eq!(
        &s.poll_transmit().unwrap()[..],
        b"*3\r\n$5\r\nPSYNC\r\n$40\r\n7a81a83af48c8fb429245b3228cc826f9eed4370\r\n$1\r\n1\r\n"
    );
}

#[test]
fn captured_full_sync_disk_offsets_and_acks() {
    // protocol.md §1.5 / §4.1: +FULLRESYNC 1000, SELECT 0 (23) + set foo bar (31) -> 1054;
    // GETACK answered with 1054; after GETACK (37) and ping (14) the offset is 1105.
    let now = Instant::now();
    let mut s = session(config(), now);
    let mut stream = resp(&[b"SELECT", b"0"]);
    stream.extend(resp(&[b"set", b"foo", b"bar"]));
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    s.handle_input(now, &full_sync_disk(&stream)).unwrap();
    drain(&mut s, &mut t);
    assert_eq!(t.sent, expected_handshake(7002, ("?", "-1")));
    assert_eq!(t.rdb, rdb(None, 0));
    assert_eq!(
        t.events,
        vec![
            format!("FullResync {{ replid: ReplId({ID_A}), offset: ReplOffset(1000) }}"),
            format!("RdbBegin {{ len: Some({}) }}", rdb(None, 0).len()),
            format!("RdbEnd {{ len: {}, stream_db: 0 }}", rdb(None, 0).len()),
            "cmd db=0 off=1023 kind=Select [\"SELECT\", \"0\"]".to_string(),
            "cmd db=0 off=1054 kind=Other [\"set\", \"foo\", \"bar\"]".to_string(),
        ]
    );
    assert_eq!(s.offset(), Some(off(1054)));
    assert_eq!(s.master_replid(), Some(ID_A.parse().unwrap()));
    // Disk mode: no immediate ACK; the periodic one comes within a second.
    let t0 = s.poll_timeout().unwrap();
    assert_eq!(t0, now + secs(1));
    s.handle_timeout(t0);
    assert_eq!(&s.poll_transmit().unwrap()[..], &ack(1054)[..]);
    let mut more = resp(&[b"REPLCONF", b"GETACK", b"*"]);
    more.extend(resp(&[b"ping"]));
    s.handle_input(t0, &more).unwrap();
    assert_eq!(&s.poll_transmit().unwrap()[..], &ack(1054)[..]);
    assert_eq!(s.offset(), Some(off(1105)));
    // Half a command moves the read offset only (17 bytes).
    s.handle_input(t0, b"*3\r\n$3\r\nset\r\n$1\r\n").unwrap();
    assert_eq!(
        (s.offset(), s.read_offset()),
        (Some(off(1105)), Some(off(1122)))
    );
    // The session's own backlog holds exactly the applied stream.
    let b = s.backlog().unwrap();
    assert_eq!((b.first(), b.end()), (off(1001), off(1105)));
    let held: Vec<u8> = b.range(off(1001)).unwrap().flatten().collect();
    let mut all = stream.clone();
    all.extend(&more);
    assert_eq!(held, all);
    assert_eq!(s.ids().id, ID_A.parse::<ReplId>().unwrap());
}

#[test]
fn diskless_mark_split_everywhere_then_immediate_ack() {
    let body = rdb(Some(3), 5);
    let mut pre = format!("+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC {ID_A} 14\r\n$EOF:").into_bytes();
    pre.extend_from_slice(MARK);
    pre.extend_from_slice(b"\r\n");
    let head = pre.len();
    pre.extend_from_slice(&body);
    pre.extend_from_slice(MARK);
    let now = Instant::now();
    for cut in head..pre.len() {
        let mut s = session(config(), now);
        let mut t = Transcript::default();
        feed_split(&mut s, now, &pre, &[cut], &mut t);
        assert_eq!(t.rdb, body, "cut {cut}");
        assert!(t
            .events
            .iter()
            .any(|e| e.starts_with("RdbEnd") && e.contains("stream_db: 3")));
        assert!(
            t.sent.ends_with(&ack(14)),
            "immediate ACK after the mark, cut {cut}"
        );
        // Stream after the ACK: no SELECT needed, db 3 from the RDB aux field.
        s.handle_input(now, &resp(&[b"set", b"b", b"2"])).unwrap();
        let mut t = Transcript::default();
        drain(&mut s, &mut t);
        assert_eq!(
            t.events,
            vec!["cmd db=3 off=41 kind=Other [\"set\", \"b\", \"2\"]"]
        );
    }
    // A mark that never matches keeps the transfer going (Redis waits for the timeout).
    let mut s = session(config(), now);
    let mut bad = pre.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    s.handle_input(now, &bad).unwrap();
    assert_eq!(s.state(), LinkState::Sync);
    assert_eq!(s.transfer_progress(), Some(((n - head - 40) as u64, None)));
}

#[test]
fn multi_freezes_offset_and_getack_answers_at_exec() {
    let now = Instant::now();
    let mut s = session(config(), now);
    let mut t = Transcript::default();
    s.handle_input(now, &full_sync_disk(b"")).unwrap();
    drain(&mut s, &mut t);
    let mut tx = resp(&[b"SELECT", b"3"]); // 23 -> 1023
    tx.extend(resp(&[b"MULTI"])); // 15 -> 1038
    tx.extend(resp(&[b"set", b"a", b"1"])); // 27 -> 1065
    tx.extend(resp(&[b"REPLCONF", b"GETACK", b"*"])); // 37 -> 1102
    s.handle_input(now, &tx).unwrap();
    assert_eq!(s.offset(), Some(off(1023)));
    assert!(
        s.poll_transmit().is_none(),
        "GETACK inside MULTI waits for EXEC"
    );
    s.handle_input(now, &resp(&[b"EXEC"])).unwrap();
    assert_eq!(&s.poll_transmit().unwrap()[..], &ack(1023)[..]);
    assert_eq!(s.offset(), Some(off(1116))); // EXEC 14
                                             // A cut inside MULTI: the transaction is discarded and PSYNC resumes before MULTI.
    let mut tx2 = resp(&[b"MULTI"]);
    tx2.extend(resp(&[b"SELECT", b"5"]));
    tx2.extend(resp(&[b"incr", b"a"]));
    s.handle_input(now, &tx2).unwrap();
    drain(&mut s, &mut t);
    s.disconnected(now);
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert_eq!(t.events, vec!["TransactionDiscarded"]);
    assert_eq!(
        s.cached_master(),
        Some(&CachedMaster {
            replid: ID_A.parse().unwrap(),
            offset: off(1116),
            db: 3
        })
    );
    assert_eq!(s.backlog().unwrap().end(), off(1116));
    s.connected(now).unwrap();
    s.handle_input(now, &handshake_replies(&format!("+CONTINUE {ID_B}")))
        .unwrap();
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert!(t
        .sent
        .ends_with(&resp(&[b"PSYNC", ID_A.as_bytes(), b"1117"])));
    assert_eq!(
        t.events,
        vec![format!(
            "Continue {{ replid: ReplId({ID_B}), offset: ReplOffset(1116), replid_changed: true }}"
        )]
    );
    // The id shift of protocol.md §2.4.
    let ids = s.ids();
    assert_eq!(
        (ids.id, ids.id2, ids.second_offset),
        (ID_B.parse().unwrap(), ID_A.parse().unwrap(), off(1117))
    );
    assert_eq!(s.db(), Some(3));
    assert_eq!(s.state(), LinkState::Connected);
}

#[test]
fn continue_without_id_keeps_ids() {
    let now = Instant::now();
    let mut s = ReplicaSession::new(config(), now).unwrap();
    s.set_cached_master(CachedMaster {
        replid: ID_A.parse().unwrap(),
        offset: off(500),
        db: 2,
    });
    s.connected(now).unwrap();
    s.handle_input(now, &handshake_replies("+CONTINUE"))
        .unwrap();
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert!(t.events[0].contains("replid_changed: false"));
    assert_eq!(s.ids().id2, ReplId::ZERO);
    s.handle_input(now, &resp(&[b"del", b"x"])).unwrap();
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert_eq!(
        t.events,
        vec!["cmd db=2 off=520 kind=Other [\"del\", \"x\"]"]
    );
    assert_eq!(s.backlog().unwrap().first(), off(501));
}

#[test]
fn auth_errors_are_fatal_and_sticky() {
    let now = Instant::now();
    let cfg = ReplicaConfig {
        auth: Some(MasterAuth {
            user: None,
            password: "bad".into(),
        }),
        ..config()
    };
    let mut s = session(cfg, now);
    let err = s
        .handle_input(now, b"-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        .unwrap_err();
    assert!(
        matches!(&err, ReplicaError::AuthRejected { reply } if reply.starts_with("-WRONGPASS"))
    );
    assert!(err.is_fatal());
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert_eq!(t.events.len(), 1);
    assert!(t.events[0].starts_with("Failed(AuthRejected"));
    assert_eq!(s.handle_input(now, b"+OK\r\n"), Err(err.clone()));
    s.disconnected(now);
    assert_eq!(s.state(), LinkState::Failed);
    assert_eq!(s.connected(now), Err(err));
    assert!(s.poll_event().is_none(), "reported once");

    // No password configured but the master wants one: PING -NOAUTH is tolerated, the
    // PSYNC -NOAUTH is fatal.
    let mut s = session(config(), now);
    let err = s
        .handle_input(now, b"-NOAUTH Authentication required.\r\n-NOAUTH x\r\n-NOAUTH x\r\n-NOAUTH Authentication required.\r\n")
        .unwrap_err();
    assert!(matches!(err, ReplicaError::AuthRequired { .. }));
}

#[test]
fn try_later_errors_are_not_fatal() {
    let now = Instant::now();
    for (input, what) in [
        (
            &b"-LOADING Redis is loading the dataset in memory\r\n"[..],
            "ping",
        ),
        (
            &handshake_replies("-NOMASTERLINK Can't SYNC while not connected with my master")[..],
            "psync",
        ),
        (
            &handshake_replies(
                "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            )[..],
            "psync",
        ),
    ] {
        let mut s = session(config(), now);
        let err = s.handle_input(now, input).unwrap_err();
        assert!(
            matches!(err, ReplicaError::TryLater { .. }),
            "{what}: {err}"
        );
        assert!(!err.is_fatal());
        assert_eq!(s.state(), LinkState::Down);
        let mut t = Transcript::default();
        drain(&mut s, &mut t);
        assert!(t.events[0].starts_with("LinkLost(TryLater"));
        s.disconnected(now);
        assert_eq!(s.state(), LinkState::Connect);
        s.connected(now).unwrap();
        assert_eq!(&s.poll_transmit().unwrap()[..], b"*1\r\n$4\r\nPING\r\n");
    }
    let mut s = session(config(), now);
    let err = s.handle_input(now, b"-ERR something else\r\n").unwrap_err();
    assert!(matches!(err, ReplicaError::MasterError { .. }));
}

#[test]
fn sync_fallback_when_psync_unknown() {
    let now = Instant::now();
    let mut s = session(config(), now);
    let body = rdb(None, 2);
    let mut m = handshake_replies("-ERR unknown command 'PSYNC'");
    m.extend(b"\n\n\n");
    m.extend(format!("${}\r\n", body.len()).as_bytes());
    m.extend(&body);
    m.extend(resp(&[b"SELECT", b"0"]));
    m.extend(resp(&[b"set", b"k", b"v"]));
    let mut t = Transcript::default();
    s.handle_input(now, &m).unwrap();
    drain(&mut s, &mut t);
    assert!(t.sent.ends_with(b"SYNC\r\n"));
    assert_eq!(t.events[0], "LegacySync");
    assert_eq!(t.rdb, body);
    assert_eq!(
        t.events.last().unwrap(),
        "cmd db=0 off=50 kind=Other [\"set\", \"k\", \"v\"]"
    );
    assert_eq!(s.master_replid(), None);
    // No ACKs to a pre-PSYNC master, and nothing to resume from.
    assert_eq!(s.poll_timeout(), Some(now + secs(60)));
    s.disconnected(now);
    assert_eq!(s.cached_master(), None);
}

#[test]
fn timeouts_per_phase() {
    let t0 = Instant::now();
    let cfg = ReplicaConfig {
        handshake_timeout: secs(5),
        repl_timeout: secs(60),
        ..config()
    };
    // Handshake: measured from the last byte received; a keepalive refreshes it.
    let mut s = session(cfg.clone(), t0);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(5)));
    s.handle_input(t0 + secs(4), b"\n").unwrap();
    s.handle_timeout(t0 + secs(5));
    assert_eq!(s.state(), LinkState::Handshake);
    s.handle_timeout(t0 + secs(9));
    assert_eq!(s.error(), Some(&ReplicaError::Timeout(Phase::Handshake)));
    // Streaming: the master is cached; the next PSYNC resumes.
    let mut s = session(cfg, t0);
    s.handle_input(t0, &full_sync_disk(&resp(&[b"ping"])))
        .unwrap();
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    let mut now = t0;
    for _ in 0..59 {
        now += secs(1);
        s.handle_timeout(now);
    }
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert_eq!(t.sent, ack(1014).repeat(59), "one ACK a second");
    assert_eq!(s.state(), LinkState::Connected);
    // Time going backwards is clamped.
    s.handle_timeout(t0);
    s.handle_timeout(now + secs(1));
    assert_eq!(s.error(), Some(&ReplicaError::Timeout(Phase::Streaming)));
    assert_eq!(s.poll_timeout(), None);
    s.disconnected(now);
    assert_eq!(s.cached_master().map(|c| c.offset), Some(off(1014)));
}

#[test]
fn protocol_error_discards_cached_master() {
    let now = Instant::now();
    let mut s = session(config(), now);
    s.handle_input(now, &full_sync_disk(&resp(&[b"ping"])))
        .unwrap();
    let err = s.handle_input(now, b"GARBAGE\r\n").unwrap_err();
    assert_eq!(
        err,
        ReplicaError::Protocol {
            offset: (full_sync_disk(&resp(&[b"ping"])).len()) as u64,
            error: ProtocolError::InlineCommand
        }
    );
    s.disconnected(now);
    assert_eq!(s.cached_master(), None);
    s.connected(now).unwrap();
    s.handle_input(now, b"+PONG\r\n+OK\r\n+OK\r\n").unwrap();
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert!(t.sent.ends_with(&resp(&[b"PSYNC", b"?", b"-1"])));
}

#[test]
fn forget_master_forces_full_resync() {
    let now = Instant::now();
    let mut s = session(config(), now);
    s.handle_input(now, &full_sync_disk(b"")).unwrap();
    s.forget_master();
    s.disconnected(now);
    assert_eq!(s.cached_master(), None);
    s.connected(now).unwrap();
    s.handle_input(now, b"+PONG\r\n+OK\r\n+OK\r\n").unwrap();
    let mut t = Transcript::default();
    drain(&mut s, &mut t);
    assert!(t.sent.ends_with(&resp(&[b"PSYNC", b"?", b"-1"])));
}

#[test]
fn transfer_header_errors_and_keepalives() {
    let now = Instant::now();
    let mut s = session(config(), now);
    let mut m = handshake_replies(&format!("+FULLRESYNC {ID_A} 0"));
    m.extend(b"-ERR BGSAVE failed, replication can't continue\r\n");
    let err = s.handle_input(now, &m).unwrap_err();
    assert!(matches!(err, ReplicaError::MasterError { .. }));
    let mut s = session(config(), now);
    let mut m = handshake_replies(&format!("+FULLRESYNC {ID_A} 0"));
    m.extend(b"\n\n*1\r\n");
    let err = s.handle_input(now, &m).unwrap_err();
    assert!(matches!(
        err,
        ReplicaError::Protocol {
            error: ProtocolError::BadBulkHeader,
            ..
        }
    ));
    let mut s = session(config(), now);
    let err = s
        .handle_input(now, &handshake_replies("+FULLRESYNC short 0"))
        .unwrap_err();
    assert!(matches!(
        err,
        ReplicaError::Protocol {
            error: ProtocolError::BadPsyncReply,
            ..
        }
    ));
    // +CONTINUE without a cached master is a protocol error.
    let mut s = session(config(), now);
    let err = s
        .handle_input(now, &handshake_replies("+CONTINUE"))
        .unwrap_err();
    assert!(matches!(
        err,
        ReplicaError::Protocol {
            error: ProtocolError::BadPsyncReply,
            ..
        }
    ));
    // Over-long lines are refused, not buffered.
    let cfg = ReplicaConfig {
        max_line_len: 128,
        ..config()
    };
    let mut s = session(cfg, now);
    let err = s.handle_input(now, &[b'+'; 200]).unwrap_err();
    assert!(matches!(
        err,
        ReplicaError::Protocol {
            error: ProtocolError::LineTooLong,
            ..
        }
    ));
    // Keepalives to the master during a long load: at most one a second.
    let mut s = session(config(), now);
    s.handle_input(now, &handshake_replies(&format!("+FULLRESYNC {ID_A} 0")))
        .unwrap();
    while s.poll_transmit().is_some() {}
    s.keepalive(now);
    s.keepalive(now + std::time::Duration::from_millis(500));
    s.keepalive(now + secs(1));
    assert_eq!(&s.poll_transmit().unwrap()[..], b"\n\n");
}

#[test]
fn api_misuse_is_reported_not_sticky() {
    let now = Instant::now();
    let mut s = ReplicaSession::new(config(), now).unwrap();
    assert!(matches!(
        s.handle_input(now, b"+PONG\r\n"),
        Err(ReplicaError::Misuse(_))
    ));
    s.connected(now).unwrap();
    assert!(matches!(s.connected(now), Err(ReplicaError::Misuse(_))));
    s.handle_input(now, b"+PONG\r\n").unwrap();
    assert!(ReplicaSession::new(
        ReplicaConfig {
            databases: 0,
            ..config()
        },
        now
    )
    .is_err());
}

#[test]
fn stream_limits_are_enforced() {
    let now = Instant::now();
    let cfg = ReplicaConfig {
        max_bulk_len: 10,
        max_command_len: 100,
        max_multibulk_len: 3,
        ..config()
    };
    for (bad, want) in [
        (
            resp(&[b"set", b"k", &[b'x'; 11]]),
            ProtocolError::BulkTooLong(11),
        ),
        (
            resp(&[b"a", b"b", b"c", b"d"]),
            ProtocolError::MultibulkTooLong(4),
        ),
        (
            resp(&[b"set", &[b'k'; 30], &[b'v'; 30]]),
            ProtocolError::CommandTooLong,
        ),
        (
            [resp(&[b"MULTI"]), resp(&[b"set", b"k", b"v"]).repeat(5)].concat(),
            ProtocolError::TransactionTooLong,
        ),
    ] {
        let cfg = if want == ProtocolError::CommandTooLong {
            ReplicaConfig {
                max_command_len: 64,
                max_bulk_len: 100,
                ..cfg.clone()
            }
        } else {
            cfg.clone()
        };
        let mut s = session(cfg, now);
        s.handle_input(now, &full_sync_disk(b"")).unwrap();
        let err = s.handle_input(now, &bad).unwrap_err();
        assert!(
            matches!(&err, ReplicaError::Protocol { error, .. } if *error == want),
            "{err}"
        );
    }
}

/// A snapshot loaded in pieces: the events (owned, or a visitor's callbacks made owned),
/// the first error, and the checksum outcome the loader noted.
struct Loaded {
    events: Vec<RdbEvent>,
    result: Result<(), SnapshotError>,
    checksum: Option<Checksum>,
}

/// Turns every callback into the owned event it stands for (the trait's defaults).
#[derive(Default)]
struct Events(Vec<RdbEvent>);

impl Visitor for Events {
    fn event(&mut self, event: RdbEvent) {
        self.0.push(event);
    }
}

/// Loads `bytes` pushed in pieces ending at `cuts`, with `poll_event` or with `parse_with`.
fn load_split(bytes: &[u8], cuts: &[usize], config: &ParserConfig, visitor: bool) -> Loaded {
    let mut l = SnapshotLoader::new(config.clone());
    let mut events = Events::default();
    let mut drain = |l: &mut SnapshotLoader| -> Result<(), SnapshotError> {
        if visitor {
            return l.parse_with(&mut events);
        }
        while let Some(ev) = l.poll_event()? {
            events.0.push(ev);
        }
        Ok(())
    };
    let mut from = 0;
    let mut result = Ok(());
    for &to in cuts.iter().chain([&bytes.len()]) {
        let to = to.clamp(from, bytes.len());
        l.push_bytes(Bytes::copy_from_slice(&bytes[from..to]));
        from = to;
        result = drain(&mut l);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        l.finish();
        result = drain(&mut l);
    }
    assert_eq!(l.is_done(), result.is_ok());
    Loaded {
        events: events.0,
        result,
        checksum: l.checksum(),
    }
}

fn load(bytes: &[u8], step: usize, visitor: bool) -> Result<Option<Checksum>, SnapshotError> {
    let cuts: Vec<usize> = (step..bytes.len()).step_by(step).collect();
    let loaded = load_split(bytes, &cuts, &ParserConfig::default(), visitor);
    loaded.result.map(|()| loaded.checksum)
}

#[test]
fn snapshot_loader_checks_crc_truncation_and_trailing_bytes() {
    let mut body = rdb(Some(2), 10);
    let n = body.len();
    let crc = crc64(0, &body[..n - 8]);
    body[n - 8..].copy_from_slice(&crc.to_le_bytes());
    // The owned events and the visitor fast path check the same things.
    for visitor in [false, true] {
        for step in [1, 3, 64, 4096] {
            assert_eq!(
                load(&body, step, visitor).unwrap(),
                Some(Checksum::Verified(crc))
            );
        }
        // A flipped bit in a value fails the checksum.
        let mut bad = body.clone();
        bad[n - 12] ^= 0x01;
        assert!(matches!(
            load(&bad, 64, visitor),
            Err(SnapshotError::Rdb(RdbError::ChecksumMismatch { .. }))
        ));
        // Truncated: the transfer ended before the RDB did.
        assert!(matches!(
            load(&body[..n - 3], 64, visitor),
            Err(SnapshotError::Rdb(RdbError::UnexpectedEof { .. }))
        ));
        // Extra bytes after the RDB end (e.g. a $EOF: mark that is not where it should be),
        // in the same piece as the end or in a later one.
        let mut extra = body.clone();
        extra.extend_from_slice(b"junk");
        for step in [64, n] {
            assert_eq!(
                load(&extra, step, visitor),
                Err(SnapshotError::TrailingBytes {
                    offset: n as u64,
                    count: 4
                })
            );
        }
    }
}

/// A snapshot with every kind of value, in small and big encodings, with a valid checksum.
fn rich_snapshot() -> Vec<u8> {
    use respsync::rdb::{HashEntry, KeyOptions, Value, Writer, WriterConfig};
    let b = |s: String| Bytes::from(s);
    let none = KeyOptions::default();
    let mut w = Writer::new(WriterConfig::default()).unwrap();
    w.select_db(0, 12, 1).unwrap();
    let mut key = |k: &str, v: Value, o: KeyOptions| w.key(k.as_bytes(), &v, o).unwrap();
    key("int", Value::String("12345".into()), none);
    key("text", Value::String("abcdefgh".repeat(40).into()), none);
    key(
        "raw",
        Value::String(b((0..300)
            .map(|i| ((i * 7919) % 251) as u8 as char)
            .collect())),
        KeyOptions::expire_at(4_000_000_000_000),
    );
    key(
        "list",
        Value::List((0..300).map(|i| b(format!("e{i}"))).collect()),
        none,
    );
    key(
        "intset",
        Value::Set((0..20).map(|i| b(i.to_string())).collect()),
        none,
    );
    key(
        "set",
        Value::Set((0..600).map(|i| b(format!("m{i}"))).collect()),
        none,
    );
    key(
        "zset",
        Value::Zset((0..10).map(|i| (b(format!("m{i}")), i as f64)).collect()),
        none,
    );
    key(
        "bigzset",
        Value::Zset(
            (0..200)
                .map(|i| (b(format!("m{i}")), i as f64 / 3.0))
                .collect(),
        ),
        none,
    );
    let hash = |n: usize| {
        Value::Hash(
            (0..n)
                .map(|i| HashEntry {
                    field: b(format!("f{i}")),
                    value: b(format!("v{i}")),
                    expire_ms: None,
                })
                .collect(),
        )
    };
    key("hash", hash(10), none);
    key("bighash", hash(700), none);
    w.select_db(5, 1, 0).unwrap();
    w.key(b"other", &Value::String("x".into()), none).unwrap();
    let mut file = Vec::new();
    while let Some(chunk) = w.poll_chunk() {
        file.extend_from_slice(&chunk);
    }
    file.extend_from_slice(&w.finish().unwrap());
    file
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// `parse_with` gives the same events, checksum outcome and error as `poll_event`, for a
    /// valid snapshot, a bad checksum, a truncated one and one with bytes after its end,
    /// however the transfer is split, with lazy values on or off.
    #[test]
    fn snapshot_loader_visitor_matches_poll_event(
        case in 0u8..4,
        cut in any::<prop::sample::Index>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        lazy in any::<bool>(),
        chunk in prop_oneof![Just(7usize), Just(64 << 10)],
    ) {
        static FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let good = FILE.get_or_init(rich_snapshot);
        let mut bytes = good.clone();
        match case {
            0 => {}
            1 => {
                let at = 9 + cut.index(bytes.len() - 9);
                bytes[at] ^= 0x20;
            }
            2 => bytes.truncate(cut.index(bytes.len())),
            _ => bytes.extend_from_slice(&b"junk+junk"[..1 + cut.index(9)]),
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut config = ParserConfig::default();
        config.lazy_values(lazy).chunk_size(chunk);
        let owned = load_split(&bytes, &cuts, &config, false);
        let visited = load_split(&bytes, &cuts, &config, true);
        prop_assert_eq!(&visited.result, &owned.result);
        prop_assert_eq!(visited.checksum, owned.checksum);
        match (&visited.result, case) {
            (Ok(()), 0) => prop_assert!(matches!(visited.checksum, Some(Checksum::Verified(_)))),
            (Err(_), 1) | (Err(SnapshotError::Rdb(RdbError::UnexpectedEof { .. })), 2) => {}
            (Err(SnapshotError::TrailingBytes { .. }), 3) => {}
            (r, _) => prop_assert!(false, "case {}: {:?}", case, r),
        }
        // With extra bytes in the same piece as the end, `poll_event` reports the error in
        // place of the End event; the visitor has been handed it.
        let (last, before) = visited.events.split_last().unwrap();
        if case == 3 && before == &owned.events[..] {
            let is_end = matches!(last, RdbEvent::End { .. });
            prop_assert!(is_end, "{:?}", last);
        } else {
            prop_assert_eq!(&visited.events, &owned.events);
        }
    }
}

#[test]
fn session_is_send_and_unwind_safe_and_events_stay_small() {
    fn assert_traits<T: Send + std::panic::UnwindSafe>() {}
    assert_traits::<ReplicaSession>();
    assert_traits::<respsync::replica::ReplicaEvent>();
    assert!(std::mem::size_of::<respsync::replica::ReplicaEvent>() <= 72);
}

#[test]
fn stream_keepalives_and_malformed_commands() {
    let now = Instant::now();
    let mut s = session(config(), now);
    let sync = full_sync_disk(b"");
    s.handle_input(now, &sync).unwrap();
    let start = s.offset().unwrap().value();
    while s.poll_event().is_some() {}
    // Bare newlines between commands count in the offset but are no commands.
    let ping = resp(&[b"ping"]);
    let wire = [&b"\n"[..], &ping, b"\r\n", &ping].concat();
    for b in wire.chunks(1) {
        s.handle_input(now, b).unwrap();
    }
    assert_eq!(s.offset().unwrap().value(), start + wire.len() as i64);
    let mut commands = 0;
    while let Some(ev) = s.poll_event() {
        if let respsync::replica::ReplicaEvent::Command(c) = ev {
            assert_eq!(c.name(), b"ping");
            commands += 1;
        }
    }
    assert_eq!(commands, 2);
    for (bad, want, at) in [
        (&b"*1\r\n+x\r\n"[..], ProtocolError::ExpectedBulk(b'+'), 4),
        (b"*1\r\n$-1\r\n", ProtocolError::BadLength, 5),
        (b"*1\r\n$01\r\n", ProtocolError::BadLength, 6),
        (b"*1\r\n$1\r\nxy\r\n", ProtocolError::MissingCrlf, 9),
        (b"\rx", ProtocolError::InlineCommand, 0),
    ] {
        let mut s = session(config(), now);
        s.handle_input(now, &sync).unwrap();
        let err = s.handle_input(now, bad).unwrap_err();
        assert_eq!(
            err,
            ReplicaError::Protocol {
                offset: sync.len() as u64 + at,
                error: want
            },
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
