//! Listing a store's sessions, a page at a time, for operator tools.

use super::{SessionStore, StoreError};
use crate::StoreKey;

/// One page of [`SessionStore::scan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys of sessions found on this page.
    pub keys: Vec<StoreKey>,
    /// Where the next page starts, to pass back to `scan`; `None` when the
    /// scan is over.
    pub next: Option<String>,
}

impl ScanPage {
    /// Where a scan that reads one numbered part per page (a shard, a
    /// server) of `parts` stands: the part `cursor` names (the first if
    /// `None`), and the cursor of the page after it (`None` after the
    /// last).
    #[cfg(any(feature = "memory", feature = "memcached"))]
    pub(crate) fn numbered(
        cursor: Option<&str>,
        parts: usize,
    ) -> Result<(usize, Option<String>), StoreError> {
        let index = match cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&i| i < parts)
                .ok_or_else(|| StoreError::backend(format!("not a scan cursor here: {c:?}")))?,
        };
        Ok((index, (index + 1 < parts).then(|| (index + 1).to_string())))
    }

    /// A page of keyset pagination: `ids` in key order, as a query with
    /// `LIMIT page` after the last page's last id returned them (every id,
    /// whatever its prefix). The next page starts after the last of them,
    /// unless there were fewer than `page`.
    #[cfg(any(feature = "mongodb", feature = "sql"))]
    pub(crate) fn keyset(ids: Vec<String>, prefix: &str, page: i64) -> Self {
        let next = (ids.len() as i64 == page)
            .then(|| ids.last().cloned())
            .flatten();
        Self {
            keys: ids
                .into_iter()
                .filter(|id| id.starts_with(prefix))
                .map(StoreKey::from_raw)
                .collect(),
            next,
        }
    }
}

/// Every key [`SessionStore::scan`] lists under `prefix`, page after
/// page, each once, in order; `listed` is told how many so far after each
/// page.
///
/// # Errors
///
/// The store's, and [`StoreError::Backend`] when a page names itself as
/// the next one (a scan that would never end).
pub async fn scan_all<S: SessionStore + ?Sized>(
    store: &S,
    prefix: &str,
    mut listed: impl FnMut(usize),
) -> Result<Vec<StoreKey>, StoreError> {
    let mut keys = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan(prefix, cursor.as_deref()).await?;
        keys.extend(page.keys.into_iter().map(|k| k.as_str().to_owned()));
        listed(keys.len());
        match page.next {
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(StoreError::backend(format!(
                    "the store's scan made no progress at {next:?}"
                )));
            }
            Some(next) => cursor = Some(next),
            None => return Ok(keys.into_iter().map(StoreKey::from_raw).collect()),
        }
    }
}
