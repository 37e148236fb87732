//! What an operator sees of a running server, on a port of its own (`METRICS_PORT`):
//!
//! - [`metrics`]: the Prometheus metrics, `GET /metrics`; [`cluster`]: the store's part of
//!   them.
//! - [`page`]: the status page, `GET /`: the cluster as a picture.
//! - [`http`]: the small HTTP responder that serves both.
//!
//! Both read the store's [`crate::store::view::ClusterView`] when asked, so a scrape or a page
//! load costs the request path nothing.

pub mod cluster;
pub mod http;
pub mod metrics;
pub mod page;

pub use metrics::Metrics;
