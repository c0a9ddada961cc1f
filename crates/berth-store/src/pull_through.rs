//! Pull-through cache rules (`CreatePullThroughCacheRule` …): which
//! repository prefix mirrors which upstream registry. Plain SQL both
//! databases accept, implemented for both backends by
//! [`impl_pull_through_store`].

use async_trait::async_trait;

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PullThroughRule {
    /// The repository prefix without its trailing `/`, or `ROOT`.
    pub prefix: String,
    pub upstream_registry_url: String,
    pub upstream_registry: Option<String>,
    /// Prefix of the upstream repository (without trailing `/`), or `ROOT`.
    pub upstream_prefix: String,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    /// Milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait PullThroughStore: Send + Sync + 'static {
    /// Adds a rule; false if one with its prefix exists.
    async fn create_pull_through_rule(&self, rule: &PullThroughRule) -> Result<bool>;
    /// All rules, by prefix.
    async fn pull_through_rules(&self) -> Result<Vec<PullThroughRule>>;
    /// Replaces a rule's changeable fields; false if it does not exist.
    async fn update_pull_through_rule(&self, rule: &PullThroughRule) -> Result<bool>;
    /// Removes a rule; the rule it was, if any.
    async fn delete_pull_through_rule(&self, prefix: &str) -> Result<Option<PullThroughRule>>;
    /// Claims the fetch of `key` for `node` (single-flight across nodes):
    /// true if nobody holds it, or its holder's claim is older than `stale_before`.
    async fn claim_flight(
        &self,
        key: &str,
        node: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<bool>;
    /// Renews `node`'s claim on `key`.
    async fn renew_flight(&self, key: &str, node: &str, now: i64) -> Result<()>;
    /// Ends `node`'s claim on `key`.
    async fn end_flight(&self, key: &str, node: &str) -> Result<()>;
}

pub(crate) const RULE_COLUMNS: &str = "prefix, upstream_registry_url, upstream_registry, \
     upstream_prefix, credential_arn, custom_role_arn, created_at, updated_at";

macro_rules! impl_pull_through_store {
    ($store:ty, $write:ident, $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::pull_through::PullThroughStore for $store {
            async fn create_pull_through_rule(
                &self,
                rule: &$crate::pull_through::PullThroughRule,
            ) -> $crate::Result<bool> {
                let sql = format!(
                    "INSERT INTO pull_through_rules ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (prefix) DO NOTHING",
                    $crate::pull_through::RULE_COLUMNS
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&rule.prefix)
                    .bind(&rule.upstream_registry_url)
                    .bind(&rule.upstream_registry)
                    .bind(&rule.upstream_prefix)
                    .bind(&rule.credential_arn)
                    .bind(&rule.custom_role_arn)
                    .bind(rule.created_at)
                    .bind(rule.updated_at)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn pull_through_rules(
                &self,
            ) -> $crate::Result<Vec<$crate::pull_through::PullThroughRule>> {
                let sql = format!(
                    "SELECT {} FROM pull_through_rules ORDER BY prefix",
                    $crate::pull_through::RULE_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn update_pull_through_rule(
                &self,
                rule: &$crate::pull_through::PullThroughRule,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE pull_through_rules SET credential_arn = $1, custom_role_arn = $2,
                       updated_at = $3 WHERE prefix = $4",
                )
                .bind(&rule.credential_arn)
                .bind(&rule.custom_role_arn)
                .bind(rule.updated_at)
                .bind(&rule.prefix)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn claim_flight(
                &self,
                key: &str,
                node: &str,
                now: i64,
                stale_before: i64,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO pull_through_flights (key, node, started_at) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO UPDATE SET node = excluded.node, started_at = excluded.started_at
                     WHERE pull_through_flights.started_at < $4",
                )
                .bind(key)
                .bind(node)
                .bind(now)
                .bind(stale_before)
                .execute(&self.$write)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn renew_flight(&self, key: &str, node: &str, now: i64) -> $crate::Result<()> {
                sqlx::query("UPDATE pull_through_flights SET started_at = $1 WHERE key = $2 AND node = $3")
                    .bind(now)
                    .bind(key)
                    .bind(node)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn end_flight(&self, key: &str, node: &str) -> $crate::Result<()> {
                sqlx::query("DELETE FROM pull_through_flights WHERE key = $1 AND node = $2")
                    .bind(key)
                    .bind(node)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn delete_pull_through_rule(
                &self,
                prefix: &str,
            ) -> $crate::Result<Option<$crate::pull_through::PullThroughRule>> {
                let sql = format!(
                    "DELETE FROM pull_through_rules WHERE prefix = $1 RETURNING {}",
                    $crate::pull_through::RULE_COLUMNS
                );
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(prefix)
                    .fetch_optional(&self.$write)
                    .await?)
            }
        }
    };
}

pub(crate) use impl_pull_through_store;
