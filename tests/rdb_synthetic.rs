//! Hand-built files for what no corpus file covers, plus limits, memory bounds, errors.

mod support;

use respsync::rdb::encoding::crc64::crc64;
use respsync::rdb::encoding::listpack::ListpackBuilder;
use respsync::rdb::{
    Checksum, Collector, ContainerKind, Expiry, Limit, Magic, ObjectKind, Parser, ParserConfig,
    RdbError, RdbEvent, Value,
};
use support::corpus::parse_chunked;

/// A tiny RDB writer for tests.
struct Rdb {
    b: Vec<u8>,
    version: u32,
}

impl Rdb {
    fn new(version: u32) -> Self {
        Rdb {
            b: format!("REDIS{version:04}").into_bytes(),
            version,
        }
    }
    fn op(mut self, b: u8) -> Self {
        self.b.push(b);
        self
    }
    fn raw(mut self, data: &[u8]) -> Self {
        self.b.extend_from_slice(data);
        self
    }
    fn len(mut self, n: u64) -> Self {
        if n < 64 {
            self.b.push(n as u8);
        } else if n < 16384 {
            self.b.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
        } else if n <= u64::from(u32::MAX) {
            self.b.push(0x80);
            self.b.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.b.push(0x81);
            self.b.extend_from_slice(&n.to_be_bytes());
        }
        self
    }
    fn str(self, s: &[u8]) -> Self {
        self.len(s.len() as u64).raw(s)
    }
    fn finish(mut self) -> Vec<u8> {
        self.b.push(0xFF);
        if self.version >= 5 {
            let crc = crc64(0, &self.b);
            self.b.extend_from_slice(&crc.to_le_bytes());
        }
        self.b
    }
}

fn parse(data: &[u8]) -> Result<Vec<RdbEvent>, RdbError> {
    match parse_chunked(data, &[usize::MAX], &ParserConfig::default()) {
        (events, None) => {
            // And byte by byte, identically.
            let (bytewise, e) = parse_chunked(data, &[1], &ParserConfig::default());
            assert_eq!(e, None);
            assert_eq!(bytewise, events);
            Ok(events)
        }
        (_, Some(e)) => Err(e),
    }
}

fn keys(data: &[u8]) -> Vec<(Vec<u8>, Value, Option<Expiry>)> {
    let mut c = Collector::new(u64::MAX);
    parse(data)
        .unwrap()
        .into_iter()
        .filter_map(|ev| c.handle_event(ev).unwrap())
        .map(|(i, v)| (i.key.to_vec(), v, i.expire))
        .collect()
}

fn list_of(items: &[&str]) -> Value {
    Value::List(items.iter().map(|s| s.as_bytes().to_vec().into()).collect())
}

#[test]
fn expiretime_in_seconds_applies_to_the_next_key_only() {
    let file = Rdb::new(2)
        .op(0xFD)
        .raw(&1_700_000_000i32.to_le_bytes())
        .op(0)
        .str(b"a")
        .str(b"1")
        .op(0)
        .str(b"b")
        .str(b"2")
        .finish();
    let k = keys(&file);
    assert_eq!(k[0].2, Some(Expiry::Seconds(1_700_000_000)));
    assert_eq!(k[0].2.unwrap().as_millis(), 1_700_000_000_000);
    assert_eq!(k[1].2, None);
}

#[test]
fn ziplist_five_byte_prevlen_holding_a_small_value() {
    // ["a", "b"], the second entry's prevlen (3) written in the 5-byte form.
    let e1 = [0x00, 0x01, b'a'];
    let e2 = [0xFE, 3, 0, 0, 0, 0x01, b'b'];
    let total = 10 + e1.len() + e2.len() + 1;
    let mut zl = Vec::new();
    zl.extend_from_slice(&(total as u32).to_le_bytes());
    zl.extend_from_slice(&(10 + e1.len() as u32).to_le_bytes());
    zl.extend_from_slice(&2u16.to_le_bytes());
    zl.extend_from_slice(&e1);
    zl.extend_from_slice(&e2);
    zl.push(0xFF);
    let file = Rdb::new(6).op(10).str(b"l").str(&zl).finish();
    assert_eq!(keys(&file)[0].1, list_of(&["a", "b"]));
    // The same with zllen = 65535 ("unknown, count them").
    let mut unknown = zl.clone();
    unknown[8] = 0xFF;
    unknown[9] = 0xFF;
    let file = Rdb::new(6).op(10).str(b"l").str(&unknown).finish();
    assert_eq!(keys(&file)[0].1, list_of(&["a", "b"]));
    // A wrong count is a container error pointing into the file.
    let mut wrong = zl.clone();
    wrong[8] = 3;
    let file = Rdb::new(6).op(10).str(b"l").str(&wrong).finish();
    assert!(matches!(
        parse(&file),
        Err(RdbError::Container {
            container: ContainerKind::Ziplist,
            ..
        })
    ));
}

