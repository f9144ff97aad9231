//! The MongoDB store, through the official `mongodb` driver.
//!
//! ```no_run
//! # async fn demo() -> Result<(), session_core::store::StoreError> {
//! use session_core::store::mongodb::MongoStore;
//!
//! let store = MongoStore::builder("mongodb://127.0.0.1:27017")
//!     .database("flask_session")
//!     .collection("sessions")
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! One document per session, in the collection `sessions` of the database
//! `flask_session` by default (Flask-Session's names):
//!
//! ```text
//! > db.sessions.findOne()
//! {
//!   _id: 'session:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
//!   data: {
//!     name: Binary.createFromBase64('Im5pY2si', 0),
//!     'cart%2Eitems': Binary.createFromBase64('WzFd', 0)
//!   },
//!   expires_at: ISODate('2026-12-26T18:02:30.281Z'),
//!   created_at: ISODate('2026-11-25T18:02:30.281Z')
//! }
//! ```
//!
//! `_id` is the store key; `data` holds one field per session key, its
//! encoded value as BSON binary; `expires_at` is when the session expires;
//! `created_at` when it was created, if [`create`](SessionStore::create) was
//! told (documents written before this field existed have none, and load
//! with [`Record::created_at`] `None`). A
//! TTL index on `expires_at` (`expireAfterSeconds: 0`) is created at build
//! time, so the server deletes expired sessions by itself; MongoDB does that
//! about once a minute, so every read also filters on `expires_at`, and an
//! expired session is never returned.
//!
//! Field names in `data` are the session keys with `%`, `.`, `$` and NUL
//! percent-encoded (`%25`, `%2E`, `%24`, `%00`), since a dot would be read
//! as a path and a leading `$` as an operator; the empty key is stored as
//! `%`. Keys are decoded on load.
//!
//! # Atomicity
//!
//! - `apply` is one `update_one` on `{_id, expires_at: {$gt: now}}` (never an
//!   upsert), with `$set` on `data.<key>` for each new value and `$unset` for
//!   each removed key (with `clear`: `$set` of the whole `data`), and the new
//!   `expires_at`. MongoDB applies it atomically to the document, so two
//!   requests that change different keys both persist; no match means the
//!   session was deleted or expired: [`Applied::Gone`], nothing written.
//!   `created_at` is left as it is.
//! - With a [`max_size`](ChangeSet::max_size), the filter also holds an
//!   `$expr` that computes the size the merged session would have (the
//!   stored entries the change set keeps, summed with `$reduce` over
//!   `$objectToArray`, plus the new values): the server checks it and
//!   writes in one atomic step, so the limit holds for the session as
//!   concurrent requests build it, still in one round trip. When nothing
//!   matches, a read tells a missing session ([`Applied::Gone`]) from one
//!   the change would take past the limit ([`Applied::TooLarge`], sized
//!   from that read); if neither (a concurrent apply made room meanwhile),
//!   the update is tried again, a few times at most.
//! - A change set that sets nothing may leave `data` empty: then a
//!   `delete_one` on `{_id, data: {}}` deletes the session if it is still
//!   empty (a key set meanwhile by a concurrent request keeps it), and
//!   `apply` returns [`Applied::Deleted`].
//! - `create` is a `replace_one` with upsert on `{_id, expires_at: {$lte:
//!   now}}`: it inserts a new session or replaces an expired one; a live one
//!   makes the insert fail with a duplicate key (E11000) and `create`
//!   returns `false`.
//! - `take` is a `find_one_and_update` on the live session that sets
//!   `expires_at` to the Unix epoch and returns the document as written:
//!   one atomic write, after which every other call finds the session gone
//!   and which holds every `apply` that ran before it. A `delete_one` of
//!   that tombstone follows (the TTL index would remove it anyway).
//!   `find_one_and_delete` would do on MongoDB itself, but SecantusDB (the
//!   test server) reads its pre-image before deleting, so an `apply` landing
//!   in between would be lost.
//! - `touch` is an `update_one` of `expires_at`; `delete` a `delete_one`.
//!
//! Expiry is computed with the app's clock (MongoDB has no "now + n" in a
//! plain update): keep app servers' clocks in sync.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use ::mongodb::bson::spec::BinarySubtype;
use ::mongodb::bson::{self, Binary, Bson, Document, doc};
use ::mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use ::mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use ::mongodb::{Client, Collection, IndexModel};
use bytes::Bytes;

