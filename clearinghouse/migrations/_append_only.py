"""SQL for append-only tables, shared by migrations (and the test suite's teardown)."""

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION clearinghouse_refuse_change() RETURNS trigger AS $$
DECLARE
    has_rows boolean;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- Truncating an empty table loses nothing (Django's test flush does this).
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', TG_TABLE_NAME) INTO has_rows;
        IF NOT has_rows THEN
            RETURN NULL;
        END IF;
    END IF;
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def append_only_sql(table: str, vendor: str) -> tuple[list[str], list[str]]:
    if vendor == "postgresql":
        forward = [
            PG_FUNCTION,
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION clearinghouse_refuse_change();",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION clearinghouse_refuse_change();",
        ]
        backward = [f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table};",
                    f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};"]
    elif vendor == "sqlite":
        forward = [
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only: UPDATE refused'); END;",
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only: DELETE refused'); END;",
        ]
        backward = [f"DROP TRIGGER IF EXISTS {table}_no_update;", f"DROP TRIGGER IF EXISTS {table}_no_delete;"]
    else:  # pragma: no cover - settings allow only these two
        forward = backward = []
    return forward, backward