#[test]
fn listpack_unknown_count_and_four_byte_backlen() {
    let big = vec![b'x'; 3 << 20]; // encoded size > 2097150: a 4-byte backlen
    let mut lp = ListpackBuilder::new();
    lp.push(b"small");
    lp.push(&big);
    lp.push_int(-5);
    let mut blob = lp.finish();
    let file = Rdb::new(11).op(20).str(b"s").str(&blob).finish();
    let k = keys(&file);
    assert_eq!(
        k[0].1,
        Value::Set(vec!["small".into(), big.clone().into(), "-5".into()])
    );
    blob[4] = 0xFF;
    blob[5] = 0xFF;
    let file = Rdb::new(11).op(20).str(b"s").str(&blob).finish();
    assert_eq!(keys(&file)[0].1.len(), 3);
}

fn lzf_string(key: &[u8], compressed: &[u8], ulen: u64) -> Vec<u8> {
    Rdb::new(9)
        .op(0)
        .str(key)
        .op(0xC3)
        .len(compressed.len() as u64)
        .len(ulen)
        .raw(compressed)
        .finish()
}

#[test]
fn lzf_edge_cases() {
    // Literal "a", then a back-reference of 9 bytes at distance 1 (overlapping copy).
    let run = [0x00, b'a', 0xE0, 0x00, 0x00];
    let k = keys(&lzf_string(b"k", &run, 10));
    assert_eq!(k[0].1, Value::String(vec![b'a'; 10].into()));
    // Declared length longer or shorter than the output.
    for ulen in [9, 11] {
        assert!(matches!(
            parse(&lzf_string(b"k", &run, ulen)),
            Err(RdbError::Container {
                container: ContainerKind::Lzf,
                ..
            })
        ));
    }
    // A back-reference before the start of the output.
    assert!(matches!(
        parse(&lzf_string(b"k", &[0x00, b'a', 0x20, 0x05], 4)),
        Err(RdbError::Container { .. })
    ));
    // A literal run cut short.
    assert!(parse(&lzf_string(b"k", &[0x05, b'a', b'b'], 6)).is_err());
    // Declared length over the limit: refused before anything is allocated.
    let mut cfg = ParserConfig::default();
    cfg.max_string_len(100);
    let (_, e) = parse_chunked(&lzf_string(b"k", &run, 1000), &[usize::MAX], &cfg);
    assert!(matches!(
        e,
        Some(RdbError::LimitExceeded {
            limit: Limit::StringLen,
            len: 1000,
            ..
        })
    ));
}

#[test]
fn non_minimal_lengths_and_int_encodings() {
    let mut file = Rdb::new(9).op(0);
    // Key "abc" with a 5-byte length, value "xy" with a 9-byte length.
    file = file.raw(&[0x80, 0, 0, 0, 3]).raw(b"abc");
    file = file.raw(&[0x81, 0, 0, 0, 0, 0, 0, 0, 2]).raw(b"xy");
    // INT8/16/32 keys and values.
    file = file.op(0).raw(&[0xC0, 0x80]).raw(&[0xC1, 0x30, 0x75]);
    file = file.op(0).raw(&[0xC2, 0xFF, 0xFF, 0xFF, 0x7F]).str(b"v");
    let k = keys(&file.finish());
    assert_eq!(k[0].0, b"abc");
    assert_eq!(k[0].1, Value::String("xy".into()));
    assert_eq!(k[1].0, b"-128");
    assert_eq!(k[1].1, Value::String("30000".into()));
    assert_eq!(k[2].0, b"2147483647");
}

