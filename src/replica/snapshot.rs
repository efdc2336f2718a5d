//! [`SnapshotLoader`]: feeds the snapshot of a full sync to the crate's RDB parser and
//! checks it ends exactly where the transfer ends.

use bytes::Bytes;
use thiserror::Error;

use crate::rdb::{Checksum, KeyRef, Parser, ParserConfig, RawRef, RdbError, RdbEvent, Visitor};

/// Why a received snapshot is not acceptable.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The RDB itself is broken (including a checksum mismatch or a truncated file).
    #[error(transparent)]
    Rdb(#[from] RdbError),
    /// Bytes followed the RDB end inside the transfer: for a `$EOF:` transfer this means the
    /// mark did not come right after the RDB ("EOF marker is broken" in Redis).
    #[error("{count} bytes after the rdb end at offset {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: u64,
        /// How many extra bytes.
        count: usize,
    },
}

/// Parses the snapshot of a full sync as it arrives from a
/// [`ReplicaSession`](super::ReplicaSession).
///
/// Push each [`ReplicaEvent::RdbChunk`](super::ReplicaEvent::RdbChunk), drain
/// [`poll_event`](SnapshotLoader::poll_event), and on
/// [`ReplicaEvent::RdbEnd`](super::ReplicaEvent::RdbEnd) call
/// [`finish`](SnapshotLoader::finish) and drain again: the last event is
/// [`RdbEvent::End`] with the checksum outcome, or an error if the file was truncated, had
/// a bad checksum, or did not end exactly where the transfer did.
///
/// [`parse_with`](SnapshotLoader::parse_with) is the fast path: the same parse handed to a
/// borrowing [`Visitor`], with the same checks, several times faster than owned events.
///
/// ```
/// use respsync::rdb::{Checksum, ParserConfig, RdbEvent};
/// use respsync::replica::SnapshotLoader;
///
/// let mut loader = SnapshotLoader::new(ParserConfig::default());
/// loader.push(b"REDIS0010\xff\0\0\0\0\0\0\0\0"); // an empty RDB, checksum disabled
/// loader.finish();
/// let mut last = None;
/// while let Some(ev) = loader.poll_event().unwrap() {
///     last = Some(ev);
/// }
/// assert_eq!(last, Some(RdbEvent::End { checksum: Checksum::Disabled }));
/// assert_eq!(loader.checksum(), Some(Checksum::Disabled));
/// ```
#[derive(Debug)]
pub struct SnapshotLoader {
    parser: Parser,
    finished: bool,
    checksum: Option<Checksum>,
}

impl SnapshotLoader {
    /// A loader whose parser has the given limits.
    pub fn new(config: ParserConfig) -> SnapshotLoader {
        SnapshotLoader {
            parser: Parser::new(config),
            finished: false,
            checksum: None,
        }
    }

    /// Feeds snapshot bytes (copied; [`SnapshotLoader::push_bytes`] avoids the copy).
    pub fn push(&mut self, data: &[u8]) {
        self.parser.push(data);
    }

    /// Feeds snapshot bytes without copying them: the events hold slices of `data`
    /// ([`Parser::push_bytes`]). `RdbChunk` events carry `Bytes`, so this is the fast path.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use respsync::rdb::{ParserConfig, RdbEvent};
    /// use respsync::replica::SnapshotLoader;
    ///
    /// let mut loader = SnapshotLoader::new(ParserConfig::default());
    /// loader.push_bytes(Bytes::from_static(b"REDIS0010\xff\0\0\0\0\0\0\0\0"));
    /// loader.finish();
    /// while loader.poll_event().unwrap().is_some() {}
    /// assert!(loader.is_done());
    /// ```
    pub fn push_bytes(&mut self, data: Bytes) {
        self.parser.push_bytes(data);
    }

    /// Declares that the transfer ended (the session emitted `RdbEnd`).
    pub fn finish(&mut self) {
        self.finished = true;
        self.parser.finish();
    }

    /// The next parsed event, `Ok(None)` when more input is needed or all is done.
    pub fn poll_event(&mut self) -> Result<Option<RdbEvent>, SnapshotError> {
        let ev = self.parser.poll_event()?;
        if let Some(RdbEvent::End { checksum }) = &ev {
            self.checksum = Some(*checksum);
        }
        self.check_trailing()?;
        Ok(ev)
    }

