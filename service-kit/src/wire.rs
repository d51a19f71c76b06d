//! How stored values look on the wire: money as decimal strings with two places, times as
//! `google.protobuf.Timestamp`, enums as their proto values. One place, so both services
//! answer alike.

use api::v1 as pb;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use rust_decimal::{Decimal, RoundingStrategy};

/// Currency amounts carry exactly two decimal places.
pub const MONEY_SCALE: u32 = 2;

/// `1234.5` -> `"1234.50"`; rounds half away from zero (explicitly, never banker's rounding).
pub fn money(amount: Decimal) -> String {
    let mut amount =
        amount.round_dp_with_strategy(MONEY_SCALE, RoundingStrategy::MidpointAwayFromZero);
    amount.rescale(MONEY_SCALE);
    amount.to_string()
}

/// A UTC time as a protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Stored allocation status -> proto.
pub fn allocation_status(status: AllocationStatus) -> pb::AllocationStatus {
    match status {
        AllocationStatus::Pending => pb::AllocationStatus::Pending,
        AllocationStatus::Processing => pb::AllocationStatus::Processing,
        AllocationStatus::Completed => pb::AllocationStatus::Completed,
        AllocationStatus::Failed => pb::AllocationStatus::Failed,
    }
}

/// Proto allocation status -> stored; `None` for `UNSPECIFIED` (and unknown values).
pub fn allocation_status_filter(status: pb::AllocationStatus) -> Option<AllocationStatus> {
    match status {
        pb::AllocationStatus::Unspecified => None,
        pb::AllocationStatus::Pending => Some(AllocationStatus::Pending),
        pb::AllocationStatus::Processing => Some(AllocationStatus::Processing),
        pb::AllocationStatus::Completed => Some(AllocationStatus::Completed),
        pb::AllocationStatus::Failed => Some(AllocationStatus::Failed),
    }
}

/// Stored subscription status -> proto.
pub fn subscription_status(status: SubscriptionStatus) -> pb::SubscriptionStatus {
    match status {
        SubscriptionStatus::Active => pb::SubscriptionStatus::Active,
        SubscriptionStatus::Paused => pb::SubscriptionStatus::Paused,
        SubscriptionStatus::Cancelled => pb::SubscriptionStatus::Cancelled,
        SubscriptionStatus::Completed => pb::SubscriptionStatus::Completed,
    }
}

fn investment_status(status: InvestmentStatus) -> pb::InvestmentStatus {
    match status {
        InvestmentStatus::Pending => pb::InvestmentStatus::Pending,
        InvestmentStatus::Active => pb::InvestmentStatus::Active,
        InvestmentStatus::Cancelled => pb::InvestmentStatus::Cancelled,
        InvestmentStatus::Failed => pb::InvestmentStatus::Failed,
    }
}

/// A stored investment as the API shows it.
pub fn investment(row: &investment::Model) -> pb::Investment {
    pb::Investment {
        id: row.id.to_string(),
        user_id: row.user_id.to_string(),
        subscription_id: row.subscription_id.to_string(),
        deal_id: row.deal_id.to_string(),
        shares: row.shares,
        price_per_share: money(row.price_per_share),
        total_amount: money(row.total_amount),
        status: investment_status(row.status).into(),
        allocation_status: allocation_status(row.allocation_status).into(),
        allocation_attempts: row.allocation_attempts,
        allocation_error: row.allocation_error.clone().unwrap_or_default(),
        created_at: Some(timestamp(row.created_at)),
        allocated_at: row.allocated_at.map(timestamp),
        request_id: row.request_id.clone().unwrap_or_default(),
        status_version: row.status_version,
        updated_at: Some(timestamp(row.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn money_has_two_places_and_rounds_half_away_from_zero() {
        let d = |s| Decimal::from_str(s).expect("decimal");
        assert_eq!(money(d("1234.5")), "1234.50");
        assert_eq!(money(d("0")), "0.00");
        assert_eq!(money(d("0.125")), "0.13");
        assert_eq!(money(d("-0.125")), "-0.13");
        assert_eq!(money(d("10.00")), "10.00");
    }
}
