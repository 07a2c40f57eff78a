//! One module per command.

pub mod demo;
pub mod entitlements;
pub mod events;
pub mod migrate;
pub mod serve;
pub mod worker;
