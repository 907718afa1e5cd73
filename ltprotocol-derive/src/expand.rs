//! Generates the `Wire`, `Message`, `Encode`, `Protocol` and `From` impls from the model that
//! `attr` parsed. Paths are absolute (`::ltprotocol::…`, `::core::…`), so user imports cannot
//! shadow them; local names are `Span::mixed_site()`, so user tokens cannot capture them.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Generics, Ident, Lit, Type, UnOp, parse_quote};

use crate::attr::{MessageStruct, Order, ProtocolEnum, Shape, WireStruct};

/// `impl Wire`: fields written and read in declaration order.
pub(crate) fn wire(input: &WireStruct) -> TokenStream {
    let ident = &input.ident;
    let generics = wire_bounds(&input.generics);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    // A struct without fields uses neither the writer nor the reader.
    let (w, r) = if input.fields.is_empty() {
        (local("_w"), local("_r"))
    } else {
        (local("w"), local("r"))
    };
    let e = local("e");

    let writes = input.fields.iter().map(|field| {
        let (ty, member) = (&field.ty, &field.member);
        let write = quote_spanned! {ty.span()=>
            <#ty as ::ltprotocol::Wire>::write(&self.#member, #w)
        };
        match field.byte_order {
            None => quote!(#write;),
            Some(order) => {
                let order = order_path(order);
                quote!(#w.with_order(#order, |#w| #write);)
            }
        }
    });

    let vars: Vec<Ident> = (0..input.fields.len())
        .map(|i| format_ident!("field_{}", i, span = Span::mixed_site()))
        .collect();
    let reads = input.fields.iter().zip(&vars).map(|(field, var)| {
        let (ty, name) = (&field.ty, &field.name);
        let read = quote_spanned! {ty.span()=>
            <#ty as ::ltprotocol::Wire>::read(#r)
        };
        let read = match field.byte_order {
            None => read,
            Some(order) => {
                let order = order_path(order);
                quote!(#r.with_order(#order, |#r| #read))
            }
        };
        quote!(let #var = #read.map_err(|#e| #e.in_field(#name))?;)
    });
    let members = input.fields.iter().map(|field| &field.member);
    let construct = match input.shape {
        Shape::Named => quote!(Self { #(#members: #vars),* }),
        Shape::Tuple => quote!(Self(#(#vars),*)),
        Shape::Unit => quote!(Self),
    };

    let hints = input.fields.iter().map(|field| {
        let (ty, member) = (&field.ty, &field.member);
        quote_spanned! {ty.span()=>
            <#ty as ::ltprotocol::Wire>::size_hint(&self.#member)
        }
    });
    let size_hint = if input.fields.is_empty() {
        quote!(0)
    } else {
        quote!(#(#hints)+*)
    };

    quote! {
        #[automatically_derived]
        #[allow(clippy::arithmetic_side_effects)]
        impl #impl_generics ::ltprotocol::Wire for #ident #ty_generics #where_clause {
            fn write(&self, #w: &mut ::ltprotocol::BodyWriter<'_>) {
                #(#writes)*
            }

            #[inline]
            fn read(
                #r: &mut ::ltprotocol::BodyReader<'_>,
            ) -> ::core::result::Result<Self, ::ltprotocol::BodyError> {
                #(#reads)*
                ::core::result::Result::Ok(#construct)
            }

            fn size_hint(&self) -> usize {
                #size_hint
            }
        }
    }
}

/// `impl Wire` and `impl Message`.
pub(crate) fn message(input: &MessageStruct) -> TokenStream {
    let wire = wire(&input.wire);
    let ident = &input.wire.ident;
    let generics = wire_bounds(&input.wire.generics);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let expr = &input.message_type;
    // An unsuffixed literal becomes an `i128` by inference, and one out of range is rustc's
    // error on the user's literal; anything else (a const, a suffixed literal) is cast.
    let message_type = if is_plain_int(expr) {
        quote!(#expr)
    } else {
        quote_spanned!(expr.span()=> (#expr) as i128)
    };
    let name = &input.name;

    quote! {
        #wire

        #[automatically_derived]
        #[allow(
            clippy::as_conversions,
            clippy::cast_lossless,
            clippy::cast_possible_truncation,
            clippy::cast_possible_wrap,
            clippy::cast_sign_loss,
            clippy::unnecessary_cast,
        )]
        impl #impl_generics ::ltprotocol::Message for #ident #ty_generics #where_clause {
            const MESSAGE_TYPE: ::ltprotocol::MessageType =
                ::ltprotocol::MessageType::new(#message_type);
            const NAME: &'static str = #name;
        }
    }
}

/// `impl Encode`, `impl Protocol`, the `From` impls, and the check that no two variants
/// share a type number.
pub(crate) fn protocol(input: &ProtocolEnum) -> TokenStream {
    let encode = encode_impl(input);
    let protocol = protocol_impl(input);
    let from = from_impls(input);
    let check = distinct_types_check(input);
    quote! {
        #encode
        #protocol
        #from
        #check
    }
}

/// `impl Encode`: each method delegates to the variant's message.
fn encode_impl(input: &ProtocolEnum) -> TokenStream {
    let (ident, unknown) = (&input.ident, &input.unknown);
    let variants: Vec<&Ident> = input.messages.iter().map(|m| &m.ident).collect();
    let types: Vec<&Type> = input.messages.iter().map(|m| &m.ty).collect();
    // `encode_body` takes a `BytesMut`: named through the library's hidden re-export, so a
    // user crate needs no `bytes` dependency of its own.
    let bytes_mut = quote!(::ltprotocol::protocol::__private::BytesMut);
    let (message, buf, order) = (local("message"), local("buf"), local("order"));
    quote! {
        #[automatically_derived]
        impl ::ltprotocol::Encode for #ident {
            fn message_type(&self) -> ::ltprotocol::MessageType {
                match self {
                    #(Self::#variants(#message) =>
                        <#types as ::ltprotocol::Encode>::message_type(#message),)*
                    Self::#unknown(#message) =>
                        <::ltprotocol::Unknown as ::ltprotocol::Encode>::message_type(#message),
                }
            }

            fn encode_body(&self, #buf: &mut #bytes_mut, #order: ::ltprotocol::ByteOrder) {
                match self {
                    #(Self::#variants(#message) =>
                        <#types as ::ltprotocol::Encode>::encode_body(#message, #buf, #order),)*
                    Self::#unknown(#message) =>
                        <::ltprotocol::Unknown as ::ltprotocol::Encode>::encode_body(
                            #message, #buf, #order,
                        ),
                }
            }

            fn body_size_hint(&self) -> usize {
                match self {
                    #(Self::#variants(#message) =>
                        <#types as ::ltprotocol::Encode>::body_size_hint(#message),)*
                    Self::#unknown(#message) =>
                        <::ltprotocol::Unknown as ::ltprotocol::Encode>::body_size_hint(#message),
                }
            }
        }
    }
}

/// `impl Protocol`: an `if` chain over the variants' `MESSAGE_TYPE`s, then the unknown one,
/// which keeps `Body::to_bytes` as `Unknown::decode` does. `Body` is `Copy`: each branch takes
/// it by value.
fn protocol_impl(input: &ProtocolEnum) -> TokenStream {
    let (ident, unknown) = (&input.ident, &input.unknown);
    let variants: Vec<&Ident> = input.messages.iter().map(|m| &m.ident).collect();
    let types: Vec<&Type> = input.messages.iter().map(|m| &m.ty).collect();
    let body = local("body");
    // Without message variants, `decode` and `is_known` ignore their arguments.
    let (message_type, order) = if variants.is_empty() {
        (local("_message_type"), local("_order"))
    } else {
        (local("message_type"), local("order"))
    };
    let is_known = if variants.is_empty() {
        quote!(false)
    } else {
        quote!(#(#message_type == <#types as ::ltprotocol::Message>::MESSAGE_TYPE)||*)
    };
    quote! {
        #[automatically_derived]
        impl ::ltprotocol::Protocol for #ident {
            #[inline(always)]
            fn decode(
                #message_type: ::ltprotocol::MessageType,
                #body: ::ltprotocol::Body<'_>,
                #order: ::ltprotocol::ByteOrder,
            ) -> ::core::result::Result<Self, ::ltprotocol::DecodeError> {
                #(
                    if #message_type == <#types as ::ltprotocol::Message>::MESSAGE_TYPE {
                        <#types as ::ltprotocol::Message>::decode_body(#body, #order)
                            .map(Self::#variants)
                    } else
                )*
                {
                    ::core::result::Result::Ok(Self::#unknown(::ltprotocol::Unknown {
                        message_type: #message_type,
                        body: ::ltprotocol::Body::to_bytes(&#body),
                    }))
                }
            }

            fn name(&self) -> &'static str {
                match self {
                    #(Self::#variants(_) => <#types as ::ltprotocol::Message>::NAME,)*
                    Self::#unknown(_) => "Unknown",
                }
            }

            fn is_known(#message_type: ::ltprotocol::MessageType) -> bool {
                #is_known
            }
        }
    }
}

/// `From` each variant's message, and from `Unknown`, into the enum.
fn from_impls(input: &ProtocolEnum) -> TokenStream {
    let (ident, unknown) = (&input.ident, &input.unknown);
    let variants = input.messages.iter().map(|m| &m.ident);
    let types = input.messages.iter().map(|m| &m.ty);
    let message = local("message");
    quote! {
        #(
            #[automatically_derived]
            impl ::core::convert::From<#types> for #ident {
                fn from(#message: #types) -> Self {
                    Self::#variants(#message)
                }
            }
        )*

        #[automatically_derived]
        impl ::core::convert::From<::ltprotocol::Unknown> for #ident {
            fn from(#message: ::ltprotocol::Unknown) -> Self {
                Self::#unknown(#message)
            }
        }
    }
}

/// A `const` item whose evaluation panics, which is a compile error, when two message
/// variants have the same `MESSAGE_TYPE`. The type numbers are only known after the derive has
/// run (a `message_type` may name a const), so the compiler checks them.
fn distinct_types_check(input: &ProtocolEnum) -> TokenStream {
    let count = input.messages.len();
    if count < 2 {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let types = input.messages.iter().map(|m| &m.ty);
    // A const panic may format one `&str` and nothing else, so each variant gets its message.
    let messages = input.messages.iter().map(|m| {
        format!(
            "variant `{ident}::{}` has the same message type as an earlier variant; give \
             each message its own #[ltp(message_type = N)]",
            m.ident
        )
    });
    let (types_var, messages_var, i, j) =
        (local("types"), local("messages"), local("i"), local("j"));
    quote_spanned! {ident.span()=>
        #[allow(clippy::indexing_slicing)]
        const _: () = {
            let #types_var: [i128; #count] =
                [#(<#types as ::ltprotocol::Message>::MESSAGE_TYPE.value()),*];
            let #messages_var: [&str; #count] = [#(#messages),*];
            let mut #j = 1;
            while #j < #count {
                let mut #i = 0;
                while #i < #j {
                    if #types_var[#i] == #types_var[#j] {
                        ::core::panic!("{}", #messages_var[#j]);
                    }
                    #i += 1;
                }
                #j += 1;
            }
        };
    }
}

/// `generics` with a `T: Wire` bound on each type parameter `T`.
fn wire_bounds(generics: &Generics) -> Generics {
    let mut generics = generics.clone();
    let params: Vec<Ident> = generics.type_params().map(|p| p.ident.clone()).collect();
    if !params.is_empty() {
        let where_clause = generics.make_where_clause();
        for param in params {
            where_clause
                .predicates
                .push(parse_quote!(#param: ::ltprotocol::Wire));
        }
    }
    generics
}

/// A local name the user's tokens cannot see.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

fn order_path(order: Order) -> TokenStream {
    match order {
        Order::Big => quote!(::ltprotocol::ByteOrder::Big),
        Order::Little => quote!(::ltprotocol::ByteOrder::Little),
    }
}

/// An integer literal without a suffix, possibly negated: `1`, `0x0a`, `-3`.
fn is_plain_int(expr: &Expr) -> bool {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int.suffix().is_empty(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => is_plain_int(expr),
        Expr::Group(group) => is_plain_int(&group.expr),
        _ => false,
    }
}
