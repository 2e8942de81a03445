//! Reading and changing single keys of a config file, for the command line
//! (`larkgate config get|set`).
//!
//! TOML files are edited with `toml_edit`: comments, blank lines, key order
//! and the comment after a changed value all stay. JSON has no comments;
//! JSON files keep their key order but are re-indented with two spaces.
//!
//! Keys are dotted, with TOML quoting for segments that need it:
//! `channels.lark.groups."oc_123".requireMention`. Values are typed by what
//! the key holds (`true` for a flag, `20` for a number, `a, b` or
//! `["a", "b"]` for a list, anything else as a string); for keys the schema
//! does not describe (`agents.*`), `true`/`false` become booleans, numbers
//! numbers, `[…]` arrays, and the rest strings. Quote a value to force a
//! string: `'"42"'`.
//!
//! [`set`] re-validates the edited file. A change that makes the key itself
//! invalid (an unknown key, a wrong value) is refused and nothing is
//! written; other problems (say, appSecret still missing) are returned so
//! the caller can show them.

use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value as Json;

use super::issues::{join_key, ConfigError, ConfigIssue};
use super::schema::kind_of;
use super::table::Kind;
use super::{base_dir_of, load_text, Format};

/// Why a key could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file does not parse, or the change was refused because it makes
    /// the key invalid; nothing was written.
    #[error("{0}")]
    Invalid(ConfigError),
    /// The key or value cannot be used as given.
    #[error("{key}: {message}")]
    Key {
        /// The dotted key.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// What [`set`] left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetReport {
    /// Problems the file still has (empty when it is valid).
    pub issues: Vec<ConfigIssue>,
    /// Warnings of the edited file.
    pub warnings: Vec<String>,
}

