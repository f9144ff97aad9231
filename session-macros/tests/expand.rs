//! What compiles: every attribute together, and a struct with no fields.
#![allow(missing_docs)]

use session_actix::SessionData;

#[derive(SessionData, Default)]
#[session(prefix = "p.", rename_all = "kebab-case", default)]
pub struct Everything {
    pub user_id: Option<u64>,
    #[session(key = "explicit")]
    pub renamed: String,
    #[session(default)]
    pub counter: u32,
    #[session(default = "seven")]
    pub seven: u8,
    #[session(skip)]
    pub skipped: Vec<u8>,
    pub r#type: String,
}

fn seven() -> u8 {
    7
}

#[derive(SessionData)]
pub struct Nothing;

/// session-actix under another name, as a crate that re-exports it has it.
mod reexport {
    pub(crate) use session_actix as sessions;
}

/// A field-less struct through a renamed crate path (what is generated for
/// it is not what is generated for one with fields).
#[derive(SessionData)]
#[session(crate = "reexport::sessions")]
pub struct NothingRenamed;

#[test]
fn keys() {
    assert_eq!(
        Everything::KEYS,
        ["p.user-id", "p.explicit", "p.counter", "p.seven", "p.type"]
    );
    assert!(Nothing::KEYS.is_empty());
    assert!(NothingRenamed::KEYS.is_empty());
}
