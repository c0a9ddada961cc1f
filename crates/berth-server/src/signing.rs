//! ECR's managed signing (`PutSigningConfiguration`,
//! `GetSigningConfiguration`, `DeleteSigningConfiguration`,
//! `DescribeImageSigningStatus`), with berth as the signer.
//!
//! Rules name a signing profile (an AWS Signer ARN, kept as the key's name)
//! and optional `WILDCARD_MATCH` repository filters. Each push a rule covers
//! (an outbox consumer; not pushes of referrers such as signatures) queues a
//! job that signs the image in the Notary Project format — a JWS envelope
//! (`notary.x509`, ES256) over the image's descriptor, in an OCI manifest of
//! `artifactType` `application/vnd.cncf.notary.signature` whose `subject` is
//! the image — pushed to the same repository, so `ListImageReferrers`, the
//! OCI referrers API and `notation verify` find it.
//!
//! Each profile has its own certificate authority and a code-signing leaf
//! certificate under it, made on first use. Their private keys are sealed
//! with the install's secret key, like access-key secrets. The authority's
//! certificate is published at `/berth/signing/<profile name>/ca.crt` for
//! verifiers' trust stores. Rotating a profile's key (`rotate`) issues a new
//! leaf under the same authority: old signatures still verify.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use berth_core::{Digest, Reference, RepositoryName};
use berth_store::{Job, MetadataStore, NewJob, SigningStatus, StoreError, now_millis};
use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::identity::Identity;
use crate::registry::Registry;

/// The job kind that signs one image with one profile.
pub const SIGN_JOB: &str = "signing.image";
/// Where the configuration is kept (a registry setting).
const SETTING: &str = "signing_configuration";
/// Where a profile's keys are kept: `signing_key:<profile ARN>`.
const KEY_PREFIX: &str = "signing_key:";
const ATTEMPTS: i64 = 5;
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.cncf.notary.signature";
const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const ENVELOPE_TYPE: &str = "application/jose+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY: &[u8] = b"{}";
/// How long a leaf certificate is valid; rotate before.
const LEAF_DAYS: i64 = 825;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("{0}")]
    Invalid(String),
    #[error("No signing configuration exists for the registry with id '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Internal(#[from] StoreError),
}

/// A profile's authority and current leaf, opened.
struct ProfileKeys {
    leaf_pem: String,
    leaf_der: Vec<u8>,
    ca_der: Vec<u8>,
    /// PKCS#8 of the leaf's private key.
    leaf_key: Vec<u8>,
}

pub struct Signing {
    store: Arc<dyn MetadataStore>,
    registry: Arc<Registry>,
    identity: Arc<Identity>,
    account: String,
}

/// Whether `repository` is one a rule signs: no filters, or a wildcard that matches.
fn covers(rule: &Value, repository: &str) -> bool {
    match rule["repositoryFilters"].as_array() {
        None => true,
        Some(filters) if filters.is_empty() => true,
        Some(filters) => filters.iter().any(|f| {
            f["filterType"] == "WILDCARD_MATCH"
                && f["filter"]
                    .as_str()
                    .is_some_and(|p| berth_core::lifecycle::wildcard_match(p, repository))
        }),
    }
}

/// The profile's name in `arn:…:signer:…:/signing-profiles/NAME`.
pub fn profile_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    STANDARD.decode(body).unwrap_or_default()
}

