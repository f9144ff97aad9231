//! The one algorithm that applies a change set on every database: a
//! single `UPDATE` that merges (and, with a size limit, measures) the
//! session in SQL; the rare locked path when that `UPDATE` matched nothing
//! or cannot measure; and the deletion of a session left empty. What
//! differs between databases, the statements and how a write lock is
//! taken, is a [`Dialect`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Transaction};

use crate::store::{Applied, ChangeSet};

/// A dialect's statement, as sqlx runs it.
pub(super) fn q(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    // The table name in every statement was checked to be an identifier.
    AssertSqlSafe(Arc::clone(sql))
}

/// A transaction of a dialect's database.
pub(super) type Tx<D> = Transaction<'static, <D as Dialect>::Db>;

/// What one database does its own way when a change set is applied.
pub(super) trait Dialect: Sync {
    /// The sqlx database.
    type Db: sqlx::Database;

    /// The pool the statements run on.
    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// Waits for this process's turn to write, for a database that lets one
    /// connection write at a time (SQLite); the default takes no turn.
    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }

    /// Whether the apply statement can measure the merged session itself.
    /// If not (MySQL without `JSON_TABLE`), every apply with a size limit
    /// takes the locked path.
    fn measures_in_update(&self) -> bool {
        true
    }

    /// Begins the transaction of the locked path, holding the write lock
    /// it needs from its start where the database cannot lock one row.
    async fn begin_locked(&self) -> Result<Tx<Self>, sqlx::Error> {
        self.pool().begin().await
    }

    /// Runs the apply statement, in `tx` or else on the pool: `None` if no
    /// live row matched, else whether the session may now be empty. With a
    /// `limit`, the statement writes only if the merged session fits.
    async fn update(
        &self,
        tx: Option<&mut Tx<Self>>,
        key: &str,
        changes: &ChangeSet,
        ttl: Duration,
        limit: Option<i64>,
    ) -> Result<Option<bool>, sqlx::Error>;

    /// The merged session's size, read in `tx` under a write lock on the
    /// row; `None` if no live row.
    async fn measure(
        &self,
        tx: &mut Tx<Self>,
        key: &str,
        changes: &ChangeSet,
    ) -> Result<Option<i64>, sqlx::Error>;

    /// Deletes the session if it has no entries: how many rows went.
    async fn delete_empty(&self, key: &str) -> Result<u64, sqlx::Error>;
}

/// Applies a change set: one `UPDATE`; with a size limit, its `WHERE`
/// also measures the merged session, and on no match a locked re-read
/// tells why.
pub(super) async fn apply<D: Dialect>(
    db: &D,
    key: &str,
    changes: &ChangeSet,
    ttl: Duration,
) -> Result<Applied, sqlx::Error> {
    let _turn = db.turn().await;
    if clear_too_large(changes) {
        return apply_locked(db, key, changes, ttl).await;
    }
    // What a `clear` leaves is measured already: only a merge needs the
    // database to measure it.
    let limit = limit_of(changes).filter(|_| !changes.clear);
    if limit.is_some() && !db.measures_in_update() {
        return apply_locked(db, key, changes, ttl).await;
    }
    let emptied = db.update(None, key, changes, ttl, limit).await?;
    if emptied.is_none() && limit.is_some() {
        return apply_locked(db, key, changes, ttl).await;
    }
    settle(db, key, emptied).await
}

/// The rare path: the merged size measured under a write lock, and the
/// change written under that lock if it fits.
async fn apply_locked<D: Dialect>(
    db: &D,
    key: &str,
    changes: &ChangeSet,
    ttl: Duration,
) -> Result<Applied, sqlx::Error> {
    let mut tx = db.begin_locked().await?;
    let size = db.measure(&mut tx, key, changes).await?;
    if let Some(settled) = decide_locked(size, changes) {
        tx.rollback().await?;
        return Ok(settled);
    }
    let emptied = db.update(Some(&mut tx), key, changes, ttl, None).await?;
    tx.commit().await?;
    settle(db, key, emptied).await
}

/// What an `UPDATE` applying a change set came to. `emptied` is `None` when
/// no live row matched (`Gone`), else whether the row may now be empty;
/// then it is deleted if it still is (a key set meanwhile by another
/// request keeps it).
async fn settle<D: Dialect>(
    db: &D,
    key: &str,
    emptied: Option<bool>,
) -> Result<Applied, sqlx::Error> {
    Ok(match emptied {
        None => Applied::Gone,
        Some(false) => Applied::Done,
        Some(true) if db.delete_empty(key).await? == 1 => Applied::Deleted,
        Some(true) => Applied::Done,
    })
}

/// The rare path of an `apply` with a size limit (the single `UPDATE`
/// matched no row, or a `clear` is too large on its own) decides from the
/// merged session's size, measured under a write lock (`None`: no live
/// row): `Some` settles the apply, `None` means it fits now (a concurrent
/// change made room) and is written under that lock.
fn decide_locked(size: Option<i64>, changes: &ChangeSet) -> Option<Applied> {
    let Some(size) = size else {
        return Some(Applied::Gone);
    };
    let size = usize::try_from(size).unwrap_or(0);
    changes
        .max_size
        .filter(|&limit| size > limit)
        .map(|_| Applied::TooLarge { size })
}

/// A session size limit as SQL binds it.
fn limit_of(changes: &ChangeSet) -> Option<i64> {
    changes
        .max_size
        .map(|max| i64::try_from(max).unwrap_or(i64::MAX))
}

/// True when the change set must go straight to the locked path: a
/// `clear` whose new entries alone pass the limit. They are the whole
/// merged session, so Rust measures a `clear` and no `UPDATE` has to.
fn clear_too_large(changes: &ChangeSet) -> bool {
    changes.clear && changes.too_large(&HashMap::new()).is_some()
}
