//! The replication backlog: the most recent bytes of a replication stream, addressed by
//! absolute offset, kept as reference-counted [`Bytes`] chunks.
//!
//! Redis 7 keeps the stream once, in a list of shared blocks that the backlog and every
//! replica read from (`replBufBlock` in `src/server.h`); quinn's `SendBuffer` keeps unacked
//! stream data the same way, as a `VecDeque<Bytes>` plus an absolute offset. This backlog does
//! the same: appending a chunk costs no copy, serving a partial resync hands out slices of the
//! stored chunks, and trimming drops or advances chunks at the front.
//!
//! Offsets follow Redis: [`Backlog::end`] is `master_repl_offset` (the offset of the last byte
//! appended), [`Backlog::first`] is `repl_backlog_first_byte_offset`, and [`Backlog::histlen`]
//! is `repl_backlog_histlen`, with `first = end - histlen + 1` at all times.
//!
//! ```
//! use bytes::Bytes;
//! use respsync::backlog::Backlog;
//! use respsync::ids::ReplOffset;
//!
//! let mut backlog = Backlog::new(16, ReplOffset::new(100));
//! backlog.append(Bytes::from_static(b"0123456789"));
//! backlog.append(Bytes::from_static(b"abcdefghij"));
//! assert_eq!(backlog.end(), ReplOffset::new(120));
//! assert_eq!(backlog.histlen(), 16); // trimmed to the configured size
//! assert!(backlog.can_serve(ReplOffset::new(105)));
//! assert!(!backlog.can_serve(ReplOffset::new(104)));
//! let bytes: Vec<u8> = backlog.range(ReplOffset::new(115)).unwrap().flatten().collect();
//! assert_eq!(bytes, b"efghij");
//! ```

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use crate::ids::ReplOffset;

/// Redis's default `repl-backlog-size`: 1 MiB.
pub const DEFAULT_BACKLOG_SIZE: u64 = 1024 * 1024;

/// Bytes of a replication stream addressed by absolute offset.
#[derive(Debug, Clone)]
pub struct Backlog {
    /// Chunks in stream order, each with the offset of its first byte.
    chunks: VecDeque<(ReplOffset, Bytes)>,
    /// Offset of the last byte appended (`master_repl_offset`).
    end: ReplOffset,
    /// Bytes held.
    histlen: u64,
    /// Configured size; the backlog holds at most this many bytes, except for bytes a reader
    /// still needs (see [`Backlog::set_retain_from`]).
    size: u64,
    /// Bytes at or after this offset are kept whatever the size (a replica still reads them).
    retain_from: Option<ReplOffset>,
}

impl Backlog {
    /// An empty backlog whose next byte will have offset `end + 1`.
    ///
    /// `size` is `repl-backlog-size` ([`DEFAULT_BACKLOG_SIZE`] in Redis).
    pub fn new(size: u64, end: ReplOffset) -> Backlog {
        Backlog {
            chunks: VecDeque::new(),
            end,
            histlen: 0,
            size,
            retain_from: None,
        }
    }

    /// Appends stream bytes; they get the offsets `end + 1 ..= end + len`. No copy is made.
    ///
    /// Trims from the front afterwards so at most [`Backlog::size`] bytes stay.
    pub fn append(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len() as u64;
        self.chunks.push_back((self.end.next(), bytes));
        self.end = self.end.add(len);
        self.histlen += len;
        self.trim();
    }

    /// Keeps every byte at or after `from` even beyond the configured size (`None`: no such
    /// reader), and trims what is no longer needed.
    ///
    /// This is Redis 7's shared replication buffer: one copy of the stream, each replica a read
    /// position into it. A replica that has not yet been sent the bytes from `from` on keeps
    /// them here, so [`Backlog::histlen`] may exceed [`Backlog::size`] while it catches up, and
    /// a partial resync may be served from that extra history, as in Redis.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use respsync::backlog::Backlog;
    /// use respsync::ids::ReplOffset;
    ///
    /// let mut backlog = Backlog::new(4, ReplOffset::new(0));
    /// backlog.set_retain_from(Some(ReplOffset::new(1)));
    /// backlog.append(Bytes::from_static(b"0123456789"));
    /// assert_eq!(backlog.histlen(), 10); // a reader still needs offset 1 on
    /// backlog.set_retain_from(Some(ReplOffset::new(9)));
    /// assert_eq!(backlog.histlen(), 4); // back to the configured size
    /// ```
    pub fn set_retain_from(&mut self, from: Option<ReplOffset>) {
        self.retain_from = from;
        self.trim();
    }

