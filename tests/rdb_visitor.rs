//! `Parser::parse_with`: over the whole corpus, a visitor sees exactly the events
//! `poll_event` returns, through the default callbacks and through borrowed ones, under any
//! chunking; the two APIs can be mixed; big values stay in bounded memory.

mod support;

use bytes::Bytes;
use proptest::prelude::*;
use respsync::rdb::encoding::crc64::crc64;
use respsync::rdb::{KeyRef, Parser, ParserConfig, RawRef, RdbError, RdbEvent, Visitor};
use support::corpus::*;

/// Uses only the default callbacks.
#[derive(Default)]
struct Events(Vec<RdbEvent>);

impl Visitor for Events {
    fn event(&mut self, event: RdbEvent) {
        self.0.push(event);
    }
}

/// Overrides every borrowed callback and builds the events itself.
#[derive(Default)]
struct Borrowed(Vec<RdbEvent>);

impl Visitor for Borrowed {
    fn event(&mut self, event: RdbEvent) {
        assert!(
            !matches!(
                event,
                RdbEvent::KeyStart(_)
                    | RdbEvent::StringChunk(_)
                    | RdbEvent::Element(_)
                    | RdbEvent::ZsetMember { .. }
                    | RdbEvent::HashField { .. }
                    | RdbEvent::KeyEnd
            ),
            "{event:?} should have come through its borrowed callback"
        );
        self.0.push(event);
    }
    fn key_start(&mut self, key: KeyRef<'_>) {
        self.0.push(RdbEvent::KeyStart(key.to_key_info()));
    }
    fn string_chunk(&mut self, data: &[u8]) {
        self.0
            .push(RdbEvent::StringChunk(Bytes::copy_from_slice(data)));
    }
    fn element(&mut self, element: &[u8]) {
        self.0
            .push(RdbEvent::Element(Bytes::copy_from_slice(element)));
    }
    fn zset_member(&mut self, member: &[u8], score: f64) {
        self.0.push(RdbEvent::ZsetMember {
            member: Bytes::copy_from_slice(member),
            score,
        });
    }
    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        self.0.push(RdbEvent::HashField {
            field: Bytes::copy_from_slice(field),
            value: Bytes::copy_from_slice(value),
            expire_ms,
        });
    }
    fn key_end(&mut self) {
        self.0.push(RdbEvent::KeyEnd);
    }
}

/// Lazy values on: decodes each raw value in place through the borrowed callbacks, and
/// keeps the first decode error (what the eager parse would have stopped with).
#[derive(Default)]
struct Lazy(Borrowed, Option<RdbError>);

impl Visitor for Lazy {
    fn event(&mut self, event: RdbEvent) {
        if self.1.is_none() {
            assert!(!matches!(event, RdbEvent::Raw(_)), "raw_value not called");
            self.0.event(event);
        }
    }
    fn key_start(&mut self, key: KeyRef<'_>) {
        if self.1.is_none() {
            self.0.key_start(key);
        }
    }
    fn string_chunk(&mut self, data: &[u8]) {
        if self.1.is_none() {
            self.0.string_chunk(data);
        }
    }
    fn element(&mut self, element: &[u8]) {
        if self.1.is_none() {
            self.0.element(element);
        }
    }
    fn zset_member(&mut self, member: &[u8], score: f64) {
        if self.1.is_none() {
            self.0.zset_member(member, score);
        }
    }
    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        if self.1.is_none() {
            self.0.hash_field(field, value, expire_ms);
        }
    }
    fn raw_value(&mut self, value: RawRef<'_>) {
        if self.1.is_none() {
            if let Err(e) = value.decode(&mut self.0) {
                self.1 = Some(e);
            }
        }
    }
    fn key_end(&mut self) {
        if self.1.is_none() {
            self.0.key_end();
        }
    }
}

trait Collect: Visitor + Default {
    fn into_events(self) -> Vec<RdbEvent>;
    /// The first error the visitor itself found, if any (it comes before the parser's).
    fn error(&self) -> Option<RdbError> {
        None
    }
    fn config() -> ParserConfig {
        ParserConfig::default()
    }
}
impl Collect for Lazy {
    fn into_events(self) -> Vec<RdbEvent> {
        self.0 .0
    }
    fn error(&self) -> Option<RdbError> {
        self.1.clone()
    }
    fn config() -> ParserConfig {
        let mut c = ParserConfig::default();
        c.lazy_values(true);
        c
    }
}

