//! Reading input: as `Bytes` for `Parser::push_bytes` (rdb-convert), or into one reused
//! buffer for `Parser::feed_with` (rdb-dump).

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

/// Bytes read per call.
pub const READ_SIZE: usize = 256 << 10;

#[allow(dead_code)] // rdb-dump reads with `read_full`
/// Reads the next piece of input into `buf`'s spare room (reclaimed once the events holding
/// earlier pieces are gone) and splits it off; empty at the end of input.
pub fn read_chunk(input: &mut dyn Read, buf: &mut BytesMut) -> io::Result<Bytes> {
    buf.clear();
    if buf.capacity() < READ_SIZE {
        buf.reserve(4 * READ_SIZE);
    }
    buf.resize(READ_SIZE, 0);
    let n = loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    Ok(buf.split_to(n).freeze())
}

#[allow(dead_code)] // rdb-convert reads with `read_chunk`
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
