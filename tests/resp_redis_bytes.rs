//! The codec against the exact bytes Redis 7.0.15 writes (captured from `redis-server` with
//! `HELLO 2/3` and `DEBUG PROTOCOL <type>`, `ZSCORE`, `SUBSCRIBE`, and a replication stream).

use bytes::{Bytes, BytesMut};
use respsync::resp::{
    encode, encode_command, encoded_len, DecodeErrorKind, Decoder, Frame, Limits, TransferHeader,
};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Decodes `wire` whole, checks it is exactly one frame equal to `want`, that encoding `want`
/// gives `wire` back byte for byte, and that `encoded_len` agrees.
fn exact(wire: &[u8], want: Frame) {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(wire);
    let d = dec.decode(&mut buf).unwrap().expect("one whole frame");
    assert_eq!(
        d.frame,
        want,
        "decoding {:?}",
        String::from_utf8_lossy(wire)
    );
    assert_eq!(d.consumed, wire.len());
    assert!(buf.is_empty());
    let mut out = BytesMut::new();
    encode(&want, &mut out);
    assert_eq!(&out[..], wire, "encoding {want:?}");
    assert_eq!(encoded_len(&want), wire.len());
}

#[test]
fn resp2_replies() {
    exact(b"+PONG\r\n", Frame::simple("PONG"));
    exact(b"+OK\r\n", Frame::simple("OK"));
    exact(b"$-1\r\n", Frame::NullBulk);
    exact(b"*-1\r\n", Frame::NullArray);
    exact(
        b"-ERR unknown command 'FOO', with args beginning with: \r\n",
        Frame::error("ERR unknown command 'FOO', with args beginning with: "),
    );
    exact(b"$11\r\nHello World\r\n", Frame::bulk("Hello World"));
    exact(b":12345\r\n", Frame::Integer(12345));
    exact(b"$0\r\n\r\n", Frame::bulk(""));
    exact(
        b"*3\r\n:0\r\n:1\r\n:2\r\n",
        Frame::Array(vec![
            Frame::Integer(0),
            Frame::Integer(1),
            Frame::Integer(2),
        ]),
    );
    exact(
        b"$25\r\nThis is a verbatim\nstring\r\n",
        Frame::bulk("This is a verbatim\nstring"),
    );
    exact(b":-9223372036854775808\r\n", Frame::Integer(i64::MIN));
    exact(b":9223372036854775807\r\n", Frame::Integer(i64::MAX));
}

#[test]
// 3.141 is the literal DEBUG PROTOCOL double, not an approximation of pi.
#[allow(clippy::approx_constant)]
fn resp3_replies() {
    exact(b",3.141\r\n", Frame::Double(3.141));
    exact(b",inf\r\n", Frame::Double(f64::INFINITY));
    exact(b",-inf\r\n", Frame::Double(f64::NEG_INFINITY));
    exact(b",nan\r\n", Frame::Double(f64::NAN));
    exact(b",1.5\r\n", Frame::Double(1.5));
    exact(b",100\r\n", Frame::Double(100.0));
    exact(b",1.0000000000000001e+300\r\n", Frame::Double(1e300));
    exact(b",0.10000000000000001\r\n", Frame::Double(0.1));
    exact(b",9.9999999999999995e-08\r\n", Frame::Double(1e-7));
    exact(
        b",1.2345678901234568e+17\r\n",
        Frame::Double(123456789012345678.0),
    );
    exact(
        b"(1234567999999999999999999999999999999\r\n",
        Frame::BigNumber(b("1234567999999999999999999999999999999")),
    );
    exact(b"_\r\n", Frame::Null);
    exact(b"#t\r\n", Frame::Boolean(true));
    exact(b"#f\r\n", Frame::Boolean(false));
    exact(
        b"~3\r\n:0\r\n:1\r\n:2\r\n",
        Frame::Set(vec![
            Frame::Integer(0),
            Frame::Integer(1),
            Frame::Integer(2),
        ]),
    );
    exact(
        b"%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n",
        Frame::Map(vec![
            (Frame::Integer(0), Frame::Boolean(false)),
            (Frame::Integer(1), Frame::Boolean(true)),
            (Frame::Integer(2), Frame::Boolean(false)),
        ]),
    );
    exact(
        b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n$39\r\nSome real reply following the attribute\r\n",
        Frame::Attribute {
            attrs: vec![(
                Frame::bulk("key-popularity"),
                Frame::Array(vec![Frame::bulk("key:123"), Frame::Integer(90)]),
            )],
            value: Box::new(Frame::bulk("Some real reply following the attribute")),
        },
    );
    exact(
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
        Frame::Push(vec![
            Frame::bulk("subscribe"),
            Frame::bulk("ch"),
            Frame::Integer(1),
        ]),
    );
    exact(
        b"=29\r\ntxt:This is a verbatim\nstring\r\n",
        Frame::Verbatim {
            format: *b"txt",
            text: b("This is a verbatim\nstring"),
        },
    );
    exact(
        b"!21\r\nSYNTAX invalid syntax\r\n",
        Frame::BulkError(b("SYNTAX invalid syntax")),
    );
}

