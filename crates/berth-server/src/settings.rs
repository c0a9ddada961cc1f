//! ECR's account settings (`GetAccountSetting`, `PutAccountSetting`):
//! `BASIC_SCAN_TYPE_VERSION` (`AWS_NATIVE`, `CLAIR`; kept and shown),
//! `REGISTRY_POLICY_SCOPE` (`V1`, `V2`; kept and shown) and
//! `BLOB_MOUNTING` (`ENABLED`, `DISABLED`: whether `/v2/` cross-repository
//! mounts are made, or the client uploads instead). Kept as registry
//! settings; read at most every few seconds on each node.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_store::{MetadataStore, StoreError};

/// Each setting, the values it takes, and its value until one is put.
/// Mounting stays on by default, as every OCI registry mounts (ECR's own
/// default is off).
const SETTINGS: &[(&str, &[&str], &str)] = &[
    (
        "BASIC_SCAN_TYPE_VERSION",
        &["AWS_NATIVE", "CLAIR"],
        "AWS_NATIVE",
    ),
    ("REGISTRY_POLICY_SCOPE", &["V1", "V2"], "V2"),
    ("BLOB_MOUNTING", &["ENABLED", "DISABLED"], "ENABLED"),
];
const CACHE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] StoreError),
}

pub struct AccountSettings {
    store: Arc<dyn MetadataStore>,
    /// Whether mounts are made, and when it was read.
    mounting: Mutex<Option<(bool, Instant)>>,
}

fn key(name: &str) -> String {
    format!("account_setting:{name}")
}

impl AccountSettings {
    pub fn new(store: Arc<dyn MetadataStore>) -> AccountSettings {
        AccountSettings {
            store,
            mounting: Mutex::new(None),
        }
    }

    fn known(
        name: &str,
    ) -> Result<&'static (&'static str, &'static [&'static str], &'static str), SettingError> {
        SETTINGS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
            SettingError::Invalid(format!(
                "Invalid parameter at 'name': {name} is not one of {}",
                SETTINGS
                    .iter()
                    .map(|(n, _, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    pub async fn get(&self, name: &str) -> Result<String, SettingError> {
        let (_, _, default) = Self::known(name)?;
        Ok(self
            .store
            .get_setting(&key(name))
            .await?
            .unwrap_or_else(|| default.to_string()))
    }

    pub async fn put(&self, name: &str, value: &str) -> Result<String, SettingError> {
        let (_, values, _) = Self::known(name)?;
        if !values.contains(&value) {
            return Err(SettingError::Invalid(format!(
                "Invalid parameter at 'value': {value} is not one of {} for {name}",
                values.join(", ")
            )));
        }
        self.store.put_setting(&key(name), Some(value)).await?;
        *self.mounting.lock().expect("settings lock") = None;
        Ok(value.to_string())
    }

    /// Whether `/v2/` cross-repository mounts are made (`BLOB_MOUNTING`).
    pub async fn blob_mounting(&self) -> Result<bool, StoreError> {
        if let Some((on, at)) = *self.mounting.lock().expect("settings lock")
            && at.elapsed() < CACHE
        {
            return Ok(on);
        }
        let on = self
            .store
            .get_setting(&key("BLOB_MOUNTING"))
            .await?
            .is_none_or(|v| v == "ENABLED");
        *self.mounting.lock().expect("settings lock") = Some((on, Instant::now()));
        Ok(on)
    }
}
