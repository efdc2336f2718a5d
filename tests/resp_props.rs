//! Property tests for the RESP codec: round trips, split invariance, garbage never panics.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use respsync::resp::{
    command_len, encode, encode_command, encoded_len, DecodeError, Decoder, Frame, Limits,
};

fn line_bytes() -> impl Strategy<Value = Bytes> {
    // Simple strings and errors: any bytes but \r and \n.
    proptest::collection::vec(
        any::<u8>().prop_filter("no cr/lf", |b| *b != b'\r' && *b != b'\n'),
        0..20,
    )
    .prop_map(Bytes::from)
}

fn blob() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from),
        // Payloads full of protocol bytes.
        proptest::collection::vec(
            prop::sample::select(b"\r\n*$:+-_#,(!=%~|>0123456789".to_vec()),
            0..20
        )
        .prop_map(Bytes::from),
    ]
}

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(0.0),
        Just(-0.0),
        (-1000i32..1000).prop_map(f64::from),
    ]
}

fn leaf() -> impl Strategy<Value = Frame> {
    prop_oneof![
        line_bytes().prop_map(Frame::SimpleString),
        line_bytes().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        blob().prop_map(Frame::BulkString),
        Just(Frame::NullBulk),
        Just(Frame::NullArray),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        double().prop_map(Frame::Double),
        ("-?[0-9]{1,60}").prop_map(|s| Frame::BigNumber(Bytes::from(s))),
        blob().prop_map(Frame::BulkError),
        (any::<[u8; 3]>(), blob()).prop_map(|(format, text)| Frame::Verbatim { format, text }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        let pairs = proptest::collection::vec((inner.clone(), inner.clone()), 0..4);
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            pairs.clone().prop_map(Frame::Map),
            (pairs, inner).prop_map(|(attrs, v)| Frame::Attribute {
                attrs,
                value: Box::new(v)
            }),
        ]
    })
}

type Outcome<T> = (Vec<(T, usize)>, Option<DecodeError>);

