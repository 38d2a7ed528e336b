//! Owns the mock's self-hosted endpoints: Ollama's `POST /api/chat` (JSON body, NDJSON
//! stream, `{"error": …}` faults) and Hugging Face TGI's `POST /generate` and
//! `/generate_stream` (`inputs`/`parameters`, SSE tokens). Neither requires auth, like the
//! real servers' defaults.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::answer::{Reply, pieces, tokens};
use super::convo::{Convo, gate};
use super::{Shared, body_response, json_response, sse_response};

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({"error": message}))
}

const CREATED_AT: &str = "2024-01-15T08:13:38.876196Z";

fn line(c: &Convo, message: Value, done: Option<(&str, u64)>) -> Value {
    let mut v = json!({"model": c.model, "created_at": CREATED_AT, "message": message, "done": done.is_some()});
    if let Some((reason, completion)) = done {
        v["done_reason"] = json!(reason);
        v["prompt_eval_count"] = json!(c.prompt_tokens);
        v["eval_count"] = json!(completion);
        v["total_duration"] = json!(1_000_000);
    }
    v
}

pub async fn chat(s: &Shared, headers: &HeaderMap, body: Option<Value>) -> Response {
    let Some(body) = body.filter(|b| b.get("messages").is_some_and(Value::is_array)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid request: messages are required",
        );
    };
    let c = Convo::from_chat_messages(&body);
    if c.model.is_empty() {
        return error(StatusCode::BAD_REQUEST, "model is required");
    }
    let plan = match gate(
        headers,
        &c.model,
        || {
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "server busy, please try again.  maximum pending requests exceeded",
            )
        },
        || {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "llama runner process has terminated: exit status 2",
            )
        },
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let reply = c.reply();
    let (pieces_, calls, completion) = match &reply {
        Reply::Text(t) => (pieces(t), None, tokens(t)),
        Reply::ToolCall { name, arguments } => {
            let args: Value = serde_json::from_str(arguments).unwrap_or_default();
            (
                Vec::new(),
                Some(json!([{"function": {"name": name, "arguments": args}}])),
                tokens(arguments),
            )
        }
    };
    // Ollama streams unless told otherwise.
    if body.get("stream").and_then(Value::as_bool) != Some(false) {
        let mut lines: Vec<Value> = pieces_
            .iter()
            .map(|p| line(&c, json!({"role": "assistant", "content": p}), None))
            .collect();
        if let Some(calls) = &calls {
            lines.push(line(
                &c,
                json!({"role": "assistant", "content": "", "tool_calls": calls}),
                None,
            ));
        }
        lines.push(line(
            &c,
            json!({"role": "assistant", "content": ""}),
            Some(("stop", completion)),
        ));
        let events = lines
            .iter()
            .map(|l| Bytes::from(format!("{l}\n")))
            .collect();
        let mut r = sse_response(s, events, plan);
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/x-ndjson"),
        );
        return r;
    }
    let mut message = json!({"role": "assistant", "content": pieces_.concat()});
    if let Some(calls) = calls {
        message["tool_calls"] = calls;
    }
    body_response(line(&c, message, Some(("stop", completion))), plan)
}

/// The last user turn of a Llama 2 chat prompt (`… [INST] question [/INST]`).
fn last_instruction(inputs: &str) -> String {
    let before = inputs.rsplit_once("[/INST]").map_or(inputs, |(b, _)| b);
    let q = before.rsplit_once("[INST]").map_or(before, |(_, q)| q);
    let q = q.rsplit_once("<</SYS>>").map_or(q, |(_, q)| q);
    q.trim().to_owned()
}

pub async fn generate(
    s: &Shared,
    headers: &HeaderMap,
    body: Option<Value>,
    stream_path: bool,
) -> Response {
    let Some(inputs) = body
        .as_ref()
        .and_then(|b| b.get("inputs"))
        .and_then(Value::as_str)
    else {
        return json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "Failed to deserialize the JSON body into the target type: missing field `inputs`", "error_type": "validation"}),
        );
    };
    let c = Convo {
        model: String::new(),
        last_role: "user".into(),
        last_text: last_instruction(inputs),
        first_tool: None,
        prompt_tokens: tokens(inputs),
    };
    let plan = match gate(
        headers,
        "",
        || json_response(StatusCode::TOO_MANY_REQUESTS, json!({"error": "Model is overloaded", "error_type": "overloaded"})),
        || json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "Request failed during generation: Server error: CUDA out of memory", "error_type": "generation"})),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Reply::Text(text) = c.reply() else {
        return error(StatusCode::BAD_REQUEST, "tools are not supported");
    };
    let n = tokens(&text);
    let details = json!({"finish_reason": "eos_token", "generated_tokens": n, "seed": null});
    let stream = stream_path
        || body
            .as_ref()
            .and_then(|b| b.pointer("/parameters/stream"))
            .and_then(Value::as_bool)
            == Some(true);
    if !stream {
        return body_response(json!({"generated_text": text, "details": details}), plan);
    }
    let ps = pieces(&text);
    let last = ps.len() - 1;
    let events = ps
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (generated, d) = if i == last {
                (json!(text), details.clone())
            } else {
                (Value::Null, Value::Null)
            };
            let ev = json!({"index": i, "token": {"id": i, "text": p, "logprob": 0.0, "special": false},
                            "generated_text": generated, "details": d});
            Bytes::from(format!("data:{ev}\n\n"))
        })
        .collect();
    sse_response(s, events, plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_instruction_of_a_llama2_prompt_is_the_question() {
        let p = "<s>[INST] <<SYS>> Be brief. <</SYS>> What is the capital of France? [/INST]";
        assert_eq!(last_instruction(p), "What is the capital of France?");
        let p = "<s>[INST] hi [/INST] hello </s><s>[INST] again? [/INST]";
        assert_eq!(last_instruction(p), "again?");
        assert_eq!(last_instruction("plain"), "plain");
    }
}
