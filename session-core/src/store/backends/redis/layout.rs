//! How a session is laid out in its Redis hash (see the parent module's
//! "Layout"), and the Lua scripts that change it.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redis::Script;

use crate::store::StoreError;

/// The reserved field holding the creation time. The scripts spell it
/// `'\0created'`.
pub(super) const CREATED: &str = "\0created";
/// The reserved field holding the session's size. The scripts spell it
/// `'\0size'`.
pub(super) const SIZE: &str = "\0size";

/// Fields per `HSET`/`HDEL` inside the scripts: Lua's `unpack` has a stack
/// limit of a few thousand values.
pub(super) const SCRIPT_BATCH: &str = "500";

/// Applies a change set to an existing session, within a size limit.
///
/// KEYS[1]: the session. ARGV: ttl ms, clear (0/1), number of removals,
/// batch size, size limit ('' for none), the removed fields, then
/// field/value pairs to set.
///
/// Returns `{0, 0}` when the session is missing, `{1, size}` when written,
/// `{2, 0}` when the change left no user field (the session is deleted),
/// `{3, size}` when the merged session would pass the limit (nothing is
/// written).
///
/// The new size is worked out from the stored one and the old value of
/// each changed field, read in one `HMGET` before anything is written, so
/// a write costs the same however large the rest of the session is. The
/// usual write of a few keys is three calls: that `HMGET`, one `HSET` of
/// the fields and the size, `PEXPIRE`.
///
/// The source of [`APPLY`] and [`APPLY_TRACKED`]; `--TRACKED--` marks
/// where the second reads its key back.
const APPLY_SOURCE: &str = r"
local key = KEYS[1]
local clear = ARGV[2] == '1'
local first_set = 6 + tonumber(ARGV[3])
local batch = tonumber(ARGV[4])
-- One read: the stored size and the old value of each changed field
-- (false: absent), in batches of HMGET.
local fields = {}
for i = 6, first_set - 1 do fields[#fields + 1] = ARGV[i] end
for i = first_set, #ARGV, 2 do fields[#fields + 1] = ARGV[i] end
local old = {}
local size
if clear then
  size = redis.call('HGET', key, '\0size')
else
  local j = 1
  repeat
    local last = math.min(j + batch - 1, #fields)
    local values
    if j == 1 then
      values = redis.call('HMGET', key, '\0size', unpack(fields, j, last))
      size = values[1]
      for k = j, last do old[fields[k]] = values[k + 1] end
    else
      values = redis.call('HMGET', key, unpack(fields, j, last))
      for k = j, last do old[fields[k]] = values[k - j + 1] end
    end
    j = last + 1
  until j > #fields
end
if size then
  size = tonumber(size)
elseif redis.call('EXISTS', key) == 0 then
  return {0, 0}
else
  -- Written before the size was kept: count it, once.
  size = 0
  if not clear then
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      if string.byte(all[i]) ~= 0 then size = size + 8 + #all[i] + #all[i + 1] end
    end
  end
end
if clear then size = 0 end
-- From here `old` holds the value each field has once the changes before
-- it are applied (false: absent), so a field changed twice counts once.
if clear then old = {} end
for i = 6, first_set - 1 do
  local field = ARGV[i]
  local value = old[field]
  if value then size = size - (8 + #field + #value) end
  old[field] = false
end
for i = first_set, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local before = old[field]
  if before then size = size - (8 + #field + #before) end
  size = size + 8 + #field + #value
  old[field] = value
end
if ARGV[5] ~= '' and size > tonumber(ARGV[5]) then return {3, size} end
-- Every user field weighs at least 8: none is left. The reserved fields
-- alone do not keep a session alive.
if size == 0 then
  redis.call('DEL', key)
  return {2, 0}
end
if clear then
  local created = redis.call('HGET', key, '\0created')
  redis.call('DEL', key)
  if created then redis.call('HSET', key, '\0created', created) end
else
  local i = 6
  while i < first_set do
    local last = math.min(i + batch - 1, first_set - 1)
    redis.call('HDEL', key, unpack(ARGV, i, last))
    i = last + 1
  end
end
local i = first_set
while #ARGV - i >= 2 * batch do
  local last = i + 2 * batch - 1
  redis.call('HSET', key, unpack(ARGV, i, last))
  i = last + 1
end
-- The last batch and the size in one call.
redis.call('HSET', key, '\0size', size, unpack(ARGV, i, #ARGV))
redis.call('PEXPIRE', key, ARGV[1])
--TRACKED--
return {1, size}
";

/// Applies a change set (see [`APPLY_SOURCE`]).
pub(super) static APPLY: LazyLock<Script> =
    LazyLock::new(|| Script::new(&APPLY_SOURCE.replace("--TRACKED--", "")));

/// [`APPLY`] for a store with a near cache: it ends with a read of the key
/// (`EXISTS`), because Redis stops tracking a key for the connection that
/// changed it until it reads it again (see `tracking`).
pub(super) static APPLY_TRACKED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&APPLY_SOURCE.replace("--TRACKED--", "redis.call('EXISTS', key)"))
});

/// Deletes a session and returns all its fields, reserved ones included.
pub(super) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return fields
",
    )
});