impl Signing {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        registry: Arc<Registry>,
        identity: Arc<Identity>,
        account: String,
    ) -> Arc<Signing> {
        Arc::new(Signing {
            store,
            registry,
            identity,
            account,
        })
    }

    /// The configuration, if one was put.
    pub async fn configuration(&self) -> Result<Value, SigningError> {
        self.store
            .get_setting(SETTING)
            .await?
            .and_then(|text| serde_json::from_str(&text).ok())
            .ok_or_else(|| SigningError::NotFound(self.account.clone()))
    }

    pub async fn put_configuration(&self, config: Value) -> Result<Value, SigningError> {
        let rules = config["rules"].as_array().cloned().unwrap_or_default();
        for rule in &rules {
            let arn = rule["signingProfileArn"].as_str().unwrap_or_default();
            if arn.split(':').nth(4) != Some(self.account.as_str()) {
                return Err(SigningError::Invalid(format!(
                    "Invalid parameter at 'signingConfiguration': the signing profile {arn} is not in account {}",
                    self.account
                )));
            }
        }
        let config = json!({"rules": rules});
        self.store
            .put_setting(SETTING, Some(&config.to_string()))
            .await?;
        Ok(config)
    }

    pub async fn delete_configuration(&self) -> Result<Value, SigningError> {
        let config = self.configuration().await?;
        self.store.put_setting(SETTING, None).await?;
        Ok(config)
    }

    /// Queues a signature per profile whose rules cover a push.
    pub async fn on_push(&self, repository: &str, digest: &str) -> Result<(), StoreError> {
        let config = match self.configuration().await {
            Ok(config) => config,
            Err(SigningError::Internal(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let mut profiles: Vec<&str> = config["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|rule| covers(rule, repository))
            .filter_map(|rule| rule["signingProfileArn"].as_str())
            .collect();
        profiles.sort_unstable();
        profiles.dedup();
        if profiles.is_empty() {
            return Ok(());
        }
        // Signatures and other referrers are not signed again.
        let (Ok(name), Ok(parsed)) = (
            repository.parse::<RepositoryName>(),
            digest.parse::<Digest>(),
        ) else {
            return Ok(());
        };
        let Ok(manifest) = self
            .registry
            .get_manifest(&name, &Reference::Digest(parsed))
            .await
        else {
            return Ok(());
        };
        let json: Value = serde_json::from_slice(&manifest.content).unwrap_or_default();
        if json.get("subject").is_some() {
            return Ok(());
        }
        let now = now_millis();
        for profile in profiles {
            let payload =
                json!({"repository": repository, "digest": digest, "profile": profile}).to_string();
            let singleton = format!("{SIGN_JOB}:{repository}@{digest}:{profile}");
            let status = SigningStatus {
                repository: repository.to_string(),
                digest: digest.to_string(),
                profile_arn: profile.to_string(),
                status: "IN_PROGRESS".into(),
                failure_code: None,
                failure_reason: None,
                updated_at: now,
            };
            let job = NewJob {
                kind: SIGN_JOB,
                payload: &payload,
                singleton: Some(&singleton),
                max_attempts: ATTEMPTS,
                run_after: now,
            };
            self.store.put_signing_status(&status, Some(&job)).await?;
        }
        Ok(())
    }

    pub async fn statuses(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<SigningStatus>, StoreError> {
        self.store.signing_statuses(repository, digest).await
    }

    /// Runs one signature (the job): `Err` to try again later.
    pub async fn run(&self, job: &Job) -> Result<(), String> {
        let p: Value = serde_json::from_str(&job.payload).map_err(|e| e.to_string())?;
        let text = |k: &str| p[k].as_str().unwrap_or_default().to_string();
        let (repository, digest, profile) = (text("repository"), text("digest"), text("profile"));
        let outcome = self.sign(&repository, &digest, &profile).await;
        let mut status = SigningStatus {
            repository,
            digest,
            profile_arn: profile,
            status: "COMPLETE".into(),
            failure_code: None,
            failure_reason: None,
            updated_at: now_millis(),
        };
        if let Err(e) = outcome {
            tracing::warn!(repository = status.repository, digest = status.digest, error = %e, attempt = job.attempts, "signing failed");
            if job.attempts < job.max_attempts {
                return Err(e);
            }
            status.status = "FAILED".into();
            status.failure_code = Some("SIGNING_FAILED".into());
            status.failure_reason = Some(e.chars().take(512).collect());
        }
        self.store
            .put_signing_status(&status, None)
            .await
            .map_err(|e| e.to_string())
    }

    /// Signs one image and pushes the signature next to it.
    async fn sign(&self, repository: &str, digest: &str, profile: &str) -> Result<(), String> {
        let name: RepositoryName = repository.parse().map_err(|_| "invalid repository")?;
        let target: Digest = digest.parse().map_err(|_| "invalid digest")?;
        let image = match self
            .registry
            .get_manifest(&name, &Reference::Digest(target.clone()))
            .await
        {
            Ok(image) => image,
            // Deleted meanwhile: nothing to sign.
            Err(crate::registry::RegistryError::ManifestUnknown)
            | Err(crate::registry::RegistryError::NameUnknown { .. }) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let keys = self.keys(profile).await?;
        let descriptor = json!({
            "mediaType": image.media_type,
            "digest": digest,
            "size": image.content.len(),
        });
        let signing_time =
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let envelope = envelope(&keys, &descriptor, &signing_time)?;
        let envelope_digest: Digest = format!("sha256:{}", hex::encode(Sha256::digest(&envelope)))
            .parse()
            .map_err(|_| "digest")?;
        let empty_digest: Digest = format!("sha256:{}", hex::encode(Sha256::digest(EMPTY)))
            .parse()
            .map_err(|_| "digest")?;
        for (blob_digest, bytes) in [
            (&empty_digest, Bytes::from_static(EMPTY)),
            (&envelope_digest, Bytes::from(envelope.clone())),
        ] {
            let mut stream = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes)]);
            self.registry
                .put_blob(&name, blob_digest, &mut stream)
                .await
                .map_err(|e| e.to_string())?;
        }
        let thumbprints: Vec<String> = [&keys.leaf_der, &keys.ca_der]
            .iter()
            .map(|der| hex::encode(Sha256::digest(der)))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE_ARTIFACT,
            "config": {"mediaType": EMPTY_TYPE, "digest": empty_digest.to_string(), "size": EMPTY.len()},
            "layers": [{"mediaType": ENVELOPE_TYPE, "digest": envelope_digest.to_string(), "size": envelope.len()}],
            "subject": descriptor,
            "annotations": {
                "io.cncf.notary.x509chain.thumbprint#S256": serde_json::to_string(&thumbprints).map_err(|e| e.to_string())?,
                "org.opencontainers.image.created": signing_time,
            },
        });
        let content = Bytes::from(serde_json::to_vec(&manifest).map_err(|e| e.to_string())?);
        let manifest_digest: Digest = format!("sha256:{}", hex::encode(Sha256::digest(&content)))
            .parse()
            .map_err(|_| "digest")?;
        self.registry
            .put_manifest(
                &name,
                &Reference::Digest(manifest_digest),
                Vec::new(),
                Some(OCI_MANIFEST),
                content,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A profile's keys, made on first use (by whichever node gets there first).
    async fn keys(&self, profile: &str) -> Result<ProfileKeys, String> {
        let setting = format!("{KEY_PREFIX}{profile}");
        loop {
            if let Some(text) = self
                .store
                .get_setting(&setting)
                .await
                .map_err(|e| e.to_string())?
            {
                return self.open(&text);
            }
            let made = self.make(profile, None)?;
            if self
                .store
                .insert_setting(&setting, &made)
                .await
                .map_err(|e| e.to_string())?
            {
                return self.open(&made);
            }
        }
    }

    /// A new leaf for `profile` under its authority (made first if there is none).
    pub async fn rotate(&self, profile: &str) -> Result<String, String> {
        let setting = format!("{KEY_PREFIX}{profile}");
        let current = self
            .store
            .get_setting(&setting)
            .await
            .map_err(|e| e.to_string())?;
        let made = self.make(profile, current.as_deref())?;
        self.store
            .put_setting(&setting, Some(&made))
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.open(&made)?.leaf_pem)
    }

    /// The authority's certificate of the profile named `name`, if it has signed.
    pub async fn authority(&self, name: &str) -> Result<Option<String>, StoreError> {
        for (key, text) in self.store.settings_with_prefix(KEY_PREFIX).await? {
            if profile_name(&key[KEY_PREFIX.len()..]) == name {
                let stored: Value = serde_json::from_str(&text).unwrap_or_default();
                return Ok(stored["ca"].as_str().map(str::to_string));
            }
        }
        Ok(None)
    }

    /// Keys as stored: certificates in PEM, private keys sealed. With
    /// `current`, its authority signs a new leaf; otherwise a new authority.
    fn make(&self, profile: &str, current: Option<&str>) -> Result<String, String> {
        let now = time::OffsetDateTime::now_utc();
        let name = profile_name(profile);
        let mut ca_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "berth");
        dn.push(
            DnType::CommonName,
            format!("berth signing authority {name}"),
        );
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let (ca_pem, ca_key) = match current {
            Some(text) => {
                let stored: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
                let sealed = STANDARD
                    .decode(stored["caKey"].as_str().unwrap_or_default())
                    .map_err(|e| e.to_string())?;
                let key_pem = self.identity.unseal(&sealed).map_err(|e| e.to_string())?;
                (
                    stored["ca"].as_str().unwrap_or_default().to_string(),
                    KeyPair::from_pem(&key_pem).map_err(|e| e.to_string())?,
                )
            }
            None => {
                let key = KeyPair::generate().map_err(|e| e.to_string())?;
                let mut params = ca_params.clone();
                params.not_before = now - time::Duration::hours(1);
                params.not_after = now + time::Duration::days(3650);
                let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
                (cert.pem(), key)
            }
        };
        let ca_key_pem = ca_key.serialize_pem();
        let authority = Issuer::new(ca_params, ca_key);
        let mut leaf = CertificateParams::default();
        // C, ST and O: what a trust policy's `x509.subject:` identity must name.
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "ZZ");
        dn.push(DnType::StateOrProvinceName, "berth");
        dn.push(DnType::OrganizationName, "berth");
        dn.push(DnType::CommonName, format!("berth signing {name}"));
        leaf.distinguished_name = dn;
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        leaf.use_authority_key_identifier_extension = true;
        leaf.not_before = now - time::Duration::hours(1);
        leaf.not_after = now + time::Duration::days(LEAF_DAYS);
        let leaf_key = KeyPair::generate().map_err(|e| e.to_string())?;
        let leaf_cert = leaf
            .signed_by(&leaf_key, &authority)
            .map_err(|e| e.to_string())?;
        Ok(json!({
            "ca": ca_pem,
            "caKey": STANDARD.encode(self.identity.seal(&ca_key_pem)),
            "leaf": leaf_cert.pem(),
            "leafKey": STANDARD.encode(self.identity.seal(&leaf_key.serialize_pem())),
            "madeAt": now_millis(),
        })
        .to_string())
    }

    fn open(&self, text: &str) -> Result<ProfileKeys, String> {
        let stored: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let sealed = STANDARD
            .decode(stored["leafKey"].as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let key_pem = self.identity.unseal(&sealed).map_err(|e| e.to_string())?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| e.to_string())?;
        let (ca_pem, leaf_pem) = (
            stored["ca"].as_str().unwrap_or_default().to_string(),
            stored["leaf"].as_str().unwrap_or_default().to_string(),
        );
        Ok(ProfileKeys {
            ca_der: pem_der(&ca_pem),
            leaf_der: pem_der(&leaf_pem),
            leaf_pem,
            leaf_key: key.serialize_der(),
        })
    }
}

