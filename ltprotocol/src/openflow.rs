//! OpenFlow 1.3 on the public API: the layout, the common messages, the HELLO + FEATURES
//! handshake, echo auto-reply and keepalive. Nothing here is special-cased in the runtime:
//! every piece is a generic feature (correlation on `xid`, a [`Handshake`], an auto-reply
//! rule, a [`Keepalive`]) configured for OpenFlow.
//!
//! ```no_run
//! use ltprotocol::openflow::{self, OpenFlow13, SwitchInfo};
//! use ltprotocol::{Event, Message, Server};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = openflow::controller::<Server<OpenFlow13>>().bind("127.0.0.1:6653").await?;
//! let mut events = server.events();
//! while let Some(event) = events.next().await {
//!     if let Event::Connected(switch) = event {
//!         let info = switch.handshake_output::<SwitchInfo>().unwrap();
//!         println!("switch {:#x} connected", info.datapath_id.unwrap_or_default());
//!         let reply = switch.request(&openflow::BarrierRequest).await?;
//!         assert_eq!(reply.message_type, openflow::BarrierReply::MESSAGE_TYPE);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;

use crate::client::{ClientBuilder, ReconnectingClient};
use crate::connection::Keepalive;
use crate::frame::{Frame, FrameRef, HeaderFields, MessageType};
use crate::handshake::{Handshake, HandshakeContext, HandshakeError};
use crate::layout::HeaderLayout;
use crate::message::Body;
use crate::protocol::Unknown;
use crate::request::Correlation;
use crate::server::{Server, ServerBuilder};
use crate::{Message, Protocol};

/// The version number of OpenFlow 1.3 in the header's `version` field.
pub const OFP13_VERSION: u8 = 0x04;

/// OFPT_HELLO (0): optional hello elements, such as a version bitmap.
#[derive(Debug, Clone, PartialEq, Eq, Default, Message)]
#[ltp(message_type = 0, name = "OFPT_HELLO")]
pub struct Hello {
    /// The hello elements, raw.
    pub elements: Bytes,
}

impl Hello {
    /// A HELLO carrying a version-bitmap element for `versions` (each below 32).
    ///
    /// ```
    /// use ltprotocol::openflow::Hello;
    /// assert_eq!(&Hello::with_versions(&[4]).elements[..], &[0, 1, 0, 8, 0, 0, 0, 0x10]);
    /// ```
    pub fn with_versions(versions: &[u8]) -> Self {
        let bitmap = versions
            .iter()
            .filter(|v| **v < 32)
            .fold(0u32, |bits, v| bits | (1 << v));
        let mut elements = Vec::with_capacity(8);
        elements.extend_from_slice(&1u16.to_be_bytes());
        elements.extend_from_slice(&8u16.to_be_bytes());
        elements.extend_from_slice(&bitmap.to_be_bytes());
        Self {
            elements: elements.into(),
        }
    }

    /// The versions of the first version-bitmap element, if there is one.
    pub fn versions(&self) -> Option<Vec<u8>> {
        let mut rest = &self.elements[..];
        loop {
            let (kind, len) = match rest {
                [k0, k1, l0, l1, ..] => (
                    u16::from_be_bytes([*k0, *k1]),
                    usize::from(u16::from_be_bytes([*l0, *l1])),
                ),
                _ => return None,
            };
            if len < 4 {
                return None;
            }
            if kind == 1 {
                let words = rest.get(4..len)?;
                let mut versions = Vec::new();
                for (index, word) in words.chunks_exact(4).enumerate() {
                    let bits = u32::from_be_bytes(<[u8; 4]>::try_from(word).ok()?);
                    for bit in 0..32u32 {
                        if bits & (1 << bit) != 0 {
                            versions.push(u8::try_from(index as u32 * 32 + bit).ok()?);
                        }
                    }
                }
                return Some(versions);
            }
            // Elements are padded to a multiple of 8 bytes.
            rest = rest.get(len.div_ceil(8) * 8..)?;
        }
    }
}

/// OFPT_ERROR (1): an error, carrying the xid of the message that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 1, name = "OFPT_ERROR")]
pub struct Error {
    /// The error type (`HELLO_FAILED` is 0, `BAD_REQUEST` 1, …).
    pub err_type: u16,
    /// The code within the type.
    pub code: u16,
    /// At least the start of the offending message, or an ASCII explanation.
    pub data: Bytes,
}

