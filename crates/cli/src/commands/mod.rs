//! One module per command.

pub mod demo;
pub mod entitlements;
pub mod events;
pub mod migrate;
pub mod prune;
pub mod serve;
pub mod worker;
