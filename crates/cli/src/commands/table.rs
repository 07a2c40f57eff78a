//! The operator commands' output: aligned plain-text tables for the terminal, the cell
//! formatting they share, pretty JSON for `--json`, and sanitising of attacker-influenced text
//! (payload fields, error messages) so it cannot send escape sequences to the operator's
//! terminal.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Writes `value` as pretty JSON and a line feed: the `--json` form of a command's answer.
pub fn write_json(out: &mut impl Write, value: &impl Serialize) -> Result<(), super::output::CliError> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A UTC time as a table cell (`2026-11-24 02:00:00`), `-` when absent.
pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into())
}

/// A possibly empty text as a table cell: `-` when empty.
pub fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_string() }
}

/// One line of at most `max` characters (whitespace runs collapsed, `…` when cut): long error
/// messages in a table column, shortened as the dashboard shortens them.
pub use subsync_admin::html::truncate;

/// Replaces control characters (ESC, CR, BEL…) with their `\u{…}` escape; keeps line feeds
/// and tabs only when `multiline`.
pub fn clean(s: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' if multiline => out.push(c),
            '\n' | '\t' | '\r' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// A table built row by row, then written with every column padded to its widest cell.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self { headers: headers.iter().map(|h| (*h).to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row; cells are cleaned to one line.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| clean(&c, false)).collect());
    }

    /// Writes the table; the last column is not padded (no trailing spaces).
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, cell) in cells.iter().enumerate().take(cols) {
                if i + 1 == cols {
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
                }
            }
            s.trim_end().to_string()
        };
        writeln!(out, "{}", line(&self.headers))?;
        for row in &self.rows {
            writeln!(out, "{}", line(row))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_escapes_are_neutralised() {
        let mut t = Table::new(&["ID", "STATE", "ERROR"]);
        t.row(vec!["a".into(), "dead".into(), "boom\x1b[2J\nline2".into()]);
        t.row(vec!["longer-id".into(), "pending".into(), String::new()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "ID         STATE    ERROR\n\
             a          dead     boom\\u{1b}[2J line2\n\
             longer-id  pending\n"
        );
        assert_eq!(clean("a\nb\x07", true), "a\nb\\u{7}");
    }

    #[test]
    fn cells_dash_empty_values_and_cut_long_ones() {
        assert_eq!(dash(""), "-");
        assert_eq!(time(None), "-");
        assert_eq!(truncate("a  b\nc", 10), "a b c");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
