//! Derive macros for [`ltprotocol`](https://docs.rs/ltprotocol): `#[derive(Wire)]`,
//! `#[derive(Message)]` and `#[derive(Protocol)]`. Use them through the library's re-exports
//! (`use ltprotocol::{Message, Protocol, Wire};`, feature `derive`, on by default); the code
//! they generate names `::ltprotocol::…` paths only. The examples here are not compiled (this
//! crate cannot depend on the library); the same examples run as doctests on the library's
//! traits of the same names.
//!
//! # `#[derive(Wire)]`: a struct as body fields
//!
//! Writes the fields in declaration order, reads them back in the same order and sums their
//! size hints. Named, tuple and unit structs work; a unit struct is an empty body. Every field
//! type must implement `Wire`: integers, `f32`/`f64`, `bool`, `[u8; N]`, other
//! `#[derive(Wire)]` structs, and the rest-of-body types `String`, `Bytes` and `Vec<u8>`,
//! which only the last field may have. A field that fails to read names itself in the error
//! (`BodyError::field`, the index for tuple fields). Type parameters get a `T: Wire` bound.
//!
//! ```ignore
//! #[derive(Debug, PartialEq, ltprotocol::Wire)]
//! struct Port {
//!     number: u32,
//!     #[ltp(byte_order = "little")] // this field's integers, whatever the body's order
//!     flags: u16,
//!     hw_addr: [u8; 6],
//! }
//! ```
//!
//! # `#[derive(Message)]`: a type number and a body
//!
//! Everything `#[derive(Wire)]` does (do not derive both), plus `Message` with the type
//! number and a name for logs and errors:
//!
//! ```ignore
//! #[derive(Debug, PartialEq, ltprotocol::Message)]
//! #[ltp(message_type = 1)]
//! pub struct NumMsg {
//!     pub num: u32,
//! }
//!
//! const OFPT_HELLO: u8 = 0;
//!
//! #[derive(Debug, ltprotocol::Message)]
//! #[ltp(message_type = OFPT_HELLO, name = "OFPT_HELLO")]
//! pub struct Hello;
//! ```
//!
//! # `#[derive(Protocol)]`: an enum of messages
//!
//! Each variant holds one message; exactly one, marked `#[ltp(unknown)]`, holds an
//! `ltprotocol::Unknown` and receives every frame whose type no other variant claims, so no
//! frame is dropped. Generates `Encode` and `Protocol` (decode by type number, `name`,
//! `is_known`), `From` each message (and `Unknown`) into the enum, and a compile-time check
//! that no two variants have the same type number.
//!
//! ```ignore
//! #[derive(Debug, PartialEq, ltprotocol::Protocol)]
//! pub enum Demo {
//!     Num(NumMsg),
//!     Str(StrMsg),
//!     #[ltp(unknown)]
//!     Other(ltprotocol::Unknown),
//! }
//! ```
//!
//! # Attributes
//!
//! * `#[ltp(message_type = N)]` on a `Message` struct, required: the type number, an integer
//!   literal (negative ones too) or a path to a const of any integer type.
//! * `#[ltp(name = "OFPT_HELLO")]` on a `Message` struct: `Message::NAME`; the struct's name by
//!   default.
//! * `#[ltp(byte_order = "big")]` or `"little"` on a field of a `Wire` or `Message` struct: the
//!   field's integers, nested ones included, use this order instead of the body's.
//! * `#[ltp(unknown)]` on a `Protocol` variant: the one that holds `Unknown`.
//!
//! Keys combine in one attribute (`#[ltp(message_type = 0, name = "OFPT_HELLO")]`). An
//! unknown key is a compile error naming the keys accepted there, as are: a missing
//! `message_type`, a rest-of-body field that is not last, a `Protocol` without exactly one
//! unknown variant, a variant that is not `Name(Type)`, two variants holding the same type,
//! generic `Protocol` enums, and deriving on the wrong kind of item. Two variants whose
//! messages have the same type number fail to compile too, once the numbers are known: a
//! constant evaluation error names the later variant.

mod attr;
mod expand;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `ltprotocol::Wire` for a struct: its fields, in declaration order, are the
/// body. Field attribute: `#[ltp(byte_order = "big" | "little")]`. See the crate docs.
#[proc_macro_derive(Wire, attributes(ltp))]
pub fn derive_wire(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    attr::wire_struct(&input)
        .map_or_else(syn::Error::into_compile_error, |model| expand::wire(&model))
        .into()
}

/// Implements `ltprotocol::Wire` and `ltprotocol::Message` for a struct. Struct attributes:
/// `#[ltp(message_type = N)]` (required) and `#[ltp(name = "…")]`; field attributes as for
/// `Wire`. See the crate docs.
#[proc_macro_derive(Message, attributes(ltp))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    attr::message_struct(&input)
        .map_or_else(syn::Error::into_compile_error, |model| {
            expand::message(&model)
        })
        .into()
}

/// Implements `ltprotocol::Encode`, `ltprotocol::Protocol` and `From` each variant's message
/// for an enum of messages with one `#[ltp(unknown)]` variant holding `ltprotocol::Unknown`.
/// See the crate docs.
#[proc_macro_derive(Protocol, attributes(ltp))]
pub fn derive_protocol(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    attr::protocol_enum(&input)
        .map_or_else(syn::Error::into_compile_error, |model| {
            expand::protocol(&model)
        })
        .into()
}
