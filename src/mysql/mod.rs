//! The MySQL layer under both the server's store and the `thrudoc-admin` tool.
//!
//! - [`addr`]: [`HostAddr`], the one typed address of a MySQL/MariaDB server; it keys pools,
//!   health and routes.
//! - [`failure`]: MySQL error numbers by name, the one classifier of failures, the error text
//!   that says a cause once, and the one deadline of every connect and statement.
//! - [`gtid`]: GTIDs and GTID positions, parsed and compared.
//! - [`pair`]: "the master, else its sibling", how the directory is read.

pub mod addr;
pub mod failure;
pub mod gtid;
pub mod pair;

pub use addr::{HostAddr, DEFAULT_PORT};
pub use failure::{code, deadline, server_code, Access, Class, Failure, FENCE_TAG};
pub use gtid::{Gtid, GtidPos};
pub use pair::{master_else_sibling, Answered, FromPair};