pub use ::mongodb;

use crate::StoreKey;
use crate::codec::entry_size;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

/// MongoDB's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;
/// How many times `apply` with a size limit tries its update when it finds
/// the session neither missing nor too large after a refusal. Each retry
/// means another apply made room meanwhile, so this is rarely more than 2.
const MAX_SIZE_ATTEMPTS: u32 = 8;
/// What [`entry_size`] counts besides the key and the value.
const ENTRY_OVERHEAD: usize = 8;
/// The expiry a session gets when it is taken: the Unix epoch.
const TAKEN: bson::DateTime = bson::DateTime::from_millis(0);

/// Keeps sessions in a MongoDB collection. See the [module docs](self) for
/// the layout and the guarantees.
///
/// Cloning is cheap and shares the client's connection pool.
#[derive(Clone, Debug)]
pub struct MongoStore {
    collection: Collection<Document>,
}

enum Source {
    Uri(String),
    Client(Client),
}

/// Configures a [`MongoStore`].
#[must_use]
pub struct MongoStoreBuilder {
    source: Source,
    database: String,
    collection: String,
    timeout: Duration,
}

impl std::fmt::Debug for MongoStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URI may hold a password: leave it out.
        f.debug_struct("MongoStoreBuilder")
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl MongoStoreBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            database: "flask_session".to_owned(),
            collection: "sessions".to_owned(),
            timeout: Duration::from_secs(5),
        }
    }

    /// The database. Defaults to `flask_session`, as Flask-Session.
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// The collection. Defaults to `sessions`.
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// How long to look for a usable server, and to connect to one, before
    /// a call fails. Defaults to 5 seconds (the driver's own default is 30).
    /// Only for a store built from a URI, and only where the URI does not
    /// set `serverSelectionTimeoutMS` / `connectTimeoutMS` itself.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects (for a URI) and creates the TTL index on `expires_at` if it
    /// is missing. Fails if no server answers within the timeout.
    ///
    /// The URI is any the driver takes: `mongodb://host[:port][,...]/?options`
    /// or `mongodb+srv://`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] for a URI the driver rejects, when no server
    /// answers within the timeout, or when the index cannot be created.
    pub async fn build(self) -> Result<MongoStore, StoreError> {
        let client = match self.source {
            Source::Client(client) => client,
            Source::Uri(uri) => connect(&uri, self.timeout).await?,
        };
        let collection = client
            .database(&self.database)
            .collection::<Document>(&self.collection);
        let ttl = IndexModel::builder()
            .keys(doc! { "expires_at": 1 })
            .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
            .build();
        collection
            .create_index(ttl)
            .await
            .map_err(StoreError::backend)?;
        Ok(MongoStore { collection })
    }
}

/// A client for `uri`, whose server selection and connection wait at most
/// `timeout` unless the URI says otherwise.
async fn connect(uri: &str, timeout: Duration) -> Result<Client, StoreError> {
    let mut options = ClientOptions::parse(uri)
        .await
        .map_err(StoreError::backend)?;
    options.server_selection_timeout.get_or_insert(timeout);
    options.connect_timeout.get_or_insert(timeout);
    Client::with_options(options).map_err(StoreError::backend)
}

#[cfg(feature = "flask")]
mod flask;
#[cfg(feature = "flask")]
#[cfg_attr(docsrs, doc(cfg(feature = "flask")))]
pub use flask::FlaskCollection;

impl MongoStore {
    /// Starts configuring a store reached by `uri` (see
    /// [`MongoStoreBuilder::build`]).
    pub fn builder(uri: impl Into<String>) -> MongoStoreBuilder {
        MongoStoreBuilder::new(Source::Uri(uri.into()))
    }

    /// Starts configuring a store on an existing client, for apps that
    /// already have one. Sharing it with the rest of the app is fine.
    pub fn with_client(client: Client) -> MongoStoreBuilder {
        MongoStoreBuilder::new(Source::Client(client))
    }

    /// The collection the sessions are kept in.
    pub fn collection(&self) -> &Collection<Document> {
        &self.collection
    }

