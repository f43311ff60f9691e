//! The SMTP protocol, both as a server (facing the internet) and as a client (facing the backend).

/// Envelope address syntax lives below the config (which checks addresses in it); the SMTP code
/// reaches it here too.
pub use crate::address;
pub mod client;
pub mod command;
pub mod conn;
pub mod data;
pub mod greet_passes;
pub mod pool;
pub mod received;
pub mod reply;
pub mod self_signed;
pub mod session;
pub mod strip;
pub mod tarpit;
pub mod tls;
