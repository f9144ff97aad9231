//! A borrowed view of the input, with each field's attributes and key.

use syn::ext::IdentExt as _;
use syn::{Data, DeriveInput, Fields, Ident, Type};

use crate::attr;
use crate::ctxt::Ctxt;

pub(crate) struct Container<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) input: &'a DeriveInput,
    pub(crate) attrs: attr::Container,
    pub(crate) fields: Vec<Field<'a>>,
}

pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) attrs: attr::Field,
    /// The session key: prefix + (explicit key, or the renamed field name).
    pub(crate) key: String,
    pub(crate) original: &'a syn::Field,
}

impl<'a> Container<'a> {
    /// `None` if the input is not a struct with named fields (the error is
    /// in `cx`). `attrs` are the struct's, parsed by the caller, which needs
    /// the crate path even when there is no container.
    pub(crate) fn from_ast(
        cx: &Ctxt,
        input: &'a DeriveInput,
        attrs: attr::Container,
    ) -> Option<Self> {
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(&named.named),
                Fields::Unit => None,
                Fields::Unnamed(fields) => {
                    cx.error_spanned_by(
                        fields,
                        "#[derive(SessionData)] needs named fields: each field maps to a session key by its name",
                    );
                    return None;
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(
                    data.enum_token,
                    "#[derive(SessionData)] is for structs with named fields, not enums",
                );
                return None;
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "#[derive(SessionData)] is for structs with named fields, not unions",
                );
                return None;
            }
        };
        let prefix = attrs.prefix.get().cloned().unwrap_or_default();
        let rename = attrs.rename_all.get().copied();
        let fields = named
            .into_iter()
            .flatten()
            .map(|field| {
                let ident = field.ident.as_ref().expect("named fields have names");
                let attrs = attr::Field::from_ast(cx, &field.attrs);
                let name = ident.unraw().to_string();
                let key = match attrs.key.get() {
                    Some(lit) => lit.value(),
                    None => rename.map_or(name.clone(), |rule| rule.apply(&name)),
                };
                Field {
                    ident,
                    ty: &field.ty,
                    key: format!("{prefix}{key}"),
                    attrs,
                    original: field,
                }
            })
            .collect();
        Some(Container {
            ident: &input.ident,
            input,
            attrs,
            fields,
        })
    }

    /// The fields stored in the session (not `skip`ped).
    pub(crate) fn stored(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields.iter().filter(|f| f.attrs.skip.get().is_none())
    }
}
