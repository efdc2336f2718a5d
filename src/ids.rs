//! Replication ids and offsets, and the PSYNC acceptance rule.
//!
//! A replication history is named by a 40-character hexadecimal id ([`ReplId`]) and a byte
//! position in it ([`ReplOffset`]). A server remembers its current id and, after a promotion or
//! a `+CONTINUE <new id>`, the previous one together with the first offset that does *not*
//! belong to the previous history ([`ReplicationIds`]). Redis 7.0: `changeReplicationId`,
//! `clearReplicationId2`, `shiftReplicationId` and `masterTryPartialResynchronization` in
//! `src/replication.c`.
//!
//! ```
//! use respsync::ids::{IdGenerator, PsyncCheck, ReplOffset, ReplicationIds};
//!
//! let mut gen = IdGenerator::new(42);
//! let mut ids = ReplicationIds::new(gen.next_id());
//! let old = ids.id;
//! // Promoted at offset 474: the old history stays reachable up to and including byte 474.
//! ids.shift(gen.next_id(), ReplOffset::new(474));
//! assert_eq!(ids.second_offset, ReplOffset::new(475));
//! let window = Some((ReplOffset::new(1), 474)); // first byte held, bytes held
//! assert_eq!(ids.can_continue(old.as_bytes(), ReplOffset::new(475), window), PsyncCheck::Continue);
//! assert!(!ids.can_continue(old.as_bytes(), ReplOffset::new(476), window).is_continue());
//! ```

use std::fmt;

use thiserror::Error;

/// Length of a replication id in characters (`CONFIG_RUN_ID_SIZE` in Redis).
pub const REPL_ID_LEN: usize = 40;

/// A 40-character lowercase hexadecimal replication id.
///
/// Ids received from a peer are parsed with [`ReplId::parse`], which accepts either case and
/// stores lowercase (Redis compares ids case-insensitively). New ids come from an
/// [`IdGenerator`] seeded by the caller: the crate never reads OS randomness.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplId([u8; REPL_ID_LEN]);

/// Why a byte string is not a replication id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplIdError {
    /// The id is not exactly 40 bytes long.
    #[error("replication id must be 40 characters, got {0}")]
    Length(usize),
    /// The id contains a byte that is not a hexadecimal digit.
    #[error("replication id has a non-hex byte at index {0}")]
    NotHex(usize),
}

impl ReplId {
    /// The all-zero id Redis uses for "no second id" (`clearReplicationId2`).
    pub const ZERO: ReplId = ReplId([b'0'; REPL_ID_LEN]);

    /// Parses 40 hexadecimal characters (either case) into an id.
    ///
    /// ```
    /// # use respsync::ids::ReplId;
    /// let id = ReplId::parse(b"7A81A83AF48C8FB429245B3228CC826F9EED4370").unwrap();
    /// assert_eq!(id.as_str(), "7a81a83af48c8fb429245b3228cc826f9eed4370");
    /// assert!(ReplId::parse(b"?").is_err());
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<ReplId, ReplIdError> {
        if bytes.len() != REPL_ID_LEN {
            return Err(ReplIdError::Length(bytes.len()));
        }
        let mut out = [0u8; REPL_ID_LEN];
        for (i, (&b, o)) in bytes.iter().zip(out.iter_mut()).enumerate() {
            *o = match b {
                b'0'..=b'9' | b'a'..=b'f' => b,
                b'A'..=b'F' => b.to_ascii_lowercase(),
                _ => return Err(ReplIdError::NotHex(i)),
            };
        }
        Ok(ReplId(out))
    }

    /// The id as 40 ASCII bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        // Every constructor stores only ASCII hex digits, so this is always valid UTF-8; the
        // fallback keeps the function total without an unwrap.
        std::str::from_utf8(&self.0).unwrap_or("0000000000000000000000000000000000000000")
    }

    /// Whether `other` (as received on the wire) names this id, ignoring case.
    pub fn matches(&self, other: &[u8]) -> bool {
        other.eq_ignore_ascii_case(&self.0)
    }
}

impl fmt::Display for ReplId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ReplId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplId({})", self.as_str())
    }
}

impl std::str::FromStr for ReplId {
    type Err = ReplIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReplId::parse(s.as_bytes())
    }
}

/// A deterministic generator of replication ids (splitmix64), seeded by the caller.
///
/// ```
/// # use respsync::ids::IdGenerator;
/// let a = IdGenerator::new(7).next_id();
/// let b = IdGenerator::new(7).next_id();
/// assert_eq!(a, b); // same seed, same id
/// assert_ne!(a, IdGenerator::new(8).next_id());
/// ```
#[derive(Debug, Clone)]
pub struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    /// Creates a generator from a seed (for example from the OS, chosen by the application).
    pub fn new(seed: u64) -> IdGenerator {
        IdGenerator { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A fresh id: 40 lowercase hex characters.
    pub fn next_id(&mut self) -> ReplId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; REPL_ID_LEN];
        for chunk in out.chunks_mut(16) {
            let mut bits = self.next_u64();
            for o in chunk {
                *o = HEX[(bits & 0xf) as usize];
                bits >>= 4;
            }
        }
        ReplId(out)
    }
}

