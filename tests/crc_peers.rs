//! Cross-check: this crate's CRC-64 equals the `crc64` and `crc-fast` crates' CRC-64/Redis on
//! random data, including when fed in pieces.

use proptest::prelude::*;
use respsync::rdb::encoding::crc64::{crc64, Crc64};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn same_as_peers(data in proptest::collection::vec(any::<u8>(), 0..5000), cut in any::<prop::sample::Index>()) {
        let ours = crc64(0, &data);
        prop_assert_eq!(ours, ::crc64::crc64(0, &data));
        prop_assert_eq!(ours, crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, &data));

        let at = cut.index(data.len() + 1);
        let mut running = Crc64::new();
        running.update(&data[..at]);
        let mut digest = crc_fast::Digest::new_with_init_state(
            crc_fast::CrcAlgorithm::Crc64Redis,
            running.value(),
        );
        digest.update(&data[at..]);
        running.update(&data[at..]);
        prop_assert_eq!(running.value(), ours);
        prop_assert_eq!(digest.finalize(), ours);
    }
}
