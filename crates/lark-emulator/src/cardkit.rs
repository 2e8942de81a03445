//! cardkit/v1: card entities, streaming text, settings, full and batch
//! updates, element operations, with the platform's validation.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::content::{self, RICH_LIMIT};
use crate::error::{reply, ApiError, ApiResult};
use crate::ids;
use crate::im::parse_body;
use crate::ratelimit;
use crate::server::AppCtx;
use crate::state::{CardEntity, Core, State};

/// Components one card may hold.
pub const MAX_ELEMENTS: usize = 200;

fn param(msg: impl Into<String>) -> ApiError {
    ApiError::bad(10002, msg)
}

/// Parses and validates a card JSON 2.0 string (create / full update).
pub fn parse_card(data: &str) -> Result<Value, ApiError> {
    if data.trim().is_empty() {
        return Err(ApiError::bad(300307, "card DSL is empty"));
    }
    if data.len() > RICH_LIMIT {
        return Err(ApiError::bad(200860, "card content exceeds 30 KB"));
    }
    let card: Value = serde_json::from_str(data)
        .map_err(|e| ApiError::bad(200220, format!("failed to generate card content: {e}")))?;
    if !card.is_object() {
        return Err(ApiError::bad(
            200220,
            "failed to generate card content: not an object",
        ));
    }
    if card.get("schema").and_then(Value::as_str) != Some("2.0") {
        return Err(ApiError::bad(
            300303,
            "only card JSON 2.0 (schema \"2.0\") is supported",
        ));
    }
    check_structure(&card)?;
    Ok(card)
}

/// Rules every card state must satisfy.
fn check_structure(card: &Value) -> Result<(), ApiError> {
    if card.pointer("/config/update_multi") == Some(&Value::Bool(false)) {
        return Err(ApiError::bad(300302, "update_multi must be true"));
    }
    let mut seen = HashSet::new();
    let mut count = 0usize;
    if let Some(body) = card.get("body") {
        walk_elements(body, &mut |el| {
            count += 1;
            if let Some(id) = el.get("element_id").and_then(Value::as_str) {
                if !valid_element_id(id) {
                    return Err(param(format!("invalid element_id {id:?}: letters, digits, underscore, starting with a letter, at most 20")));
                }
                if !seen.insert(id.to_string()) {
                    return Err(ApiError::bad(300301, format!("duplicate element_id {id}")));
                }
            }
            Ok(())
        })?;
    }
    if count > MAX_ELEMENTS {
        return Err(ApiError::bad(
            300305,
            format!("the card has {count} components, more than {MAX_ELEMENTS}"),
        ));
    }
    if card.to_string().len() > RICH_LIMIT {
        return Err(ApiError::bad(200860, "card content exceeds 30 KB"));
    }
    Ok(())
}

