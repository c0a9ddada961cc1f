-- Changes to what the read cache keeps (manifests, tags, blob links,
-- repositories) notify every node as they commit (src/read_cache.rs), with
-- the schema as payload: nodes of other installs on the same database tell
-- theirs apart. One notification per statement; PostgreSQL folds repeats
-- within a transaction into one.
CREATE FUNCTION berth_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('berth_changes', current_schema());
    RETURN NULL;
END
$$;

CREATE TRIGGER manifests_changed AFTER INSERT OR UPDATE OR DELETE ON manifests
    FOR EACH STATEMENT EXECUTE FUNCTION berth_notify_change();
CREATE TRIGGER tags_changed AFTER INSERT OR UPDATE OR DELETE ON tags
    FOR EACH STATEMENT EXECUTE FUNCTION berth_notify_change();
CREATE TRIGGER repository_blobs_changed AFTER DELETE ON repository_blobs
    FOR EACH STATEMENT EXECUTE FUNCTION berth_notify_change();
CREATE TRIGGER repositories_changed AFTER DELETE ON repositories
    FOR EACH STATEMENT EXECUTE FUNCTION berth_notify_change();
