//! Why a tier file was rejected, by file and line.

use thiserror::Error;

/// Why a tier config was rejected, located by file and (when known) line so an operator
/// can fix it without guessing.
#[derive(Debug, Error)]
#[error("{file}{}: {kind}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// File path, or `<string>` for [`TierConfig::from_toml_str`].
    pub file: String,
    /// 1-based line, when the problem can be pinned to one.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

/// The specific config problem.
#[derive(Debug, Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read tier config: {0}")]
    Io(#[from] std::io::Error),
    /// TOML syntax or shape error (unknown key, wrong type…).
    #[error("invalid tier config: {0}")]
    Parse(String),
    /// A price mapping names a tier that is not defined.
    #[error("price mapping refers to unknown tier {0:?}")]
    UnknownTier(String),
    /// A price mapping names an add-on that has no `[addons.<name>]` table.
    #[error("price mapping refers to unknown add-on {0:?} (define it as [addons.{0}])")]
    UnknownAddon(String),
    /// A price entry must name exactly one of `tier` and `addon`.
    #[error("a price maps to either a `tier` (a plan) or an `addon` (grants on top of a tier), exactly one")]
    TierOrAddon,
    /// The same lookup_key or price id is mapped twice.
    #[error("duplicate price mapping for {what} {value:?} (first mapped on line {first_line})")]
    DuplicatePrice {
        /// `lookup_key` or `id`.
        what: &'static str,
        /// The duplicated value.
        value: String,
        /// Where it was first mapped.
        first_line: usize,
    },
    /// A price entry has neither `lookup_key` nor `id`.
    #[error("price mapping needs a lookup_key or an id")]
    EmptyPrice,
    /// No `free` tier.
    #[error("the \"free\" tier must be defined")]
    MissingFree,
    /// A tier removes read/export access.
    #[error(
        "tier {0:?} must grant records, obligations.view and export (tax records must stay readable and exportable)"
    )]
    ReadExportRemoved(String),
    /// `order` and `[tiers.*]` disagree.
    #[error("tier {0:?} must appear exactly once in `order` and have a [tiers.{0}] table")]
    OrderMismatch(String),
}
