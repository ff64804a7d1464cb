//! `${VAR}` interpolation of environment variables on the raw pipeline text, before YAML
//! parsing, so a substituted value takes its YAML type (`max_rows: ${ROWS}` is an integer).
//!
//! Rules: `${NAME}` with `NAME` = `[A-Za-z_][A-Za-z0-9_]*`; `$${` writes a literal `${`; a `$`
//! not followed by `{` is kept as is. Lines whose first non-blank character is `#` are
//! comments and are not interpolated, so a commented-out `# user: ${HDFS_USER}` does not
//! demand the variable. The value is pasted verbatim: quote it in YAML (`'${PW}'`) when it
//! may contain `#`, `: ` or a leading special character.

use super::secret::{is_secret_key, Redactor};

/// One `${VAR}` that could not be resolved, with its 1-based position in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The interpolated text plus what the caller needs afterwards.
#[derive(Debug, Default)]
pub struct Interpolated {
    pub text: String,
    pub problems: Vec<EnvProblem>,
    /// Values of variables whose *name* looks secret (`KAFKA_PASSWORD`, `HDFS_TOKEN`): they
    /// are hidden wherever the config or its errors are printed.
    pub redactor: Redactor,
}

/// Replaces every `${VAR}` in `text` using `lookup` (normally `std::env::var`). A missing
/// variable is reported with its line and column and replaced by nothing, so parsing can go on
/// and report other problems too.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Interpolated {
    let mut out = Interpolated { text: String::with_capacity(text.len()), ..Default::default() };
    for (line_index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') || !line.contains('$') {
            out.text.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(dollar) = rest.find('$') {
            out.text.push_str(&rest[..dollar]);
            let after = &rest[dollar..];
            let column = line[..line.len() - after.len()].chars().count() + 1;
            if let Some(tail) = after.strip_prefix("$${") {
                out.text.push_str("${");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("${") {
                let Some(close) = tail.find('}') else {
                    out.problems.push(EnvProblem {
                        line: line_index + 1,
                        column,
                        message: "unterminated `${`: write `${NAME}`, or `$${` for a literal `${`".into(),
                    });
                    out.text.push_str(after);
                    rest = "";
                    break;
                };
                let name = &tail[..close];
                rest = &tail[close + 1..];
                if !valid_name(name) {
                    out.problems.push(EnvProblem {
                        line: line_index + 1,
                        column,
                        message: format!(
                            "`${{{name}}}` is not a valid variable reference: names are letters, digits and `_`, not starting with a digit"
                        ),
                    });
                    continue;
                }
                match lookup(name) {
                    Some(value) => {
                        if is_secret_key(name) {
                            out.redactor.add(&value);
                        }
                        out.text.push_str(&value);
                    }
                    None => out.problems.push(EnvProblem {
                        line: line_index + 1,
                        column,
                        message: format!(
                            "environment variable `{name}` is not set (referenced as `${{{name}}}`); export it, or write `$${{` for a literal `${{`"
                        ),
                    }),
                }
            } else {
                out.text.push('$');
                rest = &after[1..];
            }
        }
        out.text.push_str(rest);
    }
    out
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "GROUP" => Some("landfall-clicks".into()),
            "KAFKA_PASSWORD" => Some("hunter2".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_escapes() {
        let done = interpolate("group: ${GROUP}\ncost: $5 and $${NOT_A_VAR}\n", env);
        assert_eq!(done.text, "group: landfall-clicks\ncost: $5 and ${NOT_A_VAR}\n");
        assert!(done.problems.is_empty());
    }

    #[test]
    fn missing_variable_reports_line_and_column() {
        let done = interpolate("a: 1\nb: x-${NOPE}-${GROUP}\n", env);
        assert_eq!(done.text, "a: 1\nb: x--landfall-clicks\n");
        assert_eq!(done.problems.len(), 1);
        assert_eq!((done.problems[0].line, done.problems[0].column), (2, 6));
        assert!(done.problems[0].message.contains("environment variable `NOPE` is not set"));
    }

    #[test]
    fn comment_lines_are_left_alone() {
        let done = interpolate("  # user: ${HDFS_USER}\n", env);
        assert_eq!(done.text, "  # user: ${HDFS_USER}\n");
        assert!(done.problems.is_empty());
    }

    #[test]
    fn bad_references_are_reported() {
        let done = interpolate("a: ${1X}\nb: ${OPEN\n", env);
        assert_eq!(done.problems.len(), 2);
        assert!(done.problems[0].message.contains("not a valid variable reference"));
        assert_eq!((done.problems[1].line, done.problems[1].column), (2, 4));
        assert!(done.problems[1].message.contains("unterminated"));
    }

    #[test]
    fn values_of_secret_named_variables_are_registered_for_redaction() {
        let done = interpolate("p: ${KAFKA_PASSWORD}\ng: ${GROUP}\n", env);
        assert!(done.redactor.contains_secret("hunter2"));
        assert!(!done.redactor.contains_secret("landfall-clicks"));
    }
}