    /// The end of an `apply` that matched: a change set that sets nothing
    /// may have left the session empty, and then it is deleted, unless a
    /// key was set meanwhile by a concurrent request.
    async fn delete_if_empty(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
    ) -> Result<Applied, StoreError> {
        if !changes.set.is_empty() {
            return Ok(Applied::Done);
        }
        let deleted = self
            .collection
            .delete_one(doc! { "_id": key.as_str(), "data": {} })
            .await
            .map_err(StoreError::backend)?;
        Ok(if deleted.deleted_count == 1 {
            Applied::Deleted
        } else {
            Applied::Done
        })
    }
}

/// A session key as a field name: `%`, `.`, `$` and NUL percent-encoded,
/// the empty key as `%` (which no encoded key can be).
fn encode_key(key: &str) -> String {
    if key.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '$' => out.push_str("%24"),
            '\0' => out.push_str("%00"),
            c => out.push(c),
        }
    }
    out
}

fn decode_key(field: &str) -> Result<String, StoreError> {
    if field == "%" {
        return Ok(String::new());
    }
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let c = match rest.get(at + 1..at + 3) {
            Some("25") => '%',
            Some("2E") => '.',
            Some("24") => '$',
            Some("00") => '\0',
            _ => {
                return Err(StoreError::backend(format!(
                    "the session document has a field this store did not write: {field:?}"
                )));
            }
        };
        out.push(c);
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn binary(value: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: value.to_vec(),
    })
}

/// The `data` subdocument of a session document.
fn decode_data(document: &Document) -> Result<HashMap<String, Bytes>, StoreError> {
    let data = document
        .get_document("data")
        .map_err(|e| StoreError::backend(format!("the session document has no `data`: {e}")))?;
    data.iter()
        .map(|(field, value)| {
            let key = decode_key(field)?;
            match value {
                Bson::Binary(b) => Ok((key, Bytes::copy_from_slice(&b.bytes))),
                other => Err(StoreError::backend(format!(
                    "session key {key:?}: expected binary, found {:?}",
                    other.element_type()
                ))),
            }
        })
        .collect()
}

fn expires_at(document: &Document) -> Option<SystemTime> {
    document
        .get_datetime("expires_at")
        .ok()
        .map(|at| at.to_system_time())
}

/// The record a session document holds.
fn decode_record(document: &Document) -> Result<Record, StoreError> {
    Ok(Record {
        entries: decode_data(document)?,
        expires_at: expires_at(document),
        created_at: document
            .get_datetime("created_at")
            .ok()
            .map(|at| at.to_system_time()),
    })
}

/// An aggregation expression for the size, as [`entry_size`] counts it, of
/// the stored entries a change set keeps: those whose field is not in
/// `touched` (the keys it sets or removes, encoded).
///
/// A field's key is one byte shorter per `%`-escape than the field (`%XX`
/// stands for one byte), and the field `%` alone is the empty key: its
/// count, `1 - 2`, is clamped to 0.
fn kept_size(touched: Vec<Bson>) -> Document {
    let key_len = doc! { "$max": [0, { "$subtract": [
        { "$strLenBytes": "$$this.k" },
        { "$multiply": [2, { "$subtract": [{ "$size": { "$split": ["$$this.k", "%"] } }, 1] }] },
    ] }] };
    let entry = doc! { "$add": [
        "$$value", ENTRY_OVERHEAD as i64, key_len, { "$binarySize": "$$this.v" },
    ] };
    let add = if touched.is_empty() {
        Bson::Document(entry)
    } else {
        Bson::Document(doc! { "$cond": [{ "$in": ["$$this.k", touched] }, "$$value", entry] })
    };
    doc! { "$reduce": {
        "input": { "$objectToArray": "$data" },
        "initialValue": 0_i64,
        "in": add,
    } }
}

/// The filter clause that holds only while `changes` keeps the merged
/// session within `limit`.
fn within(changes: &ChangeSet, limit: usize) -> Document {
    let added: usize = changes.set.iter().map(|(k, v)| entry_size(k, v)).sum();
    let added = i64::try_from(added).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let merged = if changes.clear {
        Bson::Int64(added)
    } else {
        let touched = changes
            .set
            .iter()
            .map(|(k, _)| k)
            .chain(&changes.remove)
            .map(|k| Bson::String(encode_key(k)))
            .collect();
        Bson::Document(doc! { "$add": [kept_size(touched), added] })
    };
    doc! { "$lte": [merged, limit] }
}

fn now() -> bson::DateTime {
    bson::DateTime::now()
}

