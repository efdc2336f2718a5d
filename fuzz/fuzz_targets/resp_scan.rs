//! Fuzz target for `resp::CommandScanner`: fed whole and in chunks chosen by the input, it must
//! never panic, must report argument ranges inside the command, and must give the same commands
//! and error (kind and absolute offset) whole, chunked, and as `Decoder::decode_command`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use respsync::resp::{CommandScanner, DecodeErrorKind, Decoder, Limits};

type Out = (Vec<(usize, Vec<Vec<u8>>)>, Option<(DecodeErrorKind, u64)>);

fn scan(limits: Limits, data: &[u8], chunk: usize) -> Out {
    let mut sc = CommandScanner::new(limits);
    let mut out = Vec::new();
    let mut start = 0;
    let mut have = 0;
    while have < data.len() {
        have = (have + chunk.max(1)).min(data.len());
        loop {
            match sc.scan(&data[start..have]) {
                Ok(Some(n)) => {
                    let cmd = &data[start..start + n];
                    let args = sc.args().map(|r| cmd[r].to_vec()).collect();
                    out.push((n, args));
                    start += n;
                }
                Ok(None) => break,
                Err(e) => return (out, Some((e.kind().clone(), start as u64 + e.offset()))),
            }
        }
    }
    (out, None)
}

fn decode(limits: Limits, data: &[u8]) -> Out {
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::from(data);
    let mut out = Vec::new();
    loop {
        match dec.decode_command(&mut buf) {
            Ok(Some(c)) => out.push((c.consumed, c.argv.iter().map(|a| a.to_vec()).collect())),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some((e.kind().clone(), e.offset()))),
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let limits = if ctl & 0x80 != 0 {
        Limits {
            max_bulk_len: 16,
            max_array_len: 4,
            max_inline_len: 32,
            max_depth: 4,
            max_buffered: 64,
        }
    } else {
        Limits::default()
    };
    let whole = scan(limits, data, data.len());
    assert_eq!(scan(limits, data, usize::from(ctl & 0x7f)), whole);
    assert_eq!(decode(limits, data), whole);
});
