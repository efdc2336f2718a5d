//! Parser configuration and limits.

/// Limits and switches of a [`Parser`](super::Parser). Every limit defaults to the value Redis
/// itself applies, or to the bound suggested in the format notes where Redis has none.
///
/// ```
/// use respsync::rdb::ParserConfig;
///
/// let mut config = ParserConfig::default();
/// config.max_string_len(1 << 20).chunk_size(4096);
/// assert_eq!(config.string_limit(), 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParserConfig {
    pub(crate) max_string_len: u64,
    pub(crate) max_blob_len: u64,
    pub(crate) max_collection_len: u64,
    pub(crate) chunk_size: usize,
    pub(crate) nonstandard_opcodes: Vec<u8>,
    pub(crate) danger_skip_checksum: bool,
    pub(crate) allow_newer_versions: bool,
    pub(crate) lazy_values: bool,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            // Redis' proto-max-bulk-len default: no string can be longer.
            max_string_len: 512 << 20,
            // Redis never builds a listpack over 1 GiB (LISTPACK_MAX_SAFETY_SIZE).
            max_blob_len: 1 << 30,
            // Redis has no limit on element counts; counts never drive allocation here.
            max_collection_len: u64::MAX,
            chunk_size: 64 << 10,
            // Redis Enterprise RAM_LRU (107) and SLOT_NUM (121), each followed by one `len`.
            nonstandard_opcodes: vec![107, 121],
            danger_skip_checksum: false,
            allow_newer_versions: false,
            lazy_values: false,
        }
    }
}

impl ParserConfig {
    /// Largest string that may be buffered whole: keys, list/set elements, hash fields and
    /// values, AUX fields, decompressed LZF data, and the declared length of a string value
    /// (which is streamed in chunks, not buffered). Default 512 MiB.
    pub fn max_string_len(&mut self, bytes: u64) -> &mut Self {
        self.max_string_len = bytes;
        self
    }

    /// Largest embedded container (ziplist, listpack, intset, zipmap blob) that may be
    /// buffered. Default 1 GiB.
    pub fn max_blob_len(&mut self, bytes: u64) -> &mut Self {
        self.max_blob_len = bytes;
        self
    }

    /// Largest declared element count of a collection. Default unlimited (as in Redis).
    pub fn max_collection_len(&mut self, count: u64) -> &mut Self {
        self.max_collection_len = count;
        self
    }

    /// Size of the pieces a long string value is delivered in (at least 1). Default 64 KiB.
    /// Chunk boundaries depend only on this, never on how the input was split.
    pub fn chunk_size(&mut self, bytes: usize) -> &mut Self {
        self.chunk_size = bytes.max(1);
        self
    }

    /// Non-standard opcodes to accept and skip, each followed by one `len` (reported as
    /// [`RdbEvent::NonStandardOpcode`](super::RdbEvent::NonStandardOpcode)). Default: Redis
    /// Enterprise's 107 and 121.
    pub fn nonstandard_opcodes(&mut self, opcodes: &[u8]) -> &mut Self {
        self.nonstandard_opcodes = opcodes.to_vec();
        self
    }

    /// Skips the CRC-64 comparison at the end of the file. Meant for fuzzing only; the
    /// computed value is still reported as [`Checksum::Skipped`](super::Checksum::Skipped).
    pub fn danger_skip_checksum(&mut self, skip: bool) -> &mut Self {
        self.danger_skip_checksum = skip;
        self
    }

    /// Parses files whose version is newer than the newest this crate knows for their magic
    /// ([`Magic::newest_version`](super::Magic::newest_version)) instead of refusing them with
    /// [`RdbError::UnsupportedVersion`](super::RdbError::UnsupportedVersion). Default off.
    ///
    /// A newer file may use types or opcodes this parser does not know (a typed error where
    /// they appear); one that uses only known ones parses completely. Version 0 is always
    /// refused.
    ///
    /// ```
    /// use respsync::rdb::{Parser, ParserConfig, RdbError};
    ///
    /// let file = b"REDIS9999\xff";
    /// let mut strict = Parser::new(ParserConfig::default());
    /// strict.push(file);
    /// assert!(matches!(
    ///     strict.poll_event(),
    ///     Err(RdbError::UnsupportedVersion { version: 9999, newest: 13, .. })
    /// ));
    ///
    /// let mut config = ParserConfig::default();
    /// config.allow_newer_versions(true);
    /// let mut relaxed = Parser::new(config);
    /// relaxed.push(file);
    /// assert!(relaxed.poll_event().unwrap().is_some()); // the header
    /// ```
    pub fn allow_newer_versions(&mut self, allow: bool) -> &mut Self {
        self.allow_newer_versions = allow;
        self
    }

    /// Delivers values the file stores as one encoded string (LZF-compressed strings,
    /// ziplists, listpacks, intsets, zipmaps, quicklist and stream nodes) undecoded, as
    /// [`RdbEvent::Raw`](super::RdbEvent::Raw) / [`Visitor::raw_value`](super::Visitor::raw_value),
    /// so a consumer that does not look at a value does not pay for decompressing or walking
    /// it. Default off. Limits are checked as with it off; a corrupt container is reported
    /// when it is decoded ([`RawRef::decode`](super::RawRef::decode)), not while parsing.
    ///
    /// ```
    /// use respsync::rdb::{Parser, ParserConfig, RdbEvent};
    ///
    /// // A list stored as a ziplist (type 10) of the two elements "a" and "b".
    /// let ziplist = b"\x11\x00\x00\x00\x0d\x00\x00\x00\x02\x00\x00\x01a\x03\x01b\xff";
    /// let mut file = b"REDIS0006\xfe\x00\x0a\x01l\x11".to_vec();
    /// file.extend_from_slice(ziplist);
    /// file.extend_from_slice(b"\xff\0\0\0\0\0\0\0\0");
    ///
    /// let mut config = ParserConfig::default();
    /// config.lazy_values(true);
    /// let mut parser = Parser::new(config);
    /// parser.push(&file);
    /// parser.finish();
    /// while let Some(event) = parser.poll_event().unwrap() {
    ///     if let RdbEvent::Raw(raw) = event {
    ///         assert_eq!(raw.as_raw_ref().count().unwrap(), 2); // from the header
    ///         assert_eq!(
    ///             raw.events().unwrap(),
    ///             [RdbEvent::Element("a".into()), RdbEvent::Element("b".into())]
    ///         );
    ///     }
    /// }
    /// assert!(parser.is_done());
    /// ```
    pub fn lazy_values(&mut self, lazy: bool) -> &mut Self {
        self.lazy_values = lazy;
        self
    }

    /// The configured string limit.
    pub fn string_limit(&self) -> u64 {
        self.max_string_len
    }

    /// The configured container limit.
    pub fn blob_limit(&self) -> u64 {
        self.max_blob_len
    }
}
