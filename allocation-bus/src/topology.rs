//! Where allocation traffic lives: the stream's name and settings and its subjects.

use std::time::Duration;

use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use entity::prelude::*;
use service_kit::config::NatsArgs;

/// Where allocation traffic lives: the stream and its subjects.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Stream name, `ALLOCATIONS` by default.
    pub stream: String,
    /// First subject token, `allocations` by default.
    pub prefix: String,
    /// Stream replicas.
    pub replicas: usize,
    /// Server-side de-duplication window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// How long a publish is retried (no responders, no acknowledgement) before it is left to
    /// the sweeper; inside `duplicate_window` ([`NatsArgs::check`]).
    pub publish_retry: Duration,
}

impl Topology {
    /// From the shared NATS settings.
    pub fn from_args(args: &NatsArgs) -> Self {
        Self {
            stream: args.nats_stream.clone(),
            prefix: args.nats_subject_prefix.clone(),
            replicas: args.nats_stream_replicas,
            duplicate_window: args.nats_duplicate_window,
            publish_retry: args.nats_publish_retry,
        }
    }

    /// `<prefix>.requests.<deal_id>`: the deal is the allocation pool.
    pub fn request_subject(&self, deal_id: DealId) -> String {
        format!("{}.requests.{deal_id}", self.prefix)
    }

    /// `<prefix>.requests.*`: every request, for the stream and its consumer.
    pub fn request_filter(&self) -> String {
        format!("{}.requests.*", self.prefix)
    }

    /// `<prefix>.status.<user_id>.<investment_id>`.
    pub fn status_subject(&self, user_id: UserId, investment_id: InvestmentId) -> String {
        format!("{}.status.{user_id}.{investment_id}", self.prefix)
    }

    /// The stream's configuration: work-queue retention (a request is gone once acked),
    /// file storage, de-duplication by message id.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.request_filter()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_takes_every_deal_s_requests_and_no_status_event() {
        let topology = Topology {
            stream: "S".into(),
            prefix: "p".into(),
            replicas: 3,
            duplicate_window: Duration::from_secs(120),
            publish_retry: Duration::from_secs(10),
        };
        let id = "0190f3a0-0000-7000-8000-000000000001";
        let deal: DealId = id.parse().expect("uuid");
        let user: UserId = id.parse().expect("uuid");
        let investment: InvestmentId = id.parse().expect("uuid");
        assert_eq!(topology.request_subject(deal), format!("p.requests.{id}"));
        assert_eq!(
            topology.status_subject(user, investment),
            format!("p.status.{id}.{id}")
        );
        let config = topology.stream_config();
        assert_eq!(config.subjects, ["p.requests.*"]);
        assert_eq!(
            (config.num_replicas, config.retention),
            (3, RetentionPolicy::WorkQueue)
        );
    }
}
