//! Tags on users and roles: what `aws:PrincipalTag/…` conditions read.
//! [`Details::tags`](super::Details) lists them.

use berth_store::IamKind;

use super::{Iam, IamError, Limit, attributes, tags_in, tags_value};

/// Tags per user or role, as on IAM.
pub const MAX_TAGS: usize = 50;

impl Iam {
    /// Sets `tags` on the user or role `name`: a key it has takes the new
    /// value, within [`MAX_TAGS`] in all.
    pub async fn tag(
        &self,
        kind: IamKind,
        name: &str,
        tags: &[(String, String)],
    ) -> Result<(), IamError> {
        let mut entity = self.existing(kind, name).await?;
        let mut attrs = attributes(&entity);
        let mut current = tags_in(&attrs);
        for (key, value) in tags {
            match current.iter_mut().find(|(k, _)| k == key) {
                Some(existing) => existing.1.clone_from(value),
                None => current.push((key.clone(), value.clone())),
            }
        }
        if current.len() > MAX_TAGS {
            return Err(IamError::LimitExceeded(Limit::TagsPerResource));
        }
        attrs["tags"] = tags_value(&current);
        entity.attributes = attrs.to_string();
        self.store().update_iam_entity(&entity).await?;
        self.permissions_changed();
        Ok(())
    }

    /// Removes the tags with `keys` from the user or role `name`.
    pub async fn untag(&self, kind: IamKind, name: &str, keys: &[String]) -> Result<(), IamError> {
        let mut entity = self.existing(kind, name).await?;
        let mut attrs = attributes(&entity);
        let mut current = tags_in(&attrs);
        current.retain(|(k, _)| !keys.contains(k));
        attrs["tags"] = tags_value(&current);
        entity.attributes = attrs.to_string();
        self.store().update_iam_entity(&entity).await?;
        self.permissions_changed();
        Ok(())
    }
}
