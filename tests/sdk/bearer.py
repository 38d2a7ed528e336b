"""The OpenAI SDK's own `api_key` (sent as `Authorization: Bearer`) authenticates through
key-auth's `key_in_bearer`, with no custom headers: demo.py's calls, then a wrong key.

Usage: python bearer.py PROXY_URL
Prints one line per call; exits non-zero with a reason when something is off.
"""
import sys

from openai import APIStatusError, OpenAI

base = f"{sys.argv[1]}/basic-llm-routing"
client = OpenAI(base_url=base, api_key="demo-api-key")
for alias, expected in (("fast", "openai/gpt-4o-mini"), ("smart", "openai/gpt-4o")):
    raw = client.chat.completions.with_raw_response.create(
        model=alias, messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    model = raw.headers.get("x-kong-llm-model")
    if model != expected:
        sys.exit(f"{alias}: x-kong-llm-model was {model!r}, want {expected!r}")
    print(f"[ROUTED TO] alias={alias!r} -> upstream model={model} {raw.parse().choices[0].message.content}")
try:
    OpenAI(base_url=base, api_key="wrong-key").chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hi"}]
    )
    sys.exit("a wrong key was accepted")
except APIStatusError as e:
    print(f"[BLOCKED] {e.status_code} {e.message}")
