//! Generates the `SessionData` impl and the accessors.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::DeriveInput;
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;

use crate::ast::{Container, Field};
use crate::attr;
use crate::ctxt::Ctxt;
use crate::valid;

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::default();
    let attrs = attr::Container::from_ast(&cx, &input.attrs);
    let krate = attrs.crate_path();
    let cont = Container::from_ast(&cx, input, attrs);
    if let Some(cont) = &cont {
        valid::check(&cx, cont);
    }
    match (cx.check(), cont) {
        (Ok(()), Some(cont)) => expand(&cont, &krate),
        (Err(error), _) => {
            let mut out = error.to_compile_error();
            out.extend(stub(input, &krate));
            out
        }
        // A unit struct: nothing to store, but nothing wrong either.
        (Ok(()), None) => stub(input, &krate),
    }
}

/// The accessor type's name: `Cart` gets `CartSession`.
fn accessors_ident(input: &DeriveInput) -> syn::Ident {
    format_ident!("{}Session", input.ident.unraw())
}

/// What is emitted beside a compile error, so that code using the type
/// does not drown the real error in follow-on ones.
///
/// Like `expand`, it names everything by a full path (`krate` for
/// session-actix, `::core` for the rest), which no item of the user's can
/// shadow.
fn stub(input: &DeriveInput, krate: &syn::Path) -> TokenStream {
    let ident = &input.ident;
    let vis = &input.vis;
    let accessors = accessors_ident(input);
    let stub_struct = quote! {
        #[doc(hidden)]
        #vis struct #accessors {
            __session: #krate::__private::Session,
        }
    };
    // A generic struct cannot implement the trait anyway (its rejection is
    // the error being reported).
    if !input.generics.params.is_empty() {
        return stub_struct;
    }
    quote! {
        #stub_struct
        const _: () = {
            #[automatically_derived]
            impl #krate::SessionData for #ident {
                type Accessors = #accessors;
                const KEYS: &'static [&'static ::core::primitive::str] = &[];
                fn __accessors(session: #krate::__private::Session) -> #accessors {
                    #accessors { __session: session }
                }
            }
        };
    }
}

/// How a field gets its value when its key is missing or unreadable, with
/// the span that a compile error about it should point at: the function
/// path, the field's `#[session(default)]` (or its type, when the default is
/// implied) or the struct's `#[session(default)]`.
enum DefaultKind<'a> {
    Path(&'a syn::ExprPath),
    Type(Span),
    Container(Span),
}

fn default_kind<'a>(cont: &Container<'_>, field: &'a Field<'_>) -> DefaultKind<'a> {
    let attr = &field.attrs.default;
    match attr.get() {
        Some(attr::Default::Path(path)) => DefaultKind::Path(path),
        Some(attr::Default::Type) => {
            DefaultKind::Type(attr.span().unwrap_or_else(|| field.ty.span()))
        }
        None => match cont.attrs.default.span() {
            Some(span) => DefaultKind::Container(span),
            None => DefaultKind::Type(field.ty.span()),
        },
    }
}