/// The value at `dotted_key` in the file at `path`: strings as they are,
/// other values in TOML notation, tables as TOML text. `None` if the key
/// or the file does not exist. Secrets are returned as written: a caller
/// that prints them should mean to.
pub fn get(path: &Path, dotted_key: &str) -> Result<Option<String>, EditError> {
    match std::fs::read_to_string(path) {
        Ok(text) => get_in(&text, Format::of_path(path), dotted_key),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EditError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Sets `dotted_key` to `value` in the file at `path` (created if missing,
/// readable only by its owner), keeping comments and layout, then validates
/// with the process environment. See the module docs for typing and
/// refusal. The file is replaced atomically and keeps its permissions.
pub fn set(path: &Path, dotted_key: &str, value: &str) -> Result<SetReport, EditError> {
    set_with_env(path, dotted_key, value, &|name| std::env::var(name).ok())
}

/// [`set`] with the environment given as a function.
pub fn set_with_env(
    path: &Path,
    dotted_key: &str,
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SetReport, EditError> {
    let io = |source| EditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let format = Format::of_path(path);
    let key = normal_key(dotted_key)?;
    let edited = set_in(&text, format, dotted_key, value)?;
    let validate = |text: &str| {
        let source = path.display().to_string();
        match load_text(text, format, Some(path), &source, &base_dir_of(path), env) {
            Ok(loaded) => (Vec::new(), loaded.warnings),
            Err(e) => (e.issues, Vec::new()),
        }
    };
    let (before, _) = validate(&text);
    let (after, warnings) = validate(&edited);
    let caused: Vec<ConfigIssue> = after
        .iter()
        .filter(|i| !before.contains(i) && related(&i.key, &key))
        .cloned()
        .collect();
    if !caused.is_empty() {
        return Err(EditError::Invalid(ConfigError { issues: caused }));
    }
    write_keeping_permissions(path, &edited).map_err(io)?;
    Ok(SetReport {
        issues: after,
        warnings,
    })
}

/// Whether an issue at `issue_key` concerns the key being set: the key
/// itself, something inside it, or a table on its way.
fn related(issue_key: &str, key: &str) -> bool {
    let under = |a: &str, b: &str| {
        a.strip_prefix(b)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    issue_key == key || under(issue_key, key) || under(key, issue_key)
}

/// Replaces the file through a temporary file in the same directory, so a
/// crash never leaves half a config; the original's permissions are kept.
fn write_keeping_permissions(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path.file_name().map_or_else(
        || "larkgate.toml".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    match std::fs::metadata(path) {
        Ok(meta) => std::fs::set_permissions(&tmp, meta.permissions())?,
        // A new file may soon hold an app secret: only its owner reads it.
        Err(_) => private(&tmp)?,
    }
    std::fs::rename(&tmp, path)
}

#[cfg(unix)]
fn private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// [`get`] on text.
pub fn get_in(text: &str, format: Format, dotted_key: &str) -> Result<Option<String>, EditError> {
    let segments = split_key(dotted_key)?;
    match format {
        Format::Toml => {
            let doc = parse_toml(text)?;
            let mut item = doc.as_item();
            for segment in &segments {
                match item.get(segment.as_str()) {
                    Some(next) => item = next,
                    None => return Ok(None),
                }
            }
            Ok(Some(show_toml(item)))
        }
        Format::Json => {
            let mut value = &parse_json(text)?;
            for segment in &segments {
                match value.get(segment) {
                    Some(next) => value = next,
                    None => return Ok(None),
                }
            }
            Ok(Some(match value {
                Ordered::Str(s) => s.clone(),
                other => to_toml_value(&other.to_json())
                    .to_string()
                    .trim()
                    .to_string(),
            }))
        }
    }
}

/// [`set`] on text, without validation: returns the new text.
pub fn set_in(
    text: &str,
    format: Format,
    dotted_key: &str,
    value: &str,
) -> Result<String, EditError> {
    let segments = split_key(dotted_key)?;
    let names: Vec<&str> = segments.iter().map(String::as_str).collect();
    let typed = typed_value(kind_of(&names), value).map_err(|message| EditError::Key {
        key: join_all(&names),
        message,
    })?;
    match format {
        Format::Toml => {
            let mut doc = parse_toml(text)?;
            let names = follow_channel_alias(&names, |c| {
                doc.contains_key("channels") && doc["channels"].get(c).is_some()
            });
            set_toml(doc.as_item_mut(), &names, to_toml_value(&typed))?;
            Ok(doc.to_string())
        }
        Format::Json => {
            let mut root = if text.trim().is_empty() {
                Ordered::Obj(Vec::new())
            } else {
                parse_json(text)?
            };
            let names = follow_channel_alias(&names, |c| {
                root.get("channels").and_then(|ch| ch.get(c)).is_some()
            });
            set_json(&mut root, &names, Ordered::from_json(&typed))?;
            let mut out = serde_json::to_string_pretty(&root).map_err(|e| EditError::Key {
                key: join_all(&names),
                message: e.to_string(),
            })?;
            out.push('\n');
            Ok(out)
        }
    }
}

/// `channels.lark.*` goes to `channels.feishu` when only that exists, and
/// the other way round, so an edit never creates the second alias.
fn follow_channel_alias<'a>(names: &[&'a str], exists: impl Fn(&str) -> bool) -> Vec<&'a str> {
    let mut names = names.to_vec();
    if let ["channels", channel, ..] = names.as_slice() {
        let other = match *channel {
            "lark" => "feishu",
            "feishu" => "lark",
            _ => return names,
        };
        if !exists(channel) && exists(other) {
            names[1] = other;
        }
    }
    names
}

fn split_key(dotted_key: &str) -> Result<Vec<String>, EditError> {
    let keys = toml_edit::Key::parse(dotted_key.trim()).map_err(|_| EditError::Key {
        key: dotted_key.to_string(),
        message: "not a dotted key; write it like channels.lark.dmPolicy, quoting parts that \
                  contain dots: channels.lark.groups.\"oc_1\".requireMention"
            .into(),
    })?;
    Ok(keys.iter().map(|k| k.get().to_string()).collect())
}

/// The key as issues spell it.
fn normal_key(dotted_key: &str) -> Result<String, EditError> {
    let segments = split_key(dotted_key)?;
    Ok(join_all(
        &segments.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
}

fn join_all(names: &[&str]) -> String {
    names.iter().fold(String::new(), |acc, n| join_key(&acc, n))
}

/// Types a command-line value by what the key holds (see the module docs).
fn typed_value(kind: Option<Kind>, raw: &str) -> Result<Json, String> {
    let raw = raw.trim();
    if let Some(s) = unquote(raw) {
        return Ok(Json::String(s));
    }
    match kind {
        Some(Kind::Bool) => match raw {
            "true" => Ok(Json::Bool(true)),
            "false" => Ok(Json::Bool(false)),
            _ => Err(format!("{raw:?} is not true or false")),
        },
        Some(Kind::Uint) => raw
            .parse::<u64>()
            .map(Json::from)
            .map_err(|_| format!("{raw:?} is not a whole number (0 or more)")),
        Some(Kind::Str | Kind::Secret | Kind::Choice(_)) => Ok(Json::String(raw.to_string())),
        Some(Kind::List) => Ok(Json::Array(
            list_items(raw).into_iter().map(Json::String).collect(),
        )),
        Some(Kind::Table) => Err("this is a table; set its keys one at a time".into()),
        None => Ok(infer(raw)),
    }
}

/// `"x"` or `'x'` as a string.
fn unquote(raw: &str) -> Option<String> {
    if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        return serde_json::from_str(raw).ok();
    }
    if raw.len() >= 2 && raw.starts_with('\'') && raw.ends_with('\'') {
        return Some(raw[1..raw.len() - 1].to_string());
    }
    None
}

/// `["a", "b"]` or `a, b` as strings.
fn list_items(raw: &str) -> Vec<String> {
    if let Ok(toml_edit::Value::Array(array)) = raw.parse::<toml_edit::Value>() {
        return array
            .iter()
            .map(|v| {
                v.as_str()
                    .map_or_else(|| v.to_string().trim().to_string(), str::to_string)
            })
            .collect();
    }
    raw.trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| {
            let s = s.trim();
            unquote(s).unwrap_or_else(|| s.to_string())
        })
        .filter(|s| !s.is_empty())
        .collect()
}

fn infer(raw: &str) -> Json {
    match raw {
        "true" => return Json::Bool(true),
        "false" => return Json::Bool(false),
        _ => {}
    }
    if let Ok(n) = raw.parse::<i64>() {
        return Json::from(n);
    }
    if raw.contains(['.', 'e', 'E']) {
        if let Some(n) = raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return Json::Number(n);
        }
    }
    if raw.starts_with('[') {
        if let Ok(value @ toml_edit::Value::Array(_)) = raw.parse::<toml_edit::Value>() {
            return from_toml_value(&value);
        }
    }
    Json::String(raw.to_string())
}

// ---- TOML ----

fn parse_toml(text: &str) -> Result<toml_edit::DocumentMut, EditError> {
    text.parse::<toml_edit::DocumentMut>().map_err(|_| {
        // The config loader words syntax errors (line, column) without
        // echoing the line, which could hold a secret.
        match super::load::parse(text, Format::Toml, "(file)") {
            Err(e) => EditError::Invalid(e),
            Ok(_) => EditError::Invalid(ConfigError::single("(file)", "TOML syntax error")),
        }
    })
}

fn show_toml(item: &toml_edit::Item) -> String {
    match item {
        toml_edit::Item::Value(toml_edit::Value::String(s)) => s.value().clone(),
        toml_edit::Item::Value(v) => {
            let mut v = v.clone();
            v.decor_mut().clear();
            v.to_string()
        }
        other => other.to_string().trim().to_string(),
    }
}

fn set_toml(
    root: &mut toml_edit::Item,
    names: &[&str],
    value: toml_edit::Value,
) -> Result<(), EditError> {
    let Some((last, parents)) = names.split_last() else {
        return Err(EditError::Key {
            key: String::new(),
            message: "empty key".into(),
        });
    };
    let mut item = root;
    for (i, name) in parents.iter().enumerate() {
        let not_table = || EditError::Key {
            key: join_all(&names[..=i]),
            message: "is not a table, so it cannot hold keys".into(),
        };
        let inline = item.is_inline_table();
        let table = item.as_table_like_mut().ok_or_else(not_table)?;
        if table.get(name).is_none() {
            let new = if inline {
                toml_edit::Item::Value(toml_edit::Value::InlineTable(Default::default()))
            } else {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                toml_edit::Item::Table(t)
            };
            table.insert(name, new);
        }
        item = table.get_mut(name).ok_or_else(not_table)?;
    }
    let key = join_all(names);
    let table = item.as_table_like_mut().ok_or_else(|| EditError::Key {
        key: join_all(parents),
        message: "is not a table, so it cannot hold keys".into(),
    })?;
    match table.get_mut(last) {
        Some(toml_edit::Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
            Ok(())
        }
        Some(toml_edit::Item::None) | None => {
            table.insert(last, toml_edit::Item::Value(value));
            Ok(())
        }
        Some(_) => Err(EditError::Key {
            key,
            message: "is a table; set its keys one at a time".into(),
        }),
    }
}

fn to_toml_value(value: &Json) -> toml_edit::Value {
    match value {
        Json::Bool(b) => (*b).into(),
        Json::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or_default().into(),
        },
        Json::String(s) => s.as_str().into(),
        Json::Array(items) => {
            let array: toml_edit::Array = items.iter().map(to_toml_value).collect();
            toml_edit::Value::Array(array)
        }
        Json::Object(map) => {
            let mut table = toml_edit::InlineTable::new();
            for (k, v) in map {
                table.insert(k, to_toml_value(v));
            }
            toml_edit::Value::InlineTable(table)
        }
        Json::Null => "".into(),
    }
}

fn from_toml_value(value: &toml_edit::Value) -> Json {
    match value {
        toml_edit::Value::String(s) => Json::String(s.value().clone()),
        toml_edit::Value::Integer(i) => Json::from(*i.value()),
        toml_edit::Value::Float(f) => {
            serde_json::Number::from_f64(*f.value()).map_or(Json::Null, Json::Number)
        }
        toml_edit::Value::Boolean(b) => Json::Bool(*b.value()),
        toml_edit::Value::Datetime(d) => Json::String(d.value().to_string()),
        toml_edit::Value::Array(a) => Json::Array(a.iter().map(from_toml_value).collect()),
        toml_edit::Value::InlineTable(t) => Json::Object(
            t.iter()
                .map(|(k, v)| (k.to_string(), from_toml_value(v)))
                .collect(),
        ),
    }
}

// ---- JSON, in file order ----

/// A JSON value whose objects keep their key order (serde_json's map sorts
/// keys unless a crate-wide feature is turned on).
#[derive(Clone, Debug, PartialEq)]
enum Ordered {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<Ordered>),
    Obj(Vec<(String, Ordered)>),
}

