//! A visitor that borrows gets a whole parse with no allocation per key or element: a
//! counting global allocator (this test binary only, one test so nothing else allocates
//! meanwhile) counts the allocations of parsing 20 000 keys.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use respsync::rdb::encoding::crc64::crc64;
use respsync::rdb::encoding::lzf;
use respsync::rdb::{KeyRef, Parser, ParserConfig, RdbEvent, Visitor};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Default)]
struct Sums {
    keys: usize,
    bytes: usize,
    items: usize,
    other: usize,
}

impl Visitor for Sums {
    fn event(&mut self, _event: RdbEvent) {
        self.other += 1;
    }
    fn key_start(&mut self, key: KeyRef<'_>) {
        self.keys += 1;
        self.bytes += key.key.len();
    }
    fn string_chunk(&mut self, data: &[u8]) {
        self.bytes += data.len();
    }
    fn element(&mut self, e: &[u8]) {
        self.items += 1;
        self.bytes += e.len();
    }
    fn zset_member(&mut self, m: &[u8], _score: f64) {
        self.items += 1;
        self.bytes += m.len();
    }
    fn hash_field(&mut self, f: &[u8], v: &[u8], _expire_ms: Option<i64>) {
        self.items += 1;
        self.bytes += f.len() + v.len();
    }
    fn key_end(&mut self) {}
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    assert!(s.len() < 64);
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

#[test]
fn borrowed_visitor_allocates_nothing_per_key() {
    // 5 000 each of: raw strings, int-encoded strings, LZF strings (DEBUG POPULATE style:
    // text then zeros), and 3-element lists (plain encoding, one record per element).
    let mut f = b"REDIS0009\xfe\x00".to_vec();
    let mut want_bytes = 0;
    for i in 0..5000u32 {
        let key = format!("key:{i}");
        f.push(0);
        put_str(&mut f, key.as_bytes());
        put_str(&mut f, b"value");
        f.push(0);
        put_str(&mut f, format!("int:{i}").as_bytes());
        f.extend_from_slice(&[0xC1, (i & 0xff) as u8, 0x10]);
        let mut value = format!("value:{i}").into_bytes();
        value.resize(100, 0);
        let mut packed = Vec::new();
        assert!(lzf::compress(&value, &mut packed));
        f.push(0);
        put_str(&mut f, format!("lzf:{i}").as_bytes());
        f.push(0xC3);
        assert!(packed.len() < 64);
        f.push(packed.len() as u8);
        // 100 in the 14-bit length form.
        f.extend_from_slice(&[0x40, 100]);
        f.extend_from_slice(&packed);
        f.push(1);
        put_str(&mut f, format!("list:{i}").as_bytes());
        f.push(3);
        for e in [&b"a"[..], b"bb", b"ccc"] {
            put_str(&mut f, e);
        }
        let n = format!("{i}").len();
        want_bytes += (4 + n + 5) + (4 + n + 4) + (4 + n + 100) + (5 + n + 6);
    }
    f.push(0xff);
    let crc = crc64(0, &f);
    f.extend_from_slice(&crc.to_le_bytes());

    let mut parser = Parser::new(ParserConfig::default());
    let mut sums = Sums::default();
    let chunks: Vec<&[u8]> = f.chunks(64 << 10).collect();
    // The first chunk warms up the buffers (input buffer, LZF scratch).
    parser.push(chunks[0]);
    parser.parse_with(&mut sums).unwrap();
    let before = ALLOCS.load(Ordering::Relaxed);
    for piece in &chunks[1..] {
        parser.push(piece);
        parser.parse_with(&mut sums).unwrap();
    }
    parser.finish();
    parser.parse_with(&mut sums).unwrap();
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(parser.is_done());
    assert_eq!(sums.keys, 20_000);
    assert_eq!(sums.items, 15_000);
    // Header, SelectDb, End go through `event` (End allocates nothing either).
    assert_eq!(sums.other, 3);
    assert_eq!(sums.bytes, want_bytes);
    // Allowed: growing the input buffer now and then, never once per key.
    assert!(allocs < 20, "{allocs} allocations for 20 000 keys");
}
