"""Calls the recipe's route with the real OpenAI SDK: one plain call, one stream as the SDK
sends it by default (no usage asked), and one stream that asks for usage.

Usage: python openai_usage.py BASE_URL MODEL_ALIAS
Prints one JSON line: {"oneshot": usage, "stream_usage": usage, "stream_text": text,
"unasked_saw_usage": bool}; exits non-zero with a reason otherwise.
"""
import json
import sys

from openai import OpenAI

base_url, alias = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="unused", default_headers={"apikey": "demo-api-key"})
messages = [{"role": "user", "content": "What is the capital of France?"}]

completion = client.chat.completions.create(model=alias, messages=messages)
oneshot = completion.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})

unasked_saw_usage, parts = False, []
for chunk in client.chat.completions.create(model=alias, messages=messages, stream=True):
    if getattr(chunk, "usage", None) is not None:
        unasked_saw_usage = True
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)

stream_usage = None
for chunk in client.chat.completions.create(
    model=alias, messages=messages, stream=True, stream_options={"include_usage": True}
):
    if getattr(chunk, "usage", None) is not None:
        stream_usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
if stream_usage is None:
    sys.exit("the stream that asked for usage got none")

print(json.dumps({
    "oneshot": oneshot,
    "stream_usage": stream_usage,
    "stream_text": "".join(parts),
    "unasked_saw_usage": unasked_saw_usage,
}))
