//! `agents.<name>`: each entry is deserialized into the agent contract,
//! [`AgentConfig`], after its keys are checked against the contract's own
//! field list (so a typo gets the nearest valid name, like everywhere else).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::{Map, Value};

use super::issues::{join_key, suggest, Issues};
use crate::agent::{AgentConfig, AgentType};

/// The agent every configuration has, even when the file names none.
pub(crate) const ECHO: &str = "echo";

/// Keys of `agents.<name>` whose values may be secrets (API keys, and
/// headers and environment that often carry them).
const SECRET_FIELDS: &[&str] = &["apiKey", "headers", "env"];

/// Reads `agents`; `echo` is added when not defined.
pub(crate) fn read_agents(
    map: Option<&Map<String, Value>>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    issues: &Issues,
) -> BTreeMap<String, AgentConfig> {
    let mut agents = BTreeMap::new();
    for (name, value) in map.into_iter().flatten() {
        let key = join_key("agents", name);
        if let Some(agent) = read_agent(&key, value, base_dir, env, issues) {
            agents.insert(name.clone(), agent);
        }
    }
    agents
        .entry(ECHO.to_string())
        .or_insert_with(|| AgentConfig {
            kind: AgentType::Echo,
            ..AgentConfig::default()
        });
    agents
}

fn read_agent(
    key: &str,
    value: &Value,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    issues: &Issues,
) -> Option<AgentConfig> {
    let Value::Object(map) = value else {
        issues.error(
            key,
            "expected a table, e.g. [agents.gpt] with type = \"openai\"",
        );
        return None;
    };
    let fields = names().fields;
    let mut unknown = false;
    for name in map.keys() {
        if !fields.contains(&name.as_str()) {
            unknown = true;
            let hint = match suggest(name, fields.iter().copied()) {
                Some(s) => format!("did you mean {s}?"),
                None => format!("valid keys here: {}", fields.join(", ")),
            };
            issues.error(join_key(key, name), format!("unknown key; {hint}"));
        }
    }
    if unknown {
        return None;
    }
    let mut agent: AgentConfig = match serde_path_to_error::deserialize(value) {
        Ok(agent) => agent,
        Err(e) => {
            let (at, message) = describe(key, &e);
            issues.error(at, message);
            return None;
        }
    };
    agent.api_key_file = agent.api_key_file.map(|p| base_dir.join(p));
    agent.cwd = agent.cwd.map(|p| base_dir.join(p));
    if let Some(var) = &agent.api_key_env {
        if env(var).is_none_or(|v| v.is_empty()) {
            issues.warn(
                join_key(key, "apiKeyEnv"),
                format!("{var} is not set in the environment"),
            );
        }
    }
    Some(agent)
}

/// Turns a deserialization error into (key, message) in our style, without
/// echoing secret values.
fn describe(key: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let mut at = key.to_string();
    let mut secret = false;
    for segment in e.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => at.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key }
            | serde_path_to_error::Segment::Enum { variant: key } => {
                at = join_key(&at, key);
                secret |= SECRET_FIELDS.contains(&key.as_str());
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let inner = e.inner().to_string();
    let types = names().types.join(", ");
    if let Some(field) = between(&inner, "missing field `", "`") {
        let hint = if field == "type" {
            format!("set it to one of {types}")
        } else {
            "set it".to_string()
        };
        return (join_key(&at, field), format!("not set; {hint}"));
    }
    if secret {
        return (
            at,
            "expected a string (the value is not shown: it may be a secret)".into(),
        );
    }
    if let Some(variant) = between(&inner, "unknown variant `", "`") {
        let hint = suggest(variant, names().types.iter().copied())
            .map(|s| format!("; did you mean {s:?}?"))
            .unwrap_or_default();
        return (at, format!("{variant:?} is not one of {types}{hint}"));
    }
    (at, inner)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// The contract's key names and agent types, read from its `Deserialize`
/// implementation so they never drift from it.
struct Names {
    fields: &'static [&'static str],
    types: &'static [&'static str],
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut capture = Capture::default();
        let _ = AgentConfig::deserialize(&mut capture);
        let fields = capture.names.unwrap_or(&[]);
        let mut capture = Capture::default();
        let _ = AgentType::deserialize(&mut capture);
        let types = capture.names.unwrap_or(&[]);
        Names { fields, types }
    })
}

/// A deserializer that only records the field (or variant) names a type
/// asks for, then fails.
#[derive(Default)]
struct Capture {
    names: Option<&'static [&'static str]>,
}

impl<'de> Deserializer<'de> for &mut Capture {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("names captured"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.names = Some(fields);
        Err(de::Error::custom("names captured"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.names = Some(variants);
        Err(de::Error::custom("names captured"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_contract() {
        assert!(names().fields.contains(&"type"));
        assert!(names().fields.contains(&"baseUrl"));
        assert!(names().fields.contains(&"apiKey"));
        assert!(names().types.contains(&"openai"));
        assert!(names().types.contains(&"echo"));
    }
}