/// `ttl` from now (at least a millisecond; saturating, never panicking).
fn expiry(ttl: Duration) -> bson::DateTime {
    let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
    bson::DateTime::from_millis(now().timestamp_millis().saturating_add(ttl))
}

/// The filter of a live session.
fn live(key: &StoreKey) -> Document {
    doc! { "_id": key.as_str(), "expires_at": { "$gt": now() } }
}

fn is_duplicate(error: &MongoError) -> bool {
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}

impl SessionStore for MongoStore {
    const KIND: &'static str = "mongodb";

    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let found = self
            .collection
            .find_one(live(key))
            .await
            .map_err(StoreError::backend)?;
        found.as_ref().map(decode_record).transpose()
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let data: Document = record
            .entries
            .iter()
            .map(|(k, v)| (encode_key(k), binary(v)))
            .collect();
        let filter = doc! { "_id": key.as_str(), "expires_at": { "$lte": now() } };
        let mut replacement = doc! { "data": data, "expires_at": expiry(ttl) };
        if let Some(at) = record.created_at {
            replacement.insert("created_at", bson::DateTime::from_system_time(at));
        }
        match self
            .collection
            .replace_one(filter, replacement)
            .upsert(true)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        let mut set = Document::new();
        let mut update = Document::new();
        if changes.clear {
            let data: Document = changes
                .set
                .iter()
                .map(|(k, v)| (encode_key(k), binary(v)))
                .collect();
            set.insert("data", data);
        } else {
            for (k, v) in &changes.set {
                set.insert(format!("data.{}", encode_key(k)), binary(v));
            }
            let unset: Document = changes
                .remove
                .iter()
                // A path both set and unset is an error; the set wins anyway.
                .filter(|k| !changes.set.iter().any(|(s, _)| s == *k))
                .map(|k| {
                    (
                        format!("data.{}", encode_key(k)),
                        Bson::String(String::new()),
                    )
                })
                .collect();
            if !unset.is_empty() {
                update.insert("$unset", unset);
            }
        }
        set.insert("expires_at", expiry(ttl));
        update.insert("$set", set);
        let Some(limit) = changes.max_size else {
            let updated = self
                .collection
                .update_one(live(key), update)
                .await
                .map_err(StoreError::backend)?;
            if updated.matched_count == 0 {
                return Ok(Applied::Gone);
            }
            return self.delete_if_empty(key, changes).await;
        };
        let within = within(changes, limit);
        for _ in 0..MAX_SIZE_ATTEMPTS {
            let mut filter = live(key);
            filter.insert("$expr", within.clone());
            let updated = self
                .collection
                .update_one(filter, update.clone())
                .await
                .map_err(StoreError::backend)?;
            if updated.matched_count == 1 {
                return self.delete_if_empty(key, changes).await;
            }
            // Missing, or too large: the update cannot tell which.
            let Some(document) = self
                .collection
                .find_one(live(key))
                .await
                .map_err(StoreError::backend)?
            else {
                return Ok(Applied::Gone);
            };
            if let Some(size) = changes.too_large(&decode_data(&document)?) {
                return Ok(Applied::TooLarge { size });
            }
        }
        Err(StoreError::backend(format!(
            "the session changed under each of {MAX_SIZE_ATTEMPTS} tries to check its size; \
             too many requests are writing it at once"
        )))
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        let updated = self
            .collection
            .update_one(live(key), doc! { "$set": { "expires_at": expiry(ttl) } })
            .await
            .map_err(StoreError::backend)?;
        Ok(if updated.matched_count == 0 {
            Applied::Gone
        } else {
            Applied::Done
        })
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.collection
            .delete_one(doc! { "_id": key.as_str() })
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        // Expire the session and get what it held in one atomic write: from
        // then on every other call finds it gone. (Not `find_one_and_delete`:
        // some MongoDB-compatible servers return a pre-image read before the
        // delete, which can miss a concurrent `apply`.)
        let taken = self
            .collection
            .find_one_and_update(live(key), doc! { "$set": { "expires_at": TAKEN } })
            .return_document(ReturnDocument::After)
            .await
            .map_err(StoreError::backend)?;
        let Some(document) = taken else {
            return Ok(None);
        };
        // Only this tombstone: a session created under the key meanwhile has
        // a real expiry. If this fails, the TTL index removes it.
        if let Err(e) = self
            .collection
            .delete_one(doc! { "_id": key.as_str(), "expires_at": TAKEN })
            .await
        {
            tracing::warn!(error = %e, "deleting a taken session failed; the TTL index will");
        }
        Ok(Some(Record {
            // The tombstone's: not when the session would have expired.
            expires_at: None,
            ..decode_record(&document)?
        }))
    }
    /// Pages of up to 200 live sessions in `_id` order; the
    /// cursor is the last `_id` of the page.
    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        // A key equal to the prefix alone is no session's.
        let after = cursor.unwrap_or(prefix);
        let mut found = self
            .collection
            .find(doc! { "_id": { "$gt": after }, "expires_at": { "$gt": now() } })
            .sort(doc! { "_id": 1 })
            .limit(SCAN_PAGE)
            .projection(doc! { "_id": 1 })
            .await
            .map_err(StoreError::backend)?;
        let mut ids = Vec::new();
        while found.advance().await.map_err(StoreError::backend)? {
            let document = found.deserialize_current().map_err(StoreError::backend)?;
            if let Ok(id) = document.get_str("_id") {
                ids.push(id.to_owned());
            }
        }
        Ok(ScanPage::keyset(ids, prefix, SCAN_PAGE))
    }

    /// The TTL index removes expired sessions within a minute; this removes
    /// them now.
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let done = self
            .collection
            .delete_many(doc! { "expires_at": { "$lte": now() } })
            .await
            .map_err(StoreError::backend)?;
        Ok(done.deleted_count)
    }
}

