//! Identity: access keys (sealed at rest), SigV4 authentication of API calls,
//! and the registry tokens `GetAuthorizationToken` hands to `docker login`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use berth_core::sigv4::{self, Authorization, SigV4Error};
use berth_store::{AccessKeyRecord, MetadataStore, StoreError, now_millis};
use chacha20poly1305::aead::{Aead, KeyInit as _};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{KeyInit as _, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// How long a registry token from `GetAuthorizationToken` lasts, as on ECR.
pub const TOKEN_LIFETIME_SECONDS: i64 = 12 * 3600;
const TOKEN_PREFIX: &str = "berth1";
/// Query parameters of a presigned blob URL.
pub const PRESIGN_EXPIRES: &str = "X-Berth-Expires";
pub const PRESIGN_SIGNATURE: &str = "X-Berth-Signature";

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `arn:aws:iam::<account>:root`, `…:user/<path><name>`,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    pub access_key_id: String,
    pub kind: PrincipalKind,
    /// Temporary credentials: the session policy that narrows them.
    pub session_policy: Option<String>,
    /// Temporary credentials: when they stop working (Unix seconds).
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account's root user: allowed everything but explicit denies.
    Root,
    User {
        name: String,
    },
    RoleSession {
        role: String,
        session: String,
    },
    /// The bearer of a presigned URL: authorized when the URL was issued.
    Presigned,
    /// A key whose principal ARN berth does not recognise: allowed nothing.
    Unknown,
}

impl Principal {
    pub fn presigned() -> Principal {
        Principal {
            arn: "presigned-url".into(),
            access_key_id: String::new(),
            kind: PrincipalKind::Presigned,
            session_policy: None,
            expires_at: None,
        }
    }

    /// Who an access key stands for, from the principal ARN it records.
    fn of_key(key: AccessKeyRecord) -> Principal {
        let resource = key.principal.splitn(6, ':').nth(5).unwrap_or_default();
        let kind = if resource == "root" {
            PrincipalKind::Root
        } else if let Some(path) = resource.strip_prefix("user/") {
            PrincipalKind::User {
                name: path.rsplit('/').next().unwrap_or(path).to_string(),
            }
        } else if let Some((role, session)) = resource
            .strip_prefix("assumed-role/")
            .and_then(|r| r.split_once('/'))
        {
            PrincipalKind::RoleSession {
                role: role.to_string(),
                session: session.to_string(),
            }
        } else {
            PrincipalKind::Unknown
        };
        Principal {
            arn: key.principal,
            access_key_id: key.id,
            kind,
            session_policy: key.session_policy,
            expires_at: key.expires_at.map(|ms| ms / 1000),
        }
    }

    /// Whether these are temporary credentials (from STS).
    pub fn is_temporary(&self) -> bool {
        self.expires_at.is_some()
    }
}

/// A request whose headers authenticated it, until its body's signature is
/// checked. Holds the key's secret: deliberately not `Debug`.
pub struct PendingAuth {
    auth: Authorization,
    secret: String,
    principal: Principal,
}

/// Temporary credentials from STS, as handed to the caller once.
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Unix seconds.
    pub expiration: i64,
}

/// Why a caller was not authenticated, each with the AWS error type clients expect.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    MissingAuthenticationToken(String),
    #[error("{0}")]
    IncompleteSignature(String),
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    #[error("{0}")]
    InvalidSignature(String),
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

impl From<SigV4Error> for AuthError {
    fn from(e: SigV4Error) -> AuthError {
        match e {
            SigV4Error::Missing => AuthError::MissingAuthenticationToken(e.to_string()),
            SigV4Error::Incomplete(m) => AuthError::IncompleteSignature(m),
            SigV4Error::Invalid(m) => AuthError::InvalidSignature(m),
        }
    }
}

/// How long a checked `/v2/` credential is trusted without asking the store
/// again: a deactivated key stops working within this time.
const CREDENTIAL_CACHE_SECONDS: i64 = 10;
/// Entries kept at most; the cache starts over past it.
const CREDENTIAL_CACHE_ENTRIES: usize = 10_000;

pub struct Identity {
    metadata: Arc<dyn MetadataStore>,
    /// `/v2/` credentials already checked: (user, password) → principal, trusted until.
    checked: Mutex<HashMap<(String, String), (Principal, i64)>>,
    sealer: ChaCha20Poly1305,
    token_key: [u8; 32],
    pub account_id: String,
    pub region: String,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
}

