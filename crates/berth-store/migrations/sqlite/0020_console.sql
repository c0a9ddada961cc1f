-- Console passwords (IAM login profiles) and console sign-in sessions (see
-- `console.rs`).
CREATE TABLE login_profiles (
    user_name       TEXT PRIMARY KEY,
    password_hash   TEXT NOT NULL,
    reset_required  BOOLEAN NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE console_sessions (
    id_hash       TEXT PRIMARY KEY,
    principal     TEXT NOT NULL,
    user_name     TEXT,
    access_key_id TEXT,
    csrf          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    seen_at       INTEGER NOT NULL
);