#[test]
fn unknown_types_and_opcodes_name_byte_and_offset() {
    let file = Rdb::new(9)
        .op(0)
        .str(b"a")
        .str(b"b")
        .op(8)
        .str(b"k")
        .finish();
    assert_eq!(
        parse(&file),
        Err(RdbError::UnknownType {
            type_byte: 8,
            offset: 14
        })
    );
    let file = Rdb::new(9).op(0xF2).finish();
    assert_eq!(
        parse(&file),
        Err(RdbError::UnknownType {
            type_byte: 0xF2,
            offset: 9
        })
    );
    let file = Rdb::new(9).op(6).str(b"k").finish();
    assert_eq!(parse(&file), Err(RdbError::ModulePreGa { offset: 9 }));
    let file = Rdb::new(9).op(0).raw(&[0xC5]).finish();
    assert_eq!(
        parse(&file),
        Err(RdbError::InvalidStringEncoding {
            byte: 0xC5,
            offset: 10
        })
    );
    let file = Rdb::new(9).op(0xFE).raw(&[0x85]).finish();
    assert_eq!(
        parse(&file),
        Err(RdbError::InvalidLength {
            byte: 0x85,
            offset: 10
        })
    );
    assert_eq!(parse(b"REDIX0009\xff"), Err(RdbError::BadMagic));
    assert_eq!(
        parse(b"REDIS0000\xff"),
        Err(RdbError::UnsupportedVersion {
            version: 0,
            magic: Magic::Redis,
            newest: 13
        })
    );
}

#[test]
fn versions_newer_than_known_are_refused_unless_allowed() {
    // The newest known versions parse; one more is a typed error at offset 0, per magic.
    let ok = Rdb::new(13).op(0).str(b"k").str(b"v").finish();
    assert!(parse(&ok).is_ok());
    let mut newer = ok.clone();
    newer[..9].copy_from_slice(b"REDIS0014");
    let err = parse(&newer).unwrap_err();
    assert_eq!(
        err,
        RdbError::UnsupportedVersion {
            version: 14,
            magic: Magic::Redis,
            newest: 13
        }
    );
    assert_eq!(err.offset(), Some(0));
    assert!(err.to_string().contains("14"), "{err}");
    for (head, version, magic, newest) in [
        (&b"REDIS9999"[..], 9999, Magic::Redis, 13),
        (b"VALKEY081", 81, Magic::Valkey, 80),
        (b"VALKEY999", 999, Magic::Valkey, 80),
    ] {
        let mut file = head.to_vec();
        file.push(0xff);
        assert_eq!(
            parse(&file),
            Err(RdbError::UnsupportedVersion {
                version,
                magic,
                newest
            })
        );
    }
    assert!(parse(b"VALKEY080\xff\0\0\0\0\0\0\0\0").is_ok());
    // "Try anyway": the same file parses (its checksum still has to be right: recompute).
    let mut config = ParserConfig::default();
    config.allow_newer_versions(true);
    let body = &newer[..newer.len() - 8];
    let mut fixed = body.to_vec();
    fixed.extend_from_slice(&crc64(0, body).to_le_bytes());
    let mut parser = Parser::new(config);
    parser.push(&fixed);
    parser.finish();
    let mut events = Vec::new();
    while let Some(ev) = parser.poll_event().unwrap() {
        events.push(ev);
    }
    assert!(parser.is_done());
    assert_eq!(
        events[0],
        RdbEvent::Header {
            magic: Magic::Redis,
            version: 14
        }
    );
}

#[test]
fn checksum_outcomes() {
    let good = Rdb::new(9).op(0).str(b"k").str(b"v").finish();
    let end = |ev: Vec<RdbEvent>| match ev.last() {
        Some(RdbEvent::End { checksum }) => *checksum,
        other => panic!("{other:?}"),
    };
    assert!(matches!(end(parse(&good).unwrap()), Checksum::Verified(_)));
    let mut zero = good.clone();
    let n = zero.len();
    zero[n - 8..].fill(0);
    assert_eq!(end(parse(&zero).unwrap()), Checksum::Disabled);
    let mut bad = good.clone();
    bad[n - 1] ^= 0x40;
    assert!(matches!(
        parse(&bad),
        Err(RdbError::ChecksumMismatch { offset, .. }) if offset == (n - 8) as u64
    ));
    let mut cfg = ParserConfig::default();
    cfg.danger_skip_checksum(true);
    let (ev, e) = parse_chunked(&bad, &[3], &cfg);
    assert_eq!(e, None);
    assert!(matches!(end(ev), Checksum::Skipped(_)));
    let v3 = Rdb::new(3).op(0).str(b"k").str(b"v").finish();
    assert_eq!(end(parse(&v3).unwrap()), Checksum::Absent);
}