fn valid_element_id(id: &str) -> bool {
    id.len() <= 20
        && id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Calls `f` on every component under `v`: objects with a `tag` that sit in
/// an array (`elements`, `columns`, …); text objects such as a button's
/// `text` are not components.
fn walk_elements(
    v: &Value,
    f: &mut dyn FnMut(&Value) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    walk(v, false, f)
}

fn walk(
    v: &Value,
    in_array: bool,
    f: &mut dyn FnMut(&Value) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    match v {
        Value::Object(map) => {
            if in_array && map.contains_key("tag") {
                f(v)?;
            }
            for child in map.values() {
                walk(child, false, f)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, true, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// One step of a path inside JSON.
enum Seg {
    Key(String),
    Index(usize),
}

fn path_to(v: &Value, id: &str, path: &mut Vec<Seg>) -> bool {
    match v {
        Value::Object(map) => {
            if map.get("element_id").and_then(Value::as_str) == Some(id) {
                return true;
            }
            for (k, child) in map {
                path.push(Seg::Key(k.clone()));
                if path_to(child, id, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                if path_to(child, id, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

fn navigate<'a>(mut v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    for seg in path {
        v = match seg {
            Seg::Key(k) => v.get_mut(k.as_str())?,
            Seg::Index(i) => v.get_mut(*i)?,
        };
    }
    Some(v)
}

/// The component with `element_id == id` under the card body.
fn element_mut<'a>(card: &'a mut Value, id: &str) -> Option<&'a mut Value> {
    let body = card.get_mut("body")?;
    let mut path = Vec::new();
    if !path_to(body, id, &mut path) {
        return None;
    }
    navigate(body, &path)
}

/// The array holding the element and its index.
fn parent_of<'a>(card: &'a mut Value, id: &str) -> Option<(&'a mut Vec<Value>, usize)> {
    let body = card.get_mut("body")?;
    let mut path = Vec::new();
    if !path_to(body, id, &mut path) {
        return None;
    }
    let Some(Seg::Index(idx)) = path.pop() else {
        return None;
    };
    navigate(body, &path)?.as_array_mut().map(|a| (a, idx))
}

fn streaming_flag(card: &Value) -> bool {
    card.pointer("/config/streaming_mode") == Some(&Value::Bool(true))
}

fn set_streaming(card: &mut Value, on: bool) {
    if let Some(obj) = card.as_object_mut() {
        let config = obj.entry("config").or_insert_with(|| json!({}));
        if let Some(c) = config.as_object_mut() {
            c.insert("streaming_mode".into(), Value::Bool(on));
        }
    }
}

impl CardEntity {
    /// Closes streaming mode if it has been on for `after`; true if it did.
    pub fn auto_close(&mut self, now: Instant, after: std::time::Duration) -> bool {
        if streaming_flag(&self.card)
            && now.saturating_duration_since(self.streaming_since) >= after
        {
            set_streaming(&mut self.card, false);
            self.auto_closed = true;
            return true;
        }
        false
    }

    /// Streaming mode is on.
    pub fn streaming(&self) -> bool {
        streaming_flag(&self.card)
    }
}

impl State {
    /// Closes every card whose streaming mode timed out; bumps their chats.
    pub fn auto_close_cards(&mut self, now: Instant, after: std::time::Duration) {
        let mut chats = Vec::new();
        for card in self.cards.values_mut() {
            if card.auto_close(now, after) {
                if let Some(chat) = card.message_id.as_ref().and_then(|m| self.messages.get(m)) {
                    chats.push(chat.chat_id.clone());
                }
            }
        }
        for chat in chats {
            self.bump(&chat);
        }
    }
}

/// Settings object `{config, card_link}` merged into the card.
fn merge_settings(card: &mut Value, settings: &Value) -> Result<(), ApiError> {
    let obj = settings
        .as_object()
        .ok_or_else(|| param("settings must be a JSON object"))?;
    for key in obj.keys() {
        if key != "config" && key != "card_link" {
            return Err(param(format!(
                "unknown settings key {key:?}; use {{\"config\":{{…}}}}"
            )));
        }
    }
    let Some(target) = card.as_object_mut() else {
        return Err(ApiError::bad(300122, "card is not an object"));
    };
    if let Some(config) = obj.get("config") {
        let config = config
            .as_object()
            .ok_or_else(|| param("config must be an object"))?;
        let entry = target.entry("config").or_insert_with(|| json!({}));
        let Some(existing) = entry.as_object_mut() else {
            return Err(ApiError::bad(300122, "card config is not an object"));
        };
        for (k, v) in config {
            existing.insert(k.clone(), v.clone());
        }
    }
    if let Some(link) = obj.get("card_link") {
        target.insert("card_link".into(), link.clone());
    }
    Ok(())
}

fn add_elements(
    card: &mut Value,
    kind: &str,
    target: Option<&str>,
    elements: Vec<Value>,
) -> Result<(), ApiError> {
    let fail = |why: &str| ApiError::bad(300315, format!("failed to add elements: {why}"));
    match kind {
        "append" => {
            let body = card
                .as_object_mut()
                .ok_or_else(|| fail("card is not an object"))?
                .entry("body")
                .or_insert_with(|| json!({}));
            let list = body
                .as_object_mut()
                .ok_or_else(|| fail("body is not an object"))?
                .entry("elements")
                .or_insert_with(|| json!([]));
            list.as_array_mut()
                .ok_or_else(|| fail("body.elements is not an array"))?
                .extend(elements);
        }
        "insert_before" | "insert_after" => {
            let target = target.ok_or_else(|| fail("target_element_id is required"))?;
            let (list, idx) = parent_of(card, target)
                .ok_or_else(|| fail(&format!("not find elementID {target}")))?;
            let at = if kind == "insert_after" { idx + 1 } else { idx };
            for (i, el) in elements.into_iter().enumerate() {
                list.insert(at + i, el);
            }
        }
        other => return Err(fail(&format!("unknown type {other:?}"))),
    }
    Ok(())
}

fn delete_elements(card: &mut Value, ids: &[String]) -> Result<(), ApiError> {
    for id in ids {
        let (list, idx) = parent_of(card, id).ok_or_else(|| {
            ApiError::bad(
                300314,
                format!("failed to delete element: not find elementID {id}"),
            )
        })?;
        list.remove(idx);
    }
    Ok(())
}

fn partial_update(card: &mut Value, id: &str, partial: &Value) -> Result<(), ApiError> {
    let partial = partial
        .as_object()
        .ok_or_else(|| param("partial_element must be an object"))?;
    let el = element_mut(card, id).ok_or_else(|| {
        ApiError::bad(
            300313,
            format!("failed to update element: not find elementID {id}"),
        )
    })?;
    let obj = el
        .as_object_mut()
        .ok_or_else(|| ApiError::bad(300313, "element is not an object"))?;
    if let Some(tag) = partial.get("tag") {
        if obj.get("tag") != Some(tag) {
            return Err(ApiError::bad(
                300312,
                "the tag of an element cannot be changed",
            ));
        }
    }
    for (k, v) in partial {
        obj.insert(k.clone(), v.clone());
    }
    Ok(())
}

fn replace_element(card: &mut Value, id: &str, element: Value) -> Result<(), ApiError> {
    if !element.is_object() {
        return Err(param("element must be an object"));
    }
    let el = element_mut(card, id).ok_or_else(|| {
        ApiError::bad(
            300121,
            format!("failed to replace element: not find elementID {id}"),
        )
    })?;
    *el = element;
    Ok(())
}

/// Parses a JSON string field (`"elements": "<json>"`) or accepts a value.
fn json_field(v: Option<&Value>, name: &str) -> Result<Value, ApiError> {
    match v {
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| param(format!("{name} is not valid JSON: {e}")))
        }
        Some(other) => Ok(other.clone()),
        None => Err(param(format!("{name} is required"))),
    }
}

fn apply_action(card: &mut Value, action: &Value) -> Result<(), ApiError> {
    let name = action.get("action").and_then(Value::as_str).unwrap_or("");
    let empty = Map::new();
    let params = action
        .get("params")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let s = |k: &str| params.get(k).and_then(Value::as_str);
    match name {
        "partial_update_setting" => merge_settings(
            card,
            params
                .get("settings")
                .ok_or_else(|| param("settings is required"))?,
        ),
        "add_elements" => {
            let elements = json_field(params.get("elements"), "elements")?;
            let list = elements
                .as_array()
                .cloned()
                .ok_or_else(|| param("elements must be an array"))?;
            add_elements(
                card,
                s("type").unwrap_or("append"),
                s("target_element_id"),
                list,
            )
        }
        "delete_elements" => {
            let ids: Vec<String> = params
                .get("element_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .ok_or_else(|| param("element_ids is required"))?;
            delete_elements(card, &ids)
        }
        "partial_update_element" => {
            let id = s("element_id").ok_or_else(|| param("element_id is required"))?;
            let partial = json_field(params.get("partial_element"), "partial_element")?;
            partial_update(card, id, &partial)
        }
        "update_element" => {
            let id = s("element_id").ok_or_else(|| param("element_id is required"))?;
            replace_element(card, id, json_field(params.get("element"), "element")?)
        }
        other => Err(param(format!("unknown batch action {other:?}"))),
    }
}

/// Common fields of every mutation.
#[derive(Deserialize, Default)]
struct Mutation {
    #[serde(default)]
    sequence: Option<i64>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// What a mutation did to streaming mode.
struct OpContext {
    streaming: bool,
    auto_closed: bool,
}

impl Core {
    fn card_create(&self, app_id: &str, body: &[u8]) -> ApiResult {
        let body: Value = parse_body(body)?;
        match body.get("type").and_then(Value::as_str) {
            Some("card_json") => {}
            Some("template") => {
                return Err(param(
                    "template cards are not supported by the emulator; use card_json",
                ))
            }
            _ => return Err(param("type must be card_json")),
        }
        let data = body.get("data").and_then(Value::as_str).unwrap_or("");
        let card = parse_card(data)?;
        let card_id = ids::card_id();
        let mut st = self.lock();
        st.cards.insert(
            card_id.clone(),
            CardEntity {
                app_id: app_id.to_string(),
                card,
                last_sequence: 0,
                streaming_since: Instant::now(),
                auto_closed: false,
                message_id: None,
                uuids: HashSet::new(),
                bucket: None,
            },
        );
        Ok(json!({ "card_id": card_id }))
    }

    /// Runs one sequenced mutation on a card entity.
    fn card_mutate(
        &self,
        app_id: &str,
        card_id: &str,
        body: &[u8],
        op: impl FnOnce(&mut Value, &Map<String, Value>, &OpContext) -> Result<(), ApiError>,
    ) -> ApiResult {
        let m: Mutation = parse_body(body)?;
        let now = Instant::now();
        let mut st = self.lock();
        let entity = st
            .cards
            .get_mut(card_id)
            .ok_or_else(|| ApiError::bad(200740, "card entity does not exist"))?;
        if entity.app_id != app_id {
            return Err(ApiError::bad(300311, "no permission on this card entity"));
        }
        entity.auto_close(now, self.cfg.streaming_auto_close);
        if let Some(uuid) = m.uuid.as_deref().filter(|u| !u.is_empty()) {
            if entity.uuids.contains(uuid) {
                return Ok(json!({}));
            }
        }
        let sequence = m.sequence.ok_or_else(|| param("sequence is required"))?;
        if sequence <= entity.last_sequence || sequence > i64::from(i32::MAX) {
            return Err(ApiError::bad(
                300317,
                format!(
                    "sequence number compare failed: {sequence} is not greater than {}",
                    entity.last_sequence
                ),
            ));
        }
        ratelimit::take(&mut entity.bucket, self.cfg.per_card_rate, now).map_err(|_| {
            ApiError::bad(
                230020,
                "This card triggers the frequency limit (10 operations per second).",
            )
        })?;
        let was_streaming = entity.streaming();
        let ctx = OpContext {
            streaming: was_streaming,
            auto_closed: entity.auto_closed,
        };
        let mut card = entity.card.clone();
        op(&mut card, &m.rest, &ctx)?;
        check_structure(&card)?;
        if entity.message_id.is_some() {
            content::check_tables(&card)?;
        }
        let now_streaming = streaming_flag(&card);
        if now_streaming && !was_streaming {
            entity.streaming_since = now;
            entity.auto_closed = false;
        }
        entity.card = card;
        entity.last_sequence = sequence;
        if let Some(uuid) = m.uuid.filter(|u| !u.is_empty()) {
            entity.uuids.insert(uuid);
        }
        let chat = entity
            .message_id
            .clone()
            .and_then(|mid| st.messages.get(&mid).map(|m| m.chat_id.clone()));
        if let Some(chat) = chat {
            bump_card_chat(&mut st, &chat);
        }
        Ok(json!({}))
    }

    fn card_id_convert(&self, app_id: &str, body: &[u8]) -> ApiResult {
        let body: Value = parse_body(body)?;
        let message_id = body
            .get("message_id")
            .and_then(Value::as_str)
            .ok_or_else(|| param("message_id is required"))?;
        let mut st = self.lock();
        let msg = st
            .messages
            .get(message_id)
            .filter(|m| {
                m.sender == crate::state::Actor::Bot(app_id.to_string())
                    && m.msg_type == "interactive"
            })
            .ok_or_else(|| param("message_id is not a card message of this app"))?;
        if let Some(card_id) = &msg.card_id {
            return Ok(json!({ "card_id": card_id }));
        }
        let card = parse_card(&msg.content)?;
        let card_id = ids::card_id();
        st.cards.insert(
            card_id.clone(),
            CardEntity {
                app_id: app_id.to_string(),
                card,
                last_sequence: 0,
                streaming_since: Instant::now(),
                auto_closed: false,
                message_id: Some(message_id.to_string()),
                uuids: HashSet::new(),
                bucket: None,
            },
        );
        if let Some(m) = st.messages.get_mut(message_id) {
            m.card_id = Some(card_id.clone());
        }
        Ok(json!({ "card_id": card_id }))
    }
}

fn bump_card_chat(st: &mut State, chat_id: &str) {
    st.bump(chat_id);
}

fn content_op(
    element_id: &str,
) -> impl FnOnce(&mut Value, &Map<String, Value>, &OpContext) -> Result<(), ApiError> + '_ {
    move |card, rest, ctx| {
        if !ctx.streaming {
            return Err(if ctx.auto_closed {
                ApiError::bad(
                    200850,
                    "streaming mode was closed by timeout; enable it again through settings",
                )
            } else {
                ApiError::bad(300309, "streaming mode is closed")
            });
        }
        let text = rest
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| param("content is required"))?;
        let chars = text.chars().count();
        if chars == 0 || chars > 100_000 {
            return Err(param("content must be 1 to 100000 characters"));
        }
        let el = element_mut(card, element_id)
            .ok_or_else(|| ApiError::bad(300310, format!("element {element_id} does not exist")))?;
        match el.get("tag").and_then(Value::as_str) {
            Some("markdown") | Some("plain_text") => {}
            _ => {
                return Err(ApiError::bad(
                    300310,
                    "the element is not a markdown or plain_text element",
                ))
            }
        }
        el["content"] = Value::String(text.to_string());
        Ok(())
    }
}

type Core_ = AxState<Arc<Core>>;

/// `POST /open-apis/cardkit/v1/cards`.
pub async fn create(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    body: Bytes,
) -> Response {
    reply(core.card_create(&ctx.0, &body))
}

/// `PUT /open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}/content`.
pub async fn stream_content(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path((card_id, element_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    reply(core.card_mutate(&ctx.0, &card_id, &body, content_op(&element_id)))
}

/// `PATCH /open-apis/cardkit/v1/cards/{card_id}/settings`.
pub async fn settings(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(card_id): Path<String>,
    body: Bytes,
) -> Response {
    reply(core.card_mutate(&ctx.0, &card_id, &body, |card, rest, _| {
        let settings = json_field(rest.get("settings"), "settings")?;
        merge_settings(card, &settings)
    }))
}

/// `PUT /open-apis/cardkit/v1/cards/{card_id}` (full update).
pub async fn update(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(card_id): Path<String>,
    body: Bytes,
) -> Response {
    reply(core.card_mutate(&ctx.0, &card_id, &body, |card, rest, _| {
        let new = rest.get("card").ok_or_else(|| param("card is required"))?;
        if new.get("type").and_then(Value::as_str) != Some("card_json") {
            return Err(param("card.type must be card_json"));
        }
        *card = parse_card(new.get("data").and_then(Value::as_str).unwrap_or(""))?;
        Ok(())
    }))
}

/// `POST /open-apis/cardkit/v1/cards/{card_id}/batch_update`.
pub async fn batch_update(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(card_id): Path<String>,
    body: Bytes,
) -> Response {
    reply(core.card_mutate(&ctx.0, &card_id, &body, |card, rest, _| {
        let actions = json_field(rest.get("actions"), "actions")?;
        let actions = actions
            .as_array()
            .ok_or_else(|| param("actions must be an array"))?;
        if actions.is_empty() {
            return Err(param("actions must not be empty"));
        }
        actions.iter().try_for_each(|a| apply_action(card, a))
    }))
}

/// `POST /open-apis/cardkit/v1/cards/{card_id}/elements`.
pub async fn add(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path(card_id): Path<String>,
    body: Bytes,
) -> Response {
    reply(core.card_mutate(&ctx.0, &card_id, &body, |card, rest, _| {
        let elements = json_field(rest.get("elements"), "elements")?;
        let list = elements
            .as_array()
            .cloned()
            .ok_or_else(|| param("elements must be an array"))?;
        let kind = rest.get("type").and_then(Value::as_str).unwrap_or("append");
        add_elements(
            card,
            kind,
            rest.get("target_element_id").and_then(Value::as_str),
            list,
        )
    }))
}

/// `PUT /open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}`.
pub async fn replace(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path((card_id, element_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    reply(core.card_mutate(&ctx.0, &card_id, &body, |card, rest, _| {
        replace_element(
            card,
            &element_id,
            json_field(rest.get("element"), "element")?,
        )
    }))
}

/// `PATCH /open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}`.
pub async fn patch_element(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path((card_id, element_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    reply(core.card_mutate(&ctx.0, &card_id, &body, |card, rest, _| {
        partial_update(
            card,
            &element_id,
            &json_field(rest.get("partial_element"), "partial_element")?,
        )
    }))
}

/// `DELETE /open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}`.
pub async fn delete_element(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    Path((card_id, element_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = if body.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    reply(core.card_mutate(&ctx.0, &card_id, &body, |card, _, _| {
        delete_elements(card, &[element_id])
    }))
}

/// `POST /open-apis/cardkit/v1/cards/id_convert`.
pub async fn id_convert(
    AxState(core): Core_,
    Extension(ctx): Extension<AppCtx>,
    body: Bytes,
) -> Response {
    reply(core.card_id_convert(&ctx.0, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Value {
        json!({"schema": "2.0", "body": {"elements": [
            {"tag": "markdown", "element_id": "md_1", "content": "a"},
            {"tag": "column_set", "columns": [{"tag": "column", "elements": [
                {"tag": "markdown", "element_id": "inner", "content": "b"}]}]}
        ]}})
    }

    #[test]
    fn validation_codes() {
        assert_eq!(parse_card("").unwrap_err().code, 300307);
        assert_eq!(parse_card(r#"{"elements":[]}"#).unwrap_err().code, 300303);
        let dup = json!({"schema": "2.0", "body": {"elements": [
            {"tag": "markdown", "element_id": "x"}, {"tag": "markdown", "element_id": "x"}]}});
        assert_eq!(parse_card(&dup.to_string()).unwrap_err().code, 300301);
        let many: Vec<Value> = (0..201).map(|_| json!({"tag": "hr"})).collect();
        let big = json!({"schema": "2.0", "body": {"elements": many}});
        assert_eq!(parse_card(&big.to_string()).unwrap_err().code, 300305);
        let huge = json!({"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "x".repeat(31 * 1024)}]}});
        assert_eq!(parse_card(&huge.to_string()).unwrap_err().code, 200860);
    }

    #[test]
    fn element_operations_reach_nested_elements() {
        let mut c = card();
        add_elements(
            &mut c,
            "insert_after",
            Some("inner"),
            vec![json!({"tag": "hr", "element_id": "hr_1"})],
        )
        .unwrap();
        assert_eq!(
            c.pointer("/body/elements/1/columns/0/elements/1/element_id"),
            Some(&json!("hr_1"))
        );
        partial_update(&mut c, "inner", &json!({"content": "z"})).unwrap();
        assert_eq!(
            c.pointer("/body/elements/1/columns/0/elements/0/content"),
            Some(&json!("z"))
        );
        assert_eq!(
            partial_update(&mut c, "inner", &json!({"tag": "div"}))
                .unwrap_err()
                .code,
            300312
        );
        delete_elements(&mut c, &["md_1".into()]).unwrap();
        assert_eq!(
            c.pointer("/body/elements/0/tag"),
            Some(&json!("column_set"))
        );
        assert_eq!(
            delete_elements(&mut c, &["md_1".into()]).unwrap_err().code,
            300314
        );
    }
}
