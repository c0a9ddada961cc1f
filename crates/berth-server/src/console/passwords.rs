//! Console passwords, managed the IAM way (`CreateLoginProfile`,
//! `GetLoginProfile`, `UpdateLoginProfile`, `DeleteLoginProfile`,
//! `ChangePassword`): hashed with Argon2id (memory-hard, a salt each),
//! checked against IAM's default password policy, never stored or logged
//! in clear. A password's change ends the user's console sessions, which
//! are kept here too (by the hash of their cookie).

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use berth_store::{ConsoleSession, IamKind, LoginProfile, MetadataStore, StoreError, now_millis};

use crate::iam::{Iam, IamError};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error(transparent)]
    Iam(#[from] IamError),
    #[error("Login Profile for User {0} cannot be found.")]
    NoLoginProfile(String),
    #[error("Login Profile for user {0} already exists.")]
    AlreadyExists(String),
    #[error("{0}")]
    PolicyViolation(&'static str),
    #[error("The old password is incorrect.")]
    WrongOldPassword,
}

impl From<berth_store::StoreError> for PasswordError {
    fn from(e: berth_store::StoreError) -> PasswordError {
        PasswordError::Iam(IamError::Internal(e))
    }
}

/// IAM's default password policy: at least 8 characters, of at least three
/// kinds (upper case, lower case, digits, symbols).
fn check_policy(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < 8 {
        return Err(PasswordError::PolicyViolation(
            "Password should have a minimum length of 8",
        ));
    }
    let kinds = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    if kinds.iter().filter(|k| **k).count() < 3 {
        return Err(PasswordError::PolicyViolation(
            "Password should have at least three of: upper case letters, lower case letters, numbers, symbols",
        ));
    }
    Ok(())
}

async fn hash(password: &str) -> Result<String, PasswordError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).expect("the system's random source");
        let salt = argon2::password_hash::SaltString::encode_b64(&salt)?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| {
        PasswordError::Iam(IamError::Internal(berth_store::StoreError::Io(
            std::io::Error::other(e),
        )))
    })?
    .map_err(|e| {
        PasswordError::Iam(IamError::Internal(berth_store::StoreError::Io(
            std::io::Error::other(e.to_string()),
        )))
    })
}

/// Whether `password` is the one `hash` was made of (in constant time).
async fn verify(password: &str, hash: &str) -> bool {
    let (password, hash) = (password.to_string(), hash.to_string());
    tokio::task::spawn_blocking(move || {
        argon2::password_hash::PasswordHash::new(&hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

pub struct Passwords {
    store: Arc<dyn MetadataStore>,
    iam: Arc<Iam>,
}

impl Passwords {
    pub fn new(store: Arc<dyn MetadataStore>, iam: Arc<Iam>) -> Passwords {
        Passwords { store, iam }
    }

    async fn user_exists(&self, user: &str) -> Result<(), PasswordError> {
        match self.iam.entity(IamKind::User, user).await? {
            Some(_) => Ok(()),
            None => Err(IamError::no_such(IamKind::User, user).into()),
        }
    }

    pub async fn create(
        &self,
        user: &str,
        password: &str,
        reset_required: bool,
    ) -> Result<LoginProfile, PasswordError> {
        self.user_exists(user).await?;
        check_policy(password)?;
        let profile = LoginProfile {
            user_name: user.to_string(),
            password_hash: hash(password).await?,
            reset_required,
            created_at: now_millis(),
        };
        if !self.store.put_login_profile(&profile, true).await? {
            return Err(PasswordError::AlreadyExists(user.to_string()));
        }
        Ok(profile)
    }

    pub async fn get(&self, user: &str) -> Result<LoginProfile, PasswordError> {
        self.user_exists(user).await?;
        self.store
            .login_profile(user)
            .await?
            .ok_or_else(|| PasswordError::NoLoginProfile(user.to_string()))
    }

    /// Sets a new password (when given) and whether it must be reset.
    pub async fn update(
        &self,
        user: &str,
        password: Option<&str>,
        reset_required: Option<bool>,
    ) -> Result<(), PasswordError> {
        let mut profile = self.get(user).await?;
        if let Some(password) = password {
            check_policy(password)?;
            profile.password_hash = hash(password).await?;
        }
        if let Some(reset) = reset_required {
            profile.reset_required = reset;
        }
        self.store.put_login_profile(&profile, false).await?;
        if password.is_some() {
            self.store.delete_user_sessions(user).await?;
        }
        Ok(())
    }

    pub async fn delete(&self, user: &str) -> Result<(), PasswordError> {
        self.get(user).await?;
        self.store.delete_login_profile(user).await?;
        self.store.delete_user_sessions(user).await?;
        Ok(())
    }

    /// A user changes their own password.
    pub async fn change(&self, user: &str, old: &str, new: &str) -> Result<(), PasswordError> {
        let profile = self.get(user).await?;
        if !verify(old, &profile.password_hash).await {
            return Err(PasswordError::WrongOldPassword);
        }
        check_policy(new)?;
        let profile = LoginProfile {
            password_hash: hash(new).await?,
            reset_required: false,
            ..profile
        };
        self.store.put_login_profile(&profile, false).await?;
        Ok(())
    }

    pub async fn create_session(&self, session: &ConsoleSession) -> Result<(), StoreError> {
        self.store.create_session(session).await
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<ConsoleSession>, StoreError> {
        self.store.session(id_hash).await
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        self.store.touch_session(id_hash, now).await
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.store.delete_session(id_hash).await
    }

    /// Whether `password` is `user`'s console password (a user that no
    /// longer exists has none).
    pub async fn check(&self, user: &str, password: &str) -> Result<bool, PasswordError> {
        let Ok(profile) = self.get(user).await else {
            // As long as a real check, so the answer's time says nothing.
            let _ = verify(password, DUMMY_HASH).await;
            return Ok(false);
        };
        Ok(verify(password, &profile.password_hash).await)
    }
}

/// An Argon2id hash of nothing anyone knows, checked against when the user
/// has no password, so both answers take as long.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Jd3Vw0AgHK1Aw+ov/L7x3rW7qC6D2Ae0Q1ybuxq3Y2E";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_password_policy() {
        assert!(check_policy("short1A").is_err());
        assert!(check_policy("alllowercase").is_err());
        assert!(check_policy("lower-and-digits-1").is_ok());
        assert!(check_policy("Upper and lower").is_ok());
    }
}