/// Feeds `wire` to `step` in the chunks given by `cuts` (sorted split points), draining after
/// each chunk; returns every item with its consumed count and the error that stopped it.
fn run_chunks<T: std::fmt::Debug>(
    wire: &[u8],
    cuts: &[usize],
    mut step: impl FnMut(&mut Decoder, &mut BytesMut) -> Result<Option<(T, usize)>, DecodeError>,
    limits: Limits,
) -> Outcome<T> {
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut prev = 0;
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c <= wire.len()).collect();
    bounds.sort_unstable();
    bounds.push(wire.len());
    for cut in bounds {
        buf.extend_from_slice(&wire[prev..cut]);
        prev = cut;
        loop {
            let before = buf.len();
            match step(&mut dec, &mut buf) {
                Ok(Some((item, consumed))) => {
                    assert_eq!(before - buf.len(), consumed, "consumed must match removal");
                    out.push((item, consumed));
                }
                Ok(None) => {
                    assert_eq!(before, buf.len(), "need-more must not consume");
                    break;
                }
                Err(e) => {
                    // Sticky.
                    assert_eq!(step(&mut dec, &mut buf).unwrap_err(), e);
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}

fn frames(dec: &mut Decoder, buf: &mut BytesMut) -> Result<Option<(Frame, usize)>, DecodeError> {
    Ok(dec.decode(buf)?.map(|d| (d.frame, d.consumed)))
}

fn commands(
    dec: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Option<(Vec<Bytes>, usize)>, DecodeError> {
    Ok(dec.decode_command(buf)?.map(|c| (c.argv, c.consumed)))
}

fn requests(
    dec: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Option<(Vec<Bytes>, usize)>, DecodeError> {
    Ok(dec.decode_request(buf)?.map(|c| (c.argv, c.consumed)))
}

fn inline(
    dec: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Option<(Vec<Bytes>, usize)>, DecodeError> {
    Ok(dec.decode_inline(buf)?.map(|c| (c.argv, c.consumed)))
}

/// Quotes an argument the way `redis-cli` prints it, which `sdssplitargs` reads back.
fn quote(arg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    respsync::resp::quote_arg(arg, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frame_round_trip(f in frame()) {
        let mut wire = BytesMut::new();
        encode(&f, &mut wire);
        prop_assert_eq!(encoded_len(&f), wire.len());
        let len = wire.len();
        let mut dec = Decoder::default();
        let d = dec.decode(&mut wire).unwrap().expect("complete");
        prop_assert_eq!(d.frame, f);
        prop_assert_eq!(d.consumed, len);
        prop_assert!(wire.is_empty());
    }

    #[test]
    fn frames_split_anywhere(fs in proptest::collection::vec(frame(), 1..5),
                             cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut wire = BytesMut::new();
        for f in &fs {
            encode(f, &mut wire);
        }
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        let whole = run_chunks(&wire, &[], frames, Limits::default());
        let split = run_chunks(&wire, &cuts, frames, Limits::default());
        prop_assert!(whole.1.is_none());
        prop_assert_eq!(whole.0.iter().map(|x| x.0.clone()).collect::<Vec<_>>(), fs);
        prop_assert_eq!(&split.0, &whole.0);
        prop_assert_eq!(split.1, whole.1);
    }

    #[test]
    fn frames_byte_by_byte(f in frame()) {
        let mut wire = BytesMut::new();
        encode(&f, &mut wire);
        let cuts: Vec<usize> = (0..wire.len()).collect();
        let split = run_chunks(&wire, &cuts, frames, Limits::default());
        prop_assert_eq!(split.1, None);
        prop_assert_eq!(split.0, vec![(f, wire.len())]);
    }

    #[test]
    fn commands_round_trip_split(argvs in proptest::collection::vec(
                                    proptest::collection::vec(blob(), 0..6), 1..6),
                                 cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        for a in &argvs {
            encode_command(a, &mut wire);
            want.push((a.clone(), command_len(a)));
        }
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        let split = run_chunks(&wire, &cuts, commands, Limits::default());
        prop_assert_eq!(split.1, None);
        prop_assert_eq!(&split.0, &want);
        let req = run_chunks(&wire, &cuts, requests, Limits::default());
        prop_assert_eq!(req.0, want);
    }

    #[test]
    fn inline_round_trip_split(argvs in proptest::collection::vec(
                                  proptest::collection::vec(blob(), 1..5), 1..4),
                               crlf in any::<bool>(),
                               cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for a in &argvs {
            let start = wire.len();
            for (i, arg) in a.iter().enumerate() {
                if i > 0 {
                    wire.push(b' ');
                }
                wire.extend_from_slice(&quote(arg));
            }
            wire.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            want.push((a.clone(), wire.len() - start));
        }
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        let split = run_chunks(&wire, &cuts, inline, Limits::default());
        prop_assert_eq!(split.1, None);
        prop_assert_eq!(split.0, want);
    }

    #[test]
    fn integer_lines_follow_string2ll(digits in "-?[0-9]{1,25}", split in any::<prop::sample::Index>()) {
        // Redis's string2ll: no leading zero (except "0" itself), no "-0", must fit in i64.
        let canonical = {
            let d = digits.strip_prefix('-').unwrap_or(&digits);
            (d == "0" && !digits.starts_with('-')) || !d.starts_with('0')
        };
        let want = if canonical { digits.parse::<i64>().ok() } else { None };
        let wire = format!(":{digits}\r\n${digits}\r\n");
        let cut = split.index(wire.len() + 1);
        let (items, err) = run_chunks(wire.as_bytes(), &[cut], frames, Limits::default());
        match want {
            Some(v) => {
                prop_assert_eq!(items[0].0.clone(), Frame::Integer(v));
                prop_assert_eq!(items[0].1, digits.len() + 3);
                if v >= 0 {
                    // A bulk of that length: need more data, never an error or a panic.
                    prop_assert_eq!(err.is_some(), v > 512 << 20);
                }
            }
            None => {
                prop_assert!(items.is_empty());
                prop_assert!(err.is_some());
            }
        }
    }

    #[test]
    fn garbage_same_result_whole_and_split(
        wire in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(prop::sample::select(b"\r\n*$:+-_#,(!=%~|>0123456789tfEOFinal ".to_vec()), 0..200),
        ],
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10)) {
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        prop_assert_eq!(run_chunks(&wire, &cuts, frames, Limits::default()),
                        run_chunks(&wire, &[], frames, Limits::default()));
        prop_assert_eq!(run_chunks(&wire, &cuts, commands, Limits::default()),
                        run_chunks(&wire, &[], commands, Limits::default()));
        prop_assert_eq!(run_chunks(&wire, &cuts, requests, Limits::default()),
                        run_chunks(&wire, &[], requests, Limits::default()));
        // Tiny limits: still no panic, consumed accounting checked inside run_chunks.
        let tiny = Limits { max_bulk_len: 8, max_array_len: 3, max_inline_len: 10, max_depth: 2, max_buffered: 40 };
        let _ = run_chunks(&wire, &cuts, frames, tiny);
        let _ = run_chunks(&wire, &cuts, requests, tiny);
    }
}