/// The JWS envelope (JSON serialization) of a Notary Project signature of
/// `descriptor`, signed ES256 by the profile's leaf.
fn envelope(keys: &ProfileKeys, descriptor: &Value, signing_time: &str) -> Result<Vec<u8>, String> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let payload =
        serde_json::to_vec(&json!({"targetArtifact": descriptor})).map_err(|e| e.to_string())?;
    let protected = serde_json::to_vec(&json!({
        "alg": "ES256",
        "crit": ["io.cncf.notary.signingScheme"],
        "cty": PAYLOAD_TYPE,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": signing_time,
    }))
    .map_err(|e| e.to_string())?;
    let (protected, payload) = (
        URL_SAFE_NO_PAD.encode(protected),
        URL_SAFE_NO_PAD.encode(payload),
    );
    let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &keys.leaf_key)
        .map_err(|e| format!("the signing key: {e}"))?;
    let signature = signer
        .sign(
            &aws_lc_rs::rand::SystemRandom::new(),
            format!("{protected}.{payload}").as_bytes(),
        )
        .map_err(|e| format!("signing: {e}"))?;
    serde_json::to_vec(&json!({
        "payload": payload,
        "protected": protected,
        "header": {
            "x5c": [STANDARD.encode(&keys.leaf_der), STANDARD.encode(&keys.ca_der)],
            "io.cncf.notary.signingAgent": concat!("berth/", env!("CARGO_PKG_VERSION")),
        },
        "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
    }))
    .map_err(|e| e.to_string())
}

/// Queues signatures for pushes (an outbox consumer).
pub struct SignOnPush(pub Arc<Signing>);

#[async_trait::async_trait]
impl crate::outbox::Consumer for SignOnPush {
    fn name(&self) -> &'static str {
        "sign-on-push"
    }

    async fn on_event(&self, event: &berth_store::Event) -> Result<(), String> {
        let Some((repository, digest, _)) = crate::events::pushed(event) else {
            return Ok(());
        };
        self.0
            .on_push(&repository, &digest)
            .await
            .map_err(|e| e.to_string())
    }
}
