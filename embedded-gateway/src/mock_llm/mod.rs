//! Owns the mock LLM provider (placeholder while building).
