//! Repository creation templates (ECR's `RepositoryCreationTemplate`): the
//! settings a repository gets when berth creates it on its own — on a push
//! to a missing repository (`CREATE_ON_PUSH`, if the pusher may
//! `ecr:CreateRepository`), on a pull-through cache's first pull
//! (`PULL_THROUGH_CACHE`, also `berth privatize`), for a replica
//! (`REPLICATION`). The longest matching prefix wins; `ROOT` matches every
//! repository. A template is kept as the JSON document the API shows.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::RepositoryName;
use berth_store::{MetadataStore, RepositoryRecord, StoreError, TemplateRecord, now_millis};
use serde_json::Value;

use crate::access::Access;
use crate::lifecycle::Lifecycle;
use crate::registry::{CreateFuture, CreatedFor, Registry, RegistryError, RepositoryCreator};

/// How long the templates are read from memory (other nodes' changes show within it).
const CACHE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Invalid(String),
    #[error("The creation template with prefix '{0}' already exists in the registry")]
    AlreadyExists(String),
    #[error("The creation template with prefix '{0}' does not exist in the registry")]
    NotFound(String),
    #[error(transparent)]
    Internal(#[from] StoreError),
}

/// A template: its prefix, its settings (the API's JSON members but
/// `prefix`, `createdAt`, `updatedAt`), and when it was made and changed.
#[derive(Clone, Debug)]
pub struct Template {
    pub prefix: String,
    pub settings: serde_json::Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Template {
    fn applies_to(&self, name: &str, why: CreatedFor) -> bool {
        let wanted = match why {
            CreatedFor::Push => "CREATE_ON_PUSH",
            CreatedFor::PullThrough => "PULL_THROUGH_CACHE",
            CreatedFor::Replication => "REPLICATION",
        };
        let applied = self.settings["appliedFor"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == wanted));
        applied
            && (self.prefix == "ROOT"
                || name == self.prefix
                || name
                    .strip_prefix(&self.prefix)
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    fn of(record: TemplateRecord) -> Template {
        let settings = match serde_json::from_str(&record.document) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        Template {
            prefix: record.prefix,
            settings,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

pub struct Templates {
    store: Arc<dyn MetadataStore>,
    registry: Arc<Registry>,
    access: Arc<Access>,
    lifecycle: Arc<Lifecycle>,
    /// The templates, read from the store at most every [`CACHE`] (every
    /// repository created on its own asks); dropped on change here.
    cached: Mutex<Option<(Arc<Vec<Template>>, Instant)>>,
}

/// A prefix as templates keep it: without a trailing `/`.
pub fn normal_prefix(prefix: &str) -> String {
    match prefix.trim_end_matches('/') {
        "" => prefix.to_string(),
        trimmed => trimmed.to_string(),
    }
}

impl Templates {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        registry: Arc<Registry>,
        access: Arc<Access>,
        lifecycle: Arc<Lifecycle>,
    ) -> Arc<Templates> {
        Arc::new(Templates {
            store,
            registry,
            access,
            lifecycle,
            cached: Mutex::new(None),
        })
    }

    /// Plugs the templates into the registry's repository creation.
    pub fn attach(self: &Arc<Self>) {
        self.registry.on_create(self.clone());
    }

    /// Checks the settings a template would apply.
    fn check(settings: &serde_json::Map<String, Value>) -> Result<(), TemplateError> {
        if let Some(text) = settings.get("repositoryPolicy").and_then(Value::as_str) {
            crate::access::policies::check_resource_policy(text).map_err(|e| {
                TemplateError::Invalid(format!("Invalid parameter at 'repositoryPolicy': {e}"))
            })?;
        }
        if let Some(text) = settings.get("lifecyclePolicy").and_then(Value::as_str) {
            crate::lifecycle::check_policy(text).map_err(|e| {
                TemplateError::Invalid(format!("Invalid parameter at 'lifecyclePolicy': {e}"))
            })?;
        }
        Ok(())
    }

    pub async fn create(
        &self,
        prefix: &str,
        settings: serde_json::Map<String, Value>,
    ) -> Result<Template, TemplateError> {
        if settings
            .get("appliedFor")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
        {
            return Err(TemplateError::Invalid(
                "Invalid parameter at 'appliedFor': at least one of REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH is required".into(),
            ));
        }
        Self::check(&settings)?;
        let now = now_millis();
        let record = TemplateRecord {
            prefix: normal_prefix(prefix),
            document: Value::Object(settings).to_string(),
            created_at: now,
            updated_at: now,
        };
        if !self.store.create_template(&record).await? {
            return Err(TemplateError::AlreadyExists(record.prefix));
        }
        self.forget();
        Ok(Template::of(record))
    }

    /// Changes the settings given; the rest stay.
    pub async fn update(
        &self,
        prefix: &str,
        changes: serde_json::Map<String, Value>,
    ) -> Result<Template, TemplateError> {
        let prefix = normal_prefix(prefix);
        let mut template = self.get(&prefix).await?;
        for (key, value) in changes {
            template.settings.insert(key, value);
        }
        if template.settings["appliedFor"]
            .as_array()
            .is_none_or(|a| a.is_empty())
        {
            return Err(TemplateError::Invalid(
                "Invalid parameter at 'appliedFor': at least one of REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH is required".into(),
            ));
        }
        Self::check(&template.settings)?;
        template.updated_at = now_millis();
        let record = TemplateRecord {
            prefix: prefix.clone(),
            document: Value::Object(template.settings.clone()).to_string(),
            created_at: template.created_at,
            updated_at: template.updated_at,
        };
        if !self.store.update_template(&record).await? {
            return Err(TemplateError::NotFound(prefix));
        }
        self.forget();
        Ok(template)
    }

    pub async fn delete(&self, prefix: &str) -> Result<Template, TemplateError> {
        let prefix = normal_prefix(prefix);
        let template = self.get(&prefix).await?;
        if !self.store.delete_template(&prefix).await? {
            return Err(TemplateError::NotFound(prefix));
        }
        self.forget();
        Ok(template)
    }

    pub async fn get(&self, prefix: &str) -> Result<Template, TemplateError> {
        let prefix = normal_prefix(prefix);
        self.all()
            .await?
            .into_iter()
            .find(|t| t.prefix == prefix)
            .ok_or(TemplateError::NotFound(prefix))
    }

    /// Every template, by prefix.
    pub async fn all(&self) -> Result<Vec<Template>, TemplateError> {
        Ok(self
            .store
            .templates()
            .await?
            .into_iter()
            .map(Template::of)
            .collect())
    }

    async fn cached(&self) -> Result<Arc<Vec<Template>>, StoreError> {
        if let Some((templates, at)) = &*self.cached.lock().expect("templates lock")
            && at.elapsed() < CACHE
        {
            return Ok(templates.clone());
        }
        let templates = Arc::new(
            self.store
                .templates()
                .await?
                .into_iter()
                .map(Template::of)
                .collect::<Vec<_>>(),
        );
        *self.cached.lock().expect("templates lock") = Some((templates.clone(), Instant::now()));
        Ok(templates)
    }

    fn forget(&self) {
        *self.cached.lock().expect("templates lock") = None;
    }

    /// The template that applies to `name` created for `why`: the longest
    /// matching prefix (`ROOT` last).
    pub async fn matching(
        &self,
        name: &str,
        why: CreatedFor,
    ) -> Result<Option<Template>, StoreError> {
        Ok(self
            .cached()
            .await?
            .iter()
            .filter(|t| t.applies_to(name, why))
            .max_by_key(|t| {
                if t.prefix == "ROOT" {
                    0
                } else {
                    t.prefix.len() + 1
                }
            })
            .cloned())
    }

    async fn create_repository(
        &self,
        name: &RepositoryName,
        why: CreatedFor,
    ) -> Result<bool, RegistryError> {
        let Some(template) = self.matching(name.as_str(), why).await? else {
            return Ok(false);
        };
        // As on ECR: a push creates a repository only for a caller who may.
        if why == CreatedFor::Push {
            let Some((principal, facts)) = crate::pullthrough::caller() else {
                return Ok(false);
            };
            let arn = self.access.repository_arn(name.as_str());
            match self
                .access
                .check(
                    Some(&principal),
                    "ecr:CreateRepository",
                    &arn,
                    Some(name),
                    &facts,
                )
                .await
            {
                Ok(()) => {}
                Err(crate::access::AccessError::Denied(_)) => return Ok(false),
                Err(crate::access::AccessError::Internal(e)) => return Err(e.into()),
            }
        }
        let s = &template.settings;
        let text = |key: &str| s.get(key).and_then(Value::as_str).map(str::to_string);
        let record = RepositoryRecord {
            name: name.clone(),
            created_at: now_millis(),
            image_tag_mutability: text("imageTagMutability").unwrap_or_else(|| "MUTABLE".into()),
            tag_mutability_exclusions: s
                .get("imageTagMutabilityExclusionFilters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f["filter"].as_str().map(str::to_string))
                .collect(),
            scan_on_push: false,
            encryption_type: s
                .get("encryptionConfiguration")
                .and_then(|e| e["encryptionType"].as_str())
                .unwrap_or("AES256")
                .to_string(),
            kms_key: s
                .get("encryptionConfiguration")
                .and_then(|e| e["kmsKey"].as_str())
                .map(str::to_string),
            tags: s
                .get("resourceTags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some((
                        t["Key"].as_str()?.to_string(),
                        t["Value"].as_str()?.to_string(),
                    ))
                })
                .collect(),
        };
        match self.registry.create_repository(record).await {
            Ok(_) => {}
            // Someone else made it meanwhile: theirs stands.
            Err(RegistryError::RepositoryAlreadyExists) => return Ok(true),
            Err(e) => return Err(e),
        }
        self.access.forget_repository(name);
        if let Some(policy) = text("repositoryPolicy")
            && let Err(e) = self.access.set_repository_policy(name, &policy).await
        {
            tracing::warn!(repository = %name, error = %e, "a creation template's repository policy could not be applied");
        }
        if let Some(policy) = text("lifecyclePolicy")
            && let Err(e) = self.lifecycle.put_policy(name, &policy).await
        {
            tracing::warn!(repository = %name, error = %e, "a creation template's lifecycle policy could not be applied");
        }
        tracing::info!(repository = %name, template = %template.prefix, "created a repository from its creation template");
        Ok(true)
    }
}

impl RepositoryCreator for Templates {
    fn create<'a>(&'a self, name: &'a RepositoryName, why: CreatedFor) -> CreateFuture<'a> {
        Box::pin(self.create_repository(name, why))
    }
}
