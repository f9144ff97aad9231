//! Rejects what makes no sense, pointing at the offending tokens.

use std::collections::HashMap;

use syn::ext::IdentExt as _;

use crate::ast::Container;
use crate::ctxt::Ctxt;

pub(crate) fn check(cx: &Ctxt, cont: &Container<'_>) {
    check_generics(cx, cont);
    check_skip(cx, cont);
    check_keys(cx, cont);
    check_method_names(cx, cont);
}

/// The methods generated for the whole struct.
const FIXED_METHODS: [&str; 4] = ["load", "save", "clear", "session"];

/// Fields whose generated methods would clash with another's.
fn check_method_names(cx: &Ctxt, cont: &Container<'_>) {
    let mut owner: HashMap<String, Option<String>> = FIXED_METHODS
        .iter()
        .map(|m| ((*m).to_owned(), None))
        .collect();
    for field in cont.stored() {
        let name = field.ident.unraw().to_string();
        for method in [
            name.clone(),
            format!("set_{name}"),
            format!("remove_{name}"),
            format!("update_{name}"),
        ] {
            if let Some(other) = owner.get(&method) {
                let by = match other {
                    Some(other) => format!("field `{other}`"),
                    None => "the whole struct".to_owned(),
                };
                cx.error_spanned_by(
                    field.ident,
                    format!(
                        "field `{name}` would generate a method `{method}` that {by} already generates; rename the field (#[session(key = \"...\")] keeps its session key)"
                    ),
                );
                break;
            }
            owner.insert(method, Some(name.clone()));
        }
    }
}

fn check_generics(cx: &Ctxt, cont: &Container<'_>) {
    let generics = &cont.input.generics;
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            generics,
            "#[derive(SessionData)] does not support generic structs: each field needs one concrete type to store",
        );
    }
}

fn check_skip(cx: &Ctxt, cont: &Container<'_>) {
    for field in &cont.fields {
        if field.attrs.skip.get().is_none() {
            continue;
        }
        if let Some(tokens) = field.attrs.key.tokens() {
            cx.error_spanned_by(
                tokens,
                "#[session(key)] on a #[session(skip)] field: a skipped field has no key",
            );
        }
    }
}

fn check_keys(cx: &Ctxt, cont: &Container<'_>) {
    let mut seen: HashMap<&str, &syn::Ident> = HashMap::new();
    for field in cont.stored() {
        if field.key.is_empty() {
            let span = field.attrs.key.tokens().cloned();
            match span {
                Some(tokens) => cx.error_spanned_by(tokens, "session keys cannot be empty"),
                None => cx.error_spanned_by(field.original, "session keys cannot be empty"),
            }
        }
        if let Some(first) = seen.insert(&field.key, field.ident) {
            let message = format!(
                "duplicate session key {:?}: field `{first}` already uses it",
                field.key
            );
            match field.attrs.key.tokens() {
                Some(tokens) => cx.error_spanned_by(tokens, message),
                None => cx.error_spanned_by(field.ident, message),
            }
        }
    }
}
