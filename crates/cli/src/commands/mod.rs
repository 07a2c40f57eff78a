//! One module per command. The operator commands (`jobs`, `groups`, `stats`, `events`,
//! `entitlements`, `prune`, `audit`, `notifications`) all live here; `operator` mounts the queue's, `output` holds what
//! they all share (`--json`, `--yes`, the one-line error) and `table` their terminal output.

pub mod audit;
pub mod backup;
pub mod demo;
pub mod entitlements;
pub mod events;
pub mod groups;
pub mod jobs;
pub mod listen;
pub mod migrate;
pub mod notifications;
pub mod operator;
pub mod output;
pub mod prune;
pub mod reconcile;
pub mod serve;
pub mod stats;
pub mod table;
pub mod tiers;
pub mod worker;
