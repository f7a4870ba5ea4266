//! The witness probe: one ICMP echo to each witness address, over a raw ICMP socket
//! (needs `CAP_NET_RAW`), bounded by a timeout. The messages are
//! [`crate::core::icmp`]'s.
//!
//! The raw socket is driven through tokio's `UdpSocket`: it only calls `sendto` and
//! `recvfrom`, which work the same on a raw socket (the port of the address is 0).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use crate::core::icmp;

/// Sequence numbers of the probes of this process.
static SEQ: AtomicU16 = AtomicU16::new(0);

/// Why a probe could not be made (distinct from "no answer").
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// Opening the raw socket failed (`CAP_NET_RAW` missing?).
    #[error("witness {address}: opening a raw ICMP socket: {source}")]
    Socket {
        /// The witness.
        address: IpAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Sending or receiving failed (no route, for example).
    #[error("witness {address}: {what}: {source}")]
    Io {
        /// The witness.
        address: IpAddr,
        /// Sending or receiving.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Whether any of `addresses` answers an echo request within `timeout`. A probe that
/// cannot be made counts as no answer: a socket that cannot be opened is logged as a
/// warning (without the witness this node never takes over), a send or receive error
/// (no route: the normal isolated case) at debug level.
pub async fn reachable(addresses: &[IpAddr], timeout: Duration) -> bool {
    let probes = addresses.iter().map(|&address| probe(address, timeout));
    let mut any = false;
    for result in join_all(probes).await {
        match result {
            Ok(answered) => any |= answered,
            Err(error @ WitnessError::Socket { .. }) => {
                warn!(%error, "witness probe could not be made");
            }
            Err(error @ WitnessError::Io { .. }) => debug!(%error, "witness probe failed"),
        }
    }
    any
}

/// Sends one echo request to `address` and waits up to `timeout` for its reply.
pub async fn probe(address: IpAddr, timeout: Duration) -> Result<bool, WitnessError> {
    let socket = open(address)?;
    let id = u16::try_from(std::process::id() & 0xffff).unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let request = icmp::echo_request(address, id, seq);
    let io = |what| {
        move |source| WitnessError::Io {
            address,
            what,
            source,
        }
    };
    socket
        .send_to(&request, SocketAddr::new(address, 0))
        .await
        .map_err(io("sending the echo request"))?;
    let mut buf = [0u8; 1500];
    let wait = async {
        loop {
            let (len, from) = socket.recv_from(&mut buf).await?;
            if icmp::is_reply(address, from.ip(), &buf[..len], id, seq) {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(())) => Ok(true),
        Ok(Err(source)) => Err(io("receiving")(source)),
        Err(_) => Ok(false),
    }
}

fn open(address: IpAddr) -> Result<UdpSocket, WitnessError> {
    let (family, protocol) = match address {
        IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp),
        IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6),
    };
    let error = |source| WitnessError::Socket { address, source };
    let fd = socket(
        family,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        protocol,
    )
    .map_err(|errno| error(errno.into()))?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd)).map_err(error)
}