/// The visitor's result: its own error first, else the parser's.
fn result<V: Collect>(v: V, parser_err: Option<RdbError>) -> (Vec<RdbEvent>, Option<RdbError>) {
    let err = v.error().or(parser_err);
    (v.into_events(), err)
}
impl Collect for Events {
    fn into_events(self) -> Vec<RdbEvent> {
        self.0
    }
}
impl Collect for Borrowed {
    fn into_events(self) -> Vec<RdbEvent> {
        self.0
    }
}

/// Feeds `data` in pieces of the given sizes (cycled) through `parse_with`.
fn visit_chunked<V: Collect>(data: &[u8], sizes: &[usize]) -> (Vec<RdbEvent>, Option<RdbError>) {
    let mut parser = Parser::new(V::config());
    let mut v = V::default();
    let (mut pos, mut i) = (0, 0);
    loop {
        if pos < data.len() {
            let n = sizes[i % sizes.len()].max(1).min(data.len() - pos);
            i += 1;
            parser.push(&data[pos..pos + n]);
            pos += n;
        } else {
            parser.finish();
        }
        if let Err(e) = parser.parse_with(&mut v) {
            // Sticky: asking again gives the same error.
            assert_eq!(parser.parse_with(&mut v).unwrap_err(), e);
            return result(v, Some(e));
        }
        if pos >= data.len() && parser.is_done() {
            return result(v, None);
        }
    }
}

/// Feeds `data` in pieces of the given sizes (cycled) through `feed_with` (no copy when
/// nothing is buffered).
fn feed_chunked<V: Collect>(data: &[u8], sizes: &[usize]) -> (Vec<RdbEvent>, Option<RdbError>) {
    let mut parser = Parser::new(V::config());
    let mut v = V::default();
    let (mut pos, mut i) = (0, 0);
    while pos < data.len() {
        let n = sizes[i % sizes.len()].max(1).min(data.len() - pos);
        i += 1;
        let r = parser.feed_with(&data[pos..pos + n], &mut v);
        pos += n;
        if let Err(e) = r {
            assert_eq!(parser.parse_with(&mut v).unwrap_err(), e);
            return result(v, Some(e));
        }
        // Unparsed input is kept, as with `push`.
        assert_eq!(parser.offset() as usize + parser.buffered(), pos);
    }
    parser.finish();
    match parser.parse_with(&mut v) {
        Err(e) => result(v, Some(e)),
        Ok(()) => {
            assert!(parser.is_done());
            assert_eq!(
                parser.offset() as usize + parser.remaining().len(),
                data.len()
            );
            result(v, None)
        }
    }
}

fn load() -> &'static [(String, Vec<u8>)] {
    static FILES: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        corpus_files()
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    })
}

#[test]
fn visitor_sees_the_event_stream_for_every_corpus_file() {
    let files = load();
    assert!(files.len() > 200, "corpus not found");
    for (name, data) in files {
        let want = parse_whole(data);
        assert_eq!(
            visit_chunked::<Events>(data, &[usize::MAX]),
            want,
            "{name}: whole"
        );
        assert_eq!(
            visit_chunked::<Borrowed>(data, &[usize::MAX]),
            want,
            "{name}: whole, borrowed"
        );
        assert_eq!(
            visit_chunked::<Borrowed>(data, &[1]),
            want,
            "{name}: 1 byte at a time, borrowed"
        );
        assert_eq!(
            visit_chunked::<Events>(data, &[3, 1, 4096, 7]),
            want,
            "{name}: mixed pieces"
        );
        assert_eq!(
            feed_chunked::<Borrowed>(data, &[usize::MAX]),
            want,
            "{name}: fed whole"
        );
        assert_eq!(
            feed_chunked::<Borrowed>(data, &[1]),
            want,
            "{name}: fed 1 byte at a time"
        );
        assert_eq!(
            feed_chunked::<Lazy>(data, &[usize::MAX]),
            want,
            "{name}: fed whole, lazy values decoded"
        );
        assert_eq!(
            visit_chunked::<Lazy>(data, &[1]),
            want,
            "{name}: 1 byte at a time, lazy values decoded"
        );
        assert_eq!(
            feed_chunked::<Events>(data, &[3, 1, 4096, 7, 100]),
            want,
            "{name}: fed mixed pieces"
        );
    }
}

#[test]
fn truncated_files_give_the_same_error() {
    for (name, data) in load() {
        for cut in [data.len() / 3, data.len() / 2, data.len().saturating_sub(1)] {
            let part = &data[..cut];
            let want = parse_whole(part);
            assert_eq!(
                visit_chunked::<Borrowed>(part, &[usize::MAX]),
                want,
                "{name}"
            );
            assert_eq!(
                feed_chunked::<Borrowed>(part, &[usize::MAX]),
                want,
                "{name}"
            );
            assert_eq!(feed_chunked::<Borrowed>(part, &[777]), want, "{name}");
            assert_eq!(feed_chunked::<Lazy>(part, &[777]), want, "{name}: lazy");
        }
    }
}

