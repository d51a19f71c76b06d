//! The allocation requests and status events on NATS JetStream (docs/messaging.md): the
//! stream and its subjects ([`Topology`], ensured by [`ensure_stream`]), publishing a request
//! with the investment id as `Nats-Msg-Id` through a stream leader election, the one
//! after-commit publish path and its bookkeeping ([`publish_committed`]), status events for
//! watchers, and the publish metrics each service registers ([`metrics`]).
//!
//! The NATS connection itself is generic and stays in `service_kit::messaging`.

pub mod committed;
pub mod metrics;
pub mod publish;
pub mod status;
pub mod stream;
pub mod topology;

pub use committed::{Committed, Unpublished, publish_committed};
pub use metrics::{PublishMetrics, PublishPath};
pub use publish::{publish_request, retry_msg_id};
pub use status::announce_status;
pub use stream::ensure_stream;
pub use topology::Topology;
