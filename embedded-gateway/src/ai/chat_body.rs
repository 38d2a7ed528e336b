//! Owns the client's chat request body on the AI path: one borrowed scan that finds the
//! top-level fields routing needs (`model`, `stream`, `messages`, …) without building a JSON
//! tree, and an in-place rewrite of those fields for OpenAI-format upstreams, so the common
//! request is never parsed into a tree and serialised again.
//!
//! Before the scan, the whole body is checked in one cheap pass each: valid UTF-8 (SIMD), and
//! nested no deeper than [`MAX_DEPTH`] (a byte walk that skips string contents), so that no
//! byte the scan skips (unknown fields, `tools`, nested values) reaches a provider unchecked.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserializer as _;
use serde::de::{self, Deserialize, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The top-level fields the proxy reads or may rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Model,
    Stream,
    Messages,
    StreamOptions,
    TopK,
    MaxTokens,
    MaxCompletionTokens,
    Temperature,
    TopP,
}

const FIELDS: [(&str, Field); 9] = [
    ("model", Field::Model),
    ("stream", Field::Stream),
    ("messages", Field::Messages),
    ("stream_options", Field::StreamOptions),
    ("top_k", Field::TopK),
    ("max_tokens", Field::MaxTokens),
    ("max_completion_tokens", Field::MaxCompletionTokens),
    ("temperature", Field::Temperature),
    ("top_p", Field::TopP),
];

/// A chat request body: the raw bytes plus where each known field's value sits in them.
#[derive(Debug, Clone)]
pub struct ChatBody {
    raw: Bytes,
    spans: [Option<Range<usize>>; 9],
    /// A known field appeared more than once (the last one wins, as in a parsed object).
    repeated: bool,
    /// The object has at least one member.
    members: bool,
}

/// Deepest nesting of arrays and objects a chat body may have, the top-level object being
/// level 1. It is serde_json's own recursion limit (a 128th level fails to parse), so every
/// body that passes also parses whole for the translators that rebuild it.
pub const MAX_DEPTH: usize = 127;

/// Why a body is not a chat body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadBody {
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    #[error("the body nests arrays and objects more than {MAX_DEPTH} levels deep")]
    TooDeep,
    #[error("the body is not a JSON object")]
    NotAnObject,
}

impl From<BadBody> for super::AiError {
    fn from(e: BadBody) -> Self {
        match e {
            BadBody::NotAnObject => super::AiError::bad_json(),
            BadBody::NotUtf8 => super::AiError::bad_request(
                "invalid_json",
                "bad JSON formatting: the request body is not valid UTF-8",
            ),
            BadBody::TooDeep => super::AiError::bad_request(
                "invalid_json",
                format!(
                    "the request body nests arrays and objects more than {MAX_DEPTH} levels deep"
                ),
            ),
        }
    }
}

impl ChatBody {
    /// Scans `raw`, which must be one JSON object (any whitespace around it), valid UTF-8
    /// throughout and nested at most [`MAX_DEPTH`] levels deep.
    pub fn parse(raw: Bytes) -> Result<Self, BadBody> {
        let text = simdutf8::basic::from_utf8(&raw).map_err(|_| BadBody::NotUtf8)?;
        if nesting_exceeds(text.as_bytes(), MAX_DEPTH) {
            return Err(BadBody::TooDeep);
        }
        // From the checked `str`, serde_json does not validate UTF-8 again per value.
        let mut de = serde_json::Deserializer::from_str(text);
        let scan = de
            .deserialize_map(ScanVisitor {
                base: raw.as_ptr() as usize,
            })
            .map_err(|_| BadBody::NotAnObject)?;
        de.end().map_err(|_| BadBody::NotAnObject)?;
        Ok(Self {
            raw,
            spans: scan.spans,
            repeated: scan.repeated,
            members: scan.members,
        })
    }

    /// The value text of a top-level field, exactly as the client sent it.
    pub fn raw_field(&self, f: Field) -> Option<&str> {
        let r = self.spans[f as usize].clone()?;
        std::str::from_utf8(&self.raw[r]).ok()
    }

    /// `model` when it is a string.
    pub fn model(&self) -> Option<Cow<'_, str>> {
        let v = self.raw_field(Field::Model)?;
        if !v.starts_with('"') {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(v);
        Text::deserialize(&mut de).ok().map(|t| t.0)
    }

    /// `stream` is literally `true`.
    pub fn stream(&self) -> bool {
        self.raw_field(Field::Stream) == Some("true")
    }

    /// `messages` is a non-empty array.
    pub fn has_messages(&self) -> bool {
        self.raw_field(Field::Messages)
            .and_then(|v| v.strip_prefix('['))
            .is_some_and(|rest| !rest.trim_start().starts_with(']'))
    }

    /// The body as the client sent it.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// `stream_options.include_usage` is `true`.
    pub fn include_usage(&self) -> bool {
        self.raw_field(Field::StreamOptions)
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
            .and_then(|o| o.get("include_usage").and_then(Value::as_bool))
            .unwrap_or(false)
    }

