//! The archive: what the backup keeps, taken out for people and auditors. So far [`export`]:
//! a person's kept mail as an mbox file or a zip of `.eml` files, byte for byte.

pub mod export;
