//! Configuration problems: each names the key, what is wrong with its value,
//! and how to fix it. Loading collects every problem before failing.

use std::cell::RefCell;
use std::fmt;

/// One problem with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The dotted key (`channels.lark.dmPolicy`), or the file for syntax errors.
    pub key: String,
    /// What is wrong and how to fix it. Never contains a secret.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The configuration cannot be used; every problem found, one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, in the order found.
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error with a single issue.
    pub fn single(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            issues: vec![ConfigIssue {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

/// Collects issues and warnings while the configuration is read.
#[derive(Debug, Default)]
pub(crate) struct Issues {
    errors: RefCell<Vec<ConfigIssue>>,
    warnings: RefCell<Vec<String>>,
}

impl Issues {
    /// Records a problem that makes the configuration unusable.
    pub(crate) fn error(&self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.borrow_mut().push(ConfigIssue {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Records something worth saying that does not stop loading.
    pub(crate) fn warn(&self, key: impl fmt::Display, message: impl fmt::Display) {
        self.warnings.borrow_mut().push(format!("{key}: {message}"));
    }

    /// Whether any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.borrow().is_empty()
    }

    /// The errors and warnings recorded.
    pub(crate) fn into_parts(self) -> (Vec<ConfigIssue>, Vec<String>) {
        (self.errors.into_inner(), self.warnings.into_inner())
    }
}

/// Joins a dotted key and one more segment, quoting the segment when it is
/// not a bare TOML key (chat ids and account names may contain anything).
pub(crate) fn join_key(path: &str, segment: &str) -> String {
    let bare = !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let segment = if bare {
        segment.to_string()
    } else {
        format!("{segment:?}")
    };
    if path.is_empty() {
        segment
    } else {
        format!("{path}.{segment}")
    }
}

/// The valid name closest to `wrong`, if it is close enough to be a typo:
/// same letters ignoring case, `_` and `-`, or a small edit distance
/// (transpositions count once).
pub(crate) fn suggest<'a>(
    wrong: &str,
    valid: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let normal = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wrong_n = normal(wrong);
    let limit = (wrong_n.len() / 3).clamp(1, 3);
    valid
        .into_iter()
        .map(|name| (edit_distance(&wrong_n, &normal(name)), name))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// Optimal string alignment distance (Levenshtein plus adjacent swaps).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_case_and_snake_case() {
        let keys = [
            "requireMention",
            "replyMode",
            "dmPolicy",
            "open",
            "allowlist",
        ];
        assert_eq!(suggest("requireMenton", keys), Some("requireMention"));
        assert_eq!(suggest("require_mention", keys), Some("requireMention"));
        assert_eq!(suggest("dmpolicy", keys), Some("dmPolicy"));
        assert_eq!(suggest("opne", keys), Some("open"));
        assert_eq!(suggest("allowList", keys), Some("allowlist"));
        assert_eq!(suggest("zzzzzz", keys), None);
    }

    #[test]
    fn keys_are_quoted_only_when_needed() {
        assert_eq!(join_key("channels", "lark"), "channels.lark");
        assert_eq!(join_key("", "store"), "store");
        assert_eq!(join_key("groups", "oc_1.x"), "groups.\"oc_1.x\"");
    }

    #[test]
    fn error_lists_one_issue_per_line() {
        let err = ConfigError {
            issues: vec![
                ConfigIssue {
                    key: "a".into(),
                    message: "x".into(),
                },
                ConfigIssue {
                    key: "b".into(),
                    message: "y".into(),
                },
            ],
        };
        assert_eq!(err.to_string(), "a: x\nb: y");
    }
}
