//! Parses `#[session(...)]` on the struct and on its fields.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr};

use crate::case::RenameRule;
use crate::ctxt::Ctxt;

/// One attribute value, remembering the tokens it came from so a duplicate
/// can point at them.
pub(crate) struct Attr<T> {
    name: &'static str,
    value: Option<(proc_macro2::TokenStream, T)>,
}

impl<T> Attr<T> {
    fn none(name: &'static str) -> Self {
        Self { name, value: None }
    }

    fn set(&mut self, cx: &Ctxt, tokens: &syn::Path, value: T) {
        if self.value.is_some() {
            cx.error_spanned_by(
                tokens,
                format!("duplicate #[session({})] attribute", self.name),
            );
        } else {
            self.value = Some((quote::quote!(#tokens), value));
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    pub(crate) fn tokens(&self) -> Option<&proc_macro2::TokenStream> {
        self.value.as_ref().map(|(t, _)| t)
    }

    /// Where the attribute was written, for errors about what it asks for.
    pub(crate) fn span(&self) -> Option<proc_macro2::Span> {
        self.tokens().map(syn::spanned::Spanned::span)
    }
}

/// `#[session(...)]` on the struct.
pub(crate) struct Container {
    /// `#[session(crate = "...")]`: the path generated code names
    /// session-actix by, for a crate that re-exports it.
    pub(crate) crate_path: Attr<syn::Path>,
    pub(crate) prefix: Attr<String>,
    pub(crate) rename_all: Attr<RenameRule>,
    pub(crate) default: Attr<()>,
}

/// How a field gets its value when its key is missing or unreadable.
pub(crate) enum Default {
    /// `#[session(default)]`: the field type's `Default`.
    Type,
    /// `#[session(default = "path")]`: a function.
    Path(syn::ExprPath),
}

/// `#[session(...)]` on a field.
pub(crate) struct Field {
    pub(crate) key: Attr<LitStr>,
    pub(crate) default: Attr<Default>,
    pub(crate) skip: Attr<()>,
}

/// What `#[session(crate = "...")]` errors show between the quotes.
const CRATE_EXAMPLE: &str = "path::to::session_actix";

fn session_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("session"))
}

/// The string value of `name = "..."`; anything else is an error that shows
/// the expected syntax (`example` is what goes between the quotes).
fn string(meta: &ParseNestedMeta<'_>, name: &str, example: &str) -> syn::Result<LitStr> {
    let expected = |span| {
        syn::Error::new(
            span,
            format!("expected a string literal: #[session({name} = \"{example}\")]"),
        )
    };
    let value = meta.value().map_err(|e| expected(e.span()))?;
    value.parse().map_err(|e| expected(e.span()))
}

impl Container {
    pub(crate) fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut c = Container {
            crate_path: Attr::none("crate"),
            prefix: Attr::none("prefix"),
            rename_all: Attr::none("rename_all"),
            default: Attr::none("default"),
        };
        for attr in session_attrs(attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                let path = &meta.path;
                if path.is_ident("crate") {
                    let lit = string(&meta, "crate", CRATE_EXAMPLE)?;
                    // Mod-style: a crate path has no generic arguments.
                    let krate = lit.parse_with(syn::Path::parse_mod_style).map_err(|_| {
                        syn::Error::new(
                            lit.span(),
                            format!("expected a path: #[session(crate = \"{CRATE_EXAMPLE}\")]"),
                        )
                    })?;
                    c.crate_path.set(cx, path, krate);
                } else if path.is_ident("prefix") {
                    let lit = string(&meta, "prefix", "...")?;
                    c.prefix.set(cx, path, lit.value());
                } else if path.is_ident("rename_all") {
                    let lit = string(&meta, "rename_all", "camelCase")?;
                    match RenameRule::from_str(&lit.value()) {
                        Some(rule) => c.rename_all.set(cx, path, rule),
                        None => cx.error_spanned_by(
                            &lit,
                            format!("unknown #[session(rename_all)] rule, expected one of {}", RenameRule::NAMES),
                        ),
                    }
                } else if path.is_ident("default") {
                    c.default.set(cx, path, ());
                } else {
                    let name = quote::quote!(#path).to_string().replace(' ', "");
                    return Err(meta.error(format!(
                        "unknown session attribute `{name}` on a struct, expected `crate`, `prefix`, `rename_all` or `default`"
                    )));
                }
                Ok(())
            });
            if let Err(error) = parsed {
                cx.syn_error(error);
            }
        }
        c
    }

    /// The path generated code names session-actix by: the one
    /// `#[session(crate = "...")]` gives, or `::session_actix`.
    pub(crate) fn crate_path(&self) -> syn::Path {
        self.crate_path
            .get()
            .cloned()
            .unwrap_or_else(|| syn::parse_quote!(::session_actix))
    }
}

impl Field {
    pub(crate) fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut f = Field {
            key: Attr::none("key"),
            default: Attr::none("default"),
            skip: Attr::none("skip"),
        };
        for attr in session_attrs(attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                let path = &meta.path;
                if path.is_ident("key") {
                    let lit = string(&meta, "key", "...")?;
                    f.key.set(cx, path, lit);
                } else if path.is_ident("default") {
                    if meta.input.peek(syn::Token![=]) {
                        let lit = string(&meta, "default", "path::to::function")?;
                        let func: syn::ExprPath = lit.parse().map_err(|_| {
                            syn::Error::new(
                                lit.span(),
                                "expected the path of a function: #[session(default = \"path::to::function\")]",
                            )
                        })?;
                        f.default.set(cx, path, Default::Path(func));
                    } else {
                        f.default.set(cx, path, Default::Type);
                    }
                } else if path.is_ident("skip") {
                    f.skip.set(cx, path, ());
                } else {
                    let name = quote::quote!(#path).to_string().replace(' ', "");
                    return Err(meta.error(format!(
                        "unknown session attribute `{name}` on a field, expected `key`, `default` or `skip`"
                    )));
                }
                Ok(())
            });
            if let Err(error) = parsed {
                cx.syn_error(error);
            }
        }
        f
    }
}
