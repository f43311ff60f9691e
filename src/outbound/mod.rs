//! Outbound mail: the organisation's own mail on its way to the internet.

pub mod deliver;
