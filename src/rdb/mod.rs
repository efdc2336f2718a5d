//! RDB snapshots: the file format Redis and Valkey use for snapshots and full resyncs.
//!
//! This module currently holds the low-level [`encoding`] layer: the compact containers that
//! RDB values embed inside strings (ziplist, listpack, intset, zipmap), LZF and the CRC-64.
pub mod encoding;
