//! Console passwords (IAM login profiles, hashed by the caller) and
//! console sessions (by the hash of their cookie). Plain SQL both
//! databases accept ([`impl_console_store`]).

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LoginProfile {
    pub user_name: String,
    /// A PHC string (`$argon2id$…`).
    pub password_hash: String,
    pub reset_required: bool,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ConsoleSession {
    /// SHA-256 of the cookie's value (the value itself is never stored).
    pub id_hash: String,
    /// The ARN the session acts as.
    pub principal: String,
    /// Signed in with a password: the IAM user.
    pub user_name: Option<String>,
    /// Signed in with an access key: its id.
    pub access_key_id: Option<String>,
    /// The token every form of this session carries.
    pub csrf: String,
    pub created_at: i64,
    pub seen_at: i64,
}

#[async_trait]
pub trait ConsoleStore: Send + Sync + 'static {
    /// Adds (`create`) or replaces a user's login profile; false when it
    /// exists already (create) or does not (replace).
    async fn put_login_profile(&self, profile: &LoginProfile, create: bool) -> Result<bool>;
    async fn login_profile(&self, user_name: &str) -> Result<Option<LoginProfile>>;
    async fn delete_login_profile(&self, user_name: &str) -> Result<bool>;
    async fn create_session(&self, session: &ConsoleSession) -> Result<()>;
    async fn session(&self, id_hash: &str) -> Result<Option<ConsoleSession>>;
    async fn touch_session(&self, id_hash: &str, now: i64) -> Result<()>;
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    /// Ends every session of `user_name` (its password changed or went).
    async fn delete_user_sessions(&self, user_name: &str) -> Result<()>;
}

macro_rules! impl_console_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::console::ConsoleStore for $store {
            async fn put_login_profile(&self, p: &$crate::console::LoginProfile, create: bool) -> $crate::Result<bool> {
                let sql = if create {
                    "INSERT INTO login_profiles (user_name, password_hash, reset_required, created_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO NOTHING"
                } else {
                    "UPDATE login_profiles SET password_hash = $2, reset_required = $3 WHERE user_name = $1 AND $4 = $4"
                };
                let done = sqlx::query(sql)
                    .bind(&p.user_name)
                    .bind(&p.password_hash)
                    .bind(p.reset_required)
                    .bind(p.created_at)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn login_profile(&self, user_name: &str) -> $crate::Result<Option<$crate::console::LoginProfile>> {
                Ok(sqlx::query_as(
                    "SELECT user_name, password_hash, reset_required, created_at FROM login_profiles WHERE user_name = $1",
                )
                .bind(user_name)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn delete_login_profile(&self, user_name: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM login_profiles WHERE user_name = $1")
                    .bind(user_name)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_session(&self, s: &$crate::console::ConsoleSession) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO console_sessions (id_hash, principal, user_name, access_key_id, csrf, created_at, seen_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&s.id_hash)
                .bind(&s.principal)
                .bind(&s.user_name)
                .bind(&s.access_key_id)
                .bind(&s.csrf)
                .bind(s.created_at)
                .bind(s.seen_at)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn session(&self, id_hash: &str) -> $crate::Result<Option<$crate::console::ConsoleSession>> {
                Ok(sqlx::query_as(
                    "SELECT id_hash, principal, user_name, access_key_id, csrf, created_at, seen_at
                     FROM console_sessions WHERE id_hash = $1",
                )
                .bind(id_hash)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn touch_session(&self, id_hash: &str, now: i64) -> $crate::Result<()> {
                sqlx::query("UPDATE console_sessions SET seen_at = $1 WHERE id_hash = $2")
                    .bind(now)
                    .bind(id_hash)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn delete_session(&self, id_hash: &str) -> $crate::Result<()> {
                sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn delete_user_sessions(&self, user_name: &str) -> $crate::Result<()> {
                sqlx::query("DELETE FROM console_sessions WHERE user_name = $1")
                    .bind(user_name)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_console_store;
