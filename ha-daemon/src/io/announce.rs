//! Sending address announcements (gratuitous ARP, unsolicited NA) on a raw socket.
//!
//! [`announce`] builds one round of frames with [`crate::core::announce::round`] and
//! sends it through an `AF_PACKET` raw socket bound to the interface, at each offset of a
//! schedule (default [`DEFAULT_SCHEDULE`]). The socket is bound with protocol 0, so it
//! never receives anything.
//!
//! Invariants:
//! - The interface, socket and first round are handled before [`announce`] returns, in
//!   the calling thread's network namespace; an error there is returned. Later rounds run
//!   on a spawned task that keeps the socket; their failures (say, the interface went
//!   down) are logged and the remaining rounds still try.
//! - Offsets count from the call to [`announce`] on tokio's clock, so a late first round
//!   does not shift the others.
//! - The IPv6 router flag follows the interface's IPv6 `forwarding` setting, as the
//!   kernel's own advertisements do: a host that uses the address as its default router
//!   must not see it announced as a non-router (RFC 4861 7.2.5 would drop the route).

use std::fs;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike as _, bind, send, socket,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until};

use crate::core::announce::{Mac, round};

/// The default announcement schedule: offsets from the start, 0, 50, 200 and 1000 ms.
pub const DEFAULT_SCHEDULE: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(1000),
];

const ARPHRD_ETHER: u16 = 1;

/// An announcement could not be made.
#[derive(Debug, thiserror::Error)]
#[error("announcing {address} on {interface}: {cause}")]
pub struct AnnounceError {
    /// The interface.
    pub interface: String,
    /// The announced address.
    pub address: IpAddr,
    /// What failed.
    #[source]
    pub cause: AnnounceCause,
}