    /// The offset from which bytes are retained for a reader, if any.
    pub fn retain_from(&self) -> Option<ReplOffset> {
        self.retain_from
    }

    /// Changes the configured size, trimming at once if it shrank.
    pub fn set_size(&mut self, size: u64) {
        self.size = size;
        self.trim();
    }

    /// Drops everything and restarts empty after offset `end` (a new history).
    pub fn reset(&mut self, end: ReplOffset) {
        self.chunks.clear();
        self.chunks.shrink_to_fit();
        self.end = end;
        self.histlen = 0;
        self.retain_from = None;
    }

    /// Configured size (`repl-backlog-size`).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Offset of the last byte appended (`master_repl_offset`).
    pub fn end(&self) -> ReplOffset {
        self.end
    }

    /// Offset of the first byte held (`repl_backlog_first_byte_offset`); `end + 1` if empty.
    pub fn first(&self) -> ReplOffset {
        let held = i64::try_from(self.histlen).unwrap_or(i64::MAX);
        ReplOffset::new(self.end.value().saturating_sub(held)).next()
    }

    /// Bytes held (`repl_backlog_histlen`).
    pub fn histlen(&self) -> u64 {
        self.histlen
    }

    /// `(first, histlen)`, the window [`ReplicationIds::can_continue`] takes.
    ///
    /// [`ReplicationIds::can_continue`]: crate::ids::ReplicationIds::can_continue
    pub fn window(&self) -> (ReplOffset, u64) {
        (self.first(), self.histlen)
    }

    /// Whether a replica missing every byte from `offset` on can be served from here: true for
    /// `first ..= end + 1` (`end + 1` serves nothing, which is still a valid partial resync).
    pub fn can_serve(&self, offset: ReplOffset) -> bool {
        offset >= self.first() && offset <= self.end.next()
    }

    /// The stored bytes from `offset` to the end as zero-copy slices, or `None` when
    /// [`Backlog::can_serve`] is false.
    pub fn range(&self, offset: ReplOffset) -> Option<Range<'_>> {
        if !self.can_serve(offset) {
            return None;
        }
        // Index of the chunk holding `offset`: the last chunk starting at or before it.
        let idx = self.chunks.partition_point(|(start, _)| *start <= offset);
        let (idx, skip) = match idx.checked_sub(1) {
            Some(i) => {
                let start = self.chunks[i].0;
                let skip = usize::try_from(offset.value() - start.value()).unwrap_or(usize::MAX);
                if skip >= self.chunks[i].1.len() {
                    (i + 1, 0) // offset == end + 1
                } else {
                    (i, skip)
                }
            }
            None => (0, 0), // empty backlog
        };
        Some(Range {
            backlog: self,
            idx,
            skip,
        })
    }

    /// Number of chunks held (for memory accounting and tests).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    fn trim(&mut self) {
        while self.histlen > self.size {
            let mut excess = self.histlen - self.size;
            if let Some(keep) = self.retain_from {
                let first = self.first();
                let droppable =
                    u64::try_from(keep.value().saturating_sub(first.value())).unwrap_or(0);
                excess = excess.min(droppable);
                if excess == 0 {
                    break;
                }
            }
            let Some((start, front)) = self.chunks.front_mut() else {
                break;
            };
            let flen = front.len() as u64;
            if flen <= excess {
                self.histlen -= flen;
                self.chunks.pop_front();
            } else {
                // `excess < flen <= usize::MAX`, so the cast is lossless.
                front.advance(excess as usize);
                *start = start.add(excess);
                self.histlen -= excess;
            }
        }
        if self.chunks.capacity() > 64 && self.chunks.capacity() > 4 * self.chunks.len() {
            self.chunks.shrink_to_fit();
        }
    }
}

