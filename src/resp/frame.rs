//! The RESP2/RESP3 frame type.

use bytes::Bytes;

/// One RESP2 or RESP3 value, as sent on the wire.
///
/// Payloads are [`Bytes`] slices of the buffer the frame was decoded from: decoding never copies
/// them. Every RESP2 and RESP3 type Redis 7 writes has a variant; the type byte is shown for each.
///
/// Equality treats two [`Double`](Frame::Double)s as equal when they are both NaN or have the same
/// bits, so `decode(encode(f)) == f` holds for every frame.
///
/// ```
/// use bytes::Bytes;
/// use respsync::resp::Frame;
///
/// let cmd = Frame::command(["SET", "key", "value"]);
/// assert_eq!(
///     cmd.clone().into_command(),
///     Some(vec![Bytes::from("SET"), Bytes::from("key"), Bytes::from("value")])
/// );
/// assert_eq!(Frame::simple("OK"), Frame::SimpleString(Bytes::from_static(b"OK")));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Frame {
    /// `+`: a simple string such as `OK` or `PONG` (no `\r` or `\n` inside).
    SimpleString(Bytes),
    /// `-`: an error line such as `ERR unknown command`.
    Error(Bytes),
    /// `:`: a signed 64-bit integer.
    Integer(i64),
    /// `$`: a binary-safe bulk string.
    BulkString(Bytes),
    /// `$-1`: the RESP2 null bulk string.
    NullBulk,
    /// `*`: an array of frames.
    Array(Vec<Frame>),
    /// `*-1`: the RESP2 null array.
    NullArray,
    /// `_`: the RESP3 null.
    Null,
    /// `#`: a RESP3 boolean (`#t` / `#f`).
    Boolean(bool),
    /// `,`: a RESP3 double, including `inf`, `-inf` and `nan`.
    Double(f64),
    /// `(`: a RESP3 big number, its decimal digits with an optional sign.
    BigNumber(Bytes),
    /// `!`: a RESP3 bulk error.
    BulkError(Bytes),
    /// `=`: a RESP3 verbatim string: a 3-byte format (`txt`, `mkd`) and the text.
    Verbatim {
        /// The three format bytes before the `:`.
        format: [u8; 3],
        /// The text after the `:`.
        text: Bytes,
    },
    /// `%`: a RESP3 map, as key/value pairs in wire order.
    Map(Vec<(Frame, Frame)>),
    /// `~`: a RESP3 set, in wire order.
    Set(Vec<Frame>),
    /// `|`: RESP3 attributes, attached to the frame that follows them on the wire.
    Attribute {
        /// The attribute key/value pairs.
        attrs: Vec<(Frame, Frame)>,
        /// The frame the attributes describe.
        value: Box<Frame>,
    },
    /// `>`: a RESP3 out-of-band push (pub/sub messages, invalidations).
    Push(Vec<Frame>),
}

impl Frame {
    /// A simple string frame (`+...`), e.g. `Frame::simple("OK")`.
    pub fn simple(s: impl Into<Bytes>) -> Self {
        Frame::SimpleString(s.into())
    }

    /// An error frame (`-...`), e.g. `Frame::error("ERR syntax error")`.
    pub fn error(s: impl Into<Bytes>) -> Self {
        Frame::Error(s.into())
    }

    /// A bulk string frame (`$...`).
    pub fn bulk(b: impl Into<Bytes>) -> Self {
        Frame::BulkString(b.into())
    }

    /// A command: an array of bulk strings, the form clients and the replication stream use.
    pub fn command<I>(argv: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        Frame::Array(
            argv.into_iter()
                .map(|a| Frame::BulkString(a.into()))
                .collect(),
        )
    }

    /// If this frame is an array whose elements are all bulk strings (a command), its
    /// arguments; otherwise `None`.
    ///
    /// For the hot path (a client or replication stream) prefer
    /// [`Decoder::decode_command`](super::Decoder::decode_command), which builds the
    /// argument vector without building frames.
    pub fn into_command(self) -> Option<Vec<Bytes>> {
        match self {
            Frame::Array(items) => items
                .into_iter()
                .map(|f| match f {
                    Frame::BulkString(b) => Some(b),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// True for the three null forms: [`NullBulk`](Frame::NullBulk),
    /// [`NullArray`](Frame::NullArray) and [`Null`](Frame::Null).
    pub fn is_null(&self) -> bool {
        matches!(self, Frame::NullBulk | Frame::NullArray | Frame::Null)
    }

    /// True for [`Error`](Frame::Error) and [`BulkError`](Frame::BulkError).
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_) | Frame::BulkError(_))
    }

    /// The payload of a simple string, error, bulk string, bulk error or big number, or the text
    /// of a verbatim string.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::SimpleString(b)
            | Frame::Error(b)
            | Frame::BulkString(b)
            | Frame::BulkError(b)
            | Frame::BigNumber(b)
            | Frame::Verbatim { text: b, .. } => Some(b),
            _ => None,
        }
    }
}

fn double_eq(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        use Frame::*;
        match (self, other) {
            (SimpleString(a), SimpleString(b))
            | (Error(a), Error(b))
            | (BulkString(a), BulkString(b))
            | (BigNumber(a), BigNumber(b))
            | (BulkError(a), BulkError(b)) => a == b,
            (Integer(a), Integer(b)) => a == b,
            (NullBulk, NullBulk) | (NullArray, NullArray) | (Null, Null) => true,
            (Array(a), Array(b)) | (Set(a), Set(b)) | (Push(a), Push(b)) => a == b,
            (Boolean(a), Boolean(b)) => a == b,
            (Double(a), Double(b)) => double_eq(*a, *b),
            (
                Verbatim {
                    format: fa,
                    text: ta,
                },
                Verbatim {
                    format: fb,
                    text: tb,
                },
            ) => fa == fb && ta == tb,
            (Map(a), Map(b)) => a == b,
            (
                Attribute {
                    attrs: aa,
                    value: va,
                },
                Attribute {
                    attrs: ab,
                    value: vb,
                },
            ) => aa == ab && va == vb,
            _ => false,
        }
    }
}
