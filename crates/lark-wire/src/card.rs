//! Message content builders: card JSON 2.0 (streaming, final, static, legacy PATCH),
//! posts with one `md` node per paragraph, and plain text.
//!
//! Every builder returns a `serde_json::Value`; serialise it to get the `content`
//! string of a send/reply/PATCH call or the `data` string of a CardKit create call.
//! Sizes are measured on that serialisation (see [`serialized_len`]).

use serde_json::{json, Map, Value};

/// Largest `content` of an `interactive` (card) message, in bytes. The platform says
/// "30 KB"; the decimal reading is the safe one.
pub const CARD_MAX_BYTES: usize = 30_000;
/// Largest `content` of a `post` message, in bytes.
pub const POST_MAX_BYTES: usize = 30_000;
/// Largest `content` of a `text` message, in bytes.
pub const TEXT_MAX_BYTES: usize = 150_000;
/// Tables a card renders before failing with 230099 / 11310 (empirical, official plugin).
pub const MAX_TABLES_PER_CARD: usize = 3;
/// Longest chat-list preview (`config.summary.content`), in characters.
pub const SUMMARY_MAX_CHARS: usize = 50;
/// Preview shown while a card streams, unless the caller sets one.
pub const DEFAULT_STREAMING_SUMMARY: &str = "[Generating...]";
/// Appended to the text of a reply whose generation stopped early.
pub const INTERRUPTED_SUFFIX: &str = "\n\n— _(interrupted)_";
/// `element_id` of the Stop button, so it can be deleted when the stream ends.
pub const STOP_BUTTON_ELEMENT_ID: &str = "stop_button";
/// The `larkgate` value of a Stop button's callback.
const STOP_ACTION: &str = "stop";

/// A card component id: letters, digits and `_`, starting with a letter, at most 20 chars.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ElementId(String);

/// The reason a string is not a valid [`ElementId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid card element_id {0:?}: use 1-20 letters, digits or '_', starting with a letter")]
pub struct InvalidElementId(pub String);

impl ElementId {
    /// The longest id the platform accepts.
    pub const MAX_LEN: usize = 20;

    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<ElementId, InvalidElementId> {
        let id = id.into();
        if is_valid_element_id(&id) {
            Ok(ElementId(id))
        } else {
            Err(InvalidElementId(id))
        }
    }

    /// `reply_md`, the markdown element larkgate streams into.
    pub fn stream() -> ElementId {
        ElementId("reply_md".to_owned())
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ElementId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `id` is a valid card `element_id` (see [`ElementId`]).
pub fn is_valid_element_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && id.len() <= ElementId::MAX_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `print_strategy` of a streaming card.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrintStrategy {
    /// A new update shows the not-yet-printed rest at once, then animates the delta.
    #[default]
    Fast,
    /// The rest keeps animating before the delta.
    Delay,
}

impl PrintStrategy {
    fn as_str(self) -> &'static str {
        match self {
            PrintStrategy::Fast => "fast",
            PrintStrategy::Delay => "delay",
        }
    }
}

/// Typewriter settings of a streaming card (`config.streaming_config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrintConfig {
    /// Milliseconds between two prints (platform default 70).
    pub frequency_ms: u32,
    /// Characters per print (platform default 1).
    pub step: u32,
    /// What happens to unprinted text when an update arrives.
    pub strategy: PrintStrategy,
}

impl Default for PrintConfig {
    fn default() -> Self {
        PrintConfig {
            frequency_ms: 70,
            step: 1,
            strategy: PrintStrategy::Fast,
        }
    }
}

/// A Stop button whose callback identifies the turn to interrupt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopButton {
    /// Button text (e.g. `Stop`).
    pub label: String,
    /// The turn the button stops; comes back in the callback's `value.turn`.
    pub turn: String,
}

