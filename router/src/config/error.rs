//! Configuration errors that point at the file, the line and the TOML path.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The text of a configuration file, to turn byte spans into lines and columns.
#[derive(Clone, Debug)]
pub struct Source {
    /// The file as named by the user (relative paths stay relative in messages).
    pub file: PathBuf,
    text: Arc<str>,
}

impl Source {
    /// Wraps a file's text.
    pub fn new(file: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        Self {
            file: file.into(),
            text: text.into(),
        }
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The span of the value at TOML path `at`, or of the deepest table on the way
    /// that is written (a key left to its default has no place of its own): for
    /// errors found after parsing, by parts that keep no spans.
    pub fn span_of(&self, at: &[&str]) -> Option<Range<usize>> {
        use toml::de::{DeTable, DeValue};
        let root = DeTable::parse(self.text()).ok()?;
        let mut table = root.get_ref();
        let mut found = None;
        for key in at {
            let Some((_, value)) = table.iter().find(|(k, _)| k.get_ref() == key) else {
                break;
            };
            found = Some(value.span());
            match value.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => break,
            }
        }
        found
    }

    /// The 1-based line and column of byte offset `at`.
    pub fn line_col(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.text.len());
        let before = &self.text[..at];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// An error at `span`, about the value at TOML path `path`.
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = span.map_or((0, 0), |s| self.line_col(s.start));
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line, or 0 when the problem is about the whole file.
    pub line: usize,
    /// 1-based column, or 0 with line 0.
    pub column: usize,
    /// The TOML path of the offending key, like `route[1].filter.exact`; empty for
    /// the whole file.
    pub path: String,
    /// What is wrong, and where it helps, how to fix it.
    pub message: String,
}

impl ConfigError {
    /// An error about the whole file (it cannot be read, for example).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: 0,
            column: 0,
            path: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one load, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Sorts by position so the report reads top to bottom.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by_key(|e| (e.line, e.column));
        self
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let s = Source::new("f.toml", "a = 1\nbé = 2\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(10), (2, 4));
    }
}
