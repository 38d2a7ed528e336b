-- Gantry's PostgreSQL store: the same tables as the SQLite store. Entity bodies are kept as
-- text (not jsonb) so that they read back byte for byte, in the order they were written.
CREATE TABLE control_planes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    revision BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE entities (
    seq BIGSERIAL PRIMARY KEY,
    cp_id TEXT NOT NULL REFERENCES control_planes(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    endpoint_key TEXT,
    body TEXT NOT NULL,
    UNIQUE (cp_id, kind, id)
);
CREATE INDEX entities_by_kind ON entities (cp_id, kind, seq);
CREATE INDEX entities_by_key ON entities (cp_id, kind, endpoint_key);

CREATE TABLE unique_keys (
    cp_id TEXT NOT NULL REFERENCES control_planes(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    PRIMARY KEY (cp_id, kind, field, value)
);
CREATE INDEX unique_keys_by_entity ON unique_keys (cp_id, entity_id);
