//! What an operator sees of a running server, on a port of its own (`METRICS_PORT`):
//!
//! - [`metrics`]: the Prometheus metrics, `GET /metrics`.
//! - [`page`]: the status page, `GET /`: the cluster as a picture.
//! - [`http`]: the small HTTP responder that serves both.
//!
//! Both read the store's [`crate::store::view::ClusterView`] when asked, so a scrape or a page
//! load costs the request path nothing.

pub mod http;
pub mod metrics;
pub mod page;

pub use metrics::Metrics;