/// A position in a replication stream, counted in bytes (Redis `long long`).
///
/// `master_repl_offset` is the number of stream bytes produced so far, so the first byte of a
/// history has offset 1 and a PSYNC names `offset + 1`, the first byte it is missing. The value
/// `-1` is used on the wire for "no offset" (`PSYNC ? -1`, `second_repl_offset:-1`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct ReplOffset(i64);

impl ReplOffset {
    /// The "no offset" value, `-1`.
    pub const NONE: ReplOffset = ReplOffset(-1);

    /// Wraps a raw offset.
    pub const fn new(value: i64) -> ReplOffset {
        ReplOffset(value)
    }

    /// The raw value.
    pub const fn value(self) -> i64 {
        self.0
    }

    /// The offset `n` bytes later (saturating).
    #[must_use]
    pub const fn add(self, n: u64) -> ReplOffset {
        let n = if n > i64::MAX as u64 {
            i64::MAX
        } else {
            n as i64
        };
        ReplOffset(self.0.saturating_add(n))
    }

    /// The offset of the next byte (`self + 1`), as sent in `PSYNC`.
    #[must_use]
    pub const fn next(self) -> ReplOffset {
        self.add(1)
    }

    /// Parses a decimal offset as Redis does for PSYNC and `+FULLRESYNC` (`string2ll`).
    pub fn parse(bytes: &[u8]) -> Option<ReplOffset> {
        let s = std::str::from_utf8(bytes).ok()?;
        if s.starts_with('+') || s.starts_with("-0") || (s.len() > 1 && s.starts_with('0')) {
            return None;
        }
        s.parse::<i64>().ok().map(ReplOffset)
    }
}

