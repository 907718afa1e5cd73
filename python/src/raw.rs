//! [`RawMessage`]: a type number and a body borrowed from a Python `bytes`, sent without
//! copying it first: the body is written straight into the connection's outbox.

use bytes::BytesMut;
use ltprotocol::{ByteOrder, Encode, MessageType};

/// A message as Python hands it over: its type number and its packed body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawMessage<'a> {
    /// The type number.
    pub(crate) message_type: i128,
    /// The body, as `pack()` made it.
    pub(crate) body: &'a [u8],
}

impl Encode for RawMessage<'_> {
    fn message_type(&self) -> MessageType {
        MessageType::new(self.message_type)
    }

    fn encode_body(&self, buf: &mut BytesMut, _order: ByteOrder) {
        buf.extend_from_slice(self.body);
    }

    fn body_size_hint(&self) -> usize {
        self.body.len()
    }
}