/// Options shared by the card builders; each builder documents what it uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CardOptions {
    /// Header title (plain text); no header when `None`.
    pub title: Option<String>,
    /// Chat-list preview; defaults to [`DEFAULT_STREAMING_SUMMARY`] while streaming and
    /// to [`preview`] of the markdown otherwise.
    pub summary: Option<String>,
    /// Stop button, shown only while streaming.
    pub stop: Option<StopButton>,
    /// Small grey line under the reply (e.g. elapsed time, model), final cards only.
    pub footer: Option<String>,
    /// Typewriter settings, streaming cards only.
    pub print: PrintConfig,
}

/// A CardKit streaming card: schema 2.0, `streaming_mode: true`, the summary, the
/// typewriter settings, one markdown element `element_id` holding `initial_text`,
/// and the optional header and Stop button.
pub fn streaming_card(initial_text: &str, element_id: &ElementId, opts: &CardOptions) -> Value {
    let summary = opts.summary.as_deref().unwrap_or(DEFAULT_STREAMING_SUMMARY);
    let mut config = Map::new();
    config.insert("streaming_mode".into(), Value::Bool(true));
    config.insert("summary".into(), summary_value(summary));
    config.insert("streaming_config".into(), print_config(&opts.print));
    let mut elements = vec![markdown_element(initial_text, Some(element_id))];
    if let Some(stop) = &opts.stop {
        elements.push(stop_button(stop));
    }
    card_v2(config, opts.title.as_deref(), elements)
}

/// The finished card: schema 2.0, streaming off, the summary set, the markdown, and the
/// optional header and footer. No Stop button.
pub fn final_card(markdown: &str, opts: &CardOptions) -> Value {
    let mut config = Map::new();
    config.insert("streaming_mode".into(), Value::Bool(false));
    config.insert(
        "summary".into(),
        summary_value(&final_summary(markdown, opts)),
    );
    card_v2(
        config,
        opts.title.as_deref(),
        final_elements(markdown, None, opts),
    )
}

/// A static card reply holding `markdown` (a [`final_card`] without options).
pub fn markdown_card(markdown: &str) -> Value {
    final_card(markdown, &CardOptions::default())
}

/// A card for the legacy stream (send `interactive`, then `PATCH /im/v1/messages/:id`
/// with the next one): `update_multi: true`, no CardKit streaming mode. While
/// `streaming` it carries the Stop button and the streaming summary; otherwise the
/// footer and the final summary.
pub fn legacy_patch_card(markdown: &str, streaming: bool, opts: &CardOptions) -> Value {
    let element_id = ElementId::stream();
    let mut config = Map::new();
    config.insert("update_multi".into(), Value::Bool(true));
    let elements = if streaming {
        let summary = opts.summary.as_deref().unwrap_or(DEFAULT_STREAMING_SUMMARY);
        config.insert("summary".into(), summary_value(summary));
        let mut elements = vec![markdown_element(markdown, Some(&element_id))];
        if let Some(stop) = &opts.stop {
            elements.push(stop_button(stop));
        }
        elements
    } else {
        config.insert(
            "summary".into(),
            summary_value(&final_summary(markdown, opts)),
        );
        final_elements(markdown, Some(&element_id), opts)
    };
    card_v2(config, opts.title.as_deref(), elements)
}

/// The CardKit settings string that ends streaming and sets the chat-list preview:
/// `{"config":{"streaming_mode":false,"summary":{"content":…}}}`.
pub fn settings_close(summary: &str) -> String {
    json!({"config": {"streaming_mode": false, "summary": summary_value(summary)}}).to_string()
}

/// What to append to a reply whose generation stopped early ([`INTERRUPTED_SUFFIX`]).
pub fn interrupted_suffix() -> &'static str {
    INTERRUPTED_SUFFIX
}

/// A post holding markdown in one `md` node:
/// `{"zh_cn":{"title":"","content":[[{"tag":"md","text":…}]]}}`.
pub fn post_md(markdown: &str) -> Value {
    post_md_paragraphs(&[markdown])
}

