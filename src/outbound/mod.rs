//! Outbound mail: the organisation's own mail on its way to the internet. `accept` decides who
//! may send what at the SMTP listeners (our clients, sender domains, signed-in users) and where
//! each recipient goes; `sasl` reads SMTP AUTH; `deliver` takes it from the queue to the MX hosts.

pub mod accept;
pub mod deliver;
pub mod guard;
pub mod sasl;