/// OFPT_ECHO_REQUEST (2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Message)]
#[ltp(message_type = 2, name = "OFPT_ECHO_REQUEST")]
pub struct EchoRequest {
    /// Arbitrary data, echoed back.
    pub data: Bytes,
}

/// OFPT_ECHO_REPLY (3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Message)]
#[ltp(message_type = 3, name = "OFPT_ECHO_REPLY")]
pub struct EchoReply {
    /// The request's data.
    pub data: Bytes,
}

/// OFPT_FEATURES_REQUEST (5): empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Message)]
#[ltp(message_type = 5, name = "OFPT_FEATURES_REQUEST")]
pub struct FeaturesRequest;

/// OFPT_FEATURES_REPLY (6), OpenFlow 1.3's 24-byte body.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 6, name = "OFPT_FEATURES_REPLY")]
pub struct FeaturesReply {
    /// The datapath's unique id.
    pub datapath_id: u64,
    /// Packets the switch can buffer.
    pub n_buffers: u32,
    /// Tables in the pipeline.
    pub n_tables: u8,
    /// The auxiliary connection's id (0 for the main one).
    pub auxiliary_id: u8,
    /// Padding.
    pub pad: [u8; 2],
    /// OFPC_* capability bits.
    pub capabilities: u32,
    /// Reserved.
    pub reserved: u32,
}

/// OFPT_PACKET_IN (10): the fixed part, then the match and the packet, raw.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 10, name = "OFPT_PACKET_IN")]
pub struct PacketIn {
    /// The buffer id, or `0xffff_ffff` when the packet is not buffered.
    pub buffer_id: u32,
    /// The full length of the packet.
    pub total_len: u16,
    /// Why it was sent (OFPR_*).
    pub reason: u8,
    /// The table it was looked up in.
    pub table_id: u8,
    /// The flow's cookie.
    pub cookie: u64,
    /// The match, padding and packet data.
    pub rest: Bytes,
}

impl PacketIn {
    /// The ingress port, from the `OXM_OF_IN_PORT` field of the packet's match.
    pub fn in_port(&self) -> Option<u32> {
        // ofp_match: type u16, length u16 (without padding), then OXM TLVs.
        let length = match self.rest.get(..4)? {
            &[_, _, high, low] => usize::from(u16::from_be_bytes([high, low])),
            _ => return None,
        };
        let mut oxms = self.rest.get(4..length)?;
        while let [c0, c1, field, len, rest @ ..] = oxms {
            let class = u16::from_be_bytes([*c0, *c1]);
            let len = usize::from(*len);
            let value = rest.get(..len)?;
            if class == 0x8000 && field >> 1 == 0 {
                return Some(u32::from_be_bytes(<[u8; 4]>::try_from(value).ok()?));
            }
            oxms = rest.get(len..)?;
        }
        None
    }
}

/// OFPT_FLOW_MOD (14): the fixed part, then the match and the instructions, raw. Build the
/// common ones with [`FlowMod::add_output`] and [`FlowMod::table_miss_to_controller`].
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 14, name = "OFPT_FLOW_MOD")]
pub struct FlowMod {
    /// Opaque controller-issued identifier.
    pub cookie: u64,
    /// Which cookie bits must match (modify and delete).
    pub cookie_mask: u64,
    /// The table.
    pub table_id: u8,
    /// OFPFC_ADD (0), MODIFY (1), MODIFY_STRICT (2), DELETE (3), DELETE_STRICT (4).
    pub command: u8,
    /// Idle time before the flow expires, in seconds (0: never).
    pub idle_timeout: u16,
    /// Time before the flow expires, in seconds (0: never).
    pub hard_timeout: u16,
    /// The flow's priority.
    pub priority: u16,
    /// A buffered packet to apply the flow to, or `0xffff_ffff`.
    pub buffer_id: u32,
    /// For delete: output port filter, or `OFPP_ANY`.
    pub out_port: u32,
    /// For delete: output group filter, or `OFPG_ANY`.
    pub out_group: u32,
    /// OFPFF_* flags.
    pub flags: u16,
    /// Padding.
    pub pad: [u8; 2],
    /// The match (`ofp_match`, padded to 8 bytes) and the instructions, raw.
    pub rest: Bytes,
}

/// OFPP_CONTROLLER: the output port that sends packets to the controller.
pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;

