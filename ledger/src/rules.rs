//! The rules a reservation of a subscription's balance must pass: the same for a create and
//! for an admin retry (which reserves the amount again), so both refuse alike.

use entity::prelude::*;
use rust_decimal::Decimal;

/// Why a reservation is refused (`wire::refusal` says it as `FAILED_PRECONDITION`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only `active` subscriptions may invest.
    #[error("subscription is {}, not active", subscription_word(*.0))]
    SubscriptionNotActive(SubscriptionStatus),
    /// The deal no longer takes investments.
    #[error("deal is closed")]
    DealClosed,
    /// Not enough balance left once pending investments are reserved.
    #[error("insufficient available balance: {required} required, {available} available")]
    InsufficientBalance {
        /// What the investment costs.
        required: Decimal,
        /// What the subscription can still spend.
        available: Decimal,
    },
}

/// A subscription status as the refusal's message and details say it.
pub fn subscription_word(status: SubscriptionStatus) -> &'static str {
    match status {
        SubscriptionStatus::Active => "active",
        SubscriptionStatus::Paused => "paused",
        SubscriptionStatus::Cancelled => "cancelled",
        SubscriptionStatus::Completed => "completed",
    }
}

/// What a reservation is checked against, read under the subscription's row lock.
#[derive(Clone, Copy, Debug)]
pub struct Reservation {
    /// The paying subscription's status.
    pub subscription: SubscriptionStatus,
    /// The deal's status.
    pub deal: DealStatus,
    /// The investment's total amount.
    pub required: Decimal,
    /// The subscription's available balance (pending investments already reserved).
    pub available: Decimal,
}

impl Reservation {
    /// Passes, or says the first rule broken: subscription, then deal, then balance.
    pub fn check(&self) -> Result<(), Refusal> {
        if self.subscription != SubscriptionStatus::Active {
            return Err(Refusal::SubscriptionNotActive(self.subscription));
        }
        if self.deal != DealStatus::Open {
            return Err(Refusal::DealClosed);
        }
        if self.required > self.available {
            return Err(Refusal::InsufficientBalance {
                required: self.required,
                available: self.available,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation() -> Reservation {
        Reservation {
            subscription: SubscriptionStatus::Active,
            deal: DealStatus::Open,
            required: Decimal::new(1000, 2),
            available: Decimal::new(1000, 2),
        }
    }

    #[test]
    fn each_rule_refuses_in_order() {
        assert_eq!(reservation().check(), Ok(()));
        let paused = Reservation {
            subscription: SubscriptionStatus::Paused,
            deal: DealStatus::Closed,
            ..reservation()
        };
        assert_eq!(
            paused.check(),
            Err(Refusal::SubscriptionNotActive(SubscriptionStatus::Paused))
        );
        let closed = Reservation {
            deal: DealStatus::Closed,
            required: Decimal::MAX,
            ..reservation()
        };
        assert_eq!(closed.check(), Err(Refusal::DealClosed));
        let short = Reservation {
            required: Decimal::new(1001, 2),
            ..reservation()
        };
        assert_eq!(
            short.check().map_err(|r| r.to_string()),
            Err("insufficient available balance: 10.01 required, 10.00 available".into())
        );
    }
}
