//! Decode errors: what went wrong and at which byte of the stream.

use thiserror::Error;

/// A protocol violation found by the [`Decoder`](super::Decoder).
///
/// Carries the [kind](DecodeErrorKind) of violation and the absolute byte offset in the stream
/// (counted from the first byte the decoder ever saw, across all calls) where it was found.
/// Decoder errors are sticky: once a decoder has returned an error it returns the same error
/// from every later call, until [`Decoder::reset`](super::Decoder::reset).
///
/// ```
/// use bytes::BytesMut;
/// use respsync::resp::{Decoder, DecodeErrorKind, Limits};
///
/// let mut dec = Decoder::new(Limits::default());
/// let mut buf = BytesMut::from(&b"+OK\r\n$-5\r\n"[..]);
/// assert!(dec.decode(&mut buf).unwrap().is_some());
/// let err = dec.decode(&mut buf).unwrap_err();
/// assert_eq!(err.kind(), &DecodeErrorKind::NegativeLength);
/// assert_eq!(err.offset(), 6); // the '-' after "+OK\r\n$"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} at byte {offset}")]
pub struct DecodeError {
    kind: DecodeErrorKind,
    offset: u64,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, offset: u64) -> Self {
        Self { kind, offset }
    }

    /// What kind of violation this is.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// Absolute offset in the stream (bytes since the decoder was created or reset) of the byte
    /// where the violation was found.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// The kinds of [`DecodeError`].
///
/// Limit variants carry the configured maximum that was exceeded; they are raised as soon as the
/// offending length is read, before anything is allocated or buffered for it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The first byte of a frame is not a RESP2/RESP3 type byte.
    #[error("unknown type byte {0:#04x}")]
    UnknownType(u8),
    /// An element of a command is not a bulk string (Redis: "expected '$', got '%c'").
    #[error("expected '$', got {0:#04x}")]
    ExpectedBulk(u8),
    /// A command does not start with `*`.
    #[error("expected '*', got {0:#04x}")]
    ExpectedArray(u8),
    /// A length is negative (other than the `-1` null marker where it is allowed).
    #[error("negative length")]
    NegativeLength,
    /// A length or integer line holds something other than an optional `-` and decimal digits
    /// (including an empty line, a leading `+` or a leading zero).
    #[error("invalid integer")]
    InvalidInteger,
    /// A length or integer does not fit in 64 bits.
    #[error("integer overflow")]
    Overflow,
    /// A line is not terminated by `\r\n`, or a bulk payload is not followed by `\r\n`.
    #[error("missing crlf")]
    MissingCrlf,
    /// A RESP3 double (`,`) is not a number, `inf`, `-inf` or `nan`.
    #[error("invalid double")]
    InvalidDouble,
    /// A RESP3 boolean (`#`) is neither `t` nor `f`.
    #[error("invalid boolean")]
    InvalidBoolean,
    /// A RESP3 null (`_`) has content before its `\r\n`.
    #[error("invalid null")]
    InvalidNull,
    /// A RESP3 big number (`(`) is not an optionally signed run of decimal digits.
    #[error("invalid big number")]
    InvalidBigNumber,
    /// A RESP3 verbatim string (`=`) is shorter than 4 bytes or has no `:` after its format.
    #[error("invalid verbatim string")]
    InvalidVerbatim,
    /// An inline command has an unterminated quote, or a closing quote not followed by a space
    /// (Redis: "unbalanced quotes in request").
    #[error("unbalanced quotes in inline request")]
    UnbalancedQuotes,
    /// A transfer header line starts with neither `$`, `-` nor is empty (Redis: "Bad protocol
    /// from MASTER, the first byte is not '$'").
    #[error("bad transfer header, first byte {0:#04x}")]
    BadTransferHeader(u8),
    /// A bulk length exceeds [`Limits::max_bulk_len`](super::Limits::max_bulk_len).
    #[error("bulk length {len} exceeds limit {max}")]
    BulkTooLong {
        /// The length read from the wire.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// An aggregate count exceeds [`Limits::max_array_len`](super::Limits::max_array_len).
    #[error("aggregate length {len} exceeds limit {max}")]
    ArrayTooLong {
        /// The count read from the wire.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A line exceeds [`Limits::max_inline_len`](super::Limits::max_inline_len).
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The configured limit.
        max: usize,
    },
    /// Aggregates are nested deeper than [`Limits::max_depth`](super::Limits::max_depth).
    #[error("nesting deeper than {max}")]
    TooDeep {
        /// The configured limit.
        max: usize,
    },
    /// A frame needs more than [`Limits::max_buffered`](super::Limits::max_buffered) bytes.
    #[error("frame larger than {max} buffered bytes")]
    BufferLimit {
        /// The configured limit.
        max: usize,
    },
    /// A decode method of another mode was called while a frame begun in one mode was still
    /// incomplete (a caller bug: finish the frame in the mode it was started in, or
    /// [`reset`](super::Decoder::reset)).
    #[error("decode mode switched in the middle of a frame")]
    ModeSwitch,
}
