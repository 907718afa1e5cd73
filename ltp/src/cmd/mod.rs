//! One subcommand per file.

pub(crate) mod bench;
pub(crate) mod connect;
pub(crate) mod demo;
pub(crate) mod dissector;
pub(crate) mod endpoint;
pub(crate) mod pcap;
pub(crate) mod serve;
pub(crate) mod signals;
pub(crate) mod stdin;

use ltp::schema::Schema;
use ltprotocol::{ConnectionHandle, Frame, HeaderFields, HeaderLayout, Unknown};

use crate::output::{Output, Stdout};
use crate::{Common, HandshakeKind};

/// What the common options resolve to.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) layout: HeaderLayout,
    pub(crate) schema: Schema,
    pub(crate) max_frame: Option<usize>,
    pub(crate) output: Output,
    pub(crate) handshake: HandshakeKind,
}

impl Setup {
    /// Prints a `connected` line.
    pub(crate) async fn emit_connected(&self, conn: &ConnectionHandle) {
        self.output
            .emit(&serde_json::json!({
                "event": "connected",
                "conn": conn.id().get(),
                "peer": conn.peer().to_string(),
            }))
            .await;
    }

    /// Prints a `message` line and gives the message back as a frame (for echo and relay).
    pub(crate) async fn emit_message(
        &self,
        conn: &ConnectionHandle,
        msg: Unknown,
        fields: &HeaderFields,
    ) -> Frame {
        let frame = Frame {
            message_type: msg.message_type,
            fields: fields.clone(),
            body: msg.body,
        };
        let event = ltp::json::message_event(conn.id().get(), &frame, &self.layout, &self.schema);
        self.output.emit(&event).await;
        frame
    }

    /// Loads the layout and schema files; events go to `stdout`.
    ///
    /// # Errors
    ///
    /// A [`ltp::ConfigError`] naming the file, line and problem.
    pub(crate) fn load(common: &Common, stdout: Stdout) -> Result<Self, ltp::ConfigError> {
        let layout = ltp::layout_file::load_layout(&common.layout)?;
        if let Some(max) = common.max_frame
            && max < layout.header_len()
        {
            return Err(ltp::ConfigError::Invalid(format!(
                "--max-frame {max} is smaller than the {}-byte header",
                layout.header_len()
            )));
        }
        if common.handshake == HandshakeKind::Openflow
            && (layout.field("xid").is_none() || layout.field("version").is_none())
        {
            return Err(ltp::ConfigError::Invalid(
                "--handshake openflow needs a layout with `version` and `xid` fields \
                 (--layout openflow)"
                    .to_owned(),
            ));
        }
        let schema = match &common.schema {
            Some(spec) => Schema::load(spec)?,
            None => Schema::empty(),
        };
        Ok(Self {
            layout,
            schema,
            max_frame: common.max_frame,
            handshake: common.handshake,
            output: Output::new(common.format, stdout),
        })
    }
}
