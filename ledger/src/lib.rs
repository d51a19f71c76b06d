//! The money rules both services apply the same way: a subscription's balance (one
//! definition, DESIGN.md §3), pages of investments, and the allocation event log that
//! watchers read.

pub mod balance;
pub mod events;
pub mod listing;
