//! Config problems as `file:line:column: key.path: message`, collected so `landfall validate`
//! can report all of them at once.

use std::fmt;
use std::path::PathBuf;

/// One problem in one file. All of them are the user's to fix; none is transient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no place in a file (e.g. the file cannot be read).
    pub line: usize,
    /// 1-based; 0 like `line`.
    pub column: usize,
    /// Where in the config, e.g. `source.kafka.brokers[0]`; empty for the whole file.
    pub key_path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if !self.key_path.is_empty() {
            write!(f, "{}: ", self.key_path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found, in file order (then by line and column). Displays one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    pub fn extend(&mut self, other: ConfigErrors) {
        self.0.extend(other.0);
    }

    /// Orders problems by line and column within each file, keeping file order.
    pub(crate) fn sort_within_file(&mut self) {
        self.0.sort_by_key(|e| (e.line, e.column));
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// A setting that works but not the way it reads (e.g. files that will hold fewer rows than
/// `roll.max_rows`): printed by `landfall validate`, logged when `run` loads the pipeline, never
/// fatal. Displays as `file:line:column: warning: key.path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning(pub ConfigError);

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.0;
        write!(f, "{}", w.file.display())?;
        if w.line > 0 {
            write!(f, ":{}:{}", w.line, w.column)?;
        }
        f.write_str(": warning: ")?;
        if !w.key_path.is_empty() {
            write!(f, "{}: ", w.key_path)?;
        }
        f.write_str(&w.message)
    }
}

impl std::error::Error for ConfigError {}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_position_path_and_message_one_per_line() {
        let error = |line, key_path: &str| ConfigError {
            file: "pipelines/clicks.yaml".into(),
            line,
            column: 5,
            key_path: key_path.into(),
            message: "boom".into(),
        };
        let errors = ConfigErrors(vec![error(7, "source.kafka.groupp"), error(0, "")]);
        assert_eq!(
            errors.to_string(),
            "pipelines/clicks.yaml:7:5: source.kafka.groupp: boom\npipelines/clicks.yaml: boom"
        );
        let warning = ConfigWarning(error(7, "roll.max_rows"));
        assert_eq!(warning.to_string(), "pipelines/clicks.yaml:7:5: warning: roll.max_rows: boom");
    }
}
