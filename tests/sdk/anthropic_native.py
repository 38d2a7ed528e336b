"""Calls a route with `llm_format: anthropic` using the real Anthropic SDK, plain and streaming.

Usage: python anthropic_native.py BASE_URL
Prints `ok <text>` on success; exits non-zero with a reason otherwise.
"""
import sys

import anthropic

client = anthropic.Anthropic(
    base_url=sys.argv[1], api_key="unused", default_headers={"apikey": "demo-api-key"}
)
message = client.messages.create(
    model="claude-test",
    max_tokens=64,
    system="You are terse.",
    messages=[{"role": "user", "content": "What is the capital of France?"}],
)
text = "".join(block.text for block in message.content if block.type == "text")
if text != "The capital of France is Paris.":
    sys.exit(f"unexpected answer {text!r}")
if message.stop_reason != "end_turn":
    sys.exit(f"stop_reason was {message.stop_reason!r}")

with client.messages.stream(
    model="claude-test",
    max_tokens=64,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
) as stream:
    streamed = "".join(stream.text_stream)
    final = stream.get_final_message()
if streamed != "The capital of France is Paris.":
    sys.exit(f"streamed text was {streamed!r}")
if final.stop_reason != "end_turn":
    sys.exit(f"stream stop_reason was {final.stop_reason!r}")
print(f"ok {text}")
