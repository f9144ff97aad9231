//! The layers: stores that wrap any store and add one concern to it.
//! Re-exported from [`store`](crate::store), where their public paths are.

pub mod instrument;
pub mod migrating;
pub mod near;
mod timeout;

pub use instrument::Instrumented;
pub use migrating::Migrating;
pub use near::{CacheStats, NearCache};
pub use timeout::Timeout;
