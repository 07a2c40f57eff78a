//! One module per command.

pub mod events;
pub mod migrate;
pub mod serve;
