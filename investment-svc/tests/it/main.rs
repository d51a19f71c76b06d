//! investment-svc black-box tests: the service in process on port 0, a fresh database per
//! test, real NATS, real tonic clients.

mod allocations;
mod auth;
mod balances;
mod connections;
mod create;
mod dashboard_api;
mod deals;
mod hostile;
mod limits;
mod operability;
mod plans;
mod read;
mod readonly;
mod secrets;
mod support;
mod sweeper;
mod tls;
mod tls_links;
mod tokens;
mod web;
