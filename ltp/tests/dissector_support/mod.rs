//! What `tests/dissector_cli.rs` uses: `tshark` (and whether it is here), the bytes `ltp
//! connect` sends recorded by a listener of the test, a classic pcap file written from them,
//! and a case (a dissector and a capture in a temporary directory) to run `tshark` on.
// Each test uses a part of it.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{HANG, connect, run};

/// A fresh directory for one test's files, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ltp-dissector-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }

    pub(crate) fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("a UTF-8 path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What `ltp connect` sent over one connection: its bytes and both ends' addresses.
pub(crate) struct Recorded {
    pub(crate) client: SocketAddrV4,
    pub(crate) server: SocketAddrV4,
    pub(crate) bytes: Vec<u8>,
}

/// Runs `ltp connect ARGS` to a listener of the test with `input` on stdin and returns every
/// byte it sent, up to its close.
pub(crate) fn record(args: &[&str], input: &str) -> Recorded {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let reader = std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().expect("ltp connects");
        stream.set_read_timeout(Some(HANG)).expect("read timeout");
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .expect("read until ltp closes");
        (peer, bytes)
    });
    let out = connect(&addr.to_string(), args, input);
    out.assert_code(0);
    let (peer, bytes) = reader.join().expect("the reader thread");
    let v4 = |a: std::net::SocketAddr| match a {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("not IPv4: {other}"),
    };
    Recorded {
        client: v4(peer),
        server: v4(addr),
        bytes,
    }
}

/// A classic pcap file (libpcap, microsecond timestamps, LINKTYPE_ETHERNET) of one TCP
/// connection from `rec.client` to `rec.server`: SYN, SYN-ACK, ACK, then `rec.bytes` in
/// segments of the sizes `segments` gives in turn (cycled), sequence and acknowledgement
/// numbers following the bytes.
pub(crate) fn pcap(rec: &Recorded, segments: &[usize]) -> Vec<u8> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH: u8 = 0x08;
    let mut file = Vec::new();
    file.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    file.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    file.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    file.extend_from_slice(&65_535u32.to_le_bytes()); // snaplen
    file.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let mut micros = start.as_micros() as u64;
    let mut packet =
        |from: SocketAddrV4, to: SocketAddrV4, seq: u32, ack: u32, flags: u8, data: &[u8]| {
            let mut tcp = Vec::new();
            tcp.extend_from_slice(&from.port().to_be_bytes());
            tcp.extend_from_slice(&to.port().to_be_bytes());
            tcp.extend_from_slice(&seq.to_be_bytes());
            tcp.extend_from_slice(&ack.to_be_bytes());
            tcp.push(5 << 4); // 20-byte header
            tcp.push(flags);
            tcp.extend_from_slice(&65_535u16.to_be_bytes()); // window
            tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum (not verified by default), urgent
            tcp.extend_from_slice(data);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&u16::try_from(20 + tcp.len()).expect("small").to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]); // id, DF, TTL, TCP, checksum
            ip.extend_from_slice(&from.ip().octets());
            ip.extend_from_slice(&to.ip().octets());
            let sum: u32 = ip
                .chunks(2)
                .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
                .sum();
            let folded = (sum & 0xffff) + (sum >> 16);
            let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
            ip[10..12].copy_from_slice(&checksum.to_be_bytes());
            let mut frame = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
            frame.extend_from_slice(&ip);
            frame.extend_from_slice(&tcp);
            micros += 10;
            let len = u32::try_from(frame.len()).expect("small");
            file.extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
            file.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
            file.extend_from_slice(&len.to_le_bytes());
            file.extend_from_slice(&len.to_le_bytes());
            file.extend_from_slice(&frame);
        };
    let (client_isn, server_isn) = (1_000_u32, 500_000_u32);
    packet(rec.client, rec.server, client_isn, 0, SYN, &[]);
    packet(
        rec.server,
        rec.client,
        server_isn,
        client_isn + 1,
        SYN | ACK,
        &[],
    );
    packet(
        rec.client,
        rec.server,
        client_isn + 1,
        server_isn + 1,
        ACK,
        &[],
    );
    let mut seq = client_isn + 1;
    let mut rest = rec.bytes.as_slice();
    for &size in segments.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (segment, after) = rest.split_at(size.min(rest.len()));
        packet(
            rec.client,
            rec.server,
            seq,
            server_isn + 1,
            PSH | ACK,
            segment,
        );
        seq += u32::try_from(segment.len()).expect("small");
        rest = after;
    }
    file
}

/// Runs `tshark ARGS`; fails on a non-zero exit or a Lua error on stderr. Its stdout.
pub(crate) fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "tshark {args:?}: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("Lua"),
        "tshark {args:?} reported a Lua problem:\n{stderr}"
    );
    stdout
}

/// A capture and the dissector that reads it, in a temporary directory.
pub(crate) struct Case {
    pub(crate) dir: TempDir,
    pub(crate) lua: String,
    pub(crate) pcap: String,
    pub(crate) port: u16,
}

impl Case {
    /// Writes `ltp dissector DISSECTOR_ARGS` and the pcap of `rec` split per `segments`.
    pub(crate) fn new(
        name: &str,
        dissector_args: &[&str],
        rec: &Recorded,
        segments: &[usize],
    ) -> Self {
        let dir = TempDir::new(name);
        let lua = dir.file("proto.lua");
        let mut args = vec!["dissector"];
        args.extend_from_slice(dissector_args);
        let out = run(&args);
        out.assert_code(0);
        std::fs::write(&lua, out.stdout.join("\n")).expect("write the dissector");
        let file = dir.file("capture.pcap");
        std::fs::write(&file, pcap(rec, segments)).expect("write the capture");
        Self {
            dir,
            lua,
            pcap: file,
            port: rec.server.port(),
        }
    }

    /// `tshark -X lua_script:LUA -r PCAP [-d tcp.port==PORT,DECODE_AS] EXTRA`.
    pub(crate) fn tshark(&self, decode_as: Option<&str>, extra: &[&str]) -> String {
        let script = format!("lua_script:{}", self.lua);
        let rule = decode_as.map(|proto| format!("tcp.port=={},{proto}", self.port));
        let mut args = vec!["-n", "-X", &script, "-r", &self.pcap];
        if let Some(rule) = &rule {
            args.extend(["-d", rule.as_str()]);
        }
        args.extend_from_slice(extra);
        tshark(&args)
    }

    /// One row per field-bearing packet: `-T fields -E separator=| -e FIELDS`, filtered on
    /// `proto` (rows of other packets left out).
    pub(crate) fn fields(
        &self,
        decode_as: Option<&str>,
        proto: &str,
        fields: &[&str],
    ) -> Vec<String> {
        let mut extra = vec!["-Y", proto, "-T", "fields", "-E", "separator=|"];
        for field in fields {
            extra.extend(["-e", field]);
        }
        self.tshark(decode_as, &extra)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Fails if tshark sees anything malformed, any expert info of warning severity or more,
    /// or a Lua error in the packet details.
    pub(crate) fn assert_clean(&self, decode_as: Option<&str>) {
        let bad = self.tshark(
            decode_as,
            &["-Y", "_ws.malformed || _ws.expert.severity >= warning"],
        );
        assert_eq!(bad, "", "problems in {}", self.dir.0.display());
        let details = self.tshark(decode_as, &["-V"]);
        assert!(!details.contains("Lua Error"), "{details}");
        assert!(!details.contains("Malformed"), "{details}");
    }
}
