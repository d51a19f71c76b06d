//! Typed ids for what crosses crate boundaries: a function that takes a [`UserId`] and an
//! [`InvestmentId`] cannot be handed them swapped. Rows keep plain `Uuid` columns; the types
//! are taken at the edges (`row.investment_id()`, `InvestmentId::from(uuid)`) and go into
//! queries as values.

use std::{fmt, str::FromStr};

use sea_orm::Value;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The id as a plain UUID.
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl From<$name> for Value {
            fn from(id: $name) -> Self {
                id.0.into()
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(
    /// A user: the `sub` of a token.
    UserId
);
typed_id!(
    /// An investment.
    InvestmentId
);
typed_id!(
    /// A subscription.
    SubscriptionId
);
typed_id!(
    /// A deal, which is also an allocation pool.
    DealId
);