impl fmt::Display for ReplOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The outcome of the PSYNC acceptance rule ([`ReplicationIds::can_continue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PsyncCheck {
    /// Partial resynchronization: answer `+CONTINUE` and send the backlog from the offset.
    Continue,
    /// The requested id is neither the current id nor (with a small enough offset) the
    /// previous one. `?` lands here too; Redis does not count it in `sync_partial_err`.
    IdMismatch,
    /// There is no backlog to serve from.
    NoBacklog,
    /// The offset lies outside the bytes held by the backlog.
    OutOfRange,
}

impl PsyncCheck {
    /// True for [`PsyncCheck::Continue`].
    pub fn is_continue(self) -> bool {
        matches!(self, PsyncCheck::Continue)
    }
}

/// A server's replication ids: the current one, the previous one, and where the previous
/// history ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationIds {
    /// The current id (`master_replid`).
    pub id: ReplId,
    /// The previous id (`master_replid2`), [`ReplId::ZERO`] if none.
    pub id2: ReplId,
    /// The first offset not covered by `id2` (`second_repl_offset`), `-1` if none.
    pub second_offset: ReplOffset,
}

impl ReplicationIds {
    /// Ids with `id` current and no previous id.
    pub fn new(id: ReplId) -> ReplicationIds {
        ReplicationIds {
            id,
            id2: ReplId::ZERO,
            second_offset: ReplOffset::NONE,
        }
    }

    /// Forgets the previous id (`clearReplicationId2`).
    pub fn clear_second(&mut self) {
        self.id2 = ReplId::ZERO;
        self.second_offset = ReplOffset::NONE;
    }

    /// Moves the current id to `id2`, valid up to `offset` inclusive, and adopts `new_id`
    /// (`shiftReplicationId`; `offset` is the server's `master_repl_offset`).
    pub fn shift(&mut self, new_id: ReplId, offset: ReplOffset) {
        self.id2 = self.id;
        self.second_offset = offset.next();
        self.id = new_id;
    }

    /// The PSYNC acceptance rule (protocol.md §2.1): may `PSYNC <replid> <offset>` continue?
    ///
    /// `backlog` is `(first byte offset, bytes held)` of the backlog, or `None` when there is
    /// none. `replid` is compared case-insensitively as received.
    pub fn can_continue(
        &self,
        replid: &[u8],
        offset: ReplOffset,
        backlog: Option<(ReplOffset, u64)>,
    ) -> PsyncCheck {
        let id_ok = self.id.matches(replid)
            || (self.id2.matches(replid)
                && self.id2 != ReplId::ZERO
                && offset <= self.second_offset);
        if !id_ok {
            return PsyncCheck::IdMismatch;
        }
        let Some((first, histlen)) = backlog else {
            return PsyncCheck::NoBacklog;
        };
        if offset < first || offset > first.add(histlen) {
            return PsyncCheck::OutOfRange;
        }
        PsyncCheck::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn id_parse_roundtrips_and_rejects_non_hex(seed in any::<u64>(), junk in proptest::collection::vec(any::<u8>(), 0..48)) {
            let id = IdGenerator::new(seed).next_id();
            prop_assert_eq!(ReplId::parse(id.as_bytes()), Ok(id));
            prop_assert_eq!(ReplId::parse(id.as_str().to_uppercase().as_bytes()), Ok(id));
            let ok = junk.len() == 40 && junk.iter().all(u8::is_ascii_hexdigit);
            prop_assert_eq!(ReplId::parse(&junk).is_ok(), ok);
        }

        #[test]
        fn offset_parse_matches_canonical_decimal(v in any::<i64>(), junk in "[-+0-9a ]{0,22}") {
            prop_assert_eq!(ReplOffset::parse(v.to_string().as_bytes()), Some(ReplOffset::new(v)));
            if let Some(o) = ReplOffset::parse(junk.as_bytes()) {
                prop_assert_eq!(o.to_string(), junk);
            }
        }

        #[test]
        fn shift_then_old_id_continues_up_to_the_shift(seed in any::<u64>(), at in 0i64..1_000_000, probe in -2i64..1_000_002) {
            let mut g = IdGenerator::new(seed);
            let mut ids = ReplicationIds::new(g.next_id());
            let old = ids.id;
            ids.shift(g.next_id(), ReplOffset::new(at));
            let window = Some((ReplOffset::new(1), at as u64));
            let got = ids.can_continue(old.as_bytes(), ReplOffset::new(probe), window);
            let want = if probe > at + 1 {
                PsyncCheck::IdMismatch
            } else if probe < 1 {
                PsyncCheck::OutOfRange
            } else {
                PsyncCheck::Continue
            };
            prop_assert_eq!(got, want);
        }
    }

    fn id(c: u8) -> ReplId {
        ReplId::parse(&[c; 40]).unwrap()
    }

    #[test]
    fn parse_rejects_bad_ids() {
        assert_eq!(ReplId::parse(b"abc"), Err(ReplIdError::Length(3)));
        let mut s = [b'a'; 40];
        s[7] = b'g';
        assert_eq!(ReplId::parse(&s), Err(ReplIdError::NotHex(7)));
        assert!(id(b'F').matches(&[b'f'; 40]));
    }

    #[test]
    fn generated_ids_are_hex_and_distinct() {
        let mut g = IdGenerator::new(0);
        let a = g.next_id();
        let b = g.next_id();
        assert_ne!(a, b);
        assert_eq!(ReplId::parse(a.as_bytes()), Ok(a));
        assert!(a
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn offsets_parse_like_string2ll() {
        assert_eq!(ReplOffset::parse(b"-1"), Some(ReplOffset::NONE));
        assert_eq!(ReplOffset::parse(b"1054"), Some(ReplOffset::new(1054)));
        assert_eq!(ReplOffset::parse(b"01"), None);
        assert_eq!(ReplOffset::parse(b"+1"), None);
        assert_eq!(ReplOffset::parse(b"1x"), None);
        assert_eq!(ReplOffset::parse(b""), None);
    }

    #[test]
    fn acceptance_matrix() {
        // Captured on 7.0.15: after REPLICAOF NO ONE at 474, PSYNC <old> 475 continues and
        // PSYNC <old> 476 does not.
        let mut ids = ReplicationIds::new(id(b'a'));
        ids.shift(id(b'b'), ReplOffset::new(474));
        let window = Some((ReplOffset::new(1), 474));
        let old = [b'a'; 40];
        let new = [b'B'; 40];
        assert_eq!(
            ids.can_continue(&old, ReplOffset::new(475), window),
            PsyncCheck::Continue
        );
        assert_eq!(
            ids.can_continue(&old, ReplOffset::new(476), window),
            PsyncCheck::IdMismatch
        );
        assert_eq!(
            ids.can_continue(&new, ReplOffset::new(475), window),
            PsyncCheck::Continue
        );
        assert_eq!(
            ids.can_continue(&new, ReplOffset::new(476), window),
            PsyncCheck::OutOfRange
        );
        assert_eq!(
            ids.can_continue(&new, ReplOffset::new(0), window),
            PsyncCheck::OutOfRange
        );
        assert_eq!(
            ids.can_continue(&new, ReplOffset::new(1), window),
            PsyncCheck::Continue
        );
        assert_eq!(
            ids.can_continue(b"?", ReplOffset::NONE, window),
            PsyncCheck::IdMismatch
        );
        assert_eq!(
            ids.can_continue(&new, ReplOffset::new(1), None),
            PsyncCheck::NoBacklog
        );
        // An all-zero id2 never matches.
        let fresh = ReplicationIds::new(id(b'c'));
        assert_eq!(
            fresh.can_continue(ReplId::ZERO.as_bytes(), ReplOffset::NONE, window),
            PsyncCheck::IdMismatch
        );
        ids.clear_second();
        assert_eq!(
            ids.can_continue(&old, ReplOffset::new(1), window),
            PsyncCheck::IdMismatch
        );
    }
}
