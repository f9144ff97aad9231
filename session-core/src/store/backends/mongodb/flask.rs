//! Flask-Session's MongoDB collection, as a [`BlobStore`].
//!
//! One document per session, as Flask-Session 0.8 writes it:
//! `{id: prefix + id, val: <the serialized session, BSON binary>,
//! expiration: <date>}`, in the database `SESSION_MONGODB_DB` and the
//! collection `SESSION_MONGODB_COLLECT` (`flask_session` and `sessions` by
//! default). The TTL index on `expiration` that Flask-Session creates is
//! created here too, and a unique index on `id`, so that two creations of
//! one key cannot both succeed (Flask-Session's upserts by `id` work the
//! same with it). A document whose `expiration` has passed counts as
//! missing, as the server's TTL sweep deletes it only about once a minute.
//!
//! The compare-and-swap is an `update_one` (or `delete_one`) whose filter
//! also asks for the `val` read before.

use std::time::{Duration, SystemTime};

use ::mongodb::IndexModel;
use ::mongodb::bson::spec::BinarySubtype;
use ::mongodb::bson::{self, Binary, Document, doc};
use ::mongodb::options::IndexOptions;
use bytes::Bytes;

use super::{MongoStoreBuilder, Source, is_duplicate};
use crate::StoreKey;
use crate::flask::{Blob, BlobStore};
use crate::store::StoreError;

/// Flask-Session's MongoDB collection: built by
/// [`MongoStoreBuilder::build_flask_session`]; give it to
/// [`FlaskStore::new`](crate::flask::FlaskStore::new).
#[derive(Clone, Debug)]
pub struct FlaskCollection {
    collection: ::mongodb::Collection<Document>,
}

impl MongoStoreBuilder {
    /// Connects (for a URI) and opens Flask-Session's collection (see
    /// [`database`](Self::database) and [`collection`](Self::collection),
    /// whose defaults are Flask-Session's), creating its indexes if they
    /// are missing.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build); also when the collection holds two
    /// documents with one `id` (the unique index cannot be created).
    pub async fn build_flask_session(self) -> Result<FlaskCollection, StoreError> {
        let client = match self.source {
            Source::Client(client) => client,
            Source::Uri(uri) => super::connect(&uri, self.timeout).await?,
        };
        let collection = client
            .database(&self.database)
            .collection::<Document>(&self.collection);
        let indexes = [
            IndexModel::builder()
                .keys(doc! { "expiration": 1 })
                .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
                .build(),
            IndexModel::builder()
                .keys(doc! { "id": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        ];
        collection
            .create_indexes(indexes)
            .await
            .map_err(StoreError::backend)?;
        Ok(FlaskCollection { collection })
    }
}

fn binary(value: &[u8]) -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes: value.to_vec(),
    }
}

fn date(t: SystemTime) -> bson::DateTime {
    bson::DateTime::from_system_time(t)
}

impl FlaskCollection {
    /// The collection.
    pub fn collection(&self) -> &::mongodb::Collection<Document> {
        &self.collection
    }
}

impl BlobStore for FlaskCollection {
    async fn get(&self, key: &StoreKey) -> Result<Option<Blob>, StoreError> {
        let now = date(SystemTime::now());
        let found = self
            .collection
            .find_one(doc! { "id": key.as_str(), "expiration": { "$gt": now } })
            .await
            .map_err(StoreError::backend)?;
        let Some(document) = found else {
            return Ok(None);
        };
        let Ok(value) = document.get_binary_generic("val") else {
            tracing::warn!(
                key = %crate::id::fingerprint(key.as_str()),
                "a Flask-Session document has no binary `val`: treated as missing"
            );
            return Ok(None);
        };
        Ok(Some(Blob {
            value: Bytes::copy_from_slice(value),
            expires_at: document
                .get_datetime("expiration")
                .ok()
                .map(|d| d.to_system_time()),
            version: 0,
        }))
    }

    async fn insert(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        // An expired document keeps its `id` until the TTL sweep: drop it.
        self.collection
            .delete_one(doc! { "id": key.as_str(), "expiration": { "$lte": date(now) } })
            .await
            .map_err(StoreError::backend)?;
        let inserted = self
            .collection
            .insert_one(doc! {
                "id": key.as_str(),
                "val": binary(value),
                "expiration": date(now + ttl),
            })
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    async fn replace(
        &self,
        key: &StoreKey,
        current: &Blob,
        value: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let filter = doc! {
            "id": key.as_str(),
            "val": binary(&current.value),
            "expiration": { "$gt": date(now) },
        };
        let done = match value {
            Some(value) => self
                .collection
                .update_one(
                    filter,
                    doc! { "$set": { "val": binary(value), "expiration": date(now + ttl) } },
                )
                .await
                .map(|r| r.matched_count),
            None => self
                .collection
                .delete_one(filter)
                .await
                .map(|r| r.deleted_count),
        };
        Ok(done.map_err(StoreError::backend)? == 1)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.collection
            .delete_many(doc! { "id": key.as_str() })
            .await
            .map(drop)
            .map_err(StoreError::backend)
    }
}
