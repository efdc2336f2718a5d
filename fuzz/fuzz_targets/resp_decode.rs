//! Fuzz target for the RESP decoder: every decode mode, fed whole and in chunks chosen by the
//! input, must never panic, must consume exactly what it reports, and must give the same
//! items and error whole and chunked.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use respsync::resp::{DecodeError, Decoder, Limits};

#[derive(Debug, PartialEq)]
enum Item {
    Frame(respsync::resp::Frame, usize),
    Argv(Vec<bytes::Bytes>, usize),
    Header(respsync::resp::TransferHeader, usize),
}

fn step(mode: u8, dec: &mut Decoder, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
    Ok(match mode % 5 {
        0 => dec.decode(buf)?.map(|d| Item::Frame(d.frame, d.consumed)),
        1 => dec.decode_command(buf)?.map(|c| Item::Argv(c.argv, c.consumed)),
        2 => dec.decode_inline(buf)?.map(|c| Item::Argv(c.argv, c.consumed)),
        3 => dec.decode_request(buf)?.map(|c| Item::Argv(c.argv, c.consumed)),
        _ => dec.decode_transfer_header(buf)?.map(|(h, n)| Item::Header(h, n)),
    })
}

fn run(mode: u8, limits: Limits, data: &[u8], chunk: usize) -> (Vec<Item>, Option<DecodeError>) {
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match step(mode, &mut dec, &mut buf) {
                Ok(Some(item)) => {
                    let consumed = match &item {
                        Item::Frame(_, n) | Item::Argv(_, n) | Item::Header(_, n) => *n,
                    };
                    assert_eq!(before - buf.len(), consumed);
                    items.push(item);
                }
                Ok(None) => {
                    assert_eq!(before, buf.len());
                    break;
                }
                Err(e) => return (items, Some(e)),
            }
        }
    }
    (items, None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let mode = ctl & 0x7;
    let chunk = usize::from(ctl >> 3) + 1;
    let limits = if ctl & 0x80 != 0 {
        Limits {
            max_bulk_len: 64,
            max_array_len: 8,
            max_inline_len: 32,
            max_depth: 4,
            max_buffered: 256,
        }
    } else {
        Limits::default()
    };
    let whole = run(mode, limits, data, data.len());
    let split = run(mode, limits, data, chunk);
    if ctl & 0x80 == 0 {
        assert_eq!(whole, split);
    }
});