/// Iterator over the backlog bytes from some offset on, as [`Bytes`] slices
/// (see [`Backlog::range`]).
#[derive(Debug, Clone)]
pub struct Range<'a> {
    backlog: &'a Backlog,
    idx: usize,
    skip: usize,
}

impl Iterator for Range<'_> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let (_, chunk) = self.backlog.chunks.get(self.idx)?;
        self.idx += 1;
        let skip = std::mem::take(&mut self.skip);
        Some(chunk.slice(skip.min(chunk.len())..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<u8>),
        SetSize(u64),
        Range(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Append),
            1 => (0u64..120).prop_map(Op::SetSize),
            3 => (0u64..400).prop_map(Op::Range),
        ]
    }

    proptest! {
        /// The backlog behaves like a `Vec<u8>` of the whole stream, truncated to `size`.
        #[test]
        fn matches_vec_model(start in 0i64..1000, size in 0u64..100, ops in proptest::collection::vec(op(), 0..60)) {
            let mut b = Backlog::new(size, ReplOffset::new(start));
            let mut stream: Vec<u8> = Vec::new(); // every byte ever appended
            let mut size = size;
            let mut held = 0u64; // model of histlen
            for op in ops {
                match op {
                    Op::Append(v) => {
                        held = (held + v.len() as u64).min(size);
                        stream.extend_from_slice(&v);
                        b.append(Bytes::from(v));
                    }
                    Op::SetSize(s) => { size = s; held = held.min(s); b.set_size(s); }
                    Op::Range(rel) => {
                        let off = ReplOffset::new(start + rel as i64);
                        let first = start + 1 + stream.len() as i64 - held as i64;
                        let ok = off.value() >= first && off.value() <= start + 1 + stream.len() as i64;
                        prop_assert_eq!(b.can_serve(off), ok);
                        match b.range(off) {
                            Some(r) => {
                                let got: Vec<u8> = r.flatten().collect();
                                let from = (off.value() - start - 1) as usize;
                                prop_assert_eq!(&got[..], &stream[from..]);
                            }
                            None => prop_assert!(!ok),
                        }
                    }
                }
                prop_assert!(b.histlen() <= size);
                prop_assert_eq!(b.end(), ReplOffset::new(start + stream.len() as i64));
                prop_assert_eq!(b.first(), ReplOffset::new(b.end().value() - b.histlen() as i64 + 1));
                prop_assert_eq!(b.histlen(), held);
                let total: usize = b.chunks.iter().map(|(_, c)| c.len()).sum();
                prop_assert_eq!(total as u64, b.histlen());
            }
        }
    }

    #[test]
    fn keeps_exactly_size_and_serves_edges() {
        let mut b = Backlog::new(5, ReplOffset::new(0));
        assert_eq!(b.first(), ReplOffset::new(1));
        assert!(b.can_serve(ReplOffset::new(1)));
        assert_eq!(b.range(ReplOffset::new(1)).unwrap().count(), 0);
        b.append(Bytes::from_static(b"abc"));
        b.append(Bytes::from_static(b"defg"));
        assert_eq!(
            (b.first(), b.histlen(), b.end()),
            (ReplOffset::new(3), 5, ReplOffset::new(7))
        );
        assert!(!b.can_serve(ReplOffset::new(2)));
        assert!(b.can_serve(ReplOffset::new(8)));
        assert!(!b.can_serve(ReplOffset::new(9)));
        let v: Vec<Bytes> = b.range(ReplOffset::new(3)).unwrap().collect();
        assert_eq!(
            v,
            vec![Bytes::from_static(b"c"), Bytes::from_static(b"defg")]
        );
        let v: Vec<Bytes> = b.range(ReplOffset::new(5)).unwrap().collect();
        assert_eq!(v, vec![Bytes::from_static(b"efg")]);
        assert_eq!(b.window(), (ReplOffset::new(3), 5));
        b.reset(ReplOffset::new(50));
        assert_eq!((b.first(), b.histlen()), (ReplOffset::new(51), 0));
    }
}
