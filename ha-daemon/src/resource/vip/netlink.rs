//! The netlink calls of the `vip` agent (rtnetlink): find a link, list its addresses,
//! add and remove one.
//!
//! Invariants:
//! - A [`Netlink`] talks to the network namespace of the thread that called
//!   [`Netlink::connect`] (the socket is created there), and its connection task is
//!   aborted when it drops, so a cancelled agent call leaves nothing behind.
//! - Add and remove tolerate losing a race to someone doing the same thing: an address
//!   that already exists (`EEXIST`) counts as added, one already gone (`EADDRNOTAVAIL`)
//!   as removed.

use std::io;
use std::net::IpAddr;

use futures_util::TryStreamExt as _;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::LinkFlags;
use rtnetlink::{Error, Handle};
use tokio::task::JoinHandle;

/// What the agent needs to know about its interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Link {
    /// The interface index.
    pub(super) index: u32,
    /// Administratively up (IFF_UP).
    pub(super) up: bool,
    /// Carrier present (IFF_LOWER_UP).
    pub(super) carrier: bool,
}

/// An address assigned to an interface, as netlink reported it.
#[derive(Clone, Debug)]
pub(super) struct Assigned {
    /// The local address.
    pub(super) address: IpAddr,
    /// Its prefix length.
    pub(super) prefix_len: u8,
    /// The message itself, which names it exactly for removal.
    message: AddressMessage,
}

/// A route netlink connection in the calling thread's network namespace.
pub(super) struct Netlink {
    handle: Handle,
    connection: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Netlink {
    /// Opens the connection; must be called inside a tokio runtime.
    pub(super) fn connect() -> io::Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        Ok(Netlink {
            handle,
            connection: tokio::spawn(connection),
        })
    }

    /// The link named `name`, or `None` when there is none.
    pub(super) async fn link(&self, name: &str) -> Result<Option<Link>, Error> {
        let replies = self.handle.link().get().match_name(name).execute();
        match std::pin::pin!(replies).try_next().await {
            Ok(Some(message)) => Ok(Some(Link {
                index: message.header.index,
                up: message.header.flags.contains(LinkFlags::Up),
                carrier: message.header.flags.contains(LinkFlags::LowerUp),
            })),
            Ok(None) => Ok(None),
            Err(error) if errno(&error) == Some(libc::ENODEV) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The addresses assigned to the link `index`.
    pub(super) async fn addresses(&self, index: u32) -> Result<Vec<Assigned>, Error> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await?;
        Ok(messages.into_iter().filter_map(assigned).collect())
    }

    /// Adds `address/prefix_len` to the link `index`; an IPv6 address without duplicate
    /// address detection (IFA_F_NODAD), so it is usable at once.
    pub(super) async fn add(
        &self,
        index: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), Error> {
        let mut request = self.handle.address().add(index, address, prefix_len);
        if address.is_ipv6() {
            request.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        match request.execute().await {
            Err(error) if errno(&error) == Some(libc::EEXIST) => Ok(()),
            result => result,
        }
    }

    /// Removes an address found by [`Netlink::addresses`].
    pub(super) async fn remove(&self, assigned: Assigned) -> Result<(), Error> {
        match self.handle.address().del(assigned.message).execute().await {
            Err(error) if errno(&error) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            result => result,
        }
    }
}

/// The local address of an address message: IFA_LOCAL when present (IPv4, and
/// point-to-point IPv6, where IFA_ADDRESS is the peer), else IFA_ADDRESS.
fn assigned(message: AddressMessage) -> Option<Assigned> {
    let local = message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            AddressAttribute::Local(address) => Some(*address),
            _ => None,
        });
    let address = local.or_else(|| {
        message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Address(address) => Some(*address),
                _ => None,
            })
    })?;
    Some(Assigned {
        address,
        prefix_len: message.header.prefix_len,
        message,
    })
}

/// The errno of a netlink error reply, if it is one.
fn errno(error: &Error) -> Option<i32> {
    match error {
        Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn message(attributes: Vec<AddressAttribute>) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.prefix_len = 24;
        message.attributes = attributes;
        message
    }

    #[test]
    fn the_local_address_wins_over_the_peer_address() {
        let local = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
        let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99));
        let found = assigned(message(vec![
            AddressAttribute::Address(peer),
            AddressAttribute::Local(local),
        ]))
        .unwrap();
        assert_eq!((found.address, found.prefix_len), (local, 24));
    }

    #[test]
    fn ipv6_without_local_uses_the_address() {
        let address = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));
        let found = assigned(message(vec![AddressAttribute::Address(address)])).unwrap();
        assert_eq!(found.address, address);
    }

    #[test]
    fn a_message_without_an_address_is_skipped() {
        assert!(assigned(message(Vec::new())).is_none());
    }
}
