//! Thrudoc: a partitioned key-document store that speaks Apache Thrift.
//!
//! Clients in any language call the `Thrudoc` service of `idl/thrudoc.thrift` (`put`, `get`,
//! `remove`, `append`, `putValue`, `scan`, the batch methods and `admin`). The server checks
//! each call and hands it to a [`store::Store`]: the embedded SQLite store, or tables
//! partitioned over master-master pairs of MariaDB/MySQL servers.
//!
//! # Layout
//!
//! A request flows top to bottom through these modules; each knows only the ones below it.
//!
//! - [`server`]: accepts TCP connections, one tokio task per connection; detects transport and
//!   protocol, enforces connection and frame limits, drains on shutdown. Owns all socket I/O.
//! - [`codec`]: Thrift bytes to [`codec::Call`]s and [`codec::Reply`]s to bytes. Binary and
//!   compact protocols, framed and unframed transports. Pure functions, no I/O.
//! - [`service`]: one function per API method. Checks arguments (bucket names, sizes, counts),
//!   calls the store, and maps every [`Error`] to what the client sees, in one place
//!   ([`service::client_failure`]).
//! - [`store`]: the [`store::Store`] trait and its implementations: [`store::disk`] (SQLite)
//!   and [`store::mysql`] (partitions over MariaDB master-master pairs, with failover).
//! - [`config`]: `thrudoc.conf` parsing (`KEY = VALUE`, `THRUDOC_<KEY>` overrides), then
//!   validation into a typed [`config::Config`]. Secrets are redacted from `Debug`.
//! - [`error`]: the one error type, [`Error`], with an [`ErrorKind`].
//! - [`gen`]: the bindings the Apache Thrift compiler makes from the IDL; the typed client of
//!   tests and tools.
//!
//! - [`client`]: a blocking client over the generated bindings, any transport and protocol.
//! - [`app`]: start-up of the `thrudoc` binary (config, logging, store, listener, signals).
//! - [`admin`]: the `thrudoc-admin` tool for the MySQL backend (create-tablename, list,
//!   status, failover, switchover, verify).
//! - [`bench`](mod@bench): the `thrudoc-bench` tool: throughput and latency, side by side with MariaDB.
//!
//! Binaries in `src/bin/` only parse their command line and call into this library.

pub mod admin;
pub mod app;
pub mod bench;
pub mod client;
pub mod codec;
pub mod config;
pub mod error;
pub mod gen;
pub mod mysql;
pub mod rules;
pub mod server;
pub mod service;
pub mod store;

pub use error::{Error, ErrorKind, Result};
