//! The fast path of [`super::peek_message`]: the header ids and
//! [`MessageHead`] read from the event JSON by a scanner made for this one
//! shape, without serde's per-key dispatch.
//!
//! The scanner is a *filter*, not a second parser with its own rules: it
//! answers only when it is sure, and `None` means "ask serde". It is sure
//! when the document is valid JSON by serde_json's rules (strings without
//! control characters, valid escapes, the number grammar, literals, nothing
//! after the top-level value), the fields it reads have the types the serde
//! structs expect, no field it reads appears twice, and the strings it
//! returns have no escapes. Everything else (escaped keys or ids, arrays in
//! place of objects, deep nesting, any syntax error) goes to serde, which
//! decides. So on what it accepts it returns what serde returns, and the
//! rare input it declines costs one more pass. A proptest in this module
//! and the `envelope_parse` fuzz target check the two against each other.

use std::borrow::Cow;

use super::{HeaderIds, MentionHead, MessageHead, MessageHeadFields, OpenIdOnly, SenderHead};

/// Nesting the scanner follows before it leaves the document to serde
/// (whose own limit is 128).
const MAX_DEPTH: u32 = 64;

/// The header ids and message head of `text` (a v2.0 event body), or
/// `None` when the scanner is not sure (see the module docs).
pub(crate) fn scan(text: &str) -> Option<(HeaderIds<'_>, MessageHead<'_>)> {
    let mut c = Cursor {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    let (mut header, mut event) = (None, None);
    c.object(|c, key| match key {
        "header" => set_once(&mut header, c.header_ids()?),
        "event" => set_once(&mut event, c.message_head()?),
        _ => c.skip_value(),
    })?;
    c.whitespace();
    (c.at == c.bytes.len()).then_some(())?;
    Some((header?, event?))
}

/// Stores a field's value, declining a field seen before (serde's
/// "duplicate field" error).
#[inline(always)]
fn set_once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// A position in the document.
struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    depth: u32,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        // Bodies on the wire are compact: whitespace is rare.
        match self.bytes.get(self.at) {
            Some(&b) if b > b' ' => Some(b),
            _ => {
                self.whitespace();
                self.bytes.get(self.at).copied()
            }
        }
    }

    /// Consumes `byte` (after whitespace).
    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Consumes `word` exactly.
    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// An object, calling `field` with each key with the cursor before its
    /// value; `field` must consume the value. A key with escapes (which
    /// might spell a field's name) declines.
    fn object(&mut self, field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.members(Self::plain_string, field)
    }

    /// An object whose keys do not matter, skipped.
    fn skip_object(&mut self) -> Option<()> {
        self.members(|c| c.skip_string().map(|()| ""), |c, _| c.skip_value())
    }

    /// An object's members: each key read by `key`, then `field`.
    fn members(
        &mut self,
        key: impl Fn(&mut Self) -> Option<&'a str>,
        mut field: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        self.nested(|c| {
            if c.peek()? == b'}' {
                c.at += 1;
                return Some(());
            }
            loop {
                let key = key(c)?;
                c.eat(b':')?;
                field(c, key)?;
                match c.peek()? {
                    b',' => c.at += 1,
                    b'}' => {
                        c.at += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        })
    }

    /// An array, calling `item` with the cursor before each element.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.nested(|c| {
            if c.peek()? == b']' {
                c.at += 1;
                return Some(());
            }
            loop {
                item(c)?;
                match c.peek()? {
                    b',' => c.at += 1,
                    b']' => {
                        c.at += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        })
    }

    /// Runs `inner` one level deeper, declining past [`MAX_DEPTH`].
    #[inline(always)]
    fn nested(&mut self, inner: impl FnOnce(&mut Self) -> Option<()>) -> Option<()> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let done = inner(self);
        self.depth -= 1;
        done
    }

    /// A string without escapes, borrowed.
    #[inline(always)]
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = string_stop(self.bytes, start);
        // Stopped at the closing quote, not at an escape or a control byte.
        (self.bytes.get(end) == Some(&b'"')).then_some(())?;
        self.at = end + 1;
        // Both ends are ASCII quotes, so char boundaries.
        self.text.get(start..end)
    }

    /// A string value as the serde structs hold it.
    #[inline(always)]
    fn cow(&mut self) -> Option<Cow<'a, str>> {
        self.plain_string().map(Cow::Borrowed)
    }

    /// Any string, checked as serde checks a string it ignores.
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.at = string_stop(self.bytes, self.at);
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.skip_escape()?,
                // A control character.
                _ => return None,
            }
        }
    }

    /// One escape, the cursor on its backslash.
    fn skip_escape(&mut self) -> Option<()> {
        match *self.bytes.get(self.at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
            b'u' => {
                let hex = self.bytes.get(self.at + 2..self.at + 6)?;
                hex.iter().all(u8::is_ascii_hexdigit).then_some(())?;
                self.at += 6;
            }
            _ => return None,
        }
        Some(())
    }

    /// Any value, checked as serde checks a value it ignores.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.skip_object(),
            b'[' => self.array(Self::skip_value),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn skip_number(&mut self) -> Option<()> {
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        // serde refuses a digit after a leading zero; anything else that
        // follows is the container's to judge.
        (!matches!(self.bytes.get(self.at), Some(b'0'..=b'9'))).then_some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    fn header_ids(&mut self) -> Option<HeaderIds<'a>> {
        let (mut event_id, mut event_type) = (None, None);
        self.object(|c, key| match key {
            "event_id" => set_once(&mut event_id, c.cow()?),
            "event_type" => set_once(&mut event_type, c.cow()?),
            _ => c.skip_value(),
        })?;
        Some(HeaderIds {
            event_id: event_id.unwrap_or_default(),
            event_type: event_type.unwrap_or_default(),
        })
    }

    fn message_head(&mut self) -> Option<MessageHead<'a>> {
        let (mut sender, mut message) = (None, None);
        self.object(|c, key| match key {
            "sender" => set_once(&mut sender, c.sender()?),
            "message" => set_once(&mut message, c.message_fields()?),
            _ => c.skip_value(),
        })?;
        Some(MessageHead {
            sender: sender.unwrap_or_default(),
            message: message?,
        })
    }

    fn sender(&mut self) -> Option<SenderHead<'a>> {
        let (mut sender_id, mut sender_type) = (None, None);
        self.object(|c, key| match key {
            "sender_id" => set_once(&mut sender_id, c.open_id_only()?),
            "sender_type" => set_once(&mut sender_type, c.cow()?),
            _ => c.skip_value(),
        })?;
        Some(SenderHead {
            sender_id: sender_id.unwrap_or_default(),
            sender_type: sender_type.unwrap_or_default(),
        })
    }

    fn open_id_only(&mut self) -> Option<OpenIdOnly<'a>> {
        let mut open_id = None;
        self.object(|c, key| match key {
            "open_id" => set_once(&mut open_id, c.cow()?),
            _ => c.skip_value(),
        })?;
        Some(OpenIdOnly {
            open_id: open_id.unwrap_or_default(),
        })
    }

    fn message_fields(&mut self) -> Option<MessageHeadFields<'a>> {
        let (mut message_id, mut create_time, mut chat_id) = (None, None, None);
        let (mut chat_type, mut mentions) = (None, None);
        self.object(|c, key| match key {
            "message_id" => set_once(&mut message_id, c.cow()?),
            "create_time" => set_once(&mut create_time, c.cow()?),
            "chat_id" => set_once(&mut chat_id, c.cow()?),
            "chat_type" => set_once(&mut chat_type, c.cow()?),
            "mentions" => set_once(&mut mentions, c.mentions()?),
            _ => c.skip_value(),
        })?;
        Some(MessageHeadFields {
            message_id: message_id?,
            create_time: create_time.unwrap_or_default(),
            chat_id: chat_id.unwrap_or_default(),
            chat_type: chat_type.unwrap_or_default(),
            mentions: mentions.unwrap_or_default(),
        })
    }

    fn mentions(&mut self) -> Option<Vec<MentionHead<'a>>> {
        let mut all = Vec::new();
        self.array(|c| {
            all.push(c.mention()?);
            Some(())
        })?;
        Some(all)
    }

    fn mention(&mut self) -> Option<MentionHead<'a>> {
        let (mut placeholder, mut id) = (None, None);
        self.object(|c, key| match key {
            "key" => set_once(&mut placeholder, c.cow()?),
            "id" => set_once(&mut id, c.open_id_only()?),
            _ => c.skip_value(),
        })?;
        Some(MentionHead {
            key: placeholder.unwrap_or_default(),
            id: id.unwrap_or_default(),
        })
    }
}

