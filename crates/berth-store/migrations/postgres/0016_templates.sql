-- Repository creation templates (see `templates.rs`): the template as the
-- ECR API shows it, by prefix (`ROOT` for every repository).
CREATE TABLE repository_templates (
    prefix      TEXT COLLATE "C" PRIMARY KEY,
    document    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
