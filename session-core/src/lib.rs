//! The framework-independent half of server-side sessions: ids, signing,
//! configuration, value codecs, the [`SessionStore`]
//! trait and the stores.
//!
//! Most applications use this crate through `session-actix`, which
//! re-exports it; store authors implement [`store::SessionStore`] and run
//! the acceptance suite in `testing` (feature `testing`) against it.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

pub mod admin;
pub mod codec;
pub mod config;
pub mod engine;
#[cfg(feature = "flask")]
#[cfg_attr(docsrs, doc(cfg(feature = "flask")))]
pub mod flask;
pub mod id;
mod keyspace;
mod logout;
pub mod meta;
mod seal;
pub mod signing;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod users;

/// The `bytes` crate, whose `Bytes` holds encoded values.
pub use bytes;
pub use codec::Codec;
pub use config::{
    ConfigError, CookieConfig, CookieContent, Interop, OutagePolicy, SameSite, SessionConfig,
    StoreConfig, StoreKind,
};
pub use engine::{Engine, Session, SessionError, SessionStatus};
pub use id::{SessionId, StoreKey};
pub use seal::EncryptAtRest;
pub use signing::{Signer, SigningKey};
pub use store::{AnyStore, Applied, ChangeSet, Record, SessionStore, StoreError, Timeout};