    /// Parses everything pushed so far into `visitor` (see [`Visitor`]): keys, strings and
    /// items as slices of the pushed bytes, with no allocation per key; everything else as
    /// [`RdbEvent`]s. The fast path: call it after each push instead of draining
    /// [`poll_event`](SnapshotLoader::poll_event), and once more after
    /// [`finish`](SnapshotLoader::finish).
    ///
    /// The checks are those of `poll_event`: a truncated file or a bad checksum is a
    /// [`SnapshotError::Rdb`], and bytes after the RDB end are
    /// [`SnapshotError::TrailingBytes`] as soon as they are pushed (the visitor has seen
    /// [`RdbEvent::End`] by then; [`checksum`](SnapshotLoader::checksum) has its outcome).
    /// Errors are sticky. The two ways can be mixed: events already parsed for `poll_event`
    /// are handed to the visitor first.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use respsync::rdb::{Checksum, KeyRef, ParserConfig, RdbEvent, Visitor};
    /// use respsync::replica::{SnapshotError, SnapshotLoader};
    ///
    /// #[derive(Default)]
    /// struct Keys(Vec<Vec<u8>>);
    /// impl Visitor for Keys {
    ///     fn event(&mut self, _event: RdbEvent) {}
    ///     fn key_start(&mut self, key: KeyRef<'_>) {
    ///         self.0.push(key.key.to_vec());
    ///     }
    /// }
    ///
    /// // Version 3 (no checksum): SELECTDB 0, "a" = "1", "b" = "2", EOF.
    /// let rdb = b"REDIS0003\xfe\x00\x00\x01a\xc0\x01\x00\x01b\xc0\x02\xff";
    /// let mut loader = SnapshotLoader::new(ParserConfig::default());
    /// let mut keys = Keys::default();
    /// for chunk in rdb.chunks(7) {
    ///     // As `ReplicaEvent::RdbChunk` data arrives.
    ///     loader.push_bytes(Bytes::copy_from_slice(chunk));
    ///     loader.parse_with(&mut keys).unwrap();
    /// }
    /// loader.finish();
    /// loader.parse_with(&mut keys).unwrap();
    /// assert!(loader.is_done());
    /// assert_eq!(loader.checksum(), Some(Checksum::Absent));
    /// assert_eq!(keys.0, [b"a".to_vec(), b"b".to_vec()]);
    ///
    /// // A transfer that goes on after the RDB end is refused.
    /// let mut loader = SnapshotLoader::new(ParserConfig::default());
    /// loader.push(rdb);
    /// loader.push(b"junk");
    /// let err = loader.parse_with(&mut Keys::default()).unwrap_err();
    /// assert!(matches!(err, SnapshotError::TrailingBytes { count: 4, .. }));
    /// ```
    pub fn parse_with<V: Visitor>(&mut self, visitor: &mut V) -> Result<(), SnapshotError> {
        let mut tap = EndTap {
            inner: visitor,
            checksum: &mut self.checksum,
        };
        self.parser.parse_with(&mut tap)?;
        self.check_trailing()
    }

    /// After the end of the RDB, bytes pushed after it are an error. Checked at every call,
    /// so extra bytes are reported as soon as they are pushed, not only at `finish`.
    fn check_trailing(&self) -> Result<(), SnapshotError> {
        if self.parser.is_done() && !self.parser.remaining().is_empty() {
            return Err(SnapshotError::TrailingBytes {
                offset: self.parser.offset(),
                count: self.parser.remaining().len(),
            });
        }
        Ok(())
    }

    /// Whether the snapshot was parsed whole and the transfer ended right after it.
    pub fn is_done(&self) -> bool {
        self.finished && self.parser.is_done() && self.parser.remaining().is_empty()
    }

    /// The checksum outcome, once the end of the RDB was parsed.
    pub fn checksum(&self) -> Option<Checksum> {
        self.checksum
    }
}

/// Passes everything on to the caller's visitor, noting the checksum outcome on the way.
struct EndTap<'a, V> {
    inner: &'a mut V,
    checksum: &'a mut Option<Checksum>,
}

impl<V: Visitor> Visitor for EndTap<'_, V> {
    fn event(&mut self, event: RdbEvent) {
        if let RdbEvent::End { checksum } = &event {
            *self.checksum = Some(*checksum);
        }
        self.inner.event(event);
    }
    fn key_start(&mut self, key: KeyRef<'_>) {
        self.inner.key_start(key);
    }
    fn string_chunk(&mut self, data: &[u8]) {
        self.inner.string_chunk(data);
    }
    fn element(&mut self, element: &[u8]) {
        self.inner.element(element);
    }
    fn zset_member(&mut self, member: &[u8], score: f64) {
        self.inner.zset_member(member, score);
    }
    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        self.inner.hash_field(field, value, expire_ms);
    }
    fn raw_value(&mut self, value: RawRef<'_>) {
        self.inner.raw_value(value);
    }
    fn key_end(&mut self) {
        self.inner.key_end();
    }
}