#[test]
fn reply_helpers_write_redis_bytes() {
    use respsync::resp::{
        encode_array_header, encode_boolean, encode_bulk, encode_double, encode_error,
        encode_integer, encode_map_header, encode_null, encode_null_array, encode_null_bulk,
        encode_ok, encode_push_header, encode_set_header, encode_simple, encode_transfer_eof,
        encode_transfer_len,
    };
    let mut out = BytesMut::new();
    encode_ok(&mut out);
    encode_simple(b"PONG", &mut out);
    encode_error(
        b"READONLY You can't write against a read only replica.",
        &mut out,
    );
    encode_integer(-42, &mut out);
    encode_bulk(b"", &mut out);
    encode_null_bulk(&mut out);
    encode_null_array(&mut out);
    encode_null(&mut out);
    encode_array_header(2, &mut out);
    encode_map_header(1, &mut out);
    encode_set_header(0, &mut out);
    encode_push_header(3, &mut out);
    encode_double(1.5, &mut out);
    encode_boolean(true, &mut out);
    encode_transfer_len(175, &mut out);
    encode_transfer_eof(&[b'f'; 40], &mut out);
    let mut want = b"+OK\r\n+PONG\r\n-READONLY You can't write against a read only replica.\r\n:-42\r\n$0\r\n\r\n$-1\r\n*-1\r\n_\r\n*2\r\n%1\r\n~0\r\n>3\r\n,1.5\r\n#t\r\n$175\r\n$EOF:".to_vec();
    want.extend_from_slice(&[b'f'; 40]);
    want.extend_from_slice(b"\r\n");
    assert_eq!(&out[..], &want[..]);
    // CR/LF cannot break a line reply out of its frame.
    let mut out = BytesMut::new();
    encode_error(b"ERR bad\r\n+OK", &mut out);
    assert_eq!(&out[..], b"-ERR bad  +OK\r\n");
}

#[test]
fn push_then_reply_in_one_buffer() {
    // DEBUG PROTOCOL push: an out-of-band push followed by the real reply.
    let wire = b">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n$40\r\nSome real reply following the push reply\r\n";
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&wire[..]);
    let first = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        first.frame,
        Frame::Push(vec![Frame::bulk("server-cpu-usage"), Frame::Integer(42)])
    );
    assert_eq!(first.consumed, 32);
    let second = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        second.frame,
        Frame::bulk("Some real reply following the push reply")
    );
    assert_eq!(first.consumed + second.consumed, wire.len());
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
}

/// A replication stream as a Redis 7.0 master writes it after a full sync: SELECT, a SET with
/// PXAT rewrite, MULTI/EXEC around SPOP's SREMs, and a PING; offsets are the sums of the
/// commands' encoded lengths.
#[test]
fn replication_stream_commands_and_offsets() {
    let cmds: Vec<Vec<&str>> = vec![
        vec!["SELECT", "0"],
        vec!["SET", "k", "v", "PXAT", "1764000000000"],
        vec!["MULTI"],
        vec!["SREM", "s", "a"],
        vec!["SREM", "s", "b"],
        vec!["EXEC"],
        vec!["PING"],
    ];
    let mut wire = BytesMut::new();
    for c in &cmds {
        encode_command(c, &mut wire);
    }
    assert!(wire.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*5\r\n$3\r\nSET\r\n"));
    let mut dec = Decoder::default();
    let mut buf = wire.clone();
    let mut offset = 0;
    for c in &cmds {
        let got = dec.decode_command(&mut buf).unwrap().unwrap();
        assert_eq!(
            got.argv,
            c.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        );
        offset += got.consumed;
        assert_eq!(dec.offset(), offset as u64);
    }
    assert_eq!(offset, wire.len());
}

#[test]
fn full_sync_disk_format_then_stream() {
    // Keepalives, +FULLRESYNC, keepalives, $<len>, RDB bytes without CRLF, then the stream
    // starting right after the last RDB byte.
    let mut buf = BytesMut::from(
        &b"\n+FULLRESYNC 0123456789abcdef0123456789abcdef01234567 14\r\n\n\n$9\r\nREDIS0010*1\r\n$4\r\nPING\r\n"[..],
    );
    let mut dec = Decoder::default();
    assert_eq!(dec.skip_keepalives(&mut buf).count, 1);
    let fr = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        fr.frame,
        Frame::simple("FULLRESYNC 0123456789abcdef0123456789abcdef01234567 14")
    );
    let mut keepalives = 0;
    let len = loop {
        match dec.decode_transfer_header(&mut buf).unwrap().unwrap().0 {
            TransferHeader::Keepalive => keepalives += 1,
            TransferHeader::Len(n) => break n,
            h => panic!("unexpected {h:?}"),
        }
    };
    assert_eq!((keepalives, len), (2, 9));
    let rdb = dec.take_raw(&mut buf, len as usize).unwrap();
    assert_eq!(&rdb[..], b"REDIS0010");
    let start = dec.offset();
    let ping = dec.decode_command(&mut buf).unwrap().unwrap();
    assert_eq!(ping.argv, vec!["PING"]);
    assert_eq!(dec.offset() - start, 14);
}

