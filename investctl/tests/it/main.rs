//! investctl as a process, against real servers.

mod migrate_tls;
