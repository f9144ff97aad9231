//! `#[derive(SessionData)]`: typed, serde-backed session accessors.
//!
//! The derive is being built (see the project's issue tracker); this crate is
//! part of the workspace layout so that `session-actix` can re-export it.