#[test]
fn poll_event_and_parse_with_mix() {
    for (name, data) in load() {
        let (want, err) = parse_whole(data);
        if err.is_some() {
            continue;
        }
        // Take the first few events by polling, then the rest through a visitor.
        let mut parser = Parser::new(ParserConfig::default());
        parser.push(data);
        parser.finish();
        let mut got = Vec::new();
        for _ in 0..3 {
            if let Some(ev) = parser.poll_event().unwrap() {
                got.push(ev);
            }
        }
        let mut v = Events::default();
        parser.parse_with(&mut v).unwrap();
        got.extend(v.0);
        assert!(parser.is_done(), "{name}");
        assert!(parser.poll_event().unwrap().is_none());
        assert_eq!(got, want, "{name}");
    }
}

/// A version 9 file with a checksum: `records` between the header and EOF.
fn file_v9(records: &[u8]) -> Vec<u8> {
    let mut f = b"REDIS0009".to_vec();
    f.extend_from_slice(records);
    f.push(0xff);
    let crc = crc64(0, &f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

#[derive(Default)]
struct Totals {
    keys: usize,
    string_bytes: usize,
    max_chunk: usize,
    elements: usize,
    end: bool,
}

impl Visitor for Totals {
    fn event(&mut self, event: RdbEvent) {
        self.end |= matches!(event, RdbEvent::End { .. });
    }
    fn key_start(&mut self, _key: KeyRef<'_>) {
        self.keys += 1;
    }
    fn string_chunk(&mut self, data: &[u8]) {
        self.string_bytes += data.len();
        self.max_chunk = self.max_chunk.max(data.len());
    }
    fn element(&mut self, _element: &[u8]) {
        self.elements += 1;
    }
}

#[test]
fn big_values_stream_through_a_visitor_in_bounded_memory() {
    // A 24 MiB raw string, an LZF string of 1 MiB zeros, and a 100 000-element list.
    let big = 24usize << 20;
    let mut rec = vec![0u8];
    put_str(&mut rec, b"s");
    put_len(&mut rec, big as u64);
    rec.resize(rec.len() + big, b'z');
    let mut packed = Vec::new();
    assert!(respsync::rdb::encoding::lzf::compress(
        &vec![0u8; 1 << 20],
        &mut packed
    ));
    rec.push(0);
    put_str(&mut rec, b"z");
    rec.push(0xC3);
    put_len(&mut rec, packed.len() as u64);
    put_len(&mut rec, 1 << 20);
    rec.extend_from_slice(&packed);
    rec.push(1);
    put_str(&mut rec, b"l");
    put_len(&mut rec, 100_000);
    for i in 0..100_000u32 {
        put_str(&mut rec, format!("element-{i}").as_bytes());
    }
    let file = file_v9(&rec);
    for feed in [false, true] {
        let mut p = Parser::new(ParserConfig::default());
        let mut t = Totals::default();
        let mut max_buffered = 0;
        for piece in file.chunks(64 << 10) {
            if feed {
                p.feed_with(piece, &mut t).unwrap();
            } else {
                p.push(piece);
                max_buffered = max_buffered.max(p.buffered());
                p.parse_with(&mut t).unwrap();
            }
            max_buffered = max_buffered.max(p.buffered());
        }
        p.finish();
        p.parse_with(&mut t).unwrap();
        assert!(p.is_done() && t.end);
        assert_eq!(t.keys, 3);
        assert_eq!(t.string_bytes, big + (1 << 20));
        assert_eq!(t.max_chunk, 64 << 10);
        assert_eq!(t.elements, 100_000);
        assert!(max_buffered <= 2 * (64 << 10), "buffered {max_buffered}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_split_points(file_idx in 0usize..1000, cuts in proptest::collection::vec(0usize..1 << 20, 0..12)) {
        let files = load();
        let (name, data) = &files[file_idx % files.len()];
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort();
        let mut sizes = Vec::new();
        let mut last = 0;
        for c in cuts { sizes.push((c - last).max(1)); last = c; }
        sizes.push(usize::MAX);
        let want = parse_whole(data);
        prop_assert_eq!(&visit_chunked::<Borrowed>(data, &sizes), &want, "{}", name);
        prop_assert_eq!(&feed_chunked::<Borrowed>(data, &sizes), &want, "{}", name);
        prop_assert_eq!(&feed_chunked::<Lazy>(data, &sizes), &want, "{} (lazy)", name);
    }
}
