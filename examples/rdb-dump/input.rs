//! Reading input into one reused buffer, parsed in place with `Parser::feed_with` (rdb-dump,
//! rdb-convert).

use std::io::{self, Read};

/// Bytes read per call.
pub const READ_SIZE: usize = 256 << 10;

/// Reads until `buf` is full or the input ends.
pub fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