/// The index of the first `"`, `\` or control byte at or after `from` (or
/// the end), eight bytes at a time.
#[inline(always)]
fn string_stop(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // The classic "has a zero byte" test, for bytes < 0x20 and for
        // bytes equal to '"' or '\\'. Borrows can flag bytes only after a
        // true match, so the lowest flag is exact.
        let control = w.wrapping_sub(ONES * 0x20) & !w;
        let quote = w ^ (ONES * u64::from(b'"'));
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        let found = (control | quote | backslash) & HIGH;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::peek_serde;
    use proptest::prelude::*;

    const RECEIVE: &str = r#"{"schema":"2.0","header":{"event_id":"e1","event_type":"im.message.receive_v1","create_time":"1608725989000","token":"t","app_id":"cli_x","tenant_key":"k"},"event":{"sender":{"sender_id":{"open_id":"ou_a","union_id":"on_a","user_id":null},"sender_type":"user","tenant_key":"k"},"message":{"message_id":"om_1","create_time":"1","chat_id":"oc_1","chat_type":"group","message_type":"text","content":"{\"text\":\"@_user_1 h\u00e9llo \\\"x\\\" 😀\"}","mentions":[{"key":"@_user_1","id":{"open_id":"ou_bot","union_id":"on_b"},"name":"Bot","tenant_key":"k"}],"n":-1.5e+3,"flags":[true,false,{}],"empty":[]}}}"#;

    #[test]
    fn reads_a_usual_body_as_serde_does() {
        let fast = scan(RECEIVE).expect("the scanner is sure of a usual body");
        assert_eq!(Some(&fast), peek_serde(RECEIVE).as_ref());
        assert_eq!(fast.1.message.mentions[0].id.open_id, "ou_bot");
        assert_eq!(fast.1.sender.sender_id.open_id, "ou_a");
        let pretty: serde_json::Value = serde_json::from_str(RECEIVE).unwrap();
        let pretty = serde_json::to_string_pretty(&pretty).unwrap();
        assert_eq!(scan(&pretty), peek_serde(&pretty));
        assert!(scan(&pretty).is_some());
    }

    #[test]
    fn declines_what_it_is_not_sure_of() {
        let cases = [
            // An escaped id (serde reads it, owned).
            RECEIVE.replace(r#""chat_id":"oc_1""#, r#""chat_id":"oc_\u0031""#),
            // An escaped key.
            RECEIVE.replace(r#""chat_id":"#, r#""chat\u005fid":"#),
            // A duplicate field (serde refuses it).
            RECEIVE.replace(
                r#""chat_id":"oc_1""#,
                r#""chat_id":"oc_1","chat_id":"oc_2""#,
            ),
            // The wrong type.
            RECEIVE.replace(r#""chat_id":"oc_1""#, r#""chat_id":1"#),
            RECEIVE.replace(r#""mentions":["#, r#""mentions":null,"x":["#),
            // No message_id (serde: missing field).
            RECEIVE.replace(r#""message_id":"om_1","#, ""),
            // Syntax errors in skipped values, and trailing bytes.
            RECEIVE.replace("-1.5e+3", "01"),
            RECEIVE.replace("-1.5e+3", "1."),
            RECEIVE.replace("true", "tru"),
            RECEIVE.replace(r#"\u00e9"#, r#"\u00g9"#),
            RECEIVE.replace(r#"\u00e9"#, r#"\q"#),
            RECEIVE.replace("😀", "\u{1}"),
            format!("{RECEIVE} x"),
            RECEIVE[..RECEIVE.len() - 1].to_string(),
            // Deeper than the scanner follows.
            RECEIVE.replace(
                r#""empty":[]"#,
                &format!(r#""deep":{}{}"#, "[".repeat(70), "]".repeat(70)),
            ),
        ];
        for case in &cases {
            assert!(scan(case).is_none(), "{case}");
        }
        // serde still reads the escaped ones.
        assert_eq!(peek_serde(&cases[0]).unwrap().1.message.chat_id, "oc_1");
        assert_eq!(peek_serde(&cases[1]).unwrap().1.message.chat_id, "oc_1");
    }

    #[test]
    fn finds_the_first_stop_byte_at_every_offset() {
        for len in 0..40 {
            for stop in 0..len {
                for byte in [b'"', b'\\', 0x00, 0x1f] {
                    let mut text = vec![b'a'; len];
                    text[stop] = byte;
                    // Bytes after the stop that could confuse a borrow.
                    if stop + 1 < len {
                        text[stop + 1] = 0x80;
                    }
                    assert_eq!(string_stop(&text, 0), stop, "{len} {stop} {byte}");
                }
            }
            let high: Vec<u8> = "é😀 ~\u{7f}".bytes().cycle().take(len).collect();
            assert_eq!(string_stop(&high, 0), len);
        }
    }

    /// A JSON tree to render with chosen whitespace and escapes.
    #[derive(Clone, Debug)]
    enum J {
        Lit(&'static str),
        Num(String),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }

    fn any_json() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![
            Just(J::Lit("null")),
            Just(J::Lit("true")),
            Just(J::Lit("false")),
            "-?(0|[1-9][0-9]{0,3})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?".prop_map(J::Num),
            text().prop_map(J::Str),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
                prop::collection::vec((text(), inner), 0..4).prop_map(J::Obj),
            ]
        })
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-z_\"\\\\/\u{0}\u{1f}\u{7f}é😀 ]{0,10}"
    }

    /// A field of the known shape: usually `right`, sometimes absent or of
    /// any type.
    fn field(name: &'static str, right: BoxedStrategy<J>) -> BoxedStrategy<Vec<(String, J)>> {
        prop_oneof![
            1 => Just(vec![]),
            30 => right.clone().prop_map(move |j| vec![(name.to_string(), j)]),
            1 => any_json().prop_map(move |j| vec![(name.to_string(), j)]),
            1 => (right.clone(), right).prop_map(move |(a, b)| vec![(name.to_string(), a), (name.to_string(), b)]),
        ]
        .boxed()
    }

    fn object(fields: Vec<BoxedStrategy<Vec<(String, J)>>>) -> BoxedStrategy<J> {
        let extra = prop::collection::vec(("[a-z_]{1,8}", any_json()), 0..3);
        (fields, extra)
            .prop_map(|(fields, extra)| {
                fields
                    .into_iter()
                    .flatten()
                    .chain(extra)
                    .collect::<Vec<_>>()
            })
            .prop_shuffle()
            .prop_map(J::Obj)
            .boxed()
    }

    fn string() -> BoxedStrategy<J> {
        prop_oneof![12 => "[a-z_0-9.]{0,12}".prop_map(J::Str), 1 => text().prop_map(J::Str)].boxed()
    }

    fn event() -> BoxedStrategy<J> {
        let open_id = || {
            object(vec![
                field("open_id", string()),
                field("union_id", string()),
            ])
        };
        let mention = object(vec![
            field("key", string()),
            field("id", open_id()),
            field("name", string()),
        ]);
        let mentions = prop::collection::vec(mention, 0..3)
            .prop_map(J::Arr)
            .boxed();
        let message = object(vec![
            field("message_id", string()),
            field("create_time", string()),
            field("chat_id", string()),
            field("chat_type", string()),
            field("content", string()),
            field("mentions", mentions),
        ]);
        let sender = object(vec![
            field("sender_id", open_id()),
            field("sender_type", string()),
        ]);
        let header = object(vec![
            field("event_id", string()),
            field("event_type", string()),
        ]);
        let body = object(vec![field("sender", sender), field("message", message)]);
        object(vec![field("header", header), field("event", body)])
    }

    /// Renders `j`, taking whitespace and escape choices from `choices`.
    fn render(j: &J, choices: &mut impl Iterator<Item = u8>, out: &mut String) {
        let ws = |out: &mut String, choices: &mut dyn Iterator<Item = u8>| {
            if choices.next().unwrap_or(0).is_multiple_of(5) {
                out.push_str(
                    [" ", "\n", "\t", "\r\n  "][usize::from(choices.next().unwrap_or(0) % 4)],
                );
            }
        };
        ws(out, choices);
        match j {
            J::Lit(l) => out.push_str(l),
            J::Num(n) => out.push_str(n),
            J::Str(s) => render_string(s, 255, choices, out),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    render(item, choices, out);
                }
                ws(out, choices);
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    ws(out, choices);
                    render_string(k, 255, choices, out);
                    ws(out, choices);
                    out.push(':');
                    render(v, choices, out);
                }
                ws(out, choices);
                out.push('}');
            }
        }
        ws(out, choices);
    }

    /// Writes `s` as a JSON string, escaping about one character in `rate`
    /// besides those that must be.
    fn render_string(s: &str, rate: u8, choices: &mut impl Iterator<Item = u8>, out: &mut String) {
        out.push('"');
        for ch in s.chars() {
            let escape = ch == '"'
                || ch == '\\'
                || ch < ' '
                || choices.next().unwrap_or(0).is_multiple_of(rate);
            if !escape {
                out.push(ch);
                continue;
            }
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' => out.push_str("\\/"),
                '\n' => out.push_str("\\n"),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in ch.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out.push('"');
    }

    /// Text a mutation inserts: syntax, bad escapes, bad numbers, cut
    /// literals, a control character.
    const EDITS: &[&str] = &[
        "{", "}", "[", "]", ",", ":", "\"", " ", "\\", "\\x", "\\u12", "\\ud800", "0", "01", "-",
        ".", "e", "1e", "tru", "nul", "\u{1}", ",\"k\":1",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the scanner answers, serde answers the same.
        #[test]
        fn agrees_with_serde(
            doc in event(),
            choices in prop::collection::vec(any::<u8>(), 64),
            edit in prop::option::weighted(0.6, (any::<prop::sample::Index>(), 0usize..4, prop::sample::select(EDITS))),
        ) {
            let mut text = String::new();
            render(&doc, &mut choices.iter().copied().cycle(), &mut text);
            let mut bytes = text.into_bytes();
            if let Some((at, kind, insert)) = edit {
                let at = at.index(bytes.len() + 1);
                match kind {
                    0 => drop(bytes.splice(at..at, insert.bytes())),
                    1 if at < bytes.len() => drop(bytes.remove(at)),
                    2 => bytes.extend_from_slice(insert.as_bytes()),
                    _ => bytes.truncate(at),
                }
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                if let Some(fast) = scan(text) {
                    prop_assert_eq!(Some(fast), peek_serde(text), "{}", text);
                }
            }
        }
    }
}
