//! Parses a derive's input and its `#[ltp(...)]` attributes into a model, checking everything
//! that can be checked syntactically. Every error keeps the span of the tokens at fault.

use quote::ToTokens;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::{
    Attribute, Data, DeriveInput, Expr, Field, Fields, Generics, Ident, LitStr, Member, Token,
    Type, Variant,
};

/// A byte order a field overrides the body's with.
#[derive(Clone, Copy)]
pub(crate) enum Order {
    Big,
    Little,
}

/// One field of a `Wire` struct.
pub(crate) struct WireField {
    /// `self.<member>`: a name, or an index for tuple structs.
    pub(crate) member: Member,
    /// The name `BodyError::in_field` reports: the field's name, or its index.
    pub(crate) name: String,
    pub(crate) ty: Type,
    pub(crate) byte_order: Option<Order>,
}

/// How a struct's fields are written down.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    Named,
    Tuple,
    Unit,
}

/// A struct deriving `Wire` (or `Message`, which implies it).
pub(crate) struct WireStruct {
    pub(crate) ident: Ident,
    pub(crate) generics: Generics,
    pub(crate) shape: Shape,
    pub(crate) fields: Vec<WireField>,
}

/// A struct deriving `Message`.
pub(crate) struct MessageStruct {
    pub(crate) wire: WireStruct,
    pub(crate) message_type: Expr,
    pub(crate) name: String,
}

/// A variant of a `Protocol` enum that holds a message.
pub(crate) struct MessageVariant {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// An enum deriving `Protocol`.
pub(crate) struct ProtocolEnum {
    pub(crate) ident: Ident,
    pub(crate) messages: Vec<MessageVariant>,
    /// The `#[ltp(unknown)]` variant.
    pub(crate) unknown: Ident,
}

/// The struct-level keys of `#[derive(Message)]`.
const MESSAGE_KEYS: &[&str] = &["message_type", "name"];
/// The field-level keys of `#[derive(Wire)]` and `#[derive(Message)]`.
const FIELD_KEYS: &[&str] = &["byte_order"];
/// The variant-level keys of `#[derive(Protocol)]`.
const VARIANT_KEYS: &[&str] = &["unknown"];

/// The types that read the rest of the body, by the last segment of their path.
const REST_TYPES: &[&str] = &["String", "Bytes", "Vec"];

/// Parses a struct deriving `Wire`.
pub(crate) fn wire_struct(input: &DeriveInput) -> syn::Result<WireStruct> {
    let mut errors = Errors::default();
    let wire = struct_body(input, "Wire", &mut errors)?;
    for_each_key(
        &input.attrs,
        &[],
        "a struct deriving Wire",
        &mut errors,
        |key, meta| {
            if MESSAGE_KEYS.contains(&key) {
                return Err(meta.error(format!(
                    "`{key}` belongs to #[derive(Message)], which implements Wire too: \
                     derive Message instead of Wire"
                )));
            }
            Ok(false)
        },
    );
    errors.finish()?;
    Ok(wire)
}

/// Parses a struct deriving `Message`.
pub(crate) fn message_struct(input: &DeriveInput) -> syn::Result<MessageStruct> {
    let mut errors = Errors::default();
    let wire = struct_body(input, "Message", &mut errors)?;
    let mut message_type: Option<Expr> = None;
    let mut name: Option<LitStr> = None;
    for_each_key(
        &input.attrs,
        MESSAGE_KEYS,
        "a struct deriving Message",
        &mut errors,
        |key, meta| match key {
            "message_type" => set_once(&mut message_type, meta.value()?.parse()?, meta, key),
            "name" => set_once(&mut name, meta.value()?.parse()?, meta, key),
            _ => Ok(false),
        },
    );
    let Some(message_type) = message_type else {
        return Err(errors.fail(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Message)] needs #[ltp(message_type = N)]",
        )));
    };
    errors.finish()?;
    Ok(MessageStruct {
        message_type,
        name: name.map_or_else(|| wire.ident.unraw().to_string(), |lit| lit.value()),
        wire,
    })
}