/// What made an announcement fail.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceCause {
    /// No interface has that name (in this network namespace).
    #[error("no such interface")]
    NoInterface,
    /// The interfaces could not be listed.
    #[error("listing interfaces: {0}")]
    ListInterfaces(#[source] nix::Error),
    /// The interface does not carry Ethernet frames (loopback, tun, ...).
    #[error("not an Ethernet interface (hardware type {0})")]
    NotEthernet(u16),
    /// The IPv6 forwarding setting could not be read (IPv6 unavailable here?).
    #[error("reading {path}: {source}")]
    Forwarding {
        /// The sysctl file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The packet socket could not be opened or bound.
    #[error("opening a packet socket: {0}")]
    Socket(#[source] io::Error),
    /// The first round could not be sent.
    #[error("sending: {0}")]
    Send(#[source] io::Error),
}

/// Announces that `address` is at `mac` (`None`: the interface's own MAC) on
/// `interface`, once per offset of `schedule`. Sends the first round before returning;
/// the rest run on a spawned task, which the returned handle aborts. An empty schedule
/// sends nothing. Must run inside a tokio runtime.
pub async fn announce(
    interface: &str,
    address: IpAddr,
    mac: Option<[u8; 6]>,
    schedule: &[Duration],
) -> Result<AbortHandle, AnnounceError> {
    let started = Instant::now();
    let error = |cause| AnnounceError {
        interface: interface.to_owned(),
        address,
        cause,
    };
    let link = find_link(interface).map_err(error)?;
    let router = address.is_ipv6() && ipv6_forwarding(interface).map_err(error)?;
    let frames = round(address, mac.unwrap_or(link.mac), router);
    let socket = Sender::open(link.index).map_err(error)?;
    let (first, rest) = match schedule.split_first() {
        Some((first, rest)) => (Some(*first), rest.to_vec()),
        None => (None, Vec::new()),
    };
    if let Some(first) = first {
        // Not sleep_until for a deadline already past: tokio rounds it up to the next
        // millisecond tick.
        if Instant::now() < started + first {
            sleep_until(started + first).await;
        }
        socket
            .send_round(&frames)
            .await
            .map_err(|e| error(AnnounceCause::Send(e)))?;
        tracing::debug!(%interface, %address, elapsed = ?started.elapsed(), "announced");
    }
    let interface = interface.to_owned();
    let task = tokio::spawn(async move {
        for offset in rest {
            sleep_until(started + offset).await;
            match socket.send_round(&frames).await {
                Ok(()) => tracing::debug!(%interface, %address, ?offset, "announced"),
                Err(cause) => {
                    tracing::warn!(%interface, %address, ?offset, %cause, "announcement failed");
                }
            }
        }
    });
    Ok(task.abort_handle())
}

/// What [`announce`] needs to know about the interface.
struct Link {
    index: i32,
    mac: Mac,
}

/// Finds `name` among the link-layer addresses `getifaddrs` lists (netlink, in the
/// calling thread's namespace).
fn find_link(name: &str) -> Result<Link, AnnounceCause> {
    let addresses = nix::ifaddrs::getifaddrs().map_err(AnnounceCause::ListInterfaces)?;
    let link = addresses
        .filter(|entry| entry.interface_name == name)
        .find_map(|entry| entry.address.and_then(|a| a.as_link_addr().copied()))
        .ok_or(AnnounceCause::NoInterface)?;
    match (link.hatype(), link.addr()) {
        (ARPHRD_ETHER, Some(mac)) => Ok(Link {
            index: i32::try_from(link.ifindex()).map_err(|_| AnnounceCause::NoInterface)?,
            mac,
        }),
        (hatype, _) => Err(AnnounceCause::NotEthernet(hatype)),
    }
}

/// The interface's IPv6 `forwarding` setting (its namespace's, through the calling
/// thread's view of /proc/sys/net).
fn ipv6_forwarding(interface: &str) -> Result<bool, AnnounceCause> {
    let path = format!("/proc/sys/net/ipv6/conf/{interface}/forwarding");
    let text = fs::read_to_string(&path).map_err(|source| AnnounceCause::Forwarding {
        path: path.clone(),
        source,
    })?;
    Ok(text.trim() != "0")
}

/// A non-blocking `AF_PACKET` raw socket bound to one interface, protocol 0 (send only).
struct Sender {
    fd: AsyncFd<OwnedFd>,
}

impl Sender {
    fn open(ifindex: i32) -> Result<Self, AnnounceCause> {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| AnnounceCause::Socket(e.into()))?;
        let address = link_addr(ifindex)
            .ok_or_else(|| AnnounceCause::Socket(io::Error::other("nix refused a sockaddr_ll")))?;
        bind(fd.as_raw_fd(), &address).map_err(|e| AnnounceCause::Socket(e.into()))?;
        Sender::register(fd)
    }

    #[expect(
        unsafe_code,
        reason = "tokio's AsyncFd::register has an fd-validity contract"
    )]
    fn register(fd: OwnedFd) -> Result<Self, AnnounceCause> {
        // SAFETY: the OwnedFd is open and returns that same fd from as_raw_fd until it is
        // dropped, and the AsyncFd owns it, so the fd outlives the registration.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::WRITABLE) }
            .map_err(|e| AnnounceCause::Socket(e.into()))?;
        Ok(Sender { fd })
    }

    async fn send_round(&self, frames: &[Vec<u8>]) -> io::Result<()> {
        for frame in frames {
            let sent = self
                .fd
                .async_io(Interest::WRITABLE, |fd| {
                    send(fd.as_raw_fd(), frame, MsgFlags::empty()).map_err(io::Error::from)
                })
                .await?;
            if sent != frame.len() {
                return Err(io::Error::other(format!(
                    "sent {sent} of {} bytes",
                    frame.len()
                )));
            }
        }
        Ok(())
    }
}

/// The `sockaddr_ll` that binds a packet socket to `ifindex` without receiving.
#[expect(unsafe_code, reason = "nix builds a LinkAddr only from a raw sockaddr")]
fn link_addr(ifindex: i32) -> Option<LinkAddr> {
    let raw = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::sa_family_t,
        sll_protocol: 0,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let length = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `raw` is a fully initialised sockaddr_ll that lives across the call, and
    // `length` is its exact size; from_raw copies it and checks family and length.
    unsafe { LinkAddr::from_raw(std::ptr::from_ref(&raw).cast(), Some(length)) }
}
