//! Typed errors with byte offsets, limits, stickiness and caller-misuse handling.

use bytes::BytesMut;
use respsync::resp::{DecodeErrorKind as K, Decoder, Frame, Limits};

/// Decodes frames from `wire` (after `prefix` valid frames) and returns the error.
fn frame_err(wire: &[u8], limits: Limits) -> (K, u64) {
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::from(wire);
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error in {:?}", String::from_utf8_lossy(wire)),
            Err(e) => return (e.kind().clone(), e.offset()),
        }
    }
}

fn cmd_err(wire: &[u8], limits: Limits) -> (K, u64) {
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::from(wire);
    loop {
        match dec.decode_command(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error in {:?}", String::from_utf8_lossy(wire)),
            Err(e) => return (e.kind().clone(), e.offset()),
        }
    }
}

#[test]
fn malformed_input_kinds_and_offsets() {
    let d = Limits::default();
    let cases: &[(&[u8], K, u64)] = &[
        (b"?x\r\n", K::UnknownType(b'?'), 0),
        (b"+OK\r\n\x00", K::UnknownType(0), 5),
        (b"$-2\r\n", K::NegativeLength, 1),
        (b"*-2\r\n", K::NegativeLength, 1),
        (b"!-1\r\n", K::NegativeLength, 1),
        (b"%-1\r\n", K::NegativeLength, 1),
        (b"$1x\r\n", K::InvalidInteger, 2),
        (b"$\r\n", K::InvalidInteger, 1),
        (b"$+1\r\n", K::InvalidInteger, 1),
        (b"$01\r\n", K::InvalidInteger, 2),
        (b":-0\r\n", K::InvalidInteger, 2),
        (b":--1\r\n", K::InvalidInteger, 2),
        (b":1-\r\n", K::InvalidInteger, 2),
        (b":9223372036854775808\r\n", K::Overflow, 20),
        (b":-9223372036854775809\r\n", K::Overflow, 20),
        (b":99999999999999999999999\r\n", K::Overflow, 19),
        // Found by the fuzzer: a long length must not overflow while accumulating digits.
        (b"$55555555555555555551111111111111\r\n", K::Overflow, 20),
        (b"*-92233720368547758081\r\n", K::Overflow, 21),
        (b":12\n", K::MissingCrlf, 3),
        (b":12\rx", K::MissingCrlf, 4),
        (b"+OK\n", K::MissingCrlf, 3),
        (b"$3\r\nabcX\r\n", K::MissingCrlf, 7),
        (b"$3\r\nabc\rX", K::MissingCrlf, 7),
        (b",1.2.3\r\n", K::InvalidDouble, 1),
        (b",infinity\r\n", K::InvalidDouble, 1),
        (b",\r\n", K::InvalidDouble, 1),
        (b"#x\r\n", K::InvalidBoolean, 1),
        (b"_x\r\n", K::InvalidNull, 1),
        (b"(12a\r\n", K::InvalidBigNumber, 1),
        (b"(\r\n", K::InvalidBigNumber, 1),
        (b"=3\r\ntxt\r\n", K::InvalidVerbatim, 4),
        (b"=5\r\ntxt;a\r\n", K::InvalidVerbatim, 4),
        (b"*2\r\n:1\r\n?\r\n", K::UnknownType(b'?'), 8),
    ];
    for (wire, kind, off) in cases {
        assert_eq!(
            frame_err(wire, d),
            (kind.clone(), *off),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn command_rules_follow_redis() {
    let d = Limits::default();
    assert_eq!(cmd_err(b"+OK\r\n", d), (K::ExpectedArray(b'+'), 0));
    assert_eq!(
        cmd_err(b"*2\r\n$1\r\na\r\n:1\r\n", d),
        (K::ExpectedBulk(b':'), 11)
    );
    assert_eq!(cmd_err(b"*1\r\n*1\r\n", d), (K::ExpectedBulk(b'*'), 4));
    // A null bulk is not a valid argument ("invalid bulk length").
    assert_eq!(cmd_err(b"*1\r\n$-1\r\n", d), (K::NegativeLength, 5));
    // Multibulk count above INT_MAX: "invalid multibulk length".
    assert_eq!(
        cmd_err(b"*2147483648\r\n", d),
        (
            K::ArrayTooLong {
                len: 2147483648,
                max: i32::MAX as u64
            },
            1
        )
    );
    // 512 MiB is allowed, one more byte is not (proto-max-bulk-len).
    assert_eq!(
        cmd_err(b"*1\r\n$536870913\r\n", d),
        (
            K::BulkTooLong {
                len: 536870913,
                max: 512 << 20
            },
            5
        )
    );
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\nxx"[..]);
    assert_eq!(dec.decode_command(&mut buf).unwrap(), None);
}

#[test]
fn limits_are_raised_when_the_length_is_read() {
    let small = Limits {
        max_bulk_len: 10,
        max_array_len: 3,
        max_inline_len: 8,
        max_depth: 2,
        max_buffered: 64,
    };
    assert_eq!(
        frame_err(b"$11\r\n", small),
        (K::BulkTooLong { len: 11, max: 10 }, 1)
    );
    assert_eq!(
        frame_err(b"!11\r\n", small),
        (K::BulkTooLong { len: 11, max: 10 }, 1)
    );
    assert_eq!(
        frame_err(b"~4\r\n", small),
        (K::ArrayTooLong { len: 4, max: 3 }, 1)
    );
    assert_eq!(
        frame_err(b"%4\r\n", small),
        (K::ArrayTooLong { len: 4, max: 3 }, 1)
    );
    assert_eq!(
        frame_err(b"*1\r\n*1\r\n*1\r\n", small),
        (K::TooDeep { max: 2 }, 8)
    );
    assert_eq!(
        frame_err(b"*1\r\n>1\r\n*0\r\n", small),
        (K::TooDeep { max: 2 }, 8)
    );
    // Depth 2 is fine.
    let mut dec = Decoder::new(small);
    let mut buf = BytesMut::from(&b"*1\r\n*1\r\n:1\r\n"[..]);
    assert!(dec.decode(&mut buf).unwrap().is_some());
    // A line that cannot end within the limit fails before its newline arrives.
    assert_eq!(
        frame_err(b"+123456789", small),
        (K::LineTooLong { max: 8 }, 1)
    );
    assert_eq!(
        frame_err(b"+123456789\r\n", small),
        (K::LineTooLong { max: 8 }, 1)
    );
    // A bulk whose frame would exceed max_buffered fails at its header.
    let buffered = Limits {
        max_bulk_len: 1000,
        ..small
    };
    assert_eq!(
        frame_err(b"*2\r\n$10\r\n0123456789\r\n$50\r\n", buffered),
        (K::BufferLimit { max: 64 }, 22)
    );
    // Many small elements: fails once the frame grows past max_buffered.
    let (k, _) = frame_err(
        b"*3\r\n+aaaaaaa\r\n+aaaaaaa\r\n+aaaaaaa\r\n+aaaaaaa\r\n+aaaaaaa\r\n+aaaaaaa\r\n",
        Limits {
            max_buffered: 30,
            ..Limits::default()
        },
    );
    assert_eq!(k, K::BufferLimit { max: 30 });
}

#[test]
fn errors_are_sticky_and_reset_clears_them() {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&b"$x\r\n"[..]);
    let e = dec.decode(&mut buf).unwrap_err();
    assert_eq!(dec.error(), Some(&e));
    buf.clear();
    buf.extend_from_slice(b"+OK\r\n");
    assert_eq!(dec.decode(&mut buf).unwrap_err(), e);
    assert_eq!(dec.decode_command(&mut buf).unwrap_err(), e);
    assert_eq!(dec.decode_inline(&mut buf).unwrap_err(), e);
    assert_eq!(dec.skip_keepalives(&mut buf).count, 0);
    assert_eq!(dec.take_raw(&mut buf, 1).unwrap_err(), e);
    dec.reset();
    assert_eq!(
        dec.decode(&mut buf).unwrap().unwrap().frame,
        Frame::simple("OK")
    );
    assert_eq!(dec.offset(), 5);
}

#[test]
fn error_offsets_are_absolute_across_calls() {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&b"+OK\r\n:1\r\n"[..]);
    dec.decode(&mut buf).unwrap().unwrap();
    dec.decode(&mut buf).unwrap().unwrap();
    buf.extend_from_slice(b"\n\n$1\r\nab\r\n");
    assert_eq!(dec.skip_keepalives(&mut buf).consumed, 2);
    let e = dec.decode(&mut buf).unwrap_err();
    assert_eq!((e.kind(), e.offset()), (&K::MissingCrlf, 9 + 2 + 5));
    assert_eq!(e.to_string(), "missing crlf at byte 16");
}

#[test]
fn mode_switch_mid_frame_is_refused_without_sticking() {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPI"[..]);
    assert_eq!(dec.decode_command(&mut buf).unwrap(), None);
    assert!(dec.in_progress());
    let e = dec.decode(&mut buf).unwrap_err();
    assert_eq!(e.kind(), &K::ModeSwitch);
    assert_eq!(
        dec.take_raw(&mut buf, 3).unwrap_err().kind(),
        &K::ModeSwitch
    );
    assert_eq!(dec.skip_keepalives(&mut buf).consumed, 0);
    assert_eq!(dec.error(), None);
    buf.extend_from_slice(b"NG\r\n");
    assert_eq!(
        dec.decode_command(&mut buf).unwrap().unwrap().argv,
        vec!["PING"]
    );
    // Nothing pending: any mode may start.
    buf.extend_from_slice(b"+OK\r\n");
    assert!(dec.decode(&mut buf).unwrap().is_some());
}

#[test]
fn empty_buffer_does_not_lock_a_mode() {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::new();
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert!(!dec.in_progress());
    buf.extend_from_slice(b"PING\r\n");
    assert_eq!(
        dec.decode_inline(&mut buf).unwrap().unwrap().argv,
        vec!["PING"]
    );
}

#[test]
fn keepalives_only_between_frames() {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&b"\n\r\n\n\r"[..]);
    let k = dec.skip_keepalives(&mut buf);
    assert_eq!((k.count, k.consumed), (3, 4));
    assert_eq!(&buf[..], b"\r"); // a lone \r may be the start of \r\n
    buf.extend_from_slice(b"\n+OK\r\n");
    assert_eq!(dec.skip_keepalives(&mut buf).count, 1);
    assert!(dec.decode(&mut buf).unwrap().is_some());
    // Without skipping, a keepalive is not a frame.
    let mut buf = BytesMut::from(&b"\n"[..]);
    assert_eq!(
        dec.decode(&mut buf).unwrap_err().kind(),
        &K::UnknownType(b'\n')
    );
}

#[test]
fn caller_removing_bytes_mid_frame_restarts_the_frame() {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&b"*2\r\n:1\r\n"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    buf.clear();
    buf.extend_from_slice(b":7\r\n");
    assert_eq!(
        dec.decode(&mut buf).unwrap().unwrap().frame,
        Frame::Integer(7)
    );
}