/// Parses an enum deriving `Protocol`.
pub(crate) fn protocol_enum(input: &DeriveInput) -> syn::Result<ProtocolEnum> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "Protocol can only be derived for enums",
        ));
    };
    if !input.generics.params.is_empty() {
        // A protocol is `'static`, its variants name concrete messages, and the duplicate-type
        // check is a `const` item, which cannot see generic parameters.
        return Err(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Protocol)] does not support generic enums",
        ));
    }

    let mut errors = Errors::default();
    for_each_key(
        &input.attrs,
        &[],
        "an enum deriving Protocol",
        &mut errors,
        |_, _| Ok(false),
    );
    let mut messages: Vec<MessageVariant> = Vec::new();
    let mut unknown: Option<Ident> = None;
    // Whether a variant meant to be the unknown one but has an error of its own, which then
    // stands for the "needs one #[ltp(unknown)] variant" error.
    let mut unknown_failed = false;
    for variant in &data.variants {
        let (is_unknown, attrs_ok, field) = protocol_variant(variant, &mut errors);
        let Some(field) = field else {
            unknown_failed |= is_unknown;
            continue;
        };
        let holds_unknown = last_segment(&field.ty).is_some_and(|s| s == "Unknown");

        if is_unknown {
            if !holds_unknown {
                errors.push(syn::Error::new_spanned(
                    &field.ty,
                    "the #[ltp(unknown)] variant must hold ltprotocol::Unknown",
                ));
                unknown_failed = true;
            } else if let Some(first) = &unknown {
                errors.push(syn::Error::new_spanned(
                    variant,
                    format!(
                        "#[derive(Protocol)] needs one #[ltp(unknown)] variant holding \
                         ltprotocol::Unknown, not two: `{first}` is one already"
                    ),
                ));
            } else {
                unknown = Some(variant.ident.clone());
            }
            continue;
        }
        if holds_unknown {
            if attrs_ok {
                errors.push(syn::Error::new_spanned(
                    variant,
                    "a variant holding `Unknown` needs #[ltp(unknown)]",
                ));
            }
            unknown_failed = true;
            continue;
        }
        let key = type_key(&field.ty);
        if let Some(first) = messages.iter().find(|m| type_key(&m.ty) == key) {
            errors.push(syn::Error::new_spanned(
                &field.ty,
                format!(
                    "`{key}` is held by two variants, `{}` and `{}`; a protocol holds each \
                     message type once",
                    first.ident, variant.ident
                ),
            ));
            continue;
        }
        messages.push(MessageVariant {
            ident: variant.ident.clone(),
            ty: field.ty.clone(),
        });
    }
    let Some(unknown) = unknown else {
        let missing = syn::Error::new_spanned(
            &input.ident,
            "#[derive(Protocol)] needs one #[ltp(unknown)] variant holding ltprotocol::Unknown, \
             so that no frame is dropped",
        );
        return Err(if unknown_failed {
            errors.fail_or(missing)
        } else {
            errors.fail(missing)
        });
    };
    errors.finish()?;
    Ok(ProtocolEnum {
        ident: input.ident.clone(),
        messages,
        unknown,
    })
}

/// One variant of a `Protocol` enum: whether it carries `#[ltp(unknown)]`, whether its
/// attributes parsed, and its one field (`None` after pushing an error).
fn protocol_variant<'a>(
    variant: &'a Variant,
    errors: &mut Errors,
) -> (bool, bool, Option<&'a Field>) {
    let mut is_unknown = false;
    let attrs_ok = for_each_key(
        &variant.attrs,
        VARIANT_KEYS,
        "a variant of an enum deriving Protocol",
        errors,
        |key, meta| {
            if key != "unknown" {
                return Ok(false);
            }
            if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                return Err(meta.error("`unknown` takes no value"));
            }
            if is_unknown {
                return Err(meta.error("duplicate key `unknown`"));
            }
            is_unknown = true;
            Ok(true)
        },
    );
    let field = match &variant.fields {
        Fields::Unnamed(fields) if fields.unnamed.len() == 1 => &fields.unnamed[0],
        _ => {
            errors.push(syn::Error::new_spanned(
                variant,
                "each variant of an enum deriving Protocol holds exactly one unnamed field, \
                 like `Hello(HelloMsg)`",
            ));
            return (is_unknown, attrs_ok, None);
        }
    };
    for_each_key(
        &field.attrs,
        &[],
        "the field of a variant of an enum deriving Protocol",
        errors,
        |_, _| Ok(false),
    );
    (is_unknown, attrs_ok, Some(field))
}