impl FlowMod {
    /// OFPFC_ADD of a flow matching the OXM fields `oxm` (raw TLVs, empty to match everything)
    /// whose instruction applies one output action to `port` (whole packets: max_len
    /// OFPCML_NO_BUFFER).
    ///
    /// ```
    /// use ltprotocol::openflow::{FlowMod, OFPP_CONTROLLER};
    /// use ltprotocol::{FrameCodec, HeaderLayout};
    /// let mut wire = bytes::BytesMut::new();
    /// FrameCodec::new(HeaderLayout::openflow()).encode_message(&FlowMod::add_output(0, &[], OFPP_CONTROLLER), &mut wire)?;
    /// assert_eq!(wire.len(), 80); // the table-miss flow
    /// # Ok::<(), ltprotocol::EncodeError>(())
    /// ```
    pub fn add_output(priority: u16, oxm: &[u8], port: u32) -> Self {
        let mut rest = Vec::with_capacity(48 + oxm.len());
        // ofp_match: OFPMT_OXM (1), its length without padding, the fields, padding to 8.
        let match_len = 4 + oxm.len();
        rest.extend_from_slice(&1u16.to_be_bytes());
        rest.extend_from_slice(&u16::try_from(match_len).unwrap_or(u16::MAX).to_be_bytes());
        rest.extend_from_slice(oxm);
        rest.resize(match_len.div_ceil(8) * 8, 0);
        // OFPIT_APPLY_ACTIONS (4), 24 bytes, padding; OFPAT_OUTPUT (0), 16 bytes, port,
        // max_len OFPCML_NO_BUFFER, padding.
        rest.extend_from_slice(&[0, 4, 0, 24, 0, 0, 0, 0]);
        rest.extend_from_slice(&[0, 0, 0, 16]);
        rest.extend_from_slice(&port.to_be_bytes());
        rest.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0, 0, 0]);
        Self {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            priority,
            buffer_id: 0xffff_ffff,
            out_port: 0xffff_ffff,
            out_group: 0xffff_ffff,
            flags: 0,
            pad: [0; 2],
            rest: rest.into(),
        }
    }

    /// The table-miss flow: priority 0, match everything, send to the controller.
    pub fn table_miss_to_controller() -> Self {
        Self::add_output(0, &[], OFPP_CONTROLLER)
    }
}

/// OFPT_PORT_STATUS (12).
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 12, name = "OFPT_PORT_STATUS")]
pub struct PortStatus {
    /// OFPPR_ADD (0), OFPPR_DELETE (1) or OFPPR_MODIFY (2).
    pub reason: u8,
    /// Padding.
    pub pad: [u8; 7],
    /// The port description, raw.
    pub desc: Bytes,
}

/// OFPT_MULTIPART_REQUEST (18).
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 18, name = "OFPT_MULTIPART_REQUEST")]
pub struct MultipartRequest {
    /// OFPMP_* (DESC is 0, PORT_DESC 13).
    pub mp_type: u16,
    /// OFPMPF_REQ_MORE (1) when more parts follow.
    pub flags: u16,
    /// Padding.
    pub pad: [u8; 4],
    /// The request body.
    pub body: Bytes,
}

/// OFPT_MULTIPART_REPLY (19).
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[ltp(message_type = 19, name = "OFPT_MULTIPART_REPLY")]
pub struct MultipartReply {
    /// OFPMP_*.
    pub mp_type: u16,
    /// OFPMPF_REPLY_MORE (1) when more parts follow.
    pub flags: u16,
    /// Padding.
    pub pad: [u8; 4],
    /// The reply body.
    pub body: Bytes,
}

impl MultipartRequest {
    /// A request of type `mp_type` with no body (DESC, PORT_DESC, …).
    pub fn new(mp_type: u16) -> Self {
        Self {
            mp_type,
            flags: 0,
            pad: [0; 4],
            body: Bytes::new(),
        }
    }
}

/// For [`ConnectionHandle::request_stream`](crate::ConnectionHandle::request_stream): a
/// frame ends a multipart reply unless it is a MULTIPART_REPLY with the MORE flag.
pub fn is_last_part(frame: &Frame) -> bool {
    if frame.message_type != MultipartReply::MESSAGE_TYPE {
        return true;
    }
    let flags = match frame.body.get(2..4) {
        Some(&[high, low]) => u16::from_be_bytes([high, low]),
        _ => 0,
    };
    flags & 1 == 0
}

