//! `#[derive(SessionData)]`: typed, serde-backed session accessors.
//!
//! Use it through `session-actix`, which re-exports it together with the
//! runtime the generated code calls (through the hidden
//! `session_actix::__private`, so users need no other import); see
//! `session_actix::SessionData` for the attributes and what is generated.
//!
//! The work goes in stages: `ast` (a borrowed view of the input), `attr`
//! (parse `#[session(...)]`), `valid` (reject what makes no sense, every
//! error at once), `expand` (generate code).

mod ast;
mod attr;
mod case;
mod ctxt;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `session_actix::SessionData`: typed accessors, one session key
/// per field. See `session_actix::SessionData` for the attributes.
#[proc_macro_derive(SessionData, attributes(session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