/// The fields of a struct deriving `derive`. Field errors go to `errors`; an enum or a union
/// is an error of its own, returned at once.
fn struct_body(input: &DeriveInput, derive: &str, errors: &mut Errors) -> syn::Result<WireStruct> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            format!("{derive} can only be derived for structs"),
        ));
    };
    let shape = match &data.fields {
        Fields::Named(_) => Shape::Named,
        Fields::Unnamed(_) => Shape::Tuple,
        Fields::Unit => Shape::Unit,
    };
    let count = data.fields.len();
    let mut fields = Vec::with_capacity(count);
    for (index, field) in data.fields.iter().enumerate() {
        let mut byte_order: Option<Order> = None;
        for_each_key(&field.attrs, FIELD_KEYS, "a field", errors, |key, meta| {
            if key != "byte_order" {
                return Ok(false);
            }
            let lit: LitStr = meta.value()?.parse()?;
            let order = match lit.value().as_str() {
                "big" => Order::Big,
                "little" => Order::Little,
                _ => {
                    return Err(syn::Error::new_spanned(
                        &lit,
                        "byte_order is \"big\" or \"little\"",
                    ));
                }
            };
            set_once(&mut byte_order, order, meta, key)
        });

        let rest = last_segment(&field.ty).filter(|s| REST_TYPES.contains(&s.as_str()));
        if let Some(rest) = rest.filter(|_| index + 1 < count) {
            errors.push(syn::Error::new_spanned(
                &field.ty,
                format!("`{rest}` takes the rest of the body, so it must be the last field"),
            ));
        }

        let (member, name) = match &field.ident {
            Some(ident) => (Member::Named(ident.clone()), ident.unraw().to_string()),
            None => (Member::from(index), index.to_string()),
        };
        fields.push(WireField {
            member,
            name,
            ty: field.ty.clone(),
            byte_order,
        });
    }
    Ok(WireStruct {
        ident: input.ident.clone(),
        generics: input.generics.clone(),
        shape,
        fields,
    })
}

/// Calls `f` with each key of each `#[ltp(...)]` among `attrs`; `f` parses the key's value
/// and returns `Ok(true)`, or `Ok(false)` for a key it does not know, which becomes an error
/// naming the `accepted` keys and `what` carries the attribute. Errors go to `errors`; returns
/// whether there were none.
fn for_each_key(
    attrs: &[Attribute],
    accepted: &[&str],
    what: &str,
    errors: &mut Errors,
    mut f: impl FnMut(&str, &ParseNestedMeta<'_>) -> syn::Result<bool>,
) -> bool {
    let mut ok = true;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("ltp")) {
        let result = attr.parse_nested_meta(|meta| {
            let key = meta.path.to_token_stream().to_string().replace(' ', "");
            if f(&key, &meta)? {
                Ok(())
            } else {
                Err(meta.error(unknown_key_message(&key, accepted, what)))
            }
        });
        if let Err(error) = result {
            errors.push(error);
            ok = false;
        }
    }
    ok
}

fn unknown_key_message(key: &str, accepted: &[&str], what: &str) -> String {
    let list = accepted
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match accepted.len() {
        0 => format!("unknown key `{key}`: #[ltp(...)] takes no keys on {what}"),
        1 => format!("unknown key `{key}` in #[ltp(...)] on {what}; the accepted key is {list}"),
        _ => format!("unknown key `{key}` in #[ltp(...)] on {what}; the accepted keys are {list}"),
    }
}

/// Fills `slot`, or fails on a key given twice.
fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &ParseNestedMeta<'_>,
    key: &str,
) -> syn::Result<bool> {
    if slot.is_some() {
        return Err(meta.error(format!("duplicate key `{key}`")));
    }
    *slot = Some(value);
    Ok(true)
}

/// The last segment of a path type (`String` for `std::string::String`).
fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().map(|s| s.ident.to_string())
        }
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// A type as written, to compare two variants' types.
fn type_key(ty: &Type) -> String {
    ty.to_token_stream().to_string().replace(' ', "")
}

/// Collects errors, so that one compile run reports them all.
#[derive(Default)]
struct Errors {
    error: Option<syn::Error>,
}

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.error {
            Some(first) => first.combine(error),
            None => self.error = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.error.map_or(Ok(()), Err)
    }

    /// All the errors, `last` included.
    fn fail(self, last: syn::Error) -> syn::Error {
        match self.error {
            Some(mut first) => {
                first.combine(last);
                first
            }
            None => last,
        }
    }

    /// The errors so far, or `fallback` when there are none.
    fn fail_or(self, fallback: syn::Error) -> syn::Error {
        self.error.unwrap_or(fallback)
    }
}