/// OFPT_BARRIER_REQUEST (20): empty; answered once everything before it is done.
#[derive(Debug, Clone, PartialEq, Eq, Default, Message)]
#[ltp(message_type = 20, name = "OFPT_BARRIER_REQUEST")]
pub struct BarrierRequest;

/// OFPT_BARRIER_REPLY (21): empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Message)]
#[ltp(message_type = 21, name = "OFPT_BARRIER_REPLY")]
pub struct BarrierReply;

/// The OpenFlow 1.3 messages this module knows; every other type arrives as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Protocol)]
pub enum OpenFlow13 {
    /// OFPT_HELLO.
    Hello(Hello),
    /// OFPT_ERROR.
    Error(Error),
    /// OFPT_ECHO_REQUEST.
    EchoRequest(EchoRequest),
    /// OFPT_ECHO_REPLY.
    EchoReply(EchoReply),
    /// OFPT_FEATURES_REQUEST.
    FeaturesRequest(FeaturesRequest),
    /// OFPT_FEATURES_REPLY.
    FeaturesReply(FeaturesReply),
    /// OFPT_PACKET_IN.
    PacketIn(PacketIn),
    /// OFPT_PORT_STATUS.
    PortStatus(PortStatus),
    /// OFPT_FLOW_MOD.
    FlowMod(FlowMod),
    /// OFPT_MULTIPART_REQUEST.
    MultipartRequest(MultipartRequest),
    /// OFPT_MULTIPART_REPLY.
    MultipartReply(MultipartReply),
    /// OFPT_BARRIER_REQUEST.
    BarrierRequest(BarrierRequest),
    /// OFPT_BARRIER_REPLY.
    BarrierReply(BarrierReply),
    /// Any other type.
    #[ltp(unknown)]
    Other(Unknown),
}

/// What the handshake learnt about the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchInfo {
    /// The negotiated version (4 for OpenFlow 1.3).
    pub version: u8,
    /// The datapath id from FEATURES_REPLY, when features were asked for.
    pub datapath_id: Option<u64>,
    /// The tables, from FEATURES_REPLY.
    pub n_tables: Option<u8>,
    /// The capability bits, from FEATURES_REPLY.
    pub capabilities: Option<u32>,
}

/// The controller side of OpenFlow 1.3's start: HELLO both ways (a version bitmap offering
/// 1.3), then FEATURES_REQUEST → FEATURES_REPLY. Fails with a reason when the peer cannot
/// speak 1.3 (after sending it an OFPT_ERROR HELLO_FAILED, as the specification asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFlowHandshake {
    /// Ask for the switch's features (datapath id) after HELLO. Default: true.
    pub features: bool,
}

impl Default for OpenFlowHandshake {
    fn default() -> Self {
        Self { features: true }
    }
}

impl Handshake for OpenFlowHandshake {
    type Output = SwitchInfo;

    async fn run(&self, ctx: &mut HandshakeContext<'_>) -> Result<SwitchInfo, HandshakeError> {
        let layout = ctx.layout().clone();
        let order = layout.byte_order();
        // A message we originate: a fresh xid, so that an ERROR for it can be told apart.
        ctx.send_fresh(&Hello::with_versions(&[OFP13_VERSION]))
            .await?;
        let frame = ctx.recv().await?;
        let hello = match OpenFlow13::decode(frame.message_type, Body::from(&frame.body), order)? {
            OpenFlow13::Hello(hello) => hello,
            OpenFlow13::Error(error) => {
                // The data is the peer's (text, or the start of the message it refused):
                // escaped, so that printing the reason cannot drive a terminal.
                return Err(HandshakeError::Rejected(format!(
                    "peer sent OFPT_ERROR type {} code {} instead of HELLO: {}",
                    error.err_type,
                    error.code,
                    crate::escape_controls(&String::from_utf8_lossy(&error.data))
                )));
            }
            other => {
                return Err(HandshakeError::Rejected(format!(
                    "expected OFPT_HELLO first, got {}",
                    other.name()
                )));
            }
        };
        let peer_version = layout
            .field("version")
            .and_then(|id| frame.fields.get(id))
            .unwrap_or_default();
        let speaks_13 = match hello.versions() {
            Some(versions) => versions.contains(&OFP13_VERSION),
            None => peer_version >= i128::from(OFP13_VERSION),
        };
        if !speaks_13 {
            let error = Error {
                err_type: 0,
                code: 0,
                data: Bytes::from_static(b"OpenFlow 1.3 (version 0x04) is required"),
            };
            // Best effort: the peer is about to be dropped anyway. A reply to its HELLO: with
            // that HELLO's xid.
            let mut fields = HeaderFields::new();
            if let Some(xid) = layout.field("xid") {
                fields.set(xid, frame.fields.get(xid).unwrap_or_default());
            }
            let _ = ctx.send_with(&error, &fields).await;
            return Err(HandshakeError::Rejected(format!(
                "peer does not speak OpenFlow 1.3 (HELLO version {peer_version:#04x})"
            )));
        }
        let mut info = SwitchInfo {
            version: OFP13_VERSION,
            datapath_id: None,
            n_tables: None,
            capabilities: None,
        };
        if self.features {
            let reply = ctx.request(&FeaturesRequest).await?;
            match OpenFlow13::decode(reply.message_type, Body::from(&reply.body), order)? {
                OpenFlow13::FeaturesReply(features) => {
                    info.datapath_id = Some(features.datapath_id);
                    info.n_tables = Some(features.n_tables);
                    info.capabilities = Some(features.capabilities);
                }
                other => {
                    return Err(HandshakeError::Rejected(format!(
                        "expected OFPT_FEATURES_REPLY, got {}",
                        other.name()
                    )));
                }
            }
        }
        Ok(info)
    }
}