/// The field's default, as a value.
///
/// A field type's default leaves the type to inference (`Default::default()`,
/// not `<T as Default>::default()`), so that a missing `Default` impl is
/// reported once, at the span chosen by `default_kind`, rather than also at
/// the type's own tokens.
fn default_value(cont: &Container<'_>, field: &Field<'_>) -> TokenStream {
    match default_kind(cont, field) {
        DefaultKind::Path(path) => quote_spanned!(path.span()=> #path()),
        DefaultKind::Type(span) => quote_spanned!(span=> ::core::default::Default::default()),
        DefaultKind::Container(span) => {
            // The struct's name, respanned: rustc reports a missing impl at
            // the self type, which should be the attribute that asks for it.
            let mut this = cont.ident.clone();
            this.set_span(span);
            let ident = field.ident;
            quote_spanned!(span=> <#this as ::core::default::Default>::default().#ident)
        }
    }
}

/// The field's default, as something to call: a closure around
/// `default_value`, so that rustc checks the call itself and reports a
/// mistake there, at the user's tokens ("cannot find function", "expected
/// `u32`, found `u64`", "`Currency: Default` is not satisfied"), rather than
/// as an `FnOnce` bound of the runtime's `get` that points at the derive.
fn default_fn(cont: &Container<'_>, field: &Field<'_>) -> TokenStream {
    let value = default_value(cont, field);
    quote_spanned!(value.span()=> || #value)
}

/// The generated code, which names everything by a full path: session-actix
/// by `krate` (`::session_actix`, or `#[session(crate = "...")]`), the rest
/// from `::core`, so that no item of the user's (a `struct Result`, a
/// `trait Default`) changes what it means.
fn expand(cont: &Container<'_>, krate: &syn::Path) -> TokenStream {
    let ident = cont.ident;
    let vis = &cont.input.vis;
    let accessors = accessors_ident(cont.input);
    let accessors_name = accessors.to_string();
    let private = quote!(#krate::__private);
    let keys = cont.stored().map(|f| &f.key);
    // A const assertion per field, at the field: the list of reserved
    // names is session-core's alone.
    let reserved = cont.stored().map(|field| {
        let key = &field.key;
        let span = field
            .attrs
            .key
            .tokens()
            .map_or_else(|| field.ident.span(), |tokens| tokens.span());
        quote_spanned! {span=>
            ::core::assert!(
                !#private::is_reserved(#key),
                "this session key is reserved: the session keeps its own settings and user \
                 under _permanent, _lifetime, _user and _seen (and keys starting with NUL are \
                 the stores'); name the field's key with #[session(key = \"...\")]"
            );
        }
    });
    let struct_doc = format!(
        "Typed session accessors for [`{ident}`], generated by `#[derive(SessionData)]`.\n\n\
         Each field is one session key; reading a field whose key is missing, or whose \
         stored value no longer fits its type, gives the field's default (the latter is \
         logged). Setting a field records a change of its key only, so concurrent requests \
         that set different fields all keep their change.\n\n\
         Get one by taking `TypedSession<{ident}>` as a handler argument."
    );

    let methods = cont.stored().map(|field| {
        let name = field.ident;
        let bare = name.unraw();
        let ty = field.ty;
        let key = &field.key;
        let default = default_fn(cont, field);
        let set = format_ident!("set_{}", bare);
        let remove = format_ident!("remove_{}", bare);
        let update = format_ident!("update_{}", bare);
        let span = field.original.span();
        let doc_get = format!(
            "Reads `{bare}` (session key `{key:?}`); its default when the key is missing or unreadable."
        );
        let doc_set = format!("Sets `{bare}` (session key `{key:?}`).");
        let doc_remove = format!(
            "Removes session key `{key:?}`, so `{bare}` reads as its default; true if it was there."
        );
        let doc_update = format!(
            "Reads `{bare}` (session key `{key:?}`), lets `f` change it, and sets it."
        );
        quote_spanned! {span=>
            #[doc = #doc_get]
            // The default is a closure on purpose (see `default_fn`); its
            // tokens carry the user's spans, so clippy would ask for a path.
            #[allow(clippy::redundant_closure)]
            #vis fn #name(&self) -> #ty {
                #private::get::<#ty>(&self.__session, #key, #default)
            }

            #[doc = #doc_set]
            #vis fn #set(&self, value: #ty) -> ::core::result::Result<(), #private::SessionError> {
                #private::set::<#ty>(&self.__session, #key, &value)
            }

            #[doc = #doc_remove]
            #vis fn #remove(&self) -> ::core::primitive::bool {
                #private::remove(&self.__session, #key)
            }

            #[doc = #doc_update]
            #vis fn #update(
                &self,
                f: impl ::core::ops::FnOnce(&mut #ty),
            ) -> ::core::result::Result<(), #private::SessionError> {
                let mut value = self.#name();
                f(&mut value);
                self.#set(value)
            }
        }
    });

    let load_fields = cont.fields.iter().map(|field| {
        let name = field.ident;
        if field.attrs.skip.get().is_some() {
            let default = default_value(cont, field);
            quote!(#name: #default)
        } else {
            quote!(#name: self.#name())
        }
    });
    let save_fields = cont.stored().map(|field| {
        let name = field.ident;
        let ty = field.ty;
        let key = &field.key;
        quote!(#private::save::<#ty>(&self.__session, #key, &value.#name)?;)
    });
    let clear_fields = cont.stored().map(|field| {
        let key = &field.key;
        quote!(#private::remove(&self.__session, #key);)
    });

    quote! {
        #[doc = #struct_doc]
        #vis struct #accessors {
            __session: #private::Session,
        }

        const _: () = {
            // The session keeps its own settings and user under reserved
            // names: no field may take one.
            #(#reserved)*

            #[automatically_derived]
            impl #krate::SessionData for #ident {
                type Accessors = #accessors;
                const KEYS: &'static [&'static ::core::primitive::str] = &[#(#keys),*];
                fn __accessors(session: #private::Session) -> #accessors {
                    #accessors { __session: session }
                }
            }

            // What `#[derive(Clone, Debug)]` would generate, written out so
            // that it names the traits by their full paths.
            #[automatically_derived]
            impl ::core::clone::Clone for #accessors {
                #[inline]
                fn clone(&self) -> Self {
                    #accessors {
                        __session: ::core::clone::Clone::clone(&self.__session),
                    }
                }
            }

            #[automatically_derived]
            impl ::core::fmt::Debug for #accessors {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    ::core::fmt::Formatter::debug_struct(f, #accessors_name)
                        .field("__session", &self.__session)
                        .finish()
                }
            }

            // Accessors a program does not call are not dead code to warn
            // about. (No `#[automatically_derived]` here: rustc accepts it
            // on trait impls only, and warns on an inherent impl.)
            #[allow(dead_code)]
            impl #accessors {
                #(#methods)*

                /// Reads every field at once (skipped fields get their default).
                #vis fn load(&self) -> #ident {
                    #ident { #(#load_fields),* }
                }

                /// Sets every field at once; only the fields whose value differs
                /// from the stored one are recorded as changes.
                #vis fn save(&self, value: &#ident) -> ::core::result::Result<(), #private::SessionError> {
                    #(#save_fields)*
                    ::core::result::Result::Ok(())
                }

                /// Removes every key of this struct, and no other key of the session.
                #vis fn clear(&self) {
                    #(#clear_fields)*
                }

                /// The whole session, for keys this struct does not declare.
                #vis fn session(&self) -> &#private::Session {
                    &self.__session
                }
            }
        };
    }
}
