"""Streams a chat completion through the gateway with the real OpenAI SDK and checks the chunks.

Usage: python openai_stream.py BASE_URL MODEL_ALIAS EXPECTED_MODEL_HEADER
Prints `ok <text>` on success; exits non-zero with a reason otherwise.
"""
import sys

from openai import OpenAI

base_url, alias, expected_model = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=base_url, api_key="unused", default_headers={"apikey": "demo-api-key"})

# Non-streaming first: the routed model header and a complete message.
raw = client.chat.completions.with_raw_response.create(
    model=alias,
    messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
)
if raw.headers.get("x-kong-llm-model") != expected_model:
    sys.exit(f"x-kong-llm-model was {raw.headers.get('x-kong-llm-model')!r}, want {expected_model!r}")
completion = raw.parse()
if completion.choices[0].message.content != "The capital of France is Paris.":
    sys.exit(f"unexpected answer {completion.choices[0].message.content!r}")
if completion.choices[0].finish_reason != "stop":
    sys.exit(f"finish_reason was {completion.choices[0].finish_reason!r}")

# Then streaming: several chunks, a final finish_reason, and the same text.
stream = client.chat.completions.create(
    model=alias,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    stream=True,
)
parts, finish, chunks = [], None, 0
for chunk in stream:
    chunks += 1
    if chunk.object != "chat.completion.chunk":
        sys.exit(f"chunk object was {chunk.object!r}")
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
text = "".join(parts)
if text != "The capital of France is Paris.":
    sys.exit(f"streamed text was {text!r} in {chunks} chunks")
if chunks < 2:
    sys.exit(f"only {chunks} chunk(s): the stream was buffered")
if finish != "stop":
    sys.exit(f"stream finish_reason was {finish!r}")
print(f"ok {text}")