/// Documents one page of [`MongoStore`]'s scan reads.
const SCAN_PAGE: i64 = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_field_names() {
        for key in [
            "",
            "%",
            "name",
            "with.dots:and$dollars",
            "$set",
            "a%2Eb",
            "nul\0byte",
            "ключ 🔑",
            "%%..$$",
        ] {
            let field = encode_key(key);
            assert!(!field.contains('.') && !field.contains('$') && !field.contains('\0'));
            assert!(!field.is_empty());
            assert_eq!(decode_key(&field).unwrap(), key, "{field}");
        }
        assert_eq!(encode_key("a.b$c%d"), "a%2Eb%24c%25d");
        assert!(decode_key("a%2").is_err());
        assert!(decode_key("a%41").is_err());
    }
}

#[cfg(test)]
mod proptests {
    //! Properties of the MongoDB store's field names: session keys are any
    //! text, field names must not hold what MongoDB reads as a path (`.`), an
    //! operator (`$`) or the end of a C string (NUL).

    use proptest::prelude::*;
    use proptest::test_runner::Config;

    use super::*;

    /// Any key, weighted towards the characters the escaping handles.
    fn key() -> impl Strategy<Value = String> {
        let special = prop::sample::select(vec!['%', '.', '$', '\0', '2', 'E', '4', '0', '5']);
        prop_oneof![
            prop::collection::vec(any::<char>(), 0..32).prop_map(String::from_iter),
            prop::collection::vec(special, 0..12).prop_map(String::from_iter),
        ]
    }

    /// A field as it may come back from a document someone else wrote.
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(any::<char>(), 0..32).prop_map(String::from_iter),
            "[%.$0-9A-Fa-z]{0,12}",
            "(%(25|2E|24|00|2e|2|)[a-é]?){0,4}",
        ]
    }

    fn is_field_name(field: &str) -> bool {
        !field.is_empty() && !field.contains(['.', '$', '\0'])
    }

    proptest! {
        #![proptest_config(Config::with_cases(512))]

        #[test]
        fn keys_round_trip_through_field_names_mongodb_accepts(key in key()) {
            let field = encode_key(&key);
            prop_assert!(is_field_name(&field), "{:?} -> {:?}", key, field);
            prop_assert_eq!(decode_key(&field).ok(), Some(key));
        }

        #[test]
        fn distinct_keys_get_distinct_field_names(a in key(), b in key()) {
            prop_assume!(a != b);
            prop_assert_ne!(encode_key(&a), encode_key(&b));
        }

        /// Decoding never panics, and a field name this store could have
        /// written decodes to the one key that encodes to it: no two spellings
        /// of a key.
        #[test]
        fn any_field_decodes_without_panic_to_the_key_that_encodes_to_it(field in field()) {
            if let Ok(key) = decode_key(&field)
                && is_field_name(&field)
            {
                prop_assert_eq!(encode_key(&key), field);
            }
        }
    }
}
