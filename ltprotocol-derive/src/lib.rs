//! Derive macros for `ltprotocol`; use them through its re-exports.
use proc_macro::TokenStream;

/// See `ltprotocol::Message`.
#[proc_macro_derive(Message, attributes(ltp))]
pub fn derive_message(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
/// See `ltprotocol::Wire`.
#[proc_macro_derive(Wire, attributes(ltp))]
pub fn derive_wire(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
/// See `ltprotocol::Protocol`.
#[proc_macro_derive(Protocol, attributes(ltp))]
pub fn derive_protocol(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
