//! Owns the mock's deterministic answers: a fixed reply for the recipe's question, a stable
//! echo for anything else, a tool call when tools are offered, and word-count token usage.

/// What the mock replies.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Text(String),
    /// Call this tool with `{"input": <prompt>}`.
    ToolCall {
        name: String,
        arguments: String,
    },
}

/// The reply to a conversation whose last message has `role` and text `last`.
pub fn reply(last_role: &str, last: &str, first_tool: Option<&str>) -> Reply {
    if last_role == "tool" {
        return Reply::Text(format!("The tool returned: {last}"));
    }
    if let Some(name) = first_tool {
        return Reply::ToolCall {
            name: name.to_owned(),
            arguments: serde_json::json!({ "input": last }).to_string(),
        };
    }
    let q = last.trim();
    if q.eq_ignore_ascii_case("What is the capital of France?") {
        return Reply::Text("The capital of France is Paris.".into());
    }
    Reply::Text(format!("You said: {q}"))
}

/// Tokens as the mock counts them: whitespace-separated words (at least 1).
pub fn tokens(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

/// Splits a reply into stream pieces: each word with its leading space.
pub fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, w) in text.split(' ').enumerate() {
        out.push(if i == 0 {
            w.to_owned()
        } else {
            format!(" {w}")
        });
    }
    out
}

/// A stable id suffix for `text` (FNV-1a), so identical requests get identical ids.
pub fn stable_id(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Plain text of an OpenAI/Anthropic `content` (string, or array of text parts / blocks).
pub fn text_of(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| {
                p.get("text").or_else(|| p.get("content")).map(|t| match t {
                    serde_json::Value::String(s) => s.clone(),
                    other => text_of(other),
                })
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recipe_question_gets_the_recipe_answer() {
        assert_eq!(
            reply("user", "What is the capital of France?", None),
            Reply::Text("The capital of France is Paris.".into())
        );
        assert_eq!(
            reply("user", "hello", None),
            Reply::Text("You said: hello".into())
        );
        assert_eq!(pieces("a b c").concat(), "a b c");
    }
}