    /// The whole body as a JSON object, for translators that rebuild it.
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_slice(&self.raw).unwrap_or_default()
    }

    /// The body with `model` and `stream` set and the plugin's tuning defaults filled where the
    /// client sent none, edited in place. `None` when the body needs a full rebuild instead:
    /// it carries `top_k` (which OpenAI rejects) or repeats a field this edit touches.
    pub fn rewrite_openai(
        &self,
        model: &str,
        stream: bool,
        defaults: &[(Field, &str, Value)],
    ) -> Option<Vec<u8>> {
        if self.repeated || self.spans[Field::TopK as usize].is_some() {
            return None;
        }
        let edits = [
            (Field::Model, "model", Piece::Str(model)),
            (Field::Stream, "stream", Piece::Bool(stream)),
        ]
        .into_iter()
        .chain(defaults.iter().map(|(f, n, v)| (*f, *n, Piece::Json(v))));
        let mut replace: Vec<(Range<usize>, Piece<'_>)> = Vec::new();
        let mut append: Vec<(&str, Piece<'_>)> = Vec::new();
        for (field, name, piece) in edits {
            match &self.spans[field as usize] {
                Some(r) => replace.push((r.clone(), piece)),
                None => append.push((name, piece)),
            }
        }
        replace.sort_unstable_by_key(|(r, _)| r.start);
        let close = self.raw.iter().rposition(|&b| b == b'}')?;
        let mut out = Vec::with_capacity(self.raw.len() + model.len() + 64);
        let mut at = 0;
        for (r, piece) in &replace {
            out.extend_from_slice(&self.raw[at..r.start]);
            piece.write(&mut out)?;
            at = r.end;
        }
        out.extend_from_slice(&self.raw[at..close]);
        let mut members = self.members;
        for (name, piece) in &append {
            if members {
                out.push(b',');
            }
            members = true;
            serde_json::to_writer(&mut out, name).ok()?;
            out.push(b':');
            piece.write(&mut out)?;
        }
        out.extend_from_slice(&self.raw[close..]);
        Some(out)
    }

    /// Whether the client set this field (present and not `null`, as translators read tuning).
    pub fn has(&self, f: Field) -> bool {
        self.raw_field(f).is_some_and(|v| v != "null")
    }
}

/// Whether arrays and objects in `json` nest deeper than `max` anywhere outside strings. One
/// pass, no recursion: string contents are skipped with `memchr`; malformed JSON is left for
/// the parser to refuse.
fn nesting_exceeds(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'"' => {
                // Skip to the closing quote, stepping over escapes.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &json[i.min(json.len())..]) {
                        None => return false,
                        Some(at) if json[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// A value the rewrite writes.
enum Piece<'a> {
    Str(&'a str),
    Bool(bool),
    Json(&'a Value),
}

impl Piece<'_> {
    fn write(&self, out: &mut Vec<u8>) -> Option<()> {
        match self {
            Piece::Str(s) => serde_json::to_writer(&mut *out, s).ok(),
            Piece::Bool(b) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" });
                Some(())
            }
            Piece::Json(v) => serde_json::to_writer(&mut *out, v).ok(),
        }
    }
}

struct Scan {
    spans: [Option<Range<usize>>; 9],
    repeated: bool,
    members: bool,
}

struct ScanVisitor {
    base: usize,
}

impl<'de> Visitor<'de> for ScanVisitor {
    type Value = Scan;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scan, A::Error> {
        let mut scan = Scan {
            spans: Default::default(),
            repeated: false,
            members: false,
        };
        while let Some(key) = map.next_key::<Text<'de>>()? {
            scan.members = true;
            match FIELDS.iter().find(|(name, _)| *name == key.0) {
                Some((_, field)) => {
                    let v: &'de RawValue = map.next_value()?;
                    let start = v.get().as_ptr() as usize - self.base;
                    let slot = &mut scan.spans[*field as usize];
                    scan.repeated |= slot.is_some();
                    *slot = Some(start..start + v.get().len());
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(scan)
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> ChatBody {
        ChatBody::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    fn rewrite(s: &str, model: &str, stream: bool, defaults: &[(Field, &str, Value)]) -> Value {
        let out = body(s).rewrite_openai(model, stream, defaults).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn nested(levels: usize, open: &str, close: &str) -> String {
        format!(
            "{{\"model\":\"m\",\"x\":{}1{}}}",
            open.repeat(levels - 1),
            close.repeat(levels - 1)
        )
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted_and_parses_whole() {
        for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
            let b = body(&nested(MAX_DEPTH, open, close));
            assert_eq!(b.model().as_deref(), Some("m"));
            assert!(
                !b.to_map().is_empty(),
                "serde_json parses the deepest accepted body"
            );
        }
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_without_recursion() {
        for levels in [MAX_DEPTH + 1, 129, 10_000, 400_000] {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let raw = Bytes::from(nested(levels, open, close));
                assert_eq!(
                    ChatBody::parse(raw).err(),
                    Some(BadBody::TooDeep),
                    "{levels}"
                );
            }
        }
        // Unclosed: refused as soon as the limit is crossed.
        let raw = Bytes::from(format!("{{\"messages\":{}", "[".repeat(400_000)));
        assert_eq!(ChatBody::parse(raw).err(), Some(BadBody::TooDeep));
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        let deep_text = "[{".repeat(1000);
        let src = format!(
            r#"{{"messages":[{{"role":"user","content":"{deep_text} \" [[ \\"}}],"k":"\\"}}"#
        );
        let b = body(&src);
        assert!(b.has_messages());
        assert!(!nesting_exceeds(br#"{"a":"\\\"[[[["}"#, 1));
        assert!(nesting_exceeds(br#"{"a":"\\",[[]]}"#, 2));
    }

    #[test]
    fn invalid_utf8_anywhere_is_refused() {
        for bad in [
            &b"{\"model\":\"m\xff\",\"messages\":[1]}"[..],
            b"{\"model\":\"m\",\"messages\":[1],\"unknown\":\"\xc3\x28\"}",
            b"{\"model\":\"m\",\"messages\":[1],\"tools\":[{\"a\":{\"b\":\"\xed\xa0\x80\"}}]}",
            b"{\"model\":\"m\",\"messages\":[1],\"\xf0\x28\x8c\x28\":1}",
        ] {
            assert_eq!(
                ChatBody::parse(Bytes::copy_from_slice(bad)).err(),
                Some(BadBody::NotUtf8),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_json_objects_are_chat_bodies() {
        for bad in ["", "[]", "\"x\"", "{", "{\"a\":1} x", "{\"a\":}", "null"] {
            assert!(
                ChatBody::parse(Bytes::from(bad.to_owned())).is_err(),
                "{bad:?}"
            );
        }
        assert!(ChatBody::parse(Bytes::from_static(b" {\"a\": [1, {\"b\": 2}]}\n")).is_ok());
    }

    #[test]
    fn the_routing_fields_are_read_without_a_tree() {
        let b = body(
            r#"{"model":"fa\u0073t","messages":[{"role":"user","content":"hi"}],"stream":true,
                "stream_options":{"include_usage":true},"x":{"model":"nested"}}"#,
        );
        assert_eq!(b.model().as_deref(), Some("fast"));
        assert!(b.stream());
        assert!(b.has_messages());
        assert!(b.include_usage());
        let b = body(r#"{"model":3,"messages":[ ],"stream":"true"}"#);
        assert_eq!(b.model(), None);
        assert!(!b.stream());
        assert!(!b.has_messages());
        assert!(!b.include_usage());
    }

    #[test]
    fn the_last_of_repeated_fields_wins_as_in_a_parsed_object() {
        let b = body(r#"{"model":"a","model":"b","messages":[1]}"#);
        assert_eq!(b.model().as_deref(), Some("b"));
        assert_eq!(b.rewrite_openai("m", false, &[]), None, "full rebuild");
    }

    #[test]
    fn rewrite_sets_model_and_stream_in_place_and_appends_missing_ones() {
        let got = rewrite(
            r#"{ "model" : "fast", "messages":[{"role":"user","content":"a \"q\""}] }"#,
            "gpt-4o-mini",
            true,
            &[],
        );
        assert_eq!(
            got,
            serde_json::json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":"a \"q\""}],"stream":true})
        );
        let got = rewrite(r#"{"stream":true,"messages":[1]}"#, "we\"ird", false, &[]);
        assert_eq!(
            got,
            serde_json::json!({"stream":false,"messages":[1],"model":"we\"ird"})
        );
    }

    #[test]
    fn rewrite_fills_defaults_only_where_the_client_sent_none() {
        let defaults = [
            (Field::MaxTokens, "max_tokens", Value::from(512)),
            (Field::Temperature, "temperature", Value::from(0.5)),
        ];
        let got = rewrite(
            r#"{"messages":[1],"temperature":null}"#,
            "m",
            false,
            &defaults,
        );
        assert_eq!(got["max_tokens"], 512);
        assert_eq!(got["temperature"], 0.5);
    }

    #[test]
    fn a_body_with_top_k_is_rebuilt_in_full() {
        assert_eq!(
            body(r#"{"messages":[1],"top_k":3}"#).rewrite_openai("m", false, &[]),
            None
        );
    }

    #[test]
    fn the_rewrite_keeps_every_other_byte() {
        let src = r#"{"messages":[{"role":"user","content":"ünïcødé \n"}],"model":"x","tools":[]}"#;
        let out = body(src).rewrite_openai("y", false, &[]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"messages":[{"role":"user","content":"ünïcødé \n"}],"model":"y","tools":[],"stream":false}"#
        );
    }
}
