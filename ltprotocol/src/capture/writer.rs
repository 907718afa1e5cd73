//! The capture's writer: its own thread takes records from the queue, makes IPv4 or IPv6 TCP
//! packets of them (etherparse) and writes them as pcapng blocks (pcap-file), starting a new
//! file when the size limit would be passed.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use etherparse::{PacketBuilder, PacketBuilderStep, TcpHeader, TcpOptionElement};
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use tokio::sync::mpsc;

use super::stream::{Record, RecordKind};
use super::{CaptureError, MAX_SEGMENT, Message, Shared};

/// The window every packet advertises, scaled by [`WINDOW_SHIFT`] (about 1 GiB): the capture
/// holds no flow control, and Wireshark should see none.
const WINDOW: u16 = u16::MAX;
const WINDOW_SHIFT: u8 = 14;

/// Writes records until the capture is finished or every sender is gone; returns the first
/// write error, if any (after which records are dropped and counted).
pub(super) fn run(
    mut queue: mpsc::Receiver<Message>,
    mut files: Files,
    shared: &Shared,
) -> Result<(), CaptureError> {
    let mut packet = Vec::with_capacity(MAX_SEGMENT + 128);
    loop {
        let message = match queue.try_recv() {
            Ok(message) => message,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Nothing waiting: what was written reaches the file before the wait.
                files.flush()?;
                match queue.blocking_recv() {
                    Some(message) => message,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let record = match message {
            Message::Record(record) => record,
            Message::Finish => break,
        };
        shared
            .queued_bytes
            .fetch_sub(record.payload.len(), Ordering::Relaxed);
        write_record(&record, &mut files, &mut packet, shared)?;
    }
    files.flush()
}

fn write_record(
    record: &Record,
    files: &mut Files,
    packet: &mut Vec<u8>,
    shared: &Shared,
) -> Result<(), CaptureError> {
    let ends = record.ends;
    let client_seq = ends
        .client_isn
        .wrapping_add(1)
        .wrapping_add(record.client_sent as u32)
        .wrapping_add(u32::from(record.client_fin));
    let server_seq = ends
        .server_isn
        .wrapping_add(1)
        .wrapping_add(record.server_sent as u32)
        .wrapping_add(u32::from(record.server_fin));
    let (from, to, seq, ack) = if record.from_client {
        (ends.client, ends.server, client_seq, server_seq)
    } else {
        (ends.server, ends.client, server_seq, client_seq)
    };
    let scale = [TcpOptionElement::WindowScale(WINDOW_SHIFT)];
    let mut emit = |tcp: PacketBuilderStep<TcpHeader>, payload: &[u8]| {
        packet.clear();
        tcp.write(packet, payload)
            .map_err(|err| CaptureError::Packet {
                reason: err.to_string(),
            })?;
        files.write_packet(record.at, packet)?;
        shared.frames.fetch_add(1, Ordering::Relaxed);
        shared
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        Ok::<(), CaptureError>(())
    };
    match record.kind {
        RecordKind::Open => {
            let (client, server) = (ends.client, ends.server);
            let syn = ip(client.ip(), server.ip())
                .tcp(client.port(), server.port(), ends.client_isn, WINDOW)
                .syn()
                .options(&scale)
                .map_err(options_error)?;
            emit(syn, &[])?;
            let syn_ack = ip(server.ip(), client.ip())
                .tcp(server.port(), client.port(), ends.server_isn, WINDOW)
                .syn()
                .ack(ends.client_isn.wrapping_add(1))
                .options(&scale)
                .map_err(options_error)?;
            emit(syn_ack, &[])?;
            let ack = ip(client.ip(), server.ip())
                .tcp(client.port(), server.port(), client_seq, WINDOW)
                .ack(server_seq);
            emit(ack, &[])?;
        }
        RecordKind::Data => {
            let mut seq = seq;
            for segment in record.payload.chunks(MAX_SEGMENT) {
                let tcp = ip(from.ip(), to.ip())
                    .tcp(from.port(), to.port(), seq, WINDOW)
                    .ack(ack)
                    .psh();
                emit(tcp, segment)?;
                seq = seq.wrapping_add(segment.len() as u32);
            }
        }
        RecordKind::Fin => {
            let tcp = ip(from.ip(), to.ip())
                .tcp(from.port(), to.port(), seq, WINDOW)
                .ack(ack)
                .fin();
            emit(tcp, &[])?;
        }
        RecordKind::Rst => {
            let tcp = ip(from.ip(), to.ip())
                .tcp(from.port(), to.port(), seq, WINDOW)
                .ack(ack)
                .rst();
            emit(tcp, &[])?;
        }
    }
    Ok(())
}

fn options_error(err: etherparse::TcpOptionWriteError) -> CaptureError {
    CaptureError::Packet {
        reason: err.to_string(),
    }
}

/// The IP layer of a packet from `from` to `to` (of one family: see `stream::endpoints`).
fn ip(from: IpAddr, to: IpAddr) -> PacketBuilderStep<etherparse::IpHeaders> {
    match (from, to) {
        (IpAddr::V4(from), IpAddr::V4(to)) => PacketBuilder::ipv4(from.octets(), to.octets(), 64),
        (from, to) => PacketBuilder::ipv6(v6(from), v6(to), 64),
    }
}

fn v6(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Counts the bytes written through it: the size of the current file.
#[derive(Debug)]
struct Counting {
    inner: BufWriter<File>,
    written: u64,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The capture's files: the first at the path given, the next ones (past the size limit)
/// numbered before the extension: `s.pcapng`, `s.1.pcapng`, `s.2.pcapng`…
pub(super) struct Files {
    path: PathBuf,
    max_size: Option<u64>,
    current: PcapNgWriter<Counting>,
    /// Bytes of the current file's headers: a file holding only them is not rotated.
    header_bytes: u64,
    opened: Arc<std::sync::Mutex<Vec<PathBuf>>>,
}

impl Files {
    /// Creates the first file.
    pub(super) fn create(
        path: &Path,
        max_size: Option<u64>,
        opened: Arc<std::sync::Mutex<Vec<PathBuf>>>,
    ) -> Result<Self, CaptureError> {
        let current = open_file(path)?;
        let header_bytes = current.get_ref().written;
        super::lock(&opened).push(path.to_path_buf());
        Ok(Self {
            path: path.to_path_buf(),
            max_size,
            current,
            header_bytes,
            opened,
        })
    }

    fn write_packet(&mut self, at: std::time::Duration, packet: &[u8]) -> Result<(), CaptureError> {
        let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: at,
            original_len: len,
            data: Cow::Borrowed(packet),
            options: Vec::new(),
        };
        // An enhanced packet block: 32 bytes around the data, padded to 4.
        let block_size = 32 + packet.len().next_multiple_of(4) as u64;
        if let Some(max) = self.max_size {
            let written = self.current.get_ref().written;
            if written > self.header_bytes && written + block_size > max {
                self.rotate()?;
            }
        }
        let path = self.current_path();
        self.current
            .write_pcapng_block(block)
            .map_err(|err| write_error(&path, err))?;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), CaptureError> {
        self.flush()?;
        let next = numbered(&self.path, super::lock(&self.opened).len());
        self.current = open_file(&next)?;
        self.header_bytes = self.current.get_ref().written;
        super::lock(&self.opened).push(next);
        Ok(())
    }

    fn current_path(&self) -> PathBuf {
        super::lock(&self.opened)
            .last()
            .cloned()
            .unwrap_or_else(|| self.path.clone())
    }

    fn flush(&mut self) -> Result<(), CaptureError> {
        let path = self.current_path();
        self.current
            .get_mut()
            .flush()
            .map_err(|source| CaptureError::Write { path, source })
    }
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("path", &self.path)
            .field("max_size", &self.max_size)
            .finish_non_exhaustive()
    }
}

fn write_error(path: &Path, err: pcap_file::PcapError) -> CaptureError {
    match err {
        pcap_file::PcapError::IoError(source) => CaptureError::Write {
            path: path.to_path_buf(),
            source,
        },
        other => CaptureError::Packet {
            reason: other.to_string(),
        },
    }
}

/// Creates a pcapng file with its section header and its one interface: raw IP packets,
/// nanosecond timestamps.
fn open_file(path: &Path) -> Result<PcapNgWriter<Counting>, CaptureError> {
    let file = File::create(path).map_err(|source| CaptureError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let counting = Counting {
        inner: BufWriter::new(file),
        written: 0,
    };
    let section = SectionHeaderBlock {
        options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(
            concat!("ltprotocol ", env!("CARGO_PKG_VERSION")),
        ))],
        ..SectionHeaderBlock::default()
    };
    let mut writer = PcapNgWriter::with_section_header(counting, section)
        .map_err(|err| write_error(path, err))?;
    let interface = InterfaceDescriptionBlock {
        linktype: DataLink::RAW,
        snaplen: 0,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed("ltprotocol")),
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    };
    writer
        .write_pcapng_block(interface)
        .map_err(|err| write_error(path, err))?;
    Ok(writer)
}

/// `s.pcapng` → `s.N.pcapng`; a path without extension gets `.N`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    match (path.file_stem(), path.extension()) {
        (Some(stem), Some(ext)) => {
            let mut name = stem.to_os_string();
            name.push(format!(".{n}."));
            name.push(ext);
            path.with_file_name(name)
        }
        _ => {
            let mut name = path.as_os_str().to_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_are_numbered_before_the_extension() {
        assert_eq!(
            numbered(Path::new("/t/s.pcapng"), 2),
            Path::new("/t/s.2.pcapng")
        );
        assert_eq!(numbered(Path::new("/t/s"), 1), Path::new("/t/s.1"));
    }
}
