//! allocation-svc black-box tests: investment-svc and one or more allocation-svc replicas in
//! process on port 0, a fresh database, private NATS names, real tonic clients.

mod admin;
mod allocation;
mod allocation_failure;
mod audit;
mod cancel;
mod chaos;
mod cluster;
mod deliveries;
mod fanout;
mod faults;
mod hostile;
mod lanes;
mod lifecycle;
mod metrics;
mod operability;
mod pg_restart;
mod plans;
mod pools;
mod readme;
mod replicas;
mod secrets;
mod selfheal;
mod statements;
mod support;
mod totals;
mod watch;
mod watch_cap;
mod web;
