//! Typed reading of one table of the parsed file, reporting unknown keys
//! (with the nearest valid name) and values of the wrong type as issues
//! instead of stopping at the first.

use serde_json::{Map, Value};

use super::issues::{join_key, suggest, Issues};
use crate::secret::Secret;

/// What a key holds; used to check values and to type values given to
/// `config set`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `true` or `false`.
    Bool,
    /// A whole number, 0 or more.
    Uint,
    /// A string.
    Str,
    /// A string never shown in messages.
    Secret,
    /// A list of strings.
    List,
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A table of known keys, or a table of tables keyed by the user.
    Table,
}

/// A list of the keys a table accepts.
pub(crate) type Keys = &'static [(&'static str, Kind)];

/// One table of the file, its dotted path, and the keys it accepts.
pub(crate) struct Table<'a> {
    map: &'a Map<String, Value>,
    path: String,
    issues: &'a Issues,
}

impl<'a> Table<'a> {
    /// Wraps `map` found at `path`, reporting keys not in `keys`.
    pub(crate) fn new(
        map: &'a Map<String, Value>,
        path: String,
        keys: &[Keys],
        issues: &'a Issues,
    ) -> Table<'a> {
        let valid = || keys.iter().flat_map(|k| k.iter().map(|(name, _)| *name));
        for name in map.keys() {
            if !valid().any(|v| v == name) {
                let hint = match suggest(name, valid()) {
                    Some(s) => format!("did you mean {s}?"),
                    None => format!(
                        "valid keys here: {}",
                        valid().collect::<Vec<_>>().join(", ")
                    ),
                };
                issues.error(join_key(&path, name), format!("unknown key; {hint}"));
            }
        }
        Table { map, path, issues }
    }

    /// The dotted key of `name` in this table.
    pub(crate) fn key(&self, name: &str) -> String {
        join_key(&self.path, name)
    }

    /// This table's dotted path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Where problems go.
    pub(crate) fn issues(&self) -> &'a Issues {
        self.issues
    }

    /// Whether `name` is present.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    fn wrong(&self, name: &str, expected: &str, got: &Value) {
        self.issues.error(
            self.key(name),
            format!("expected {expected}, got {}", show(got)),
        );
    }

    /// A boolean.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        match self.map.get(name)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong(name, "true or false", other);
                None
            }
        }
    }

    /// A whole number, 0 or more.
    pub(crate) fn uint(&self, name: &str) -> Option<u64> {
        let value = self.map.get(name)?;
        match value.as_u64() {
            Some(n) => Some(n),
            None => {
                self.wrong(name, "a whole number (0 or more)", value);
                None
            }
        }
    }

    /// A whole number of at least `min`.
    pub(crate) fn uint_min(&self, name: &str, min: u64) -> Option<u64> {
        let n = self.uint(name)?;
        if n < min {
            self.issues.error(
                self.key(name),
                format!("{n} is too small; use at least {min}"),
            );
            return None;
        }
        Some(n)
    }

    /// A string; an empty string counts as not set.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        match self.map.get(name)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong(name, "a string", other);
                None
            }
        }
    }

    /// A secret string (never echoed); an empty string counts as not set.
    pub(crate) fn secret(&self, name: &str) -> Option<Secret> {
        match self.map.get(name)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(Secret::new(s.clone())),
            _ => {
                self.issues.error(
                    self.key(name),
                    "expected a string (the value is not shown: it is a secret)",
                );
                None
            }
        }
    }

    /// A list of strings.
    pub(crate) fn strings(&self, name: &str) -> Option<Vec<String>> {
        let value = self.map.get(name)?;
        let Value::Array(items) = value else {
            self.wrong(name, "a list of strings such as [\"ou_…\"]", value);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => {
                    ok = false;
                    self.issues.error(
                        format!("{}[{i}]", self.key(name)),
                        format!("expected a string, got {}", show(other)),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// One of `accepted` (name, value); `shown` are the names listed when
    /// the value is not one of them (aliases need not be shown).
    pub(crate) fn choice<T: Copy>(
        &self,
        name: &str,
        accepted: &[(&str, T)],
        shown: &[&str],
    ) -> Option<T> {
        let value = self.map.get(name)?;
        let Value::String(s) = value else {
            self.wrong(name, &format!("one of {}", shown.join(", ")), value);
            return None;
        };
        if let Some((_, v)) = accepted.iter().find(|(n, _)| n == s) {
            return Some(*v);
        }
        let hint = suggest(s, accepted.iter().map(|(n, _)| *n))
            .map(|n| format!("; did you mean {n:?}?"))
            .unwrap_or_default();
        self.issues.error(
            self.key(name),
            format!("{s:?} is not one of {}{hint}", shown.join(", ")),
        );
        None
    }

    /// A sub-table of known keys.
    pub(crate) fn table(&self, name: &str, keys: &[Keys]) -> Option<Table<'a>> {
        let map = self.map_of(name)?;
        Some(Table::new(map, self.key(name), keys, self.issues))
    }

    /// A sub-table whose keys are chosen by the user (accounts, groups,
    /// agents): the raw map, checked only to be a table.
    pub(crate) fn map_of(&self, name: &str) -> Option<&'a Map<String, Value>> {
        match self.map.get(name)? {
            Value::Object(map) => Some(map),
            other => {
                self.wrong(name, "a table ([section] in TOML, {…} in JSON)", other);
                None
            }
        }
    }
}

/// A short rendering of a (non-secret) value for messages.
pub(crate) fn show(value: &Value) -> String {
    let text = match value {
        // TOML dates come through serde as a one-key table.
        Value::Object(map) if map.len() == 1 && map.contains_key("$__toml_private_datetime") => {
            map.values().next().map(show).unwrap_or_default()
        }
        Value::Object(_) => return "a table".into(),
        Value::Array(_) => return "a list".into(),
        other => other.to_string(),
    };
    let mut chars = text.chars();
    let short: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() {
        format!("{short}…")
    } else {
        short
    }
}
