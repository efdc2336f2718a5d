//! RESP2/RESP3: the [`Frame`] type, the streaming [`Decoder`] and the encoders.
//!
//! This is the codec every session builds on. It is sans-IO like the rest of the crate: the
//! decoder works over a [`BytesMut`](bytes::BytesMut) the caller appends received bytes to, and
//! the encoders append to a `BytesMut` the caller writes out.
//!
//! * [`Frame`] — every RESP2 and RESP3 type, payloads as zero-copy [`Bytes`](bytes::Bytes)
//!   slices of the received buffer.
//! * [`Decoder`] — streaming decoding of frames, commands (fast path to `argv`), inline
//!   commands, and the replication-link primitives (keepalives, the RDB transfer header, raw
//!   payload bytes). "Need more data" is `Ok(None)`, never an error, and never causes a rescan.
//! * [`CommandScanner`] — the low level under `decode_command`: finds each complete command in
//!   a plain byte slice and the ranges of its arguments, resumably, for callers that keep the
//!   received bytes themselves (the replica session scans its stream with it).
//! * [`Limits`] — every length a peer controls is bounded, with Redis's defaults; exceeding one
//!   is a typed [`DecodeError`] raised before anything is allocated for it.
//! * Encoders — [`encode`], [`encode_command`], reply helpers ([`encode_simple`],
//!   [`encode_error`], [`encode_integer`], [`encode_bulk`], nulls, headers) and
//!   [`encoded_len`] / [`command_len`] to size output without encoding.
//!
//! # Two levels of parsing
//!
//! * **Outer: a resumable framer** (hand-written, in the decoder). It finds where each line,
//!   bulk payload and aggregate ends, enforces the limits, and keeps its exact progress between
//!   calls, so bytes arriving in pieces are never rescanned and "need more data" is `Ok(None)`.
//!   Command streams go through a straight-line fast path with no per-element state.
//! * **Inner: nom parsers over complete input.** Once a line or payload is whole, its content
//!   goes to small parsers written with nom's `complete` combinators: RESP3 doubles (`inf`,
//!   `-inf`, `nan`, exponent forms), big numbers, the verbatim `fmt:` prefix, Redis's
//!   `string2ll` integer rules, the transfer header (`$EOF:<mark>` or `$<len>`), and the
//!   replica's PSYNC reply lines (`+FULLRESYNC`, `+CONTINUE`). Running out of input there is a
//!   malformed value, never "need more data". nom is not used for the framing itself: a nom
//!   streaming parser restarts from the frame's start on `Incomplete`, which would rescan.
//!
//! ```
//! use bytes::BytesMut;
//! use respsync::resp::{encode_command, Decoder, Limits};
//!
//! // A client (or a master) writes a command...
//! let mut wire = BytesMut::new();
//! encode_command(&["SET", "key:1", "hello"], &mut wire);
//!
//! // ...and the other side decodes it, possibly from several reads.
//! let mut dec = Decoder::new(Limits::default());
//! let mut buf = BytesMut::new();
//! buf.extend_from_slice(&wire[..10]);
//! assert!(dec.decode_command(&mut buf)?.is_none()); // need more data
//! buf.extend_from_slice(&wire[10..]);
//! let cmd = dec.decode_command(&mut buf)?.expect("complete");
//! assert_eq!(cmd.argv, vec!["SET", "key:1", "hello"]);
//! assert_eq!(cmd.consumed, wire.len());
//! # Ok::<(), respsync::resp::DecodeError>(())
//! ```

mod decode;
mod encode;
mod error;
mod frame;
mod limits;
pub(crate) mod line;
mod repr;
mod scan;

pub use decode::{Command, Decoded, Decoder, Keepalives, TransferHeader};
pub use encode::{
    command_len, encode, encode_array_header, encode_boolean, encode_bulk, encode_command,
    encode_double, encode_error, encode_integer, encode_map_header, encode_null, encode_null_array,
    encode_null_bulk, encode_ok, encode_push_header, encode_set_header, encode_simple,
    encode_transfer_eof, encode_transfer_len, encoded_len,
};
pub use error::{DecodeError, DecodeErrorKind};
pub use frame::Frame;
pub use limits::Limits;
pub use repr::{quote_arg, quote_args};
pub use scan::CommandScanner;
