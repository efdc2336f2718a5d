//! The command scanner: finds each complete command (an array of bulk strings) in a byte
//! slice and the ranges of its arguments, resumably and without copying.

use core::ops::Range;

use super::decode::{bulk_elem, fast_num, parse_num, Elem, Num};
use super::{DecodeError, DecodeErrorKind as K, Limits};

/// Argument-range capacity kept between commands; a larger one left by a huge command is
/// released.
const KEEP_ARGS: usize = 4096;

/// A resumable scanner for commands — arrays of bulk strings, the form of every command a
/// client or a master sends — over a plain byte slice.
///
/// It is the low level under [`Decoder::decode_command`](super::Decoder::decode_command),
/// for callers that keep received bytes themselves (a replica that forwards the raw stream,
/// for example): [`scan`](Self::scan) says where the command starting at `buf[0]` ends, and
/// [`args`](Self::args) gives the byte ranges of its arguments, so nothing is copied or
/// reference-counted.
///
/// When `buf` holds only part of a command, `scan` returns `Ok(None)` and remembers how far it
/// got: call it again with the same bytes plus more appended (the front of `buf` must not
/// change), and it continues where it stopped — no byte is parsed twice, except a length line
/// of at most 20 digits that the straight-line fast path may read before handing over. Once a
/// command is complete, the next call starts a new command at `buf[0]`.
///
/// The rules are Redis's `processMultibulkBuffer`: the first byte must be `*`
/// ([`ExpectedArray`](K::ExpectedArray)), lengths follow `string2ll`, each element is a `$`
/// bulk string ([`ExpectedBulk`](K::ExpectedBulk)) of non-negative length, and a count of zero
/// or less is an empty command. Every [`Limits`] field that applies is enforced before
/// anything is allocated: the argument count (`max_array_len`), each argument's length
/// (`max_bulk_len`) and the whole command's length (`max_buffered`). Errors carry the position
/// in `buf` of the offending byte; after one, call [`reset`](Self::reset) before scanning again.
///
/// ```
/// use respsync::resp::{CommandScanner, Limits};
///
/// let wire = b"*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n*1\r\n$4\r\nPING\r\n";
/// let mut scanner = CommandScanner::new(Limits::default());
/// assert_eq!(scanner.scan(&wire[..12])?, None); // part of the first command
/// assert_eq!(scanner.scan(wire)?, Some(23));
/// let args: Vec<&[u8]> = scanner.args().map(|r| &wire[r]).collect();
/// assert_eq!(args, [&b"INCR"[..], b"ctr"]);
/// assert_eq!(scanner.scan(&wire[23..])?, Some(14));
/// assert_eq!(&wire[23..][scanner.arg(0).unwrap()], b"PING");
/// # Ok::<(), respsync::resp::DecodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CommandScanner {
    limits: Limits,
    /// Whether the `*<n>` header of the command in progress was read.
    header: bool,
    /// Arguments still to come once the header is read.
    left: u64,
    /// Bytes of the command in progress already parsed.
    pos: usize,
    elem: Elem,
    /// Payload ranges of the arguments read so far.
    args: Vec<(usize, usize)>,
}