/// Creates a session unless the key is taken.
///
/// KEYS[1]: the session. ARGV: ttl ms, batch size, then field/value pairs,
/// the reserved fields among them.
pub(super) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then return 0 end
local batch = tonumber(ARGV[2])
local i = 3
while i <= #ARGV do
  local last = math.min(i + 2 * batch - 1, #ARGV)
  redis.call('HSET', key, unpack(ARGV, i, last))
  i = last + 1
end
redis.call('PEXPIRE', key, ARGV[1])
return 1
",
    )
});

/// `PEXPIRE`, then a read of the key, for a store with a near cache:
/// Redis stops tracking a key for the connection that changed it, until it
/// reads it again (see `tracking`).
pub(super) static TOUCH_TRACKED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local touched = redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('EXISTS', KEYS[1])
return touched
",
    )
});

/// A creation time as [`CREATED`] holds it; `None` before the epoch, which
/// no clock that made a session reads.
pub(super) fn encode_created(at: SystemTime) -> Option<String> {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Some(since.as_millis().to_string())
}

/// Splits a hash as `HGETALL` returns it into the user's entries and the
/// creation time. Reserved fields this version does not know (a later
/// version's) are left out of the entries too; a creation time that does
/// not parse reads as unknown rather than failing the session.
pub(super) fn decode(
    fields: Vec<(String, Vec<u8>)>,
) -> (HashMap<String, Bytes>, Option<SystemTime>) {
    let mut created_at = None;
    let entries = fields
        .into_iter()
        .filter_map(|(field, value)| {
            if !is_reserved(&field) {
                return Some((field, Bytes::from(value)));
            }
            if field == CREATED {
                created_at = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|ms| ms.parse().ok())
                    .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
            }
            None
        })
        .collect();
    (entries, created_at)
}

fn is_reserved(field: &str) -> bool {
    field.starts_with('\0')
}

/// Refuses session keys in the reserved namespace: writing one would
/// overwrite the store's own bookkeeping (the middleware never sends one).
pub(super) fn check_keys<'a>(mut keys: impl Iterator<Item = &'a str>) -> Result<(), StoreError> {
    match keys.find(|key| is_reserved(key)) {
        Some(key) => Err(StoreError::backend(format!(
            "session key {key:?} starts with NUL, which the Redis store reserves for its own fields"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_fields_are_not_entries() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        let fields = vec![
            ("name".to_owned(), b"\"nick\"".to_vec()),
            (SIZE.to_owned(), b"18".to_vec()),
            (
                CREATED.to_owned(),
                encode_created(created).unwrap().into_bytes(),
            ),
            ("\0later".to_owned(), b"x".to_vec()),
        ];
        let (entries, created_at) = decode(fields);
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["name"]);
        assert_eq!(created_at, Some(created));
    }

    #[test]
    fn a_bad_creation_time_reads_as_unknown() {
        let fields = vec![
            ("a".to_owned(), b"1".to_vec()),
            (CREATED.to_owned(), b"yesterday".to_vec()),
        ];
        assert_eq!(decode(fields).1, None);
    }

    #[test]
    fn reserved_keys_are_refused() {
        assert!(check_keys(["a", "", "b\0"].into_iter()).is_ok());
        assert!(check_keys(["a", "\0size"].into_iter()).is_err());
    }
}
