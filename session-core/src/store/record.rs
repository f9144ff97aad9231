//! What a store holds and what it is asked to do: a session's entries,
//! one request's change set, and what applying it came to.

use std::collections::HashMap;
use std::time::SystemTime;

use bytes::Bytes;

#[cfg(doc)]
use super::SessionStore;
use crate::codec::entry_size;

/// A session as a store keeps it: encoded values by session key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The session's entries: each value encoded by the session's codec.
    pub entries: HashMap<String, Bytes>,
    /// When the session expires, if the store can tell cheaply on
    /// [`load`](SessionStore::load). The middleware uses it to extend a
    /// session's lifetime only when a refresh is due, instead of writing on
    /// every request; `None` makes every request that reads the session
    /// refresh it. [`create`](SessionStore::create) ignores it.
    pub expires_at: Option<SystemTime>,
    /// When the session was first created, kept across a login's move to a
    /// new id; the middleware's absolute lifetime counts from it. A store
    /// keeps what [`create`](SessionStore::create) is given (to the
    /// millisecond; [`apply`](SessionStore::apply) and
    /// [`touch`](SessionStore::touch) leave it unchanged) and returns it from
    /// [`load`](SessionStore::load) and [`take`](SessionStore::take). `None`:
    /// not known (a session written by a version that did not record it).
    pub created_at: Option<SystemTime>,
}

impl From<HashMap<String, Bytes>> for Record {
    fn from(entries: HashMap<String, Bytes>) -> Self {
        Self {
            entries,
            expires_at: None,
            created_at: None,
        }
    }
}

impl Record {
    /// The session's size as [`SESSION_MAX_SIZE`](crate::SessionConfig::max_size)
    /// counts it: the sum of [`entry_size`] over its entries.
    pub fn size(&self) -> usize {
        session_size(&self.entries)
    }
}

/// The size of a session's entries as the size limit counts it: the sum of
/// [`entry_size`] over them.
pub fn session_size(entries: &HashMap<String, Bytes>) -> usize {
    entries.iter().map(|(k, v)| entry_size(k, v)).sum()
}

/// What one request changed in a session, key by key.
///
/// A store applies it in this order: `clear` (drop every entry), then
/// `remove`, then `set`. No key is in both `set` and `remove`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Drop every entry before applying the rest.
    pub clear: bool,
    /// Entries to write, with their encoded values.
    pub set: Vec<(String, Bytes)>,
    /// Keys to remove.
    pub remove: Vec<String>,
    /// The largest the session may be once the change set is applied, in
    /// bytes as [`session_size`] counts them (`SESSION_MAX_SIZE`). A store
    /// checks it on the merged result, atomically with the write: past it,
    /// nothing is written and the result is [`Applied::TooLarge`]. `None`:
    /// no limit.
    pub max_size: Option<usize>,
}

impl ChangeSet {
    /// True when applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        !self.clear && self.set.is_empty() && self.remove.is_empty()
    }

    /// The size `entries` would have once the change set is applied, as
    /// [`session_size`] counts it, without changing them.
    pub fn size_after(&self, entries: &HashMap<String, Bytes>) -> usize {
        let mut size = if self.clear { 0 } else { session_size(entries) };
        let old = |key: &str| match (self.clear, entries.get(key)) {
            (false, Some(value)) => entry_size(key, value),
            _ => 0,
        };
        let mut removed = std::collections::HashSet::new();
        for key in &self.remove {
            if removed.insert(key.as_str()) {
                size -= old(key);
            }
        }
        for (key, value) in &self.set {
            if removed.insert(key.as_str()) {
                size -= old(key);
            }
            size += entry_size(key, value);
        }
        size
    }

    /// `Some(size)` when applying the change set to `entries` would take
    /// the session past [`max_size`](Self::max_size): the size it would
    /// have. Stores that merge in their own code check it before writing.
    pub fn too_large(&self, entries: &HashMap<String, Bytes>) -> Option<usize> {
        let limit = self.max_size?;
        let size = self.size_after(entries);
        (size > limit).then_some(size)
    }

    /// Applies the change set to a map of entries, in the documented order.
    pub fn apply_to(&self, entries: &mut HashMap<String, Bytes>) {
        if self.clear {
            entries.clear();
        }
        for key in &self.remove {
            entries.remove(key);
        }
        for (key, value) in &self.set {
            entries.insert(key.clone(), value.clone());
        }
    }
}

/// The outcome of [`SessionStore::apply`] and [`SessionStore::touch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Applied {
    /// The session existed and the change (or new lifetime) was written.
    Done,
    /// The session existed, and the change left it without entries, so it
    /// was deleted ([`apply`](SessionStore::apply) only).
    Deleted,
    /// No live session is stored under the key: it was deleted (logout) or
    /// it expired. Nothing was written.
    Gone,
    /// The change set would have taken the session past its
    /// [`max_size`](ChangeSet::max_size) ([`apply`](SessionStore::apply)
    /// only). Nothing was written.
    TooLarge {
        /// The size the session would have had.
        size: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_set_applies_clear_then_remove_then_set() {
        let mut entries: HashMap<String, Bytes> = [("a", "1"), ("b", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Bytes::from(v)))
            .collect();
        ChangeSet {
            clear: false,
            set: vec![("c".into(), Bytes::from("3"))],
            remove: vec!["a".into()],
            max_size: None,
        }
        .apply_to(&mut entries);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries["c"], "3");
        ChangeSet {
            clear: true,
            set: vec![("d".into(), Bytes::from("4"))],
            remove: vec![],
            max_size: None,
        }
        .apply_to(&mut entries);
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["d"]);
    }

    #[test]
    fn size_after_counts_the_merged_result() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let entries: HashMap<String, Bytes> =
            [("a".to_owned(), b("111")), ("b".to_owned(), b("22"))].into();
        let changes = ChangeSet {
            clear: false,
            set: vec![("a".into(), b("1")), ("c".into(), b("3333"))],
            remove: vec!["b".into(), "missing".into()],
            max_size: Some(10),
        };
        let mut merged = entries.clone();
        changes.apply_to(&mut merged);
        assert_eq!(changes.size_after(&entries), session_size(&merged));
        assert_eq!(changes.too_large(&entries), Some(session_size(&merged)));
        let cleared = ChangeSet {
            clear: true,
            ..changes.clone()
        };
        assert_eq!(
            cleared.size_after(&entries),
            entry_size("a", b"1") + entry_size("c", b"3333")
        );
        let unlimited = ChangeSet {
            max_size: None,
            ..changes
        };
        assert_eq!(unlimited.too_large(&entries), None);
    }
}