impl Ordered {
    fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Obj(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn from_json(value: &Json) -> Ordered {
        match value {
            Json::Null => Ordered::Null,
            Json::Bool(b) => Ordered::Bool(*b),
            Json::Number(n) => Ordered::Num(n.clone()),
            Json::String(s) => Ordered::Str(s.clone()),
            Json::Array(a) => Ordered::Arr(a.iter().map(Ordered::from_json).collect()),
            Json::Object(m) => Ordered::Obj(
                m.iter()
                    .map(|(k, v)| (k.clone(), Ordered::from_json(v)))
                    .collect(),
            ),
        }
    }

    fn to_json(&self) -> Json {
        match self {
            Ordered::Null => Json::Null,
            Ordered::Bool(b) => Json::Bool(*b),
            Ordered::Num(n) => Json::Number(n.clone()),
            Ordered::Str(s) => Json::String(s.clone()),
            Ordered::Arr(a) => Json::Array(a.iter().map(Ordered::to_json).collect()),
            Ordered::Obj(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn parse_json(text: &str) -> Result<Ordered, EditError> {
    serde_json::from_str::<Ordered>(text).map_err(|_| {
        match super::load::parse(text, Format::Json, "(file)") {
            Err(e) => EditError::Invalid(e),
            Ok(_) => EditError::Invalid(ConfigError::single("(file)", "JSON syntax error")),
        }
    })
}

fn set_json(root: &mut Ordered, names: &[&str], value: Ordered) -> Result<(), EditError> {
    let mut node = root;
    for (i, name) in names.iter().enumerate() {
        let Ordered::Obj(entries) = node else {
            return Err(EditError::Key {
                key: join_all(&names[..i]),
                message: "is not an object, so it cannot hold keys".into(),
            });
        };
        let position = match entries.iter().position(|(k, _)| k == name) {
            Some(p) => p,
            None => {
                let empty = if i + 1 == names.len() {
                    Ordered::Null
                } else {
                    Ordered::Obj(Vec::new())
                };
                entries.push((name.to_string(), empty));
                entries.len() - 1
            }
        };
        let slot = &mut entries[position].1;
        if i + 1 == names.len() {
            if matches!(slot, Ordered::Obj(_)) {
                return Err(EditError::Key {
                    key: join_all(names),
                    message: "is an object; set its keys one at a time".into(),
                });
            }
            *slot = value;
            return Ok(());
        }
        node = slot;
    }
    Ok(())
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ordered::Null => s.serialize_unit(),
            Ordered::Bool(b) => s.serialize_bool(*b),
            Ordered::Num(n) => n.serialize(s),
            Ordered::Str(v) => s.serialize_str(v),
            Ordered::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Ordered::Obj(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct OrderedVisitor;

        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Num(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Num(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ordered, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Ordered::Null, Ordered::Num))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Ordered, E> {
                Ok(Ordered::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries: Vec<(String, Ordered)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
                    // A repeated key: the last one wins, as in serde_json.
                    entries.retain(|(existing, _)| *existing != k);
                    entries.push((k, v));
                }
                Ok(Ordered::Obj(entries))
            }
        }

        d.deserialize_any(OrderedVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_by_the_key() {
        let bool_key = kind_of(&["channels", "lark", "requireMention"]);
        assert_eq!(typed_value(bool_key, "false"), Ok(Json::Bool(false)));
        assert!(typed_value(bool_key, "nope").is_err());
        let secret = kind_of(&["channels", "lark", "appSecret"]);
        assert_eq!(
            typed_value(secret, "12345"),
            Ok(Json::String("12345".into()))
        );
        let list = kind_of(&["channels", "lark", "allowFrom"]);
        assert_eq!(
            typed_value(list, "ou_a, ou_b"),
            Ok(serde_json::json!(["ou_a", "ou_b"]))
        );
        assert_eq!(
            typed_value(list, r#"["ou_a", "ou_b"]"#),
            Ok(serde_json::json!(["ou_a", "ou_b"]))
        );
        assert_eq!(typed_value(None, "0.5"), Ok(serde_json::json!(0.5)));
        assert_eq!(typed_value(None, "12"), Ok(serde_json::json!(12)));
        assert_eq!(typed_value(None, "\"12\""), Ok(serde_json::json!("12")));
        assert_eq!(
            typed_value(None, "[\"a\", 1]"),
            Ok(serde_json::json!(["a", 1]))
        );
        assert_eq!(typed_value(None, "gpt-4o"), Ok(serde_json::json!("gpt-4o")));
    }

    #[test]
    fn related_keys() {
        assert!(related("channels.lark.dmPolicy", "channels.lark.dmPolicy"));
        assert!(related(
            "channels.lark.allowFrom[0]",
            "channels.lark.allowFrom"
        ));
        assert!(related("channels.feishu", "channels.feishu.appId"));
        assert!(!related(
            "channels.lark.allowFrom",
            "channels.lark.dmPolicy"
        ));
        assert!(!related("channels.lark.appIdFile", "channels.lark.appId"));
    }
}
