//! investctl as a process, against real servers.

mod health;
mod migrate_tls;
