//! `ltp serve --tls-cert --tls-key [--client-ca]` and `ltp connect --tls [--ca] [--cert --key]`
//! end to end, with certificates made at test time (rcgen; no key is checked in). Child
//! processes are stopped by their own handles, never by name.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::Value;

/// A generous guard that turns a hang into a failure.
const HANG: Duration = Duration::from_secs(60);

/// A temporary directory with a CA and certificates it issued, removed on drop.
struct Certs {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Certs {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ltp-cli-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
            .expect("CA certificate");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
        Self { dir, ca }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues `NAME.pem` and `NAME.key` for 127.0.0.1 and localhost.
    fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("certificate");
        let paths = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&paths.0, cert.pem()).expect("write certificate");
        std::fs::write(&paths.1, key.serialize_pem()).expect("write key");
        paths
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// `ltp serve` on a free port, its stdout lines read on a thread.
struct Served {
    child: Child,
    lines: mpsc::Receiver<Value>,
    addr: String,
}

impl Served {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ltp"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--mode",
                "echo",
                "--format",
                "json",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ltp serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).expect("a JSON line");
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut served = Self {
            child,
            lines,
            addr: String::new(),
        };
        let listening = served.wait_for(|line| line["event"] == "listening");
        served.addr = listening["addr"].as_str().expect("addr").to_owned();
        served
    }

    /// The next line matching `pick`, skipping others.
    fn wait_for(&mut self, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + HANG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pick(&line) => return line,
                Ok(_) => {}
                Err(err) => panic!("ltp serve: no expected line ({err})"),
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // By its own handle (its PID), never by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ltp connect ARGS` with `input` on stdin, to completion (killed by its own handle if
/// it hangs).
fn connect(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ltp"))
        .arg("connect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ltp connect starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let started = Instant::now();
    while child.try_wait().expect("ltp can be waited for").is_none() {
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("ltp connect {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("ltp's output")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[test]
fn serve_and_connect_round_trip_over_mutual_tls() {
    let certs = Certs::new("mutual");
    let (server_cert, server_key) = certs.issue("server");
    let (client_cert, client_key) = certs.issue("client");
    let mut served = Served::start(&[
        "--tls-cert",
        path(&server_cert),
        "--tls-key",
        path(&server_key),
        "--client-ca",
        path(&certs.ca()),
    ]);
    let out = connect(
        &[
            &served.addr,
            "--tls",
            "--ca",
            path(&certs.ca()),
            "--cert",
            path(&client_cert),
            "--key",
            path(&client_key),
            "--format",
            "json",
            "--count",
            "1",
        ],
        "{\"type\":1,\"body_hex\":\"000000c8\"}\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ltp connect failed: {stderr}");
    let lines = json_lines(&out);
    let echoed = lines
        .iter()
        .find(|line| line["event"] == "message")
        .unwrap_or_else(|| panic!("no message in {lines:?}"));
    assert_eq!(echoed["type"], 1);
    assert_eq!(echoed["body_hex"], "000000c8");

    let got = served.wait_for(|line| line["event"] == "message");
    assert_eq!(got["body_hex"], "000000c8");
}

#[test]
fn connect_with_the_wrong_ca_reports_the_tls_failure_on_both_sides() {
    let certs = Certs::new("server-side");
    let other = Certs::new("other");
    let (server_cert, server_key) = certs.issue("server");
    let mut served = Served::start(&[
        "--tls-cert",
        path(&server_cert),
        "--tls-key",
        path(&server_key),
    ]);
    let out = connect(
        &[
            &served.addr,
            "--tls",
            "--ca",
            path(&other.ca()),
            "--server-name",
            "localhost",
            "--format",
            "json",
            "--max-attempts",
            "1",
            "--timeout",
            "20",
        ],
        "{\"type\":1}\n",
    );
    // The queued message could not be sent: exit 1, and the attempt's reason printed.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let failed = lines
        .iter()
        .find(|line| line["event"] == "connect_failed")
        .unwrap_or_else(|| panic!("no connect_failed in {lines:?}"));
    let error = failed["error"].as_str().expect("error");
    assert!(error.contains("unknown CA"), "{error}");

    let gone = served.wait_for(|line| line["event"] == "disconnected");
    let reason = gone["reason"].as_str().expect("reason");
    assert!(
        reason.contains("does not trust the CA of our certificate"),
        "{reason}"
    );
}

#[test]
fn serve_with_an_unreadable_certificate_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ltp"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/server.pem",
            "--tls-key",
            "/nonexistent/server.key",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("ltp runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/server.pem"),
        "{stderr}"
    );
}

#[test]
fn tls_options_need_their_companions() {
    let out = Command::new(env!("CARGO_BIN_EXE_ltp"))
        .args(["connect", "127.0.0.1:1", "--ca", "ca.pem"])
        .stdin(Stdio::null())
        .output()
        .expect("ltp runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls"), "{stderr}");
}
