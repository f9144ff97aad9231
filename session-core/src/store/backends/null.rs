//! The null store: no store at all, as Flask-Session's `null` type.

use std::time::Duration;

use crate::StoreKey;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

/// A store that keeps nothing: every read finds no session, and every write
/// fails with [`StoreError::NotConfigured`], which says that no store is set
/// up. Deleting succeeds, as there is nothing to delete.
///
/// It is what `SESSION_TYPE=null` selects: an app whose handlers only read
/// the session keeps working, and one that writes gets a clear error
/// instead of sessions that silently vanish.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullStore;

impl SessionStore for NullStore {
    const KIND: &'static str = "null";

    async fn load(&self, _key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(None)
    }

    async fn create(&self, _: &StoreKey, _: &Record, _: Duration) -> Result<bool, StoreError> {
        Err(StoreError::NotConfigured)
    }

    async fn apply(&self, _: &StoreKey, _: &ChangeSet, _: Duration) -> Result<Applied, StoreError> {
        Err(StoreError::NotConfigured)
    }

    async fn touch(&self, _: &StoreKey, _: Duration) -> Result<Applied, StoreError> {
        Err(StoreError::NotConfigured)
    }

    async fn delete(&self, _key: &StoreKey) -> Result<(), StoreError> {
        Ok(())
    }

    async fn take(&self, _key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(None)
    }

    async fn scan(&self, _: &str, _: Option<&str>) -> Result<ScanPage, StoreError> {
        Ok(ScanPage::default())
    }
}
