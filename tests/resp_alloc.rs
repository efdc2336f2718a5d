//! Hostile lengths never cause allocation: a counting global allocator (test binary only)
//! measures what the decoder allocates for headers announcing huge payloads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use respsync::resp::{Decoder, Limits};

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated while decoding `wire` (fed whole, then byte by byte) with `f`.
type Step = fn(&mut Decoder, &mut BytesMut) -> bool;

fn allocated_by(wire: &[u8], f: Step) -> usize {
    let mut buf = BytesMut::with_capacity(wire.len() * 2);
    let mut dec = Decoder::new(Limits::default());
    let before = ALLOCATED.load(Ordering::Relaxed);
    for &b in wire {
        buf.extend_from_slice(&[b]);
        if f(&mut dec, &mut buf) {
            break;
        }
    }
    ALLOCATED.load(Ordering::Relaxed) - before
}

fn frame(dec: &mut Decoder, buf: &mut BytesMut) -> bool {
    !matches!(dec.decode(buf), Ok(None))
}

fn command(dec: &mut Decoder, buf: &mut BytesMut) -> bool {
    !matches!(dec.decode_command(buf), Ok(None))
}

#[test]
fn huge_announced_lengths_allocate_nothing_up_front() {
    // Single test in this binary so no other thread allocates meanwhile.
    let cases: &[(&[u8], Step)] = &[
        (b"$536870912\r\nabc", frame),
        (b"*2147483647\r\n:1\r\n:2\r\n", frame),
        (b"%2147483647\r\n:1\r\n", frame),
        (b"|2147483647\r\n:1\r\n", frame),
        (b"*2147483647\r\n$536870912\r\nabc", command),
        (b"*1\r\n$536870912\r\nabc", command),
        (b"$99999999999\r\n", frame),
        (b"*99999999999\r\n", command),
    ];
    // The counter works: a real frame does allocate.
    assert!(allocated_by(b"*3\r\n:1\r\n:2\r\n:3\r\n", frame) > 0);
    for (wire, f) in cases {
        let n = allocated_by(wire, *f);
        assert!(
            n < 4096,
            "{:?} allocated {n} bytes",
            String::from_utf8_lossy(wire)
        );
    }
}