#[test]
fn transfer_header_forms() {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&b"-ERR too many replicas\r\n"[..]);
    let (h, n) = dec.decode_transfer_header(&mut buf).unwrap().unwrap();
    assert_eq!(h, TransferHeader::Error(b("ERR too many replicas")));
    assert_eq!(n, 24);

    let mut buf = BytesMut::from(&b"\r\n$EOF:0123456789012345678901234567890123456789\r\n"[..]);
    let (h, n) = dec.decode_transfer_header(&mut buf).unwrap().unwrap();
    assert_eq!((h, n), (TransferHeader::Keepalive, 2));
    let (h, _) = dec.decode_transfer_header(&mut buf).unwrap().unwrap();
    assert_eq!(
        h,
        TransferHeader::EofMark(*b"0123456789012345678901234567890123456789")
    );

    // Split anywhere: need more data until the newline.
    let whole = b"$123456\r\n";
    let mut buf = BytesMut::new();
    for (i, &byte) in whole.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        let got = dec.decode_transfer_header(&mut buf).unwrap();
        if i + 1 < whole.len() {
            assert_eq!(got, None);
        } else {
            assert_eq!(got, Some((TransferHeader::Len(123456), 9)));
        }
    }

    let mut bad = Decoder::default();
    let mut buf = BytesMut::from(&b"+OK\r\n"[..]);
    let err = bad.decode_transfer_header(&mut buf).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::BadTransferHeader(b'+'));
    let mut bad = Decoder::default();
    let mut buf = BytesMut::from(&b"$-3\r\n"[..]);
    let err = bad.decode_transfer_header(&mut buf).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::NegativeLength);
}

#[test]
fn inline_commands_like_redis() {
    let cases: &[(&[u8], &[&[u8]])] = &[
        (b"PING\r\n", &[b"PING"]),
        (b"PING\n", &[b"PING"]),
        (b"  set  k   v \r\n", &[b"set", b"k", b"v"]),
        (b"\r\n", &[]),
        (b"\n", &[]),
        (b"SET k \"a\\x41\\n\"\r\n", &[b"SET", b"k", b"aA\n"]),
        (b"SET k 'it\\'s'\r\n", &[b"SET", b"k", b"it's"]),
        (b"SET k a\"b c\"\r\n", &[b"SET", b"k", b"ab c"]),
        (b"SET k \"\"\r\n", &[b"SET", b"k", b""]),
        (b"ECHO a\0b c\r\n", &[b"ECHO", b"a"]),
        (b"ECHO \"\\xZZ\"\r\n", &[b"ECHO", b"xZZ"]),
    ];
    for (wire, want) in cases {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(*wire);
        let cmd = dec.decode_inline(&mut buf).unwrap().unwrap();
        let want: Vec<Bytes> = want.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        assert_eq!(cmd.argv, want, "{:?}", String::from_utf8_lossy(wire));
        assert_eq!(cmd.consumed, wire.len());
    }
    for bad in [
        &b"SET k \"abc\r\n"[..],
        b"SET k 'abc\r\n",
        b"SET k \"a\"b\r\n",
    ] {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(bad);
        let err = dec.decode_inline(&mut buf).unwrap_err();
        assert_eq!(err.kind(), &DecodeErrorKind::UnbalancedQuotes);
        // Sticky.
        assert_eq!(dec.decode_inline(&mut buf).unwrap_err(), err);
    }
}

#[test]
fn inline_line_limit() {
    let limits = Limits {
        max_inline_len: 16,
        ..Limits::default()
    };
    // Exactly at the limit is fine, with or without the \r.
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::from(&b"0123456789abcdef\r\n"[..]);
    assert_eq!(dec.decode_inline(&mut buf).unwrap().unwrap().argv.len(), 1);
    // One more byte without a newline yet: content must exceed the limit, error at once.
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::from(&b"0123456789abcdef\rX"[..]);
    let err = dec.decode_inline(&mut buf).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::LineTooLong { max: 16 });
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::from(&b"0123456789abcdefX\n"[..]);
    assert!(dec.decode_inline(&mut buf).is_err());
    // The default is Redis's 64 KiB.
    assert_eq!(Limits::default().max_inline_len, 64 * 1024);
}

#[test]
fn decode_request_picks_mode_by_first_byte() {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPI"[..]);
    assert_eq!(dec.decode_request(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"NG\r\nECHO hi\r\n*0\r\n*-1\r\n");
    assert_eq!(
        dec.decode_request(&mut buf).unwrap().unwrap().argv,
        vec!["PING"]
    );
    assert_eq!(
        dec.decode_request(&mut buf).unwrap().unwrap().argv,
        vec!["ECHO", "hi"]
    );
    // Redis ignores a multibulk count <= 0.
    let empty = dec.decode_request(&mut buf).unwrap().unwrap();
    assert!(empty.argv.is_empty());
    assert_eq!(empty.consumed, 4);
    let empty = dec.decode_request(&mut buf).unwrap().unwrap();
    assert!(empty.argv.is_empty());
    assert_eq!(empty.consumed, 5);
    assert_eq!(dec.decode_request(&mut buf).unwrap(), None);
}
