//! Configuration problems: each names the field at fault by its path in `hermes.toml`, and,
//! once the loader has matched it to the file, the line.

use std::fmt;

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where, as written in the file: `business.hours.saturday`, `tools.webhook[0].url`.
    pub path: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
    /// 1-based line of the field (or of the nearest enclosing table) in the file, if known.
    pub line: Option<usize>,
    /// The environment variable that set this field over the file, if one did.
    pub from_env: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(var) = &self.from_env {
            write!(f, " (set by {var})")?;
        } else if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Collects every problem found, so `check-config` can report them all at once.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with the field at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            path: path.into(),
            message: message.into(),
            line: None,
            from_env: None,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.list.iter()
    }
}
