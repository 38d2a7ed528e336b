-- Lookups of an entity's children (a consumer's credentials and plugins, a service's routes
-- and plugins, a route's plugins) filter on the parent's id inside the body: index those
-- expressions, exactly as the store spells them (`Dialect::json_text`), so deleting one
-- consumer out of 10,000 does not parse every credential.
CREATE INDEX entities_by_service ON entities (cp_id, kind, (body::jsonb #>> '{service,id}'));
CREATE INDEX entities_by_route ON entities (cp_id, kind, (body::jsonb #>> '{route,id}'));
CREATE INDEX entities_by_consumer ON entities (cp_id, kind, (body::jsonb #>> '{consumer,id}'));
