//! Thrudoc: a partitioned key-document store that speaks Apache Thrift.
//!
//! Clients in any language call the `Thrudoc` service of `idl/thrudoc.thrift` (`put`, `get`,
//! `remove`, `append`, `putValue`, `scan`, the batch methods and `admin`). The server checks
//! each call and hands it to a [`store::Store`]: the embedded SQLite store, or tables
//! partitioned over master-master pairs of MariaDB/MySQL servers.
//!
//! # Layout
//!
//! A request comes in at the top and goes down; each module knows only those below it.
//!
//! - [`server`]: accepts TCP connections, one tokio task per connection; detects transport and
//!   protocol, enforces connection and frame limits, drains on shutdown. Owns all socket I/O;
//!   [`tls`] gives it TLS (rustls) on the same port.
//! - [`service`]: one function per API method. Checks arguments, calls the store, and maps
//!   every [`Error`] to what the client sees, in one place ([`service::client_failure`]);
//!   [`failure_log`] logs failed calls in proportion (one line per kind and partition per
//!   window, the rest counted).
//! - [`store`]: the [`store::Store`] trait and its implementations: [`store::disk`] (SQLite)
//!   and [`store::mysql`] (partitions over MariaDB master-master pairs, with failover and
//!   reads during an outage that never go back in time).
//! - [`mysql`]: the MySQL layer under the store and the admin tool: typed host addresses,
//!   MySQL error numbers and what they mean, deadlines, "the master, else its sibling", GTID
//!   positions.
//!
//! Beside them, used from several floors:
//!
//! - [`codec`]: the ground floor. Thrift bytes to [`codec::Call`]s and [`codec::Reply`]s to
//!   bytes; binary and compact protocols, framed and unframed transports. Pure, no I/O.
//! - [`rules`]: what a bucket name, key, value, schema name and scan seed may be.
//! - [`config`]: `thrudoc.conf` (every key declared once, `THRUDOC_<KEY>` overrides),
//!   validated into a typed [`config::Config`]. Secrets are redacted from `Debug`.
//! - [`error`]: the one error type, [`Error`]: a kind, context added on the way up, a cause.
//! - [`gen`]: the bindings the Apache Thrift compiler makes from the IDL; the typed client of
//!   tests and tools.
//!
//! And the programs:
//!
//! - [`app`]: start-up of the `thrudoc` binary (config, logging, store, listener, signals).
//! - [`observe`]: the operator's port: Prometheus metrics and the status page.
//! - [`client`]: a blocking client over the generated bindings, any transport and protocol.
//! - [`admin`]: the `thrudoc-admin` tool for the MySQL backend (create-tablename, list,
//!   status, failover, switchover, verify; the Directory Manager's move, split, merge,
//!   rebalance, drain, add-hosts, remove-hosts and gc).
//! - [`bench`](mod@bench): the `thrudoc-bench` tool: throughput, latency and the CPU each
//!   operation costs, side by side with MariaDB.
//!
//! Binaries in `src/bin/` only parse their command line and call into this library. The rules
//! the code keeps are in `docs/DESIGN.md`; how the parts work, in `docs/ARCHITECTURE.md`.

pub mod admin;
pub mod app;
pub mod bench;
pub mod client;
pub mod codec;
pub mod config;
pub mod error;
pub mod failure_log;
pub mod gen;
pub mod mysql;
pub mod observe;
pub mod rules;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;

pub use error::{Error, ErrorKind, Result};
