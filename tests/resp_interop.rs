//! The codec against a live `redis-server` (the oracle): commands encoded by the crate, every
//! RESP2/RESP3 reply type decoded from the bytes Redis really sends, and a real full sync
//! (transfer header, raw RDB, command stream with exact offsets) read with the
//! replication-link primitives. Fails (never skips) when `redis-server` is missing.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use respsync::resp::{Frame, TransferHeader};

mod support;
use support::{redis_binary, valkey_binary, Proc};

fn start_server() -> Proc {
    start(&redis_binary())
}

fn start(binary: &Path) -> Proc {
    Proc::peer(
        binary,
        &[
            "--enable-debug-command",
            "yes",
            "--repl-diskless-sync",
            "no",
            // No PING in the stream during the test, so offsets compare exactly.
            "--repl-ping-replica-period",
            "3600",
        ],
    )
}

fn bulk(s: &str) -> Frame {
    Frame::bulk(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn replies_of_every_type_from_a_live_server() {
    every_reply_type(&start_server());
}

#[test]
fn replies_of_every_type_from_a_live_valkey() {
    every_reply_type(&start(&valkey_binary()));
}

// 3.141 is the literal DEBUG PROTOCOL double, not an approximation of pi.
#[allow(clippy::approx_constant)]
fn every_reply_type(server: &Proc) {
    let mut c = server.conn();
    assert_eq!(c.cmd(&["PING"]), Frame::simple("PONG"));
    assert_eq!(c.cmd(&["SET", "k", "a\r\nb"]), Frame::simple("OK"));
    assert_eq!(c.cmd(&["GET", "k"]), bulk("a\r\nb"));
    assert_eq!(c.cmd(&["GET", "missing"]), Frame::NullBulk);
    assert!(c.cmd(&["NOSUCHCOMMAND"]).is_error());
    assert_eq!(c.cmd(&["INCRBY", "n", "-5"]), Frame::Integer(-5));
    assert_eq!(c.cmd(&["BLPOP", "nolist", "0.01"]), Frame::NullArray);

    // RESP3.
    let hello = c.cmd(&["HELLO", "3"]);
    let Frame::Map(fields) = hello else {
        panic!("HELLO 3 answers a map, got {hello:?}")
    };
    assert!(fields.contains(&(bulk("proto"), Frame::Integer(3))));
    let want = [
        ("string", bulk("Hello World")),
        ("integer", Frame::Integer(12345)),
        ("double", Frame::Double(3.141)),
        (
            "bignum",
            Frame::BigNumber(Bytes::from_static(b"1234567999999999999999999999999999999")),
        ),
        ("null", Frame::Null),
        ("true", Frame::Boolean(true)),
        ("false", Frame::Boolean(false)),
        (
            "set",
            Frame::Set(vec![
                Frame::Integer(0),
                Frame::Integer(1),
                Frame::Integer(2),
            ]),
        ),
        (
            "verbatim",
            Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from_static(b"This is a verbatim\nstring"),
            },
        ),
    ];
    for (ty, frame) in want {
        assert_eq!(
            c.cmd(&["DEBUG", "PROTOCOL", ty]),
            frame,
            "DEBUG PROTOCOL {ty}"
        );
    }
    let Frame::Attribute { attrs, value } = c.cmd(&["DEBUG", "PROTOCOL", "attrib"]) else {
        panic!("attribute expected")
    };
    assert_eq!(attrs.len(), 1);
    assert_eq!(*value, bulk("Some real reply following the attribute"));
    // A push and the real reply (Redis 7.0 sends the push first, Valkey 8 after).
    let mut two = [c.cmd(&["DEBUG", "PROTOCOL", "push"]), c.read()];
    two.sort_by_key(|f| matches!(f, Frame::Push(_)));
    assert_eq!(two[0], bulk("Some real reply following the push reply"));
    assert_eq!(
        two[1],
        Frame::Push(vec![bulk("server-cpu-usage"), Frame::Integer(42)])
    );

    assert_eq!(
        c.cmd(&["ZADD", "z", "inf", "a", "-inf", "b", "0.1", "c"]),
        Frame::Integer(3)
    );
    assert_eq!(c.cmd(&["ZSCORE", "z", "a"]), Frame::Double(f64::INFINITY));
    assert_eq!(
        c.cmd(&["ZSCORE", "z", "b"]),
        Frame::Double(f64::NEG_INFINITY)
    );
    assert_eq!(c.cmd(&["ZSCORE", "z", "c"]), Frame::Double(0.1));
    assert_eq!(c.cmd(&["GET", "missing"]), Frame::Null);

    // Inline commands are what the server accepts too.
    c.sock.write_all(b"ECHO \"x y\"\r\n").expect("write");
    assert_eq!(c.read(), bulk("x y"));
}

#[test]
fn full_sync_and_command_stream_from_a_live_master() {
    let server = start_server();
    let mut w = server.conn();
    assert_eq!(w.cmd(&["SET", "before", "1"]), Frame::simple("OK"));

    let mut r = server.conn();
    assert_eq!(
        r.cmd(&["REPLCONF", "listening-port", "1"]),
        Frame::simple("OK")
    );
    assert_eq!(r.cmd(&["REPLCONF", "capa", "psync2"]), Frame::simple("OK"));
    let Frame::SimpleString(line) = r.cmd(&["PSYNC", "?", "-1"]) else {
        panic!("+FULLRESYNC expected")
    };
    let line = String::from_utf8(line.to_vec()).expect("ascii");
    let mut parts = line.split(' ');
    assert_eq!(parts.next(), Some("FULLRESYNC"));
    assert_eq!(parts.next().map(str::len), Some(40));
    let start_offset: u64 = parts.next().and_then(|o| o.parse().ok()).expect("offset");

    // Disk-format transfer: keepalives, then $<len>, then exactly len raw bytes.
    let len = loop {
        match r
            .dec
            .decode_transfer_header(&mut r.buf)
            .expect("valid header")
        {
            Some((TransferHeader::Len(n), _)) => break n,
            Some((TransferHeader::Keepalive, _)) => continue,
            Some((h, _)) => panic!("unexpected {h:?}"),
            None => r.fill(),
        }
    };
    let mut rdb = Vec::new();
    while (rdb.len() as u64) < len {
        let part = r
            .dec
            .take_raw(&mut r.buf, (len - rdb.len() as u64) as usize)
            .expect("raw");
        rdb.extend_from_slice(&part);
        if (rdb.len() as u64) < len {
            r.fill();
        }
    }
    assert!(rdb.starts_with(b"REDIS"), "an RDB file");

    // The stream: writes made now arrive as commands; offsets are exact byte counts, checked
    // against the master's own master_repl_offset.
    assert_eq!(w.cmd(&["SET", "k1", "v1"]), Frame::simple("OK"));
    assert_eq!(w.cmd(&["INCR", "n"]), Frame::Integer(1));
    let mut seen = Vec::new();
    let mut offset = start_offset;
    while seen.len() < 3 {
        match r.dec.decode_command(&mut r.buf).expect("valid command") {
            Some(cmd) => {
                offset += cmd.consumed as u64;
                seen.push(cmd.argv);
            }
            None => r.fill(),
        }
    }
    let argv = |v: &[&str]| {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect::<Vec<_>>()
    };
    assert_eq!(seen[0], argv(&["SELECT", "0"]));
    assert_eq!(seen[1], argv(&["SET", "k1", "v1"]));
    assert_eq!(seen[2], argv(&["INCR", "n"]));
    let Frame::BulkString(info) = w.cmd(&["INFO", "replication"]) else {
        panic!("INFO is a bulk string")
    };
    let info = String::from_utf8_lossy(&info).to_string();
    let master_offset: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("master_repl_offset in INFO");
    assert_eq!(
        offset, master_offset,
        "offset from consumed counts equals the master's"
    );
}