#[test]
fn errors_are_sticky_and_trailing_bytes_are_returned() {
    let mut p = Parser::new(ParserConfig::default());
    p.push(b"REDIS0009\x08");
    let e = loop {
        match p.poll_event() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error"),
            Err(e) => break e,
        }
    };
    p.push(b"more");
    assert_eq!(p.poll_event(), Err(e));

    let mut file = Rdb::new(9).op(0).str(b"k").str(b"v").finish();
    file.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let mut p = Parser::new(ParserConfig::default());
    p.push(&file);
    while p.poll_event().unwrap().is_some() {}
    assert!(p.is_done());
    assert_eq!(p.remaining(), b"*1\r\n$4\r\nPING\r\n");
}

#[test]
fn limits_fail_before_buffering() {
    let mut cfg = ParserConfig::default();
    cfg.max_string_len(1000)
        .max_blob_len(50)
        .max_collection_len(10);
    let check = |head: Vec<u8>, want: Limit| {
        let mut p = Parser::new(cfg.clone());
        p.push(&head);
        let err = loop {
            match p.poll_event() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("waiting for data instead of failing: {want:?}"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, RdbError::LimitExceeded { limit, .. } if limit == want));
    };
    // A 1 GiB list element, a 1 MiB string value, a 100-byte listpack, an 11-element set.
    check(
        Rdb::new(9).op(1).str(b"l").len(1).len(1 << 30).b,
        Limit::StringLen,
    );
    check(Rdb::new(9).op(0).str(b"s").len(1 << 20).b, Limit::StringLen);
    check(Rdb::new(9).op(16).str(b"h").len(100).b, Limit::BlobLen);
    check(Rdb::new(9).op(2).str(b"s").len(11).b, Limit::CollectionLen);
}

#[test]
fn big_values_stream_in_bounded_memory() {
    // A 40 MiB string and a 200 000-element list, fed in 64 KiB pieces: the parser's buffer
    // never holds more than a chunk plus one push.
    let big = 40usize << 20;
    let mut file = Rdb::new(9)
        .op(0)
        .str(b"s")
        .len(big as u64)
        .raw(&vec![b'z'; big])
        .op(1)
        .str(b"l")
        .len(200_000);
    for i in 0..200_000u32 {
        file = file.str(format!("element-{i}").as_bytes());
    }
    let head = file.finish();
    let mut p = Parser::new(ParserConfig::default());
    let (mut bytes, mut elements, mut max_buffered) = (0usize, 0usize, 0usize);
    for piece in head.chunks(64 << 10) {
        p.push(piece);
        max_buffered = max_buffered.max(p.buffered());
        while let Some(ev) = p.poll_event().unwrap() {
            match ev {
                RdbEvent::StringChunk(c) => bytes += c.len(),
                RdbEvent::Element(_) => elements += 1,
                _ => {}
            }
        }
    }
    p.finish();
    assert!(p.poll_event().unwrap().is_none() && p.is_done());
    assert_eq!((bytes, elements), (big, 200_000));
    assert!(max_buffered <= 2 * (64 << 10), "buffered {max_buffered}");
}

#[test]
fn hash_field_ttls_and_valkey_magic() {
    // Type 24: min expire 1000; ttl 0 = none; expireAt = ttl + min - 1.
    let file = Rdb::new(12)
        .op(24)
        .str(b"h")
        .raw(&1000i64.to_le_bytes())
        .len(2)
        .len(0)
        .str(b"f1")
        .str(b"v1")
        .len(6)
        .str(b"f2")
        .str(b"v2")
        .finish();
    match &keys(&file)[0].1 {
        Value::Hash(h) => {
            assert_eq!(h[0].expire_ms, None);
            assert_eq!(h[1].expire_ms, Some(1005));
        }
        other => panic!("{other:?}"),
    }
    // Type 22 means HASH_2 in a VALKEY file: field, value, i64 expiry (-1 = none).
    let mut v = b"VALKEY080".to_vec();
    v.push(22);
    v.extend_from_slice(b"\x01h\x01\x01f\x01v");
    v.extend_from_slice(&(-1i64).to_le_bytes());
    v.push(0xFF);
    let crc = crc64(0, &v);
    v.extend_from_slice(&crc.to_le_bytes());
    let ev = parse(&v).unwrap();
    assert!(matches!(&ev[1], RdbEvent::KeyStart(i) if i.kind == ObjectKind::HashValkey2));
    assert!(matches!(
        &ev[2],
        RdbEvent::HashField {
            expire_ms: None,
            ..
        }
    ));
}

