//! Property tests for the public command scanner: the same bytes in any pieces give the same
//! commands, argument ranges and errors, and agree with `Decoder::decode_command`.

use bytes::BytesMut;
use proptest::prelude::*;
use respsync::resp::{encode_command, CommandScanner, DecodeErrorKind, Decoder, Limits};

type Scanned = Vec<(usize, Vec<Vec<u8>>)>;
type Failure = Option<(DecodeErrorKind, u64)>;

/// Feeds `wire` to a scanner as a replica does: bytes accumulate in one buffer, cut at
/// `cuts`, and each scan sees the unconsumed part. Error offsets are absolute.
fn scan_chunks(wire: &[u8], cuts: &[usize], lim: Limits) -> (Scanned, Failure) {
    let mut ends: Vec<usize> = cuts.to_vec();
    ends.sort_unstable();
    ends.push(wire.len());
    let mut sc = CommandScanner::new(lim);
    let mut out = Vec::new();
    let mut start = 0;
    for have in ends {
        loop {
            match sc.scan(&wire[start..have]) {
                Ok(Some(n)) => {
                    let cmd = &wire[start..start + n];
                    assert_eq!(sc.argc(), sc.args().len());
                    out.push((n, sc.args().map(|r| cmd[r].to_vec()).collect()));
                    start += n;
                }
                Ok(None) => break,
                Err(e) => return (out, Some((e.kind().clone(), start as u64 + e.offset()))),
            }
        }
    }
    (out, None)
}

/// The same through `Decoder::decode_command`.
fn decode_chunks(wire: &[u8], cuts: &[usize], lim: Limits) -> (Scanned, Failure) {
    let mut ends: Vec<usize> = cuts.to_vec();
    ends.sort_unstable();
    ends.push(wire.len());
    let mut dec = Decoder::new(lim);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    for have in ends {
        buf.extend_from_slice(&wire[fed..have.max(fed)]);
        fed = fed.max(have);
        loop {
            match dec.decode_command(&mut buf) {
                Ok(Some(c)) => out.push((c.consumed, c.argv.iter().map(|a| a.to_vec()).collect())),
                Ok(None) => break,
                Err(e) => return (out, Some((e.kind().clone(), e.offset()))),
            }
        }
    }
    (out, None)
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..30),
        proptest::collection::vec(prop::sample::select(b"\r\n*$0123456789".to_vec()), 0..12),
    ]
}

fn cut_points(len: usize, cuts: &[prop::sample::Index]) -> Vec<usize> {
    cuts.iter().map(|i| i.index(len + 1)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn commands_split_anywhere(argvs in proptest::collection::vec(
                                   proptest::collection::vec(arg(), 0..6), 1..6),
                               cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        for a in &argvs {
            let before = wire.len();
            encode_command(a, &mut wire);
            want.push((wire.len() - before, a.clone()));
        }
        let cuts = cut_points(wire.len(), &cuts);
        let got = scan_chunks(&wire, &cuts, Limits::default());
        prop_assert_eq!(&got, &(want, None));
        prop_assert_eq!(got, decode_chunks(&wire, &cuts, Limits::default()));
    }

    #[test]
    fn garbage_same_result_split_and_as_decoder(
        wire in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(prop::sample::select(b"\r\n*$-+:0123456789ab".to_vec()), 0..200),
        ],
        tiny in any::<bool>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10)) {
        let lim = if tiny {
            Limits { max_bulk_len: 8, max_array_len: 3, max_inline_len: 10, max_depth: 2, max_buffered: 40 }
        } else {
            Limits::default()
        };
        let cuts = cut_points(wire.len(), &cuts);
        let whole = scan_chunks(&wire, &[], lim);
        prop_assert_eq!(&scan_chunks(&wire, &cuts, lim), &whole);
        prop_assert_eq!(decode_chunks(&wire, &cuts, lim), whole);
    }
}

#[test]
fn limits_and_errors_carry_positions() {
    let lim = Limits {
        max_bulk_len: 4,
        max_array_len: 2,
        max_buffered: 30,
        ..Limits::default()
    };
    let cases: [(&[u8], DecodeErrorKind, u64); 6] = [
        (b"PING\r\n", DecodeErrorKind::ExpectedArray(b'P'), 0),
        (b"*1\r\n+x\r\n", DecodeErrorKind::ExpectedBulk(b'+'), 4),
        (b"*1\r\n$1\r\nxy\r\n", DecodeErrorKind::MissingCrlf, 9),
        (
            b"*3\r\n",
            DecodeErrorKind::ArrayTooLong { len: 3, max: 2 },
            1,
        ),
        (
            b"*1\r\n$5\r\n",
            DecodeErrorKind::BulkTooLong { len: 5, max: 4 },
            5,
        ),
        (b"*1\r\n$01\r\n", DecodeErrorKind::InvalidInteger, 6),
    ];
    for (wire, kind, at) in cases {
        let mut sc = CommandScanner::new(lim);
        let e = sc.scan(wire).unwrap_err();
        assert_eq!(
            (e.kind(), e.offset()),
            (&kind, at),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    // The whole command must fit max_buffered, checked from its headers alone.
    let mut sc = CommandScanner::new(Limits {
        max_buffered: 20,
        ..lim
    });
    let e = sc.scan(b"*2\r\n$4\r\nabcd\r\n$4\r\n").unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::BufferLimit { max: 20 });
    assert_eq!(e.offset(), 15);
    // Count zero or negative: an empty command.
    sc.reset();
    assert_eq!(sc.scan(b"*0\r\n").unwrap(), Some(4));
    assert_eq!(sc.argc(), 0);
    assert_eq!(sc.scan(b"*-1\r\n").unwrap(), Some(5));
    // A payload in flight: needed() says how long the buffer must get.
    let wire = b"*1\r\n$4\r\nab";
    assert_eq!(sc.scan(wire).unwrap(), None);
    assert!(sc.in_progress());
    assert_eq!(sc.needed(), Some(14));
    assert_eq!(sc.scan(b"*1\r\n$4\r\nabcd\r\n").unwrap(), Some(14));
    assert!(!sc.in_progress());
}
