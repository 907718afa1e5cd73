//! How many connections a server holds: the connection limit, the per-address limit (by
//! address group), and each connection's place in the server, given back when its task ends.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::ServerInner;
use crate::connection::ConnectionHandle;
use crate::transport::Addr;

/// The limits and the counts they hold.
#[derive(Debug)]
pub(super) struct Limits {
    max_connections: usize,
    max_per_ip: Option<usize>,
    ipv6_prefix: u8,
    /// Connections admitted whose task has not ended: held to `max_connections`.
    open: AtomicUsize,
    /// Open TCP connections per address group ([`address_group`]).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

impl Limits {
    pub(super) fn new(max_connections: usize, max_per_ip: Option<usize>, ipv6_prefix: u8) -> Self {
        Self {
            max_connections,
            max_per_ip,
            ipv6_prefix,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        }
    }

    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts a new connection from `peer` against both limits, or says which limit (and its
    /// value) refuses it (and counts the refusal). The connection's [`Registration`] gives its
    /// places back when its task ends.
    pub(super) fn admit(&self, peer: &Addr) -> Result<(), (&'static str, usize)> {
        let refused = |limit| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Err(limit)
        };
        if self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .is_err()
        {
            return refused(("connection", self.max_connections));
        }
        if let (Some(max), Some(ip)) = (self.max_per_ip, peer.ip()) {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let count = per_ip
                .entry(address_group(ip, self.ipv6_prefix))
                .or_insert(0);
            if *count >= max {
                drop(per_ip);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return refused(("per-address", max));
            }
            *count += 1;
        }
        Ok(())
    }

    /// Gives back the per-address place of a connection from `peer`.
    fn release_address(&self, peer: &Addr) {
        let (Some(_), Some(ip)) = (self.max_per_ip, peer.ip()) else {
            return;
        };
        let group = address_group(ip, self.ipv6_prefix);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = per_ip.get_mut(&group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&group);
            }
        }
    }

    fn release_connection(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The group `ip` is counted in for the per-address limit: an IPv4 address itself (also
/// when it arrives IPv4-mapped, `::ffff:a.b.c.d`, on a dual-stack listener), an IPv6 address
/// cut to its first `ipv6_prefix` bits.
fn address_group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let keep = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

/// A connection's handle and its place in the server: removes the connection from the
/// registry and gives its address's count back when its task ends, however it ends, and only
/// then (after the `disconnected` callback) its place under the connection limit.
pub(super) struct Registration {
    pub(super) inner: Arc<ServerInner>,
    pub(super) handle: ConnectionHandle,
}

impl Registration {
    /// Leaves the registry and gives the address's place back; once.
    pub(super) fn release(&self) {
        if self.handle.first_release() {
            self.inner.registry().remove(&self.handle.id());
            self.inner.limits.release_address(self.handle.peer());
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release();
        self.inner.limits.release_connection();
    }
}

/// Before binding a Unix socket at `path`: removes a socket file nobody accepts on (left by a
/// server that is gone), refuses to touch one a live server listens on, or any other file.
#[cfg(unix)]
pub(super) fn clear_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("a server already listens on {}", path.display()),
        )),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing a stale socket file");
            std::fs::remove_file(path)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::address_group;

    fn group(ip: &str, prefix: u8) -> String {
        address_group(ip.parse::<IpAddr>().unwrap(), prefix).to_string()
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_their_prefix() {
        // One host's /64: every address in it is one group.
        assert_eq!(group("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::");
        assert_eq!(group("2001:db8:1:2:ffff:1:2:3", 64), "2001:db8:1:2::");
        assert_ne!(group("2001:db8:1:3::1", 64), group("2001:db8:1:2::1", 64));
        assert_eq!(group("2001:db8:1:2ff::1", 56), "2001:db8:1:200::");
        assert_eq!(group("2001:db8::1", 128), "2001:db8::1");
        assert_eq!(group("2001:db8::1", 0), "::");
    }

    #[test]
    fn ipv4_addresses_count_alone_even_when_mapped() {
        assert_eq!(group("192.0.2.7", 64), "192.0.2.7");
        assert_eq!(group("::ffff:192.0.2.7", 64), "192.0.2.7");
        assert_ne!(group("192.0.2.7", 0), group("192.0.2.8", 0));
    }
}
