//! The UDP sockets of one link: heartbeats and echo requests.
//!
//! Each socket is bound to the link's local address and, with SO_BINDTODEVICE, to its
//! interface, so a heartbeat proves that *this* link works and never takes another
//! route. DSCP (IP_TOS / IPV6_TCLASS) and SO_PRIORITY let heartbeats win under
//! congestion. Received heartbeats carry the kernel's receive time (SO_TIMESTAMPNS), so
//! a daemon that ran late still knows when they arrived.
//!
//! The sockets are plain non-blocking sockets, not registered with any event loop: the
//! detection loop sends and drains them once per interval, so an arriving heartbeat
//! costs no wakeup of its own.

use std::{
    io::{self, IoSliceMut},
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
};

use crate::io::clock;
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrStorage, bind,
    recvmsg, setsockopt, socket, sockopt,
};

/// Socket priority of heartbeats (TC_PRIO_INTERACTIVE, as for other control traffic).
const SOCKET_PRIORITY: i32 = 6;

/// What a link's sockets need to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkAddresses {
    /// Interface of the link.
    pub interface: String,
    /// This node's address on the link.
    pub local: IpAddr,
    /// The peer's address on the link.
    pub peer: IpAddr,
    /// UDP port of heartbeats (both ends).
    pub heartbeat_port: u16,
    /// UDP port of echo packets (both ends).
    pub echo_port: u16,
    /// DSCP code point for everything sent (0..=63).
    pub dscp: u8,
}

/// A received datagram.
#[derive(Debug)]
pub struct Received {
    /// Its length in the buffer.
    pub len: usize,
    /// Kernel receive time, CLOCK_MONOTONIC ns (converted from the socket's
    /// CLOCK_REALTIME stamp); the time of reading when the kernel gave none.
    pub at_ns: u64,
}

/// The heartbeat and echo sockets of one link.
#[derive(Debug)]
pub struct LinkSocket {
    heartbeat: UdpSocket,
    echo: UdpSocket,
    peer_heartbeat: SocketAddr,
    peer_echo: SocketAddr,
}

impl LinkSocket {
    /// Opens and binds both sockets.
    pub fn open(link: &LinkAddresses) -> io::Result<Self> {
        let heartbeat = open_udp(link, link.heartbeat_port, true)?;
        let echo = open_udp(link, link.echo_port, false)?;
        Ok(Self {
            heartbeat,
            echo,
            peer_heartbeat: SocketAddr::new(link.peer, link.heartbeat_port),
            peer_echo: SocketAddr::new(link.peer, link.echo_port),
        })
    }

    /// Sends one heartbeat without waiting: a full socket buffer drops this heartbeat
    /// (the next one follows within an interval) instead of delaying the others.
    pub fn send_heartbeat(&self, datagram: &[u8]) -> io::Result<()> {
        self.heartbeat
            .send_to(datagram, self.peer_heartbeat)
            .map(|_| ())
    }

    /// Sends one echo request without waiting (see [`LinkSocket::send_heartbeat`]).
    pub fn send_echo(&self, datagram: &[u8]) -> io::Result<()> {
        self.echo.send_to(datagram, self.peer_echo).map(|_| ())
    }

    /// Receives a heartbeat datagram that is already queued, without waiting: fails
    /// with `WouldBlock` when none is.
    pub fn recv_heartbeat_now(&self, buf: &mut [u8]) -> io::Result<Received> {
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            self.heartbeat.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let stamp = msg.cmsgs().map_err(io::Error::from)?.find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
            _ => None,
        });
        let at_ns = stamp.map_or_else(clock::monotonic_ns, |ts| {
            let real_ns = u64::try_from(ts.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(ts.tv_nsec()).unwrap_or(0);
            clock::realtime_to_monotonic_ns(real_ns)
        });
        Ok(Received {
            len: msg.bytes,
            at_ns,
        })
    }
}

fn open_udp(link: &LinkAddresses, port: u16, timestamps: bool) -> io::Result<UdpSocket> {
    let family = match link.local {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(&link.interface),
    )?;
    setsockopt(&fd, sockopt::Priority, &SOCKET_PRIORITY)?;
    let tos = i32::from(link.dscp) << 2;
    match link.local {
        IpAddr::V4(_) => setsockopt(&fd, sockopt::Ipv4Tos, &tos)?,
        IpAddr::V6(_) => setsockopt(&fd, sockopt::Ipv6TClass, &tos)?,
    }
    if timestamps {
        setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
    }
    let address = SockaddrStorage::from(SocketAddr::new(link.local, port));
    bind(fd.as_raw_fd(), &address).map_err(|errno| {
        io::Error::new(
            io::Error::from(errno).kind(),
            format!(
                "binding {} port {port} on {}: {errno}",
                link.local, link.interface
            ),
        )
    })?;
    Ok(UdpSocket::from(fd))
}
