//! The backends: stores that keep sessions somewhere, one module each.
//! Re-exported from [`store`](crate::store), where their public paths are.

#[cfg(feature = "cookie")]
pub mod cookie;
#[cfg(feature = "filesystem")]
pub mod filesystem;
#[cfg(feature = "memcached")]
pub mod memcached;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "mongodb")]
pub mod mongodb;
pub mod null;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]
pub mod sql;
