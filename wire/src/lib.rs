//! The domain on the wire, in one place so both services answer alike: money as decimal
//! strings with two places, times as `google.protobuf.Timestamp`, enums as their proto values,
//! and the rows `ledger` returns as the API's messages (gRPC answers, NATS allocation requests
//! and status events).

use std::collections::HashMap;

use allocation_bus::{Committed, retry_msg_id};
use api::v1 as pb;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use ledger::{balance::Balance, deals::OpenDeal};
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

pub mod caller;
pub mod refusal;

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
        AllocationStatus::Cancelled => pb::AllocationStatus::Cancelled,
        AllocationStatus::Reversed => pb::AllocationStatus::Reversed,
    }
}

/// A request's allocation status filter -> stored: `Ok(None)` for `UNSPECIFIED` (all),
/// `Err(value)` for a value the API does not define.
pub fn allocation_status_filter(status: i32) -> Result<Option<AllocationStatus>, i32> {
    match pb::AllocationStatus::try_from(status) {
        Ok(pb::AllocationStatus::Unspecified) => Ok(None),
        Ok(pb::AllocationStatus::Pending) => Ok(Some(AllocationStatus::Pending)),
        Ok(pb::AllocationStatus::Processing) => Ok(Some(AllocationStatus::Processing)),
        Ok(pb::AllocationStatus::Completed) => Ok(Some(AllocationStatus::Completed)),
        Ok(pb::AllocationStatus::Failed) => Ok(Some(AllocationStatus::Failed)),
        Ok(pb::AllocationStatus::Cancelled) => Ok(Some(AllocationStatus::Cancelled)),
        Ok(pb::AllocationStatus::Reversed) => Ok(Some(AllocationStatus::Reversed)),
        Err(_) => Err(status),
    }
}

/// Stored failure reason -> proto: `UNSPECIFIED` when not failed.
pub fn allocation_failure(failure: Option<AllocationFailure>) -> pb::AllocationFailure {
    match failure {
        None => pb::AllocationFailure::Unspecified,
        Some(AllocationFailure::InsufficientInventory) => {
            pb::AllocationFailure::InsufficientInventory
        }
        Some(AllocationFailure::AttemptsExhausted) => pb::AllocationFailure::AttemptsExhausted,
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
        InvestmentStatus::Reversed => pb::InvestmentStatus::Reversed,
    }
}

/// A stored investment as the API shows it, with no allocations: for the states that hold
/// none (a create, a cancel, the failed ones) or where they are not read.
pub fn investment(row: &investment::Model) -> pb::Investment {
    with_allocations(row, Vec::new())
}

/// A stored investment as the API shows it, with its allocations.
pub fn with_allocations(
    row: &investment::Model,
    allocations: Vec<pb::Allocation>,
) -> pb::Investment {
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
        allocation_failure: allocation_failure(row.allocation_failure).into(),
        created_at: Some(timestamp(row.created_at)),
        allocated_at: row.allocated_at.map(timestamp),
        request_id: row.request_id.clone().unwrap_or_default(),
        status_version: row.status_version,
        updated_at: Some(timestamp(row.updated_at)),
        allocations,
        reversal: reversal(row),
    }
}

/// Who reversed it, when and why, if it was.
fn reversal(row: &investment::Model) -> Option<pb::Reversal> {
    Some(pb::Reversal {
        reason: row.reversal_reason.clone()?,
        reversed_by: row.reversed_by?.to_string(),
        reversed_at: Some(timestamp(row.reversed_at?)),
        request_id: row.reversal_request_id.clone().unwrap_or_default(),
    })
}

/// A subscription's balance with every term of its formula.
pub fn balance(balance: &Balance) -> pb::SubscriptionBalance {
    let a = &balance.aggregates;
    pb::SubscriptionBalance {
        subscription_id: a.subscription_id.to_string(),
        plan_id: a.plan_id.to_string(),
        plan_name: a.plan_name.clone(),
        status: subscription_status(a.status).into(),
        monthly_amount: money(a.monthly_amount),
        duration_months: a.duration_months,
        total_value: money(balance.total_value),
        months_completed: a.months_completed,
        total_paid: money(a.total_paid),
        total_invested: money(a.total_invested),
        reserved_amount: money(a.reserved_amount),
        available_balance: money(balance.available_balance),
        created_at: Some(timestamp(a.created_at)),
    }
}

