//! sea-orm entities of the invest schema (docs/data-model.md), shared by both services.
//!
//! Column names are part of the contract; the schema itself lives in the `migration` crate.
//! Columns are documented once, in docs/data-model.md and the migration, not field by field here.
#![allow(missing_docs)]

pub mod allocation_event;
pub mod bulk_purchase;
pub mod deal;
pub mod ids;
pub mod investment;
pub mod payment;
pub mod plan;
pub mod subscription;
pub mod user_investment;

/// The entities under short names: `use entity::prelude::*`.
pub mod prelude {
    pub use crate::allocation_event::{self, Entity as AllocationEvent};
    pub use crate::bulk_purchase::{self, Entity as BulkPurchase};
    pub use crate::deal::{self, DealStatus, Entity as Deal};
    pub use crate::ids::{DealId, InvestmentId, SubscriptionId, UserId};
    pub use crate::investment::{
        self, AllocationFailure, AllocationStatus, Entity as Investment, InvestmentStatus,
    };
    pub use crate::payment::{self, Entity as Payment, PaymentStatus};
    pub use crate::plan::{self, Entity as Plan};
    pub use crate::subscription::{self, Entity as Subscription, SubscriptionStatus};
    pub use crate::user_investment::{self, Entity as UserInvestment};
}
