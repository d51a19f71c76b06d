//! The money rules both services apply the same way: a subscription's balance (one
//! definition, docs/data-model.md), pages of investments, the allocation event log that watchers
//! read, and the audit of the invariants that involve money.

pub mod audit;
pub mod balance;
pub mod deals;
pub mod events;
pub mod listing;
pub mod outcomes;
pub mod rules;
pub mod sql;
