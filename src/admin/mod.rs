//! `thrudoc-admin`: the operator's tool for the MySQL backend.
//!
//! It works on the directory ([`crate::store::mysql::directory`]) and on the data hosts as
//! root, never through a Thrudoc server: it creates buckets and reports on what the directory
//! and the hosts say. Each command is one module that turns its options into steps and prints
//! what it does as it goes; the binary `src/bin/thrudoc-admin.rs` only calls [`cli::main`].
//!
//! - [`cli`]: the command line (clap), one options struct per command, exit codes; the flags
//!   of the commands that change where rows live are in `cli/layout.rs`.
//! - [`create`]: `create-tablename`: schema, directory tables, service account, pairing,
//!   partitions and their datatables, committed in one directory transaction.
//! - [`list`]: `list`: buckets and one bucket's partitions, as a server would load them.
//! - [`status`]: `status`: each host's reachability, replication and partition count.
//! - [`failover`]: `failover`, a master's partitions to its sibling with the master fenced
//!   first; [`switchover`]: their planned return: frozen, caught up, moved back;
//!   [`moves`]: what the two share.
//! - [`verify`]: `verify`: each partition's rows and checksum on master and sibling.
//! - [`reshape`]: the Directory Manager: `move`, `split`, `merge` of partitions while servers
//!   use them, and `rebalance` and `drain`, made of those; [`gc`]: dropping what they retired;
//!   [`hosts`]: `add-hosts` and `remove-hosts`.
//! - [`replica`]: GTID positions, waiting for replication, replication state, `read_only`.
//! - [`sql`]: root logins and statements under deadlines, so a dead or hung host gives an
//!   error naming it, never a hang; [`dirtx`]: a change of the directory, one transaction
//!   that commits with the version bumped or leaves the directory as it was.
//! - [`progress`]: steps, progress lines and warnings as a command goes.
//! - [`table`]: the plain-text tables of the output.

pub mod cli;
pub mod create;
pub mod dirtx;
pub mod failover;
pub mod gc;
pub mod hosts;
pub mod list;
pub mod moves;
pub mod progress;
pub mod replica;
pub mod reshape;
pub mod sql;
pub mod status;
pub mod switchover;
pub mod table;
pub mod verify;
