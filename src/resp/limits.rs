//! Configurable decoder limits, defaulting to Redis's values.

/// Bounds on everything a peer controls. Every length read from the wire is checked against
/// these before it is trusted; exceeding one is a typed
/// [`DecodeError`](super::DecodeError).
///
/// `Limits::default()` uses Redis's own values (Redis 7, `src/server.h` and `src/config.c`).
///
/// ```
/// use respsync::resp::Limits;
///
/// let strict = Limits { max_bulk_len: 1 << 20, ..Limits::default() };
/// assert_eq!(strict.max_inline_len, 64 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string, bulk error or verbatim string payload, in bytes. Redis:
    /// `proto-max-bulk-len`, default 512 MiB.
    pub max_bulk_len: u64,
    /// Largest element count of an array, set, push or map (pairs for a map). Redis rejects a
    /// multibulk count above `INT_MAX` ("invalid multibulk length"), so that is the default.
    /// Nothing is preallocated from this count: memory grows only with elements received.
    pub max_array_len: u64,
    /// Longest line: an inline command, a simple string, error, double or big number, and the
    /// transfer header line. Redis: `PROTO_INLINE_MAX_SIZE`, 64 KiB.
    pub max_inline_len: usize,
    /// Deepest nesting of aggregates (a flat array is depth 1). Redis requests are never nested
    /// and Redis sets no bound for replies; 128 is far beyond any reply Redis 7 produces.
    pub max_depth: usize,
    /// Most bytes a single frame may occupy while it is being received (its total encoded
    /// size). Redis: `client-query-buffer-limit`, default 1 GiB. The decoder's own bookkeeping
    /// grows with elements actually received (24 bytes per element of at least 3 bytes), so
    /// this bound also bounds it.
    pub max_buffered: usize,
}

impl Limits {
    /// Redis's `proto-max-bulk-len` default: 512 MiB.
    pub const REDIS_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;
    /// Redis's multibulk count bound: `INT_MAX`.
    pub const REDIS_MAX_ARRAY_LEN: u64 = i32::MAX as u64;
    /// Redis's `PROTO_INLINE_MAX_SIZE`: 64 KiB.
    pub const REDIS_MAX_INLINE_LEN: usize = 64 * 1024;
    /// Default nesting bound.
    pub const DEFAULT_MAX_DEPTH: usize = 128;
    /// Redis's `client-query-buffer-limit` default: 1 GiB.
    pub const REDIS_MAX_BUFFERED: usize = 1024 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: Self::REDIS_MAX_BULK_LEN,
            max_array_len: Self::REDIS_MAX_ARRAY_LEN,
            max_inline_len: Self::REDIS_MAX_INLINE_LEN,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_buffered: Self::REDIS_MAX_BUFFERED,
        }
    }
}
