-- Console passwords (IAM login profiles) and console sign-in sessions (see
-- `console.rs`).
CREATE TABLE login_profiles (
    user_name       TEXT COLLATE "C" PRIMARY KEY,
    password_hash   TEXT NOT NULL,
    reset_required  BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE console_sessions (
    id_hash       TEXT COLLATE "C" PRIMARY KEY,
    principal     TEXT NOT NULL,
    user_name     TEXT,
    access_key_id TEXT,
    csrf          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    seen_at       BIGINT NOT NULL
);