impl Default for CommandScanner {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl CommandScanner {
    /// A scanner enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            header: false,
            left: 0,
            pos: 0,
            elem: Elem::Start,
            args: Vec::new(),
        }
    }

    /// The limits this scanner enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Scans the command that starts at `buf[0]`. Returns its length once all of it is in
    /// `buf` (its arguments are then in [`args`](Self::args)), or `Ok(None)` when more bytes
    /// are needed (append them and call again with the longer slice).
    #[inline]
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        self.scan_raw(buf)
            .map_err(|(k, at)| DecodeError::new(k, at as u64))
    }

    /// The payload ranges of the last complete command's arguments (command name first),
    /// relative to the `buf` it was scanned from. Empty for an empty command (`*0`); while a
    /// command is in progress, the arguments read so far.
    pub fn args(&self) -> impl ExactSizeIterator<Item = Range<usize>> + '_ {
        self.args.iter().map(|&(s, e)| s..e)
    }

    /// The payload range of argument `i` (see [`args`](Self::args)).
    pub fn arg(&self, i: usize) -> Option<Range<usize>> {
        self.args.get(i).map(|&(s, e)| s..e)
    }

    /// The number of arguments in [`args`](Self::args).
    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// True while a command is partly scanned (the next call must see the same first bytes).
    pub fn in_progress(&self) -> bool {
        self.header || self.pos > 0
    }

    /// While an argument's payload is awaited, the length `buf` must reach before the command
    /// can complete (at least; more arguments may follow). `None` when unknown.
    pub fn needed(&self) -> Option<usize> {
        match self.elem {
            Elem::Bulk { end, .. } => Some(end + 2),
            _ => None,
        }
    }

    /// Forgets any command in progress, for example after an error or when the bytes given
    /// so far are dropped.
    pub fn reset(&mut self) {
        self.header = false;
        self.left = 0;
        self.pos = 0;
        self.elem = Elem::Start;
        self.args.clear();
    }

    /// Ends the complete command: returns its length and readies the next one (the argument
    /// ranges stay until the next scan starts).
    #[inline]
    fn finish(&mut self) -> usize {
        let len = self.pos;
        self.header = false;
        self.left = 0;
        self.pos = 0;
        self.elem = Elem::Start;
        len
    }

    /// After [`fast`](Self::fast) stopped inside an array, hands its progress over: the
    /// declared count, the arguments still to come, the payload ranges read and the position
    /// reached; the scanner is reset. `None` when the header was not read.
    pub(super) fn take_progress(&mut self) -> Option<(u64, u64, usize)> {
        if !self.header {
            return None;
        }
        let n = self.args.len() as u64 + self.left;
        let out = (n, self.left, self.pos);
        self.header = false;
        self.left = 0;
        self.pos = 0;
        self.elem = Elem::Start;
        Some(out)
    }

    /// Bytes of the command in progress already parsed.
    pub(super) fn scanned(&self) -> usize {
        self.pos
    }

    /// The straight-line fast path alone, for the decoder's frame mode: the length of the
    /// command at `buf[0]` when it is all there and regular, otherwise `None` with the
    /// progress made (see [`take_progress`](Self::take_progress)).
    pub(super) fn fast_complete(&mut self, buf: &[u8]) -> Option<usize> {
        self.args.clear();
        self.fast(buf).then(|| self.finish())
    }

    /// The payload ranges recorded so far (for the decoder).
    pub(super) fn ranges(&self) -> &[(usize, usize)] {
        &self.args
    }

    /// The resumable scanner behind [`scan`](Self::scan): same contract, errors as a kind and
    /// a position in `buf`.
    #[inline]
    pub(super) fn scan_raw(&mut self, buf: &[u8]) -> Result<Option<usize>, (K, usize)> {
        if !self.header && self.pos == 0 {
            self.args.clear();
            if self.args.capacity() > KEEP_ARGS {
                self.args.shrink_to(KEEP_ARGS);
            }
            if self.fast(buf) {
                return Ok(Some(self.finish()));
            }
        }
        self.scan_slow(buf)
    }

    /// The resumable state machine, from wherever the command in progress stopped.
    fn scan_slow(&mut self, buf: &[u8]) -> Result<Option<usize>, (K, usize)> {
        let lim = self.limits;
        let mut pos = self.pos;
        let mut elem = self.elem;
        loop {
            let (at, v) = match elem {
                Elem::Start => {
                    let Some(&ty) = buf.get(pos) else { break };
                    if !self.header {
                        if ty != b'*' {
                            return Err((K::ExpectedArray(ty), pos));
                        }
                    } else if ty != b'$' {
                        return Err((K::ExpectedBulk(ty), pos));
                    }
                    pos += 1;
                    match fast_num(buf, pos) {
                        Some((v, next)) => {
                            let at = pos;
                            pos = next;
                            (at, v)
                        }
                        None => {
                            elem = Elem::Num {
                                ty,
                                at: pos,
                                num: Num::default(),
                            };
                            continue;
                        }
                    }
                }
                Elem::Num { ty, at, mut num } => {
                    let Some(v) = parse_num(buf, &mut pos, &mut num)? else {
                        elem = Elem::Num { ty, at, num };
                        break;
                    };
                    (at, v)
                }
                Elem::Line { .. } => {
                    // Never entered in command mode; treat as a fresh element.
                    elem = Elem::Start;
                    continue;
                }
                Elem::Bulk { start, end, .. } => {
                    if buf.len() < end + 2 {
                        break;
                    }
                    if buf[end] != b'\r' || buf[end + 1] != b'\n' {
                        return Err((K::MissingCrlf, end));
                    }
                    pos = end + 2;
                    self.args.push((start, end));
                    self.left -= 1;
                    elem = Elem::Start;
                    if self.left == 0 {
                        break;
                    }
                    continue;
                }
            };
            if !self.header {
                if v <= 0 {
                    // Redis ignores a multibulk count <= 0: an empty command.
                    self.left = 0;
                    elem = Elem::Start;
                    break;
                }
                let n = v.unsigned_abs();
                if n > lim.max_array_len {
                    let max = lim.max_array_len;
                    return Err((K::ArrayTooLong { len: n, max }, at));
                }
                self.header = true;
                self.left = n;
                // A small reservation only: the count is not trusted for allocation.
                self.args.reserve(n.min(16) as usize);
                elem = Elem::Start;
            } else {
                elem = bulk_elem(b'$', at, v, pos, &lim)?;
            }
        }
        self.pos = pos;
        self.elem = elem;
        if self.left == 0 && matches!(elem, Elem::Start) && pos > 0 {
            let max = lim.max_buffered;
            if pos > max {
                return Err((K::BufferLimit { max }, max));
            }
            return Ok(Some(self.finish()));
        }
        if buf.len() > lim.max_buffered {
            let max = lim.max_buffered;
            return Err((K::BufferLimit { max }, max));
        }
        Ok(None)
    }

    /// Straight-line scan of a command whose elements are all regular and present, with no
    /// per-element state machine. Stops at the first element it cannot take whole (missing
    /// bytes, an error to report, an unusual length form), leaving the state at that element's
    /// start so [`scan_raw`](Self::scan_raw) goes on from there: each byte before it
    /// is scanned once. Returns true when the whole command was taken.
    #[inline]
    pub(super) fn fast(&mut self, buf: &[u8]) -> bool {
        if buf.first() != Some(&b'*') {
            return false;
        }
        let Some((n, mut p)) = fast_num(buf, 1) else {
            return false;
        };
        let n = n.unsigned_abs();
        if n == 0 || n > self.limits.max_array_len {
            return false;
        }
        let max_bulk = self.limits.max_bulk_len;
        // Frames never exceed max_buffered, so bulk ends are checked against the smaller of
        // the buffer and the limit.
        let limit = buf.len().min(self.limits.max_buffered);
        let mut left = n;
        self.args.reserve(n.min(16) as usize);
        while left > 0 {
            if buf.get(p) != Some(&b'$') {
                break;
            }
            let Some((len, q)) = fast_num(buf, p + 1) else {
                break;
            };
            let len = len.unsigned_abs();
            if len > max_bulk {
                break;
            }
            // len < 10^18 (fast_num), so this cannot overflow on 64-bit targets; on others
            // the conversion fails and the slow path reports the limit.
            let Some(end) = usize::try_from(len).ok().and_then(|l| q.checked_add(l)) else {
                break;
            };
            if end.saturating_add(2) > limit || buf[end] != b'\r' || buf[end + 1] != b'\n' {
                break;
            }
            self.args.push((q, end));
            left -= 1;
            p = end + 2;
        }
        self.header = true;
        self.left = left;
        self.pos = p;
        self.elem = Elem::Start;
        left == 0
    }
}
