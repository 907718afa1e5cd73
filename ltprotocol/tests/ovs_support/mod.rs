//! A private Open vSwitch for interoperability tests (dummy datapath, its own run directory,
//! stopped by its pid files), and small helpers shared by the `ovs_*` test files.
//!
//! Tests skip (with a message) when Open vSwitch is not installed, unless `LTP_REQUIRE_OVS=1`,
//! which CI sets after installing it. Not every test file uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ltprotocol::{ConnectionHandle, Event, EventStream};

/// Fails a test that hangs instead of letting it run forever.
pub(crate) async fn within<T>(
    what: &str,
    secs: u64,
    fut: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {secs} s waiting for {what}"),
    }
}

/// A private Open vSwitch: ovsdb-server and ovs-vswitchd with their own run directory,
/// stopped by their pid files when dropped.
pub(crate) struct Ovs {
    pub(crate) dir: PathBuf,
}

impl Ovs {
    pub(crate) fn available() -> bool {
        let installed = Path::new("/usr/sbin/ovs-vswitchd").exists()
            && Path::new("/usr/share/openvswitch/vswitch.ovsschema").exists();
        if !installed && std::env::var_os("LTP_REQUIRE_OVS").is_some() {
            panic!("LTP_REQUIRE_OVS is set but Open vSwitch is not installed");
        }
        if !installed {
            eprintln!("skipped: Open vSwitch is not installed (see .ci/run for the install)");
        }
        installed
    }

    pub(crate) fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("ovs{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let ovs = Self { dir };
        let db = ovs.path("conf.db");
        ovs.run(
            "ovsdb-tool",
            &["create", &db, "/usr/share/openvswitch/vswitch.ovsschema"],
        );
        ovs.run(
            "ovsdb-server",
            &[
                &db,
                &format!("--remote=punix:{}", ovs.path("db.sock")),
                &format!("--pidfile={}", ovs.path("ovsdb-server.pid")),
                &format!("--log-file={}", ovs.path("ovsdb-server.log")),
                "--detach",
                "--no-chdir",
                "-vconsole:off",
            ],
        );
        ovs.run("ovs-vsctl", &["--no-wait", "init"]);
        ovs.run(
            "ovs-vswitchd",
            &[
                &format!("unix:{}", ovs.path("db.sock")),
                "--enable-dummy=override",
                &format!("--pidfile={}", ovs.path("ovs-vswitchd.pid")),
                &format!("--log-file={}", ovs.path("ovs-vswitchd.log")),
                "--detach",
                "--no-chdir",
                "-vconsole:off",
            ],
        );
        ovs.run(
            "ovs-vsctl",
            &[
                "add-br",
                "br0",
                "--",
                "set",
                "bridge",
                "br0",
                "datapath_type=dummy",
                "other-config:datapath-id=00000000000000a1",
                "protocols=OpenFlow13",
            ],
        );
        let dpid = ovs.run("ovs-vsctl", &["get", "bridge", "br0", "datapath_id"]);
        assert_eq!(dpid.trim(), "\"00000000000000a1\"", "add-br failed");
        ovs
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    pub(crate) fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .env("OVS_SYSCONFDIR", &self.dir)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn set_controller(&self, targets: &[&str]) {
        let mut args = vec!["set-controller", "br0"];
        args.extend_from_slice(targets);
        self.run("ovs-vsctl", &args);
        // OVS's defaults, made explicit: reconnect backoff capped at 8 s, probe after 5 s.
        let uuids = self.run(
            "ovs-vsctl",
            &["--bare", "--columns=_uuid", "list", "controller"],
        );
        for uuid in uuids.split_whitespace() {
            self.run(
                "ovs-vsctl",
                &[
                    "set",
                    "controller",
                    uuid,
                    "max_backoff=8000",
                    "inactivity_probe=5000",
                ],
            );
        }
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        let _ = Command::new("ovs-appctl")
            .args(["-t", "ovs-vswitchd", "exit", "--cleanup"])
            .env("OVS_RUNDIR", &self.dir)
            .output();
        let _ = Command::new("ovs-appctl")
            .args(["-t", "ovsdb-server", "exit"])
            .env("OVS_RUNDIR", &self.dir)
            .output();
        // Whatever is still alive is stopped by its own pid, never by name.
        for name in ["ovs-vswitchd.pid", "ovsdb-server.pid"] {
            let Ok(pid) = std::fs::read_to_string(self.dir.join(name)) else {
                continue;
            };
            let pid = pid.trim();
            for _ in 0..30 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Tells apart the instances of one test process (tests run in parallel).
fn rand_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Waits for the next `Connected` event, collecting nothing else.
pub(crate) async fn next_connected<P>(events: &mut EventStream<P>) -> ConnectionHandle {
    loop {
        match events.next().await {
            Some(Event::Connected(conn)) => return conn,
            Some(_) => {}
            None => panic!("event stream ended"),
        }
    }
}

/// A port free on 127.0.0.1 a moment ago.
pub(crate) async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}