/// A post with one `md` node per paragraph, in order (empty segments are skipped).
pub fn post_md_paragraphs<S: AsRef<str>>(segments: &[S]) -> Value {
    let content: Vec<Value> = segments
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| !s.is_empty())
        .map(|s| json!([{"tag": "md", "text": s}]))
        .collect();
    let content = if content.is_empty() {
        vec![json!([{"tag": "md", "text": ""}])]
    } else {
        content
    };
    json!({"zh_cn": {"title": "", "content": content}})
}

/// A text message: `{"text":…}`.
pub fn text(text: &str) -> Value {
    json!({ "text": text })
}

/// The callback value of a Stop button for `turn`: `{"larkgate":"stop","turn":…}`.
pub fn stop_action_value(turn: &str) -> Value {
    json!({"larkgate": STOP_ACTION, "turn": turn})
}

/// The turn a card callback value asks to stop, if it is a larkgate Stop button's.
pub fn stop_action_turn(value: &Value) -> Option<&str> {
    if value.get("larkgate")?.as_str()? != STOP_ACTION {
        return None;
    }
    value.get("turn")?.as_str()
}

/// One-line preview: whitespace collapsed and trimmed, cut to [`SUMMARY_MAX_CHARS`]
/// characters with a trailing `…` when longer.
pub fn preview(text: &str) -> String {
    let mut words = text.split_whitespace();
    let mut line = String::new();
    if let Some(first) = words.next() {
        line.push_str(first);
        for word in words {
            line.push(' ');
            line.push_str(word);
            if line.len() > SUMMARY_MAX_CHARS * 4 {
                break;
            }
        }
    }
    if line.chars().count() <= SUMMARY_MAX_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(SUMMARY_MAX_CHARS - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// Length in bytes of the JSON serialisation of `value` (what the size limits count).
pub fn serialized_len(value: &Value) -> usize {
    serde_json::to_string(value).map_or(0, |s| s.len())
}

/// Bytes left for markdown in `wrapper`, a content built with empty markdown, under
/// `limit`; compare with the JSON-escaped length of the markdown.
pub fn markdown_budget(wrapper: &Value, limit: usize) -> usize {
    limit.saturating_sub(serialized_len(wrapper))
}

fn card_v2(config: Map<String, Value>, title: Option<&str>, elements: Vec<Value>) -> Value {
    let mut card = Map::new();
    card.insert("schema".into(), Value::String("2.0".into()));
    card.insert("config".into(), Value::Object(config));
    if let Some(title) = title {
        card.insert(
            "header".into(),
            json!({"title": {"tag": "plain_text", "content": title}}),
        );
    }
    card.insert("body".into(), json!({ "elements": elements }));
    Value::Object(card)
}

fn final_summary(markdown: &str, opts: &CardOptions) -> String {
    opts.summary.clone().unwrap_or_else(|| preview(markdown))
}

fn final_elements(
    markdown: &str,
    element_id: Option<&ElementId>,
    opts: &CardOptions,
) -> Vec<Value> {
    let mut elements = vec![markdown_element(markdown, element_id)];
    if let Some(footer) = &opts.footer {
        elements.push(json!({"tag": "markdown", "content": footer, "text_size": "notation"}));
    }
    elements
}

fn markdown_element(content: &str, element_id: Option<&ElementId>) -> Value {
    let mut element = Map::new();
    element.insert("tag".into(), Value::String("markdown".into()));
    if let Some(id) = element_id {
        element.insert("element_id".into(), Value::String(id.as_str().into()));
    }
    element.insert("content".into(), Value::String(content.into()));
    Value::Object(element)
}

fn stop_button(stop: &StopButton) -> Value {
    json!({
        "tag": "button",
        "element_id": STOP_BUTTON_ELEMENT_ID,
        "text": {"tag": "plain_text", "content": stop.label},
        "type": "default",
        "size": "small",
        "behaviors": [{"type": "callback", "value": stop_action_value(&stop.turn)}],
    })
}

fn summary_value(content: &str) -> Value {
    json!({ "content": content })
}

fn print_config(print: &PrintConfig) -> Value {
    json!({
        "print_frequency_ms": {"default": print.frequency_ms},
        "print_step": {"default": print.step},
        "print_strategy": print.strategy.as_str(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(text: &str) -> Value {
        match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => panic!("bad golden JSON: {e}"),
        }
    }

    fn stop() -> StopButton {
        StopButton {
            label: "Stop".into(),
            turn: "t42".into(),
        }
    }

    #[test]
    fn streaming_card_minimal() {
        let card = streaming_card("Thinking...", &ElementId::stream(), &CardOptions::default());
        assert_eq!(
            card,
            golden(
                r#"{"schema":"2.0",
                "config":{"streaming_mode":true,"summary":{"content":"[Generating...]"},
                  "streaming_config":{"print_frequency_ms":{"default":70},"print_step":{"default":1},"print_strategy":"fast"}},
                "body":{"elements":[{"tag":"markdown","element_id":"reply_md","content":"Thinking..."}]}}"#
            )
        );
    }

    #[test]
    fn streaming_card_with_title_stop_and_print_settings() {
        let opts = CardOptions {
            title: Some("Agent".into()),
            summary: Some("Working".into()),
            stop: Some(stop()),
            footer: Some("ignored while streaming".into()),
            print: PrintConfig {
                frequency_ms: 40,
                step: 3,
                strategy: PrintStrategy::Delay,
            },
        };
        let id = ElementId::new("md_1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            streaming_card("...", &id, &opts),
            golden(
                r#"{"schema":"2.0",
                "config":{"streaming_mode":true,"summary":{"content":"Working"},
                  "streaming_config":{"print_frequency_ms":{"default":40},"print_step":{"default":3},"print_strategy":"delay"}},
                "header":{"title":{"tag":"plain_text","content":"Agent"}},
                "body":{"elements":[
                  {"tag":"markdown","element_id":"md_1","content":"..."},
                  {"tag":"button","element_id":"stop_button","text":{"tag":"plain_text","content":"Stop"},
                   "type":"default","size":"small",
                   "behaviors":[{"type":"callback","value":{"larkgate":"stop","turn":"t42"}}]}]}}"#
            )
        );
    }

    #[test]
    fn final_card_has_summary_footer_and_no_stop() {
        let opts = CardOptions {
            stop: Some(stop()),
            footer: Some("3.2s · gpt-x".into()),
            ..CardOptions::default()
        };
        assert_eq!(
            final_card("**Done**  \n all\tgood", &opts),
            golden(
                r#"{"schema":"2.0",
                "config":{"streaming_mode":false,"summary":{"content":"**Done** all good"}},
                "body":{"elements":[
                  {"tag":"markdown","content":"**Done**  \n all\tgood"},
                  {"tag":"markdown","content":"3.2s · gpt-x","text_size":"notation"}]}}"#
            )
        );
    }

    #[test]
    fn markdown_card_is_a_plain_final_card() {
        assert_eq!(
            markdown_card("# hi"),
            golden(
                r##"{"schema":"2.0","config":{"streaming_mode":false,"summary":{"content":"# hi"}},
                "body":{"elements":[{"tag":"markdown","content":"# hi"}]}}"##
            )
        );
    }

    #[test]
    fn legacy_patch_card_streaming_and_final() {
        let opts = CardOptions {
            stop: Some(stop()),
            footer: Some("interrupted".into()),
            summary: Some("sum".into()),
            ..CardOptions::default()
        };
        assert_eq!(
            legacy_patch_card("partial", true, &opts),
            golden(
                r#"{"schema":"2.0","config":{"update_multi":true,"summary":{"content":"sum"}},
                "body":{"elements":[
                  {"tag":"markdown","element_id":"reply_md","content":"partial"},
                  {"tag":"button","element_id":"stop_button","text":{"tag":"plain_text","content":"Stop"},
                   "type":"default","size":"small",
                   "behaviors":[{"type":"callback","value":{"larkgate":"stop","turn":"t42"}}]}]}}"#
            )
        );
        assert_eq!(
            legacy_patch_card("all", false, &opts),
            golden(
                r#"{"schema":"2.0","config":{"update_multi":true,"summary":{"content":"sum"}},
                "body":{"elements":[
                  {"tag":"markdown","element_id":"reply_md","content":"all"},
                  {"tag":"markdown","content":"interrupted","text_size":"notation"}]}}"#
            )
        );
    }

    #[test]
    fn settings_close_is_the_documented_string() {
        assert_eq!(
            settings_close("Sum \"q\""),
            r#"{"config":{"streaming_mode":false,"summary":{"content":"Sum \"q\""}}}"#
        );
    }

    #[test]
    fn post_and_text_shapes() {
        assert_eq!(
            post_md("**b**"),
            golden(r#"{"zh_cn":{"title":"","content":[[{"tag":"md","text":"**b**"}]]}}"#)
        );
        assert_eq!(
            post_md_paragraphs(&["a", "", "```\nx\n```"]),
            golden(
                r#"{"zh_cn":{"title":"","content":[[{"tag":"md","text":"a"}],[{"tag":"md","text":"```\nx\n```"}]]}}"#
            )
        );
        assert_eq!(
            post_md_paragraphs::<&str>(&[]),
            golden(r#"{"zh_cn":{"title":"","content":[[{"tag":"md","text":""}]]}}"#)
        );
        assert_eq!(text("a\nb"), golden(r#"{"text":"a\nb"}"#));
    }

    #[test]
    fn interrupted_suffix_is_stable() {
        assert_eq!(interrupted_suffix(), "\n\n— _(interrupted)_");
    }

    #[test]
    fn element_id_rules() {
        for ok in ["a", "reply_md", "A1_b2", "abcdefghijklmnopqrst"] {
            assert!(ElementId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "_a", "a-b", "a b", "abcdefghijklmnopqrstu", "é"] {
            assert_eq!(
                ElementId::new(bad),
                Err(InvalidElementId(bad.into())),
                "{bad}"
            );
        }
        assert!(is_valid_element_id(ElementId::stream().as_str()));
        assert!(is_valid_element_id(STOP_BUTTON_ELEMENT_ID));
    }

    #[test]
    fn stop_value_round_trips() {
        let value = stop_action_value("turn_9");
        assert_eq!(stop_action_turn(&value), Some("turn_9"));
        assert_eq!(
            stop_action_turn(&json!({"larkgate": "other", "turn": "x"})),
            None
        );
        assert_eq!(stop_action_turn(&json!({"cmd": "stop"})), None);
        assert_eq!(stop_action_turn(&json!("stop")), None);
    }

    #[test]
    fn preview_collapses_and_truncates() {
        assert_eq!(preview("  a\n\n b\tc  "), "a b c");
        assert_eq!(preview(""), "");
        let long = "x".repeat(80);
        let p = preview(&long);
        assert_eq!(p.chars().count(), SUMMARY_MAX_CHARS);
        assert!(p.ends_with('…'));
        let cjk = "汉".repeat(60);
        assert_eq!(preview(&cjk).chars().count(), SUMMARY_MAX_CHARS);
        let exact = "y".repeat(SUMMARY_MAX_CHARS);
        assert_eq!(preview(&exact), exact);
        // Never ends with a space before the ellipsis.
        let words = format!("{} {}", "a".repeat(48), "b".repeat(10));
        assert_eq!(preview(&words), format!("{}…", "a".repeat(48)));
    }

    #[test]
    fn budget_counts_the_wrapper() {
        let opts = CardOptions {
            summary: Some("s".into()),
            ..CardOptions::default()
        };
        let wrapper = final_card("", &opts);
        let budget = markdown_budget(&wrapper, CARD_MAX_BYTES);
        assert_eq!(budget, CARD_MAX_BYTES - serialized_len(&wrapper));
        let filled = final_card(&"a".repeat(budget), &opts);
        assert_eq!(serialized_len(&filled), CARD_MAX_BYTES);
        // Escapes count: a newline is two bytes of content.
        let lines = final_card(&"\n".repeat(budget / 2), &opts);
        assert_eq!(serialized_len(&lines), CARD_MAX_BYTES - budget % 2);
    }
}
