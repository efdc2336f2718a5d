//! Arguments printed the way `redis-cli --replica` and `MONITOR` print them: each quoted, with
//! printable ASCII as is, `\\ \" \n \r \t \a \b` escaped and other bytes as `\xhh`
//! (Redis's `sdscatrepr`), separated by commas.

/// Appends `arg` quoted as `redis-cli --replica` prints it: printable ASCII as is, `\\ \" \n \r \t \a \b` escaped, other bytes as `\xhh` (Redis's `sdscatrepr`).
///
/// ```
/// let mut out = Vec::new();
/// respsync::resp::quote_arg(b"a\r\nb\x00\"", &mut out);
/// assert_eq!(out, br#""a\r\nb\x00\"""#);
/// ```
pub fn quote_arg(arg: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in arg {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
        }
    }
    out.push(b'"');
}

/// Appends every argument quoted, separated by commas: `"set","k","v"`.
///
/// ```
/// let mut out = Vec::new();
/// respsync::resp::quote_args([&b"set"[..], b"k", b"v"], &mut out);
/// assert_eq!(out, br#""set","k","v""#);
/// ```
pub fn quote_args<'a>(args: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for (i, arg) in args.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        quote_arg(arg, out);
    }
}