/// Answers ECHO_REQUEST with ECHO_REPLY (same xid, version and data) without bothering the
/// application.
pub fn echo_reply(frame: FrameRef<'_>) -> Option<Frame> {
    (frame.message_type == EchoRequest::MESSAGE_TYPE).then(|| Frame {
        message_type: EchoReply::MESSAGE_TYPE,
        fields: frame.fields.clone(),
        body: Bytes::copy_from_slice(frame.body),
    })
}

/// Open vSwitch's own rhythm: after 5 s of silence send ECHO_REQUEST, and give up 5 s later.
/// With correlation (as [`Configurable`] sets it up) each probe carries a fresh xid; the
/// peer's ECHO_REPLY arrives as an ordinary message.
pub fn keepalive() -> Keepalive {
    let layout = HeaderLayout::openflow();
    let mut fields = HeaderFields::new();
    if let Some(version) = layout.field("version") {
        fields.set(version, i128::from(OFP13_VERSION));
    }
    Keepalive {
        idle: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        probe: Frame {
            message_type: MessageType::from(2u8),
            fields,
            body: Bytes::new(),
        },
    }
}

/// Correlation on `xid`, skipping 0 (Open vSwitch sends asynchronous messages with xid 0).
pub fn xid() -> Correlation {
    // The openflow preset has an `xid` field by construction.
    Correlation::new(&HeaderLayout::openflow(), "xid")
        .unwrap_or_else(|| unreachable!("HeaderLayout::openflow() declares xid"))
}

/// A builder already configured as an OpenFlow 1.3 controller or agent: the layout,
/// `xid` correlation, [`OpenFlowHandshake`], echo auto-reply and [`keepalive`]. Works for
/// [`Server`] and [`ReconnectingClient`] alike.
pub fn controller<T: Configurable>() -> T::Builder {
    let mut builder = T::new_builder(HeaderLayout::openflow());
    T::configure(&mut builder);
    builder
}

/// Servers and clients that [`controller`] can configure.
pub trait Configurable {
    /// The builder type.
    type Builder;
    /// A fresh builder for `layout`.
    fn new_builder(layout: HeaderLayout) -> Self::Builder;
    /// Applies the OpenFlow settings.
    fn configure(builder: &mut Self::Builder);
}

impl<P: Protocol> Configurable for Server<P> {
    type Builder = ServerBuilder<P>;

    fn new_builder(layout: HeaderLayout) -> ServerBuilder<P> {
        Self::builder(layout)
    }

    fn configure(builder: &mut ServerBuilder<P>) {
        builder
            .correlation(xid())
            .handshake(OpenFlowHandshake::default())
            .auto_reply(echo_reply)
            .keepalive(keepalive());
    }
}

impl<P: Protocol> Configurable for ReconnectingClient<P> {
    type Builder = ClientBuilder<P>;

    fn new_builder(layout: HeaderLayout) -> ClientBuilder<P> {
        Self::builder(layout)
    }

    fn configure(builder: &mut ClientBuilder<P>) {
        builder
            .correlation(xid())
            .handshake(OpenFlowHandshake::default())
            .auto_reply(echo_reply)
            .keepalive(keepalive());
    }
}
