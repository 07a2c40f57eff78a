//! Structured logs via tracing: text for terminals, JSON for pipelines.

use std::ffi::OsString;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::options::Global;

/// Installs the global subscriber.
pub fn init(global: &Global) -> Result<()> {
    let filter = EnvFilter::try_new(&global.log).with_context(|| format!("invalid log filter `{}`", global.log))?;
    let ansi = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if global.log_format == "json" { builder.json().try_init() } else { builder.try_init() }
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// Colour escapes only for a person at a terminal: never into a file or a pipe (log
/// collectors would store them), and never when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>).
fn colour(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR is unset");
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None), "a file or a pipe gets plain text");
    }
}