/// Stored deal status -> proto.
fn deal_status(status: DealStatus) -> pb::DealStatus {
    match status {
        DealStatus::Open => pb::DealStatus::Open,
        DealStatus::Closed => pb::DealStatus::Closed,
    }
}

/// A deal by name, price and status, open or not.
pub fn deal_summary(deal: &deal::Model) -> pb::DealSummary {
    pb::DealSummary {
        id: deal.id.to_string(),
        name: deal.name.clone(),
        price_per_share: money(deal.price_per_share),
        status: deal_status(deal.status).into(),
    }
}

/// An open deal with its units.
pub fn open_deal(deal: &OpenDeal) -> pb::Deal {
    pb::Deal {
        id: deal.id.to_string(),
        name: deal.name.clone(),
        price_per_share: money(deal.price_per_share),
        status: pb::DealStatus::Open.into(),
        units_remaining: deal.units_remaining,
        units_reserved: deal.units_reserved,
        units_available: deal.units_available(),
        created_at: Some(timestamp(deal.created_at)),
    }
}

/// Allocation rows grouped by investment, in the order given. The price per share is
/// `value / units`, which is the investment's price (`investctl audit` checks that every
/// piece's value is its units times that price).
pub fn allocations(
    rows: impl IntoIterator<Item = user_investment::Model>,
) -> HashMap<Uuid, Vec<pb::Allocation>> {
    let mut by_investment: HashMap<Uuid, Vec<pb::Allocation>> = HashMap::new();
    for row in rows {
        by_investment
            .entry(row.investment_id)
            .or_default()
            .push(pb::Allocation {
                bulk_purchase_id: row.bulk_purchase_id.to_string(),
                units: row.units_allocated,
                value: money(row.value_allocated),
                price_per_share: money(
                    row.value_allocated
                        .checked_div(Decimal::from(row.units_allocated))
                        .unwrap_or_default(),
                ),
                reversed: row.is_reversed,
            });
    }
    by_investment
}

/// A logged status change as the API shows it; `allocations` only matter for `COMPLETED`.
pub fn update(
    event: &allocation_event::Model,
    allocations: Vec<pb::Allocation>,
) -> pb::AllocationUpdate {
    pb::AllocationUpdate {
        investment_id: event.investment_id.to_string(),
        allocation_status: allocation_status(event.allocation_status).into(),
        version: event.version,
        attempt: event.attempt,
        error: event.error.clone().unwrap_or_default(),
        failure: allocation_failure(event.failure).into(),
        allocations,
        updated_at: Some(timestamp(event.created_at)),
        deal_id: event.deal_id.to_string(),
    }
}

/// An investment's current state as an update (what a watcher is sent first).
pub fn current(row: &investment::Model, allocations: Vec<pb::Allocation>) -> pb::AllocationUpdate {
    update(&ledger::events::event_of(row), allocations)
}

/// The NATS status event for an investment's current state.
pub fn status_event(
    row: &investment::Model,
    allocations: Vec<pb::Allocation>,
) -> pb::AllocationStatusEvent {
    pb::AllocationStatusEvent {
        user_id: row.user_id.to_string(),
        update: Some(current(row, allocations)),
    }
}

/// The allocation request for a committed investment.
pub fn allocation_request(row: &investment::Model) -> pb::AllocationRequest {
    pb::AllocationRequest {
        investment_id: row.id.to_string(),
        user_id: row.user_id.to_string(),
        deal_id: row.deal_id.to_string(),
        subscription_id: row.subscription_id.to_string(),
        shares: row.shares,
        requested_at: Some(timestamp(row.created_at)),
    }
}

/// The request of a newly created (or swept) investment, to publish after commit:
/// `Nats-Msg-Id` is its id.
pub fn first_request(row: &investment::Model) -> Committed {
    Committed {
        investment_id: row.investment_id(),
        deal_id: row.deal(),
        msg_id: row.id.to_string(),
        request: allocation_request(row),
    }
}

/// The request of an admin retry, with a fresh `Nats-Msg-Id` ([`retry_msg_id`]).
pub fn retry_request(row: &investment::Model) -> Committed {
    Committed {
        investment_id: row.investment_id(),
        deal_id: row.deal(),
        msg_id: retry_msg_id(row.investment_id(), row.status_version),
        request: allocation_request(row),
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