/// `prefix` followed by random characters of AWS's id alphabet, `len` in all.
pub fn random_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes: [u8; 32] = random();
    let mut id = prefix.to_string();
    id.extend(
        bytes
            .iter()
            .take(len.saturating_sub(prefix.len()))
            .map(|b| ALPHABET[(*b % 32) as usize] as char),
    );
    id
}

/// A new secret key for sealing secrets and signing tokens.
pub fn new_master_key() -> [u8; 32] {
    random()
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl Identity {
    /// `master_key` seals stored secrets and signs registry tokens; lose it and
    /// every access key and token must be issued again.
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        master_key: [u8; 32],
        account_id: String,
        region: String,
    ) -> Identity {
        Identity {
            metadata,
            checked: Mutex::default(),
            sealer: ChaCha20Poly1305::new(&Key::from(hmac_sha256(&master_key, b"seal"))),
            token_key: hmac_sha256(&master_key, b"registry-token"),
            account_id,
            region,
        }
    }

    /// Whether this install's secret key opens what the database holds: a
    /// value sealed on the first start (or, on older installs, the root key
    /// bootstrapped then). False means another node's database was opened
    /// with a different `secret.key`; every sealed secret would fail.
    pub async fn secret_key_opens_the_database(&self) -> Result<bool, StoreError> {
        const CHECK: &str = "secret-key-check";
        const PLAIN: &str = "berth: this install's secret key";
        if let Some(sealed) = self.metadata.get_setting(CHECK).await? {
            let opened = hex::decode(sealed)
                .ok()
                .and_then(|sealed| self.unseal(&sealed).ok());
            return Ok(opened.as_deref() == Some(PLAIN));
        }
        if let Some(id) = self.metadata.get_setting("root-key-bootstrapped").await?
            && let Some(key) = self.metadata.get_access_key(&id).await?
            && self.unseal(&key.sealed_secret).is_err()
        {
            return Ok(false);
        }
        self.metadata
            .put_setting(CHECK, Some(&hex::encode(self.seal(PLAIN))))
            .await?;
        Ok(true)
    }

    pub fn root_arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account_id)
    }

    pub(crate) fn seal(&self, secret: &str) -> Vec<u8> {
        let nonce: [u8; 12] = random();
        let mut sealed = nonce.to_vec();
        sealed.extend(
            self.sealer
                .encrypt(&Nonce::from(nonce), secret.as_bytes())
                .expect("sealing cannot fail"),
        );
        sealed
    }

    pub(crate) fn unseal(&self, sealed: &[u8]) -> Result<String, AuthError> {
        let broken = || {
            StoreError::Database(
                "a stored secret does not open with this install's secret key".into(),
            )
        };
        if sealed.len() < 12 {
            return Err(broken().into());
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().expect("split at 12");
        let plain = self
            .sealer
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| broken())?;
        String::from_utf8(plain).map_err(|_| broken().into())
    }

    /// Stores (or replaces) an access key for `principal`.
    pub async fn put_access_key(
        &self,
        id: &str,
        secret: &str,
        principal: &str,
    ) -> Result<(), StoreError> {
        self.metadata
            .put_access_key(&AccessKeyRecord {
                id: id.to_string(),
                sealed_secret: self.seal(secret),
                principal: principal.to_string(),
                active: true,
                created_at: now_millis(),
                expires_at: None,
                session_token_hash: None,
                session_policy: None,
            })
            .await
    }

    /// A new long-term access key for `principal`: its id and secret, shown once.
    pub async fn create_access_key(&self, principal: &str) -> Result<(String, String), StoreError> {
        let (id, secret) = Identity::generate_access_key("AKIA");
        self.put_access_key(&id, &secret, principal).await?;
        Ok((id, secret))
    }

    /// Temporary credentials acting as `principal` until `expiration` (Unix
    /// seconds), narrowed by `session_policy`.
    pub async fn issue_temporary_credentials(
        &self,
        principal: &str,
        expiration: i64,
        session_policy: Option<&str>,
    ) -> Result<TemporaryCredentials, StoreError> {
        let (id, secret) = Identity::generate_access_key("ASIA");
        let session_token = STANDARD.encode(random::<96>());
        self.metadata
            .put_access_key(&AccessKeyRecord {
                id: id.clone(),
                sealed_secret: self.seal(&secret),
                principal: principal.to_string(),
                active: true,
                created_at: now_millis(),
                expires_at: Some(expiration * 1000),
                session_token_hash: Some(hex::encode(Sha256::digest(session_token.as_bytes()))),
                session_policy: session_policy.map(str::to_string),
            })
            .await?;
        Ok(TemporaryCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token,
            expiration,
        })
    }

    /// How many temporary credentials of `principal` (an ARN, or a role's
    /// session ARN prefix ending in `/`) are still live.
    pub async fn live_temporary_credentials(&self, principal: &str) -> Result<u64, StoreError> {
        self.metadata
            .count_live_temporary_keys(principal, now_millis())
            .await
    }

    /// Forgets every credential checked recently, so that a change to keys or
    /// policies made on this node shows at once.
    pub fn forget_checked(&self) {
        self.checked.lock().expect("cache lock").clear();
    }

    pub async fn access_key_exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.metadata.get_access_key(id).await?.is_some())
    }

    /// A new access key id and secret in AWS's shapes (`AKIA…` or `ASIA…`
    /// for temporary ones, 20 characters; secret 40 characters).
    pub fn generate_access_key(prefix: &str) -> (String, String) {
        let secret = STANDARD.encode(random::<30>());
        (random_id(prefix, 20), secret)
    }

    /// The active, unexpired key `id`: its secret, principal, and the hash of
    /// its session token if it is temporary.
    async fn active_key(&self, id: &str) -> Result<(String, Principal, Option<String>), AuthError> {
        // Access key ids are letters and digits (AWS: 16 to 128 of them);
        // anything else is no key, and never reaches the database.
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(AuthError::UnrecognizedClient);
        }
        let key = self
            .metadata
            .get_access_key(id)
            .await?
            .filter(|k| k.active)
            .ok_or(AuthError::UnrecognizedClient)?;
        if key.expires_at.is_some_and(|at| at <= now_millis()) {
            return Err(AuthError::ExpiredToken);
        }
        let secret = self.unseal(&key.sealed_secret)?;
        let token_hash = key.session_token_hash.clone();
        Ok((secret, Principal::of_key(key), token_hash))
    }

    /// Authenticates HTTP Basic credentials of `/v2/`: user `AWS` with a
    /// registry token, or an access key id with its secret. A success is
    /// remembered for a few seconds, so a busy client costs no store read
    /// per request.
    pub async fn authenticate_basic(
        &self,
        user: &str,
        password: &str,
        now: i64,
    ) -> Result<Principal, AuthError> {
        let key = (user.to_string(), password.to_string());
        if let Some((principal, until)) = self.checked.lock().expect("cache lock").get(&key)
            && now < *until
        {
            return Ok(principal.clone());
        }
        let (principal, until) = if user == "AWS" {
            let (principal, expires) = self.check_registry_token(password, now).await?;
            (principal, expires.min(now + CREDENTIAL_CACHE_SECONDS))
        } else {
            let principal = self.authenticate_secret(user, password).await?;
            (principal, now + CREDENTIAL_CACHE_SECONDS)
        };
        let mut checked = self.checked.lock().expect("cache lock");
        if checked.len() >= CREDENTIAL_CACHE_ENTRIES {
            checked.clear();
        }
        checked.insert(key, (principal.clone(), until));
        Ok(principal)
    }

    /// Who access key `id` stands for, if it is active (a console session
    /// signed in with it checks so on every request).
    pub async fn principal_of_key(&self, id: &str) -> Result<Principal, AuthError> {
        Ok(self.active_key(id).await?.1)
    }

    /// Authenticates an access key id and its secret, as sent in HTTP Basic.
    pub async fn authenticate_secret(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<Principal, AuthError> {
        let (expected, principal, token_hash) = self.active_key(id).await?;
        // Temporary credentials need their session token, which Basic cannot carry.
        if token_hash.is_none() && bool::from(expected.as_bytes().ct_eq(secret.as_bytes())) {
            Ok(principal)
        } else {
            Err(AuthError::UnrecognizedClient)
        }
    }

    /// The first half of authenticating a SigV4-signed request for
    /// `service`: everything the headers alone tell (the signature's shape,
    /// scope, key, session token), so that a request from no one is refused
    /// before its body is read. [`Identity::verify_body`] finishes.
    /// IAM and STS also accept `us-east-1`, where their global endpoints sign.
    pub async fn authenticate_headers(
        &self,
        parts: &axum::http::request::Parts,
        service: &str,
    ) -> Result<PendingAuth, AuthError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(SigV4Error::Missing)?;
        let auth = Authorization::parse(header)?;
        let global = matches!(service, "iam" | "sts") && auth.region == "us-east-1";
        if auth.region != self.region && !global {
            return Err(AuthError::InvalidSignature(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                auth.region
            )));
        }
        if auth.service != service {
            return Err(AuthError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{service}'."
            )));
        }
        let (secret, principal, token_hash) = self.active_key(&auth.access_key_id).await?;
        let token = parts
            .headers
            .get("x-amz-security-token")
            .map(|v| v.to_str().unwrap_or_default());
        match (token_hash, token) {
            (None, None) => {}
            // A session token with a long-term key is refused, as on AWS.
            (None, Some(_)) | (Some(_), None) => return Err(AuthError::UnrecognizedClient),
            (Some(expected), Some(token)) => {
                let given = hex::encode(Sha256::digest(token.as_bytes()));
                if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                    return Err(AuthError::UnrecognizedClient);
                }
            }
        }
        Ok(PendingAuth {
            auth,
            secret,
            principal,
        })
    }

    /// The second half: the signature over the request with its `body`.
    pub fn verify_body(
        &self,
        pending: PendingAuth,
        parts: &axum::http::request::Parts,
        body: &[u8],
    ) -> Result<Principal, AuthError> {
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let payload_sha256 = hex::encode(Sha256::digest(body));
        let signed = sigv4::Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &headers,
            payload_sha256: &payload_sha256,
        };
        sigv4::verify(&signed, &pending.auth, &pending.secret, now_millis() / 1000)?;
        Ok(pending.principal)
    }

    /// The MAC of a page position in a `nextToken`: tokens berth issued,
    /// and only those, come back (any node of the install).
    pub fn page_token_mac(&self, position: &[u8]) -> [u8; 32] {
        let mut data = b"next-token\0".to_vec();
        data.extend_from_slice(position);
        hmac_sha256(&self.token_key, &data)
    }

    /// Query parameters that let anyone `GET` `path` until `expires` (Unix
    /// seconds): what `GetDownloadUrlForLayer` hands out.
    pub fn presign(&self, path: &str, expires: i64) -> String {
        let mac = hmac_sha256(
            &self.token_key,
            format!("GET\n{path}\n{expires}").as_bytes(),
        );
        format!(
            "{PRESIGN_EXPIRES}={expires}&{PRESIGN_SIGNATURE}={}",
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// Whether `query` presigns a `GET` of `path` that has not expired.
    pub fn check_presigned(&self, path: &str, query: &str, now: i64) -> bool {
        let mut expires = None;
        let mut signature = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some((PRESIGN_EXPIRES, v)) => expires = v.parse::<i64>().ok(),
                Some((PRESIGN_SIGNATURE, v)) => signature = URL_SAFE_NO_PAD.decode(v).ok(),
                _ => {}
            }
        }
        let (Some(expires), Some(signature)) = (expires, signature) else {
            return false;
        };
        let expected = hmac_sha256(
            &self.token_key,
            format!("GET\n{path}\n{expires}").as_bytes(),
        );
        now < expires && bool::from(expected.as_slice().ct_eq(&signature))
    }

    /// A registry password for `principal`, and when it expires (Unix
    /// seconds): in 12 hours, or with the temporary credentials it came from.
    pub fn issue_registry_token(&self, principal: &Principal, now: i64) -> (String, i64) {
        self.issue_registry_token_for_key(&principal.access_key_id, principal.expires_at, now)
    }

    /// A registry password for access key `access_key_id` (whose
    /// credentials stop working at `expires_at`, if temporary): what berth
    /// uses to act as a caller later, as a build does.
    pub fn issue_registry_token_for_key(
        &self,
        access_key_id: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> (String, i64) {
        let expires = expires_at.map_or(now + TOKEN_LIFETIME_SECONDS, |at| {
            at.min(now + TOKEN_LIFETIME_SECONDS)
        });
        let payload = URL_SAFE_NO_PAD.encode(format!("{access_key_id}:{expires}"));
        let mac = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.token_key, payload.as_bytes()));
        (format!("{TOKEN_PREFIX}.{payload}.{mac}"), expires)
    }

    /// The principal a registry password stands for, and when it expires, if
    /// it is genuine, not expired, and its access key is still active.
    pub async fn check_registry_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Principal, i64), AuthError> {
        let mut parts = token.split('.');
        let (Some(TOKEN_PREFIX), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::UnrecognizedClient);
        };
        let expected = hmac_sha256(&self.token_key, payload.as_bytes());
        let given = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| AuthError::UnrecognizedClient)?;
        if !bool::from(expected.as_slice().ct_eq(&given)) {
            return Err(AuthError::UnrecognizedClient);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::UnrecognizedClient)?;
        let payload = String::from_utf8(payload).map_err(|_| AuthError::UnrecognizedClient)?;
        let (key_id, expires) = payload
            .rsplit_once(':')
            .ok_or(AuthError::UnrecognizedClient)?;
        let expires: i64 = expires.parse().map_err(|_| AuthError::UnrecognizedClient)?;
        if now >= expires {
            return Err(AuthError::ExpiredToken);
        }
        Ok((self.active_key(key_id).await?.1, expires))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::SqliteStore;

    async fn identity(
        dir: &std::path::Path,
        master_key: [u8; 32],
    ) -> (Identity, Arc<dyn MetadataStore>) {
        let store: Arc<dyn MetadataStore> =
            Arc::new(SqliteStore::open(&dir.join("m.db")).await.unwrap());
        let identity = Identity::new(
            store.clone(),
            master_key,
            "123456789012".into(),
            "us-east-1".into(),
        );
        identity
            .put_access_key("AKIDTEST", "s3cret", &identity.root_arn())
            .await
            .unwrap();
        (identity, store)
    }

    #[tokio::test]
    async fn secrets_are_sealed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, store) = identity(dir.path(), [7; 32]).await;
        let stored = store.get_access_key("AKIDTEST").await.unwrap().unwrap();
        assert!(!stored.sealed_secret.windows(6).any(|w| w == b"s3cret"));
        let principal = identity
            .authenticate_secret("AKIDTEST", "s3cret")
            .await
            .unwrap();
        assert_eq!(principal.arn, "arn:aws:iam::123456789012:root");
        assert!(matches!(
            identity.authenticate_secret("AKIDTEST", "wrong").await,
            Err(AuthError::UnrecognizedClient)
        ));
        assert!(matches!(
            identity.authenticate_secret("AKIDNONE", "s3cret").await,
            Err(AuthError::UnrecognizedClient)
        ));
        // Another install's secret key cannot open the stored secret.
        let other = Identity::new(store, [8; 32], "123456789012".into(), "us-east-1".into());
        assert!(matches!(
            other.authenticate_secret("AKIDTEST", "s3cret").await,
            Err(AuthError::Internal(_))
        ));
    }

    #[tokio::test]
    async fn registry_tokens_expire_and_die_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, store) = identity(dir.path(), [7; 32]).await;
        let principal = identity
            .authenticate_secret("AKIDTEST", "s3cret")
            .await
            .unwrap();
        let now = 1_800_000_000;
        let (token, expires) = identity.issue_registry_token(&principal, now);
        assert_eq!(expires, now + TOKEN_LIFETIME_SECONDS);
        assert_eq!(
            identity.check_registry_token(&token, now).await.unwrap().0,
            principal
        );
        assert!(matches!(
            identity.check_registry_token(&token, expires).await,
            Err(AuthError::ExpiredToken)
        ));
        let tampered = token.replace("berth1.", "berth1.x");
        assert!(matches!(
            identity.check_registry_token(&tampered, now).await,
            Err(AuthError::UnrecognizedClient)
        ));
        let foreign = Identity::new(
            store.clone(),
            [9; 32],
            "123456789012".into(),
            "us-east-1".into(),
        );
        assert!(foreign.check_registry_token(&token, now).await.is_err());

        // Cached for a few seconds, then the key's deactivation shows.
        assert!(
            identity
                .authenticate_basic("AWS", &token, now)
                .await
                .is_ok()
        );
        let mut key = store.get_access_key("AKIDTEST").await.unwrap().unwrap();
        key.active = false;
        store.put_access_key(&key).await.unwrap();
        assert!(
            identity
                .authenticate_basic("AWS", &token, now + 1)
                .await
                .is_ok()
        );
        assert!(matches!(
            identity
                .authenticate_basic("AWS", &token, now + CREDENTIAL_CACHE_SECONDS)
                .await,
            Err(AuthError::UnrecognizedClient)
        ));
    }

    #[tokio::test]
    async fn presigned_urls_cover_one_path_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let (identity, _) = identity(dir.path(), [7; 32]).await;
        let query = identity.presign("/v2/a/blobs/sha256:00", 1000);
        assert!(identity.check_presigned("/v2/a/blobs/sha256:00", &query, 999));
        assert!(!identity.check_presigned("/v2/a/blobs/sha256:00", &query, 1000));
        assert!(!identity.check_presigned("/v2/b/blobs/sha256:00", &query, 999));
        let longer = query.replace("=1000", "=9999");
        assert!(!identity.check_presigned("/v2/a/blobs/sha256:00", &longer, 999));
    }

    #[test]
    fn generated_keys_have_aws_shapes() {
        let (id, secret) = Identity::generate_access_key("AKIA");
        assert!(id.starts_with("AKIA") && id.len() == 20);
        assert_eq!(secret.len(), 40);
    }
}
