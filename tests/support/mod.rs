//! The one harness shared by the integration tests (and `benches/rdb.rs`):
//! - [`server`]: real peers (`Peer`: Redis 6.2, 7.0, 8.2, Valkey 8.1) and example binaries on free loopback
//!   ports in temp dirs, killed on drop; binary lookup; wait-until helpers; dataset comparison.
//! - [`client`]: a tiny blocking RESP client on the crate's own codec.
//! - [`dataset`]: argument vectors, pipelines that must not fail, a dataset with every type.
//! - [`corpus`]: the RDB corpus location and its `.expected.json` conventions.
//! - [`replica`]: a scripted master and an applying app for the replica session tests.
//!
//! Each test binary uses a part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

pub mod client;
pub mod corpus;
pub mod dataset;
pub mod replica;
pub mod server;

#[allow(unused_imports)]
pub use client::{Conn, FrameExt};
#[allow(unused_imports)]
pub use dataset::{check_and_drop_bulk, load_bulk, populate, run, s};
#[allow(unused_imports)]
pub use server::*;
