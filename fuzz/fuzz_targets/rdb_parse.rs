//! Any bytes: the RDB parser returns events or a typed error, never panics, never loops, and
//! gives the same result fed whole or in pieces, copied (`push`) or in place (`push_bytes`),
//! through `feed_with` and a visitor, and with lazy values decoded on demand. The CRC check is skipped (the fuzzer could
//! never get past it) and limits are small so that no input can allocate much.
#![no_main]

use libfuzzer_sys::fuzz_target;
use respsync::rdb::{Collector, Parser, ParserConfig, RdbError, RdbEvent, Visitor};

/// Takes the default (owned) form of every callback.
#[derive(Default)]
struct Events(Vec<RdbEvent>);

impl Visitor for Events {
    fn event(&mut self, event: RdbEvent) {
        self.0.push(event);
    }
}

fn visit(data: &[u8], split: usize, config: &ParserConfig) -> (Vec<RdbEvent>, Option<RdbError>) {
    let mut parser = Parser::new(config.clone());
    let mut v = Events::default();
    for piece in data.chunks(split.max(1)) {
        if let Err(e) = parser.feed_with(piece, &mut v) {
            return (v.0, Some(e));
        }
    }
    parser.finish();
    match parser.parse_with(&mut v) {
        Ok(()) => (v.0, None),
        Err(e) => (v.0, Some(e)),
    }
}

fn run(
    data: &[u8],
    split: usize,
    config: &ParserConfig,
    in_place: bool,
) -> (Vec<RdbEvent>, Option<RdbError>) {
    let mut parser = Parser::new(config.clone());
    let mut events = Vec::new();
    let mut collector = Collector::new(1 << 20);
    let file = bytes::Bytes::copy_from_slice(data);
    let split = split.max(1);
    let mut pos = 0;
    loop {
        if pos < data.len() {
            let end = (pos + split).min(data.len());
            if in_place {
                parser.push_bytes(file.slice(pos..end));
            } else {
                parser.push(&data[pos..end]);
            }
            pos = end;
        } else {
            parser.finish();
        }
        loop {
            match parser.poll_event() {
                Ok(Some(ev)) => {
                    let _ = collector.handle_event(ev.clone());
                    events.push(ev);
                }
                Ok(None) => break,
                Err(e) => {
                    // Sticky.
                    assert_eq!(parser.poll_event(), Err(e.clone()));
                    return (events, Some(e));
                }
            }
        }
        if parser.is_done() {
            return (events, None);
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let mut config = ParserConfig::default();
    config
        .danger_skip_checksum(true)
        .max_string_len(1 << 20)
        .max_blob_len(1 << 20)
        .chunk_size(61);
    let split = usize::from(split % 17) + 1;
    let whole = run(data, usize::MAX, &config, false);
    assert_eq!(whole, run(data, usize::MAX, &config, true));
    let pieces = run(data, split, &config, false);
    assert_eq!(whole, pieces);
    assert_eq!(whole, run(data, split, &config, true));
    assert_eq!(whole, visit(data, split, &config));
    let mut lazy = config.clone();
    lazy.lazy_values(true);
    let (events, err) = run(data, split, &lazy, true);
    assert_eq!(whole, expand_raw(events, err));
});

/// Replaces each lazy value by the events decoding it gives; a decode error ends the result.
fn expand_raw(events: Vec<RdbEvent>, err: Option<RdbError>) -> (Vec<RdbEvent>, Option<RdbError>) {
    let mut out = Events::default();
    for ev in events {
        match ev {
            RdbEvent::Raw(raw) => {
                if let Err(e) = raw.as_raw_ref().decode(&mut out) {
                    return (out.0, Some(e));
                }
                // Counting never fails where decoding succeeded.
                raw.as_raw_ref().count().unwrap();
            }
            ev => out.0.push(ev),
        }
    }
    (out.0, err)
}
