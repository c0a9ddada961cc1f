//! ECR's pull-time update exclusions (`RegisterPullTimeUpdateExclusion`,
//! `DeregisterPullTimeUpdateExclusion`, `ListPullTimeUpdateExclusions`):
//! pulls by these IAM principals (scanners, CI probes) do not move an
//! image's `lastRecordedPullTime`, so lifecycle rules on pull time see real
//! use. A role's exclusion covers its sessions.
//!
//! Kept as registry settings (`pull_time_exclusion:<arn>` = when, in
//! milliseconds); each node reads the set at most every few seconds, and at
//! once after a change it made itself.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_store::{MetadataStore, StoreError, now_millis};

use crate::identity::{Principal, PrincipalKind};

/// ECR's quota: principals excluded per registry.
pub const MAX_EXCLUSIONS: usize = 100;
const PREFIX: &str = "pull_time_exclusion:";
const CACHE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ExclusionError {
    #[error("The principal '{0}' is already excluded from pull time updates")]
    AlreadyExists(String),
    #[error("The principal '{0}' is not excluded from pull time updates")]
    NotFound(String),
    #[error(
        "The registry already excludes {MAX_EXCLUSIONS} principals from pull time updates, the most it may"
    )]
    LimitExceeded,
    #[error(transparent)]
    Internal(#[from] StoreError),
}

pub struct PullTimeExclusions {
    store: Arc<dyn MetadataStore>,
    /// The excluded ARNs and when they were read; `None` after a change
    /// here, so the next pull reads them again.
    cache: Mutex<Option<(Arc<HashSet<String>>, Instant)>>,
}

impl PullTimeExclusions {
    pub fn new(store: Arc<dyn MetadataStore>) -> PullTimeExclusions {
        PullTimeExclusions {
            store,
            cache: Mutex::new(None),
        }
    }

    fn forget(&self) {
        *self.cache.lock().expect("cache lock") = None;
    }

    /// Excludes `arn`; when it was excluded (Unix milliseconds).
    pub async fn register(&self, arn: &str) -> Result<i64, ExclusionError> {
        if self.all().await?.len() >= MAX_EXCLUSIONS {
            return Err(ExclusionError::LimitExceeded);
        }
        let at = now_millis();
        let added = self
            .store
            .insert_setting(&format!("{PREFIX}{arn}"), &at.to_string())
            .await?;
        self.forget();
        if added {
            Ok(at)
        } else {
            Err(ExclusionError::AlreadyExists(arn.to_string()))
        }
    }

    pub async fn deregister(&self, arn: &str) -> Result<(), ExclusionError> {
        let removed = self
            .store
            .put_setting(&format!("{PREFIX}{arn}"), None)
            .await?;
        self.forget();
        if removed {
            Ok(())
        } else {
            Err(ExclusionError::NotFound(arn.to_string()))
        }
    }

    /// Every excluded ARN, in order.
    pub async fn all(&self) -> Result<Vec<String>, ExclusionError> {
        let mut arns: Vec<String> = self
            .store
            .settings_with_prefix(PREFIX)
            .await?
            .into_iter()
            .map(|(name, _)| name[PREFIX.len()..].to_string())
            .collect();
        arns.sort();
        Ok(arns)
    }

    /// Whether a pull by `principal` leaves pull times alone. A store that
    /// does not answer counts as no exclusion: the pull is recorded.
    pub async fn excludes(&self, principal: &Principal) -> bool {
        let cached = self
            .cache
            .lock()
            .expect("cache lock")
            .as_ref()
            .filter(|(_, at)| at.elapsed() < CACHE)
            .map(|(set, _)| set.clone());
        let set = match cached {
            Some(set) => set,
            None => match self.all().await {
                Ok(arns) => {
                    let set = Arc::new(arns.into_iter().collect::<HashSet<_>>());
                    *self.cache.lock().expect("cache lock") = Some((set.clone(), Instant::now()));
                    set
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the pull time exclusions");
                    return false;
                }
            },
        };
        if set.is_empty() {
            return false;
        }
        if set.contains(&principal.arn) {
            return true;
        }
        // A session of an excluded role: `…:assumed-role/NAME/SESSION`
        // stands for `…:role/[PATH/]NAME`.
        match &principal.kind {
            PrincipalKind::RoleSession { role, .. } => {
                let account = principal.arn.split(':').nth(4).unwrap_or_default();
                set.iter().any(|arn| {
                    arn.split(':').nth(4) == Some(account)
                        && arn
                            .rsplit_once(":role/")
                            .is_some_and(|(_, path)| path.rsplit('/').next() == Some(role.as_str()))
                })
            }
            _ => false,
        }
    }
}
