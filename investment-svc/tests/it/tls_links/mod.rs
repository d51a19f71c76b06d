//! The links to NATS and PostgreSQL over TLS, against real servers with certificates made at
//! run time (testkit's `TestCa`): each test checks what is accepted and what is refused, with
//! a control case showing the refusal comes from the behaviour under test.

mod nats;
mod postgres;