#[test]
fn collector_enforces_its_limit() {
    let mut f = Rdb::new(9).op(1).str(b"l").len(100);
    for _ in 0..100 {
        f = f.str(&[b'x'; 100]);
    }
    let events = parse(&f.finish()).unwrap();
    let mut c = Collector::new(5000);
    let err = events
        .into_iter()
        .map(|ev| c.handle_event(ev))
        .find_map(Result::err)
        .unwrap();
    assert!(matches!(
        err,
        RdbError::LimitExceeded {
            limit: Limit::ValueSize,
            ..
        }
    ));
}

#[test]
fn redis_8_6_key_meta_and_stream_v4() {
    // KEY_META before a key: 2 classes, each a 4-byte spec and an opcode stream.
    let file = Rdb::new(13)
        .op(0xF3)
        .len(2)
        .raw(b"cls1")
        .raw(&[2, 7, 0]) // UINT 7, EOF
        .raw(b"cls2")
        .raw(&[5])
        .str(b"meta") // STRING "meta"
        .raw(&[0])
        .op(0)
        .str(b"k")
        .str(b"v")
        .finish();
    let ev = parse(&file).unwrap();
    let meta: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            RdbEvent::KeyMeta { class_spec } => Some(*class_spec),
            _ => None,
        })
        .collect();
    assert_eq!(meta, vec![*b"cls1", *b"cls2"]);
    assert_eq!(keys(&file)[0].1, Value::String("v".into()));
    // Opcode 243 is SLOT_IMPORT in a VALKEY file and unknown before RDB 13.
    let file = Rdb::new(12).op(0xF3).len(0).finish();
    assert!(matches!(
        parse(&file),
        Err(RdbError::UnsupportedOpcode { opcode: 0xF3, .. })
    ));

    // Stream type 26: a type 21 stream with no nodes and no groups, then the IDMP trailer
    // (duration, max entries, producers (pid, entries (iid, id ms, id seq)), added, dups).
    let file = Rdb::new(13)
        .op(26)
        .str(b"s")
        .len(0) // nodes
        .len(0) // length
        .len(5)
        .len(1) // last id
        .len(0)
        .len(0) // first id
        .len(0)
        .len(0) // max deleted id
        .len(3) // entries added
        .len(0) // groups
        .len(100)
        .len(50)
        .len(1)
        .str(b"producer")
        .len(1)
        .str(b"iid-1")
        .len(5)
        .len(1)
        .len(7)
        .len(2)
        .finish();
    let ev = parse(&file).unwrap();
    assert!(ev.contains(&RdbEvent::StreamIdmpProducer {
        pid: "producer".into(),
        entries: 1
    }));
    assert!(ev.contains(&RdbEvent::StreamIdmpStats {
        added: 7,
        duplicates: 2
    }));
    assert!(matches!(&keys(&file)[0].1, Value::Stream(s) if s.meta.entries_added == Some(3)));
}

#[test]
fn parser_is_send_and_events_stay_small() {
    fn assert_send<T: Send>() {}
    assert_send::<Parser>();
    assert_send::<Collector>();
    // 104 since `KeyInfo::len` (the stored item count) joined the key's fields.
    assert!(
        std::mem::size_of::<RdbEvent>() <= 104,
        "{}",
        std::mem::size_of::<RdbEvent>()
    );
}

#[test]
fn buffer_shrinks_after_a_big_item() {
    // A 16 MiB list element fed whole, then small pushes: the buffer gives the memory back.
    let big = vec![b'e'; 16 << 20];
    let file = Rdb::new(9)
        .op(1)
        .str(b"l")
        .len(1)
        .str(&big)
        .op(0)
        .str(b"k")
        .str(b"v")
        .finish();
    let split = file.len() - 12;
    let mut p = Parser::new(ParserConfig::default());
    p.push(&file[..split]);
    while p.poll_event().unwrap().is_some() {}
    for b in file[split..].chunks(3) {
        p.push(b);
        while p.poll_event().unwrap().is_some() {}
    }
    assert!(p.is_done());
    assert!(format!("{p:?}").contains("Done"));
}
