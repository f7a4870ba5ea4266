//! Carrier changes of the link interfaces, from netlink (RTNLGRP_LINK, like
//! `ip monitor link`): a pulled cable or a peer veth gone down marks that link down at
//! once, without waiting for silence.
//!
//! This only speeds detection up; silence remains the guarantee. The kernel batches
//! carrier changes (linkwatch): after one, the next on any interface may reach us up to
//! a second later, so when two links fail together the second is usually seen by
//! silence first.

use std::io;

use futures_util::StreamExt as _;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkFlags, LinkMessage},
};
use rtnetlink::{MulticastGroup, new_multicast_connection};
use tokio::sync::mpsc;

/// A carrier change: the link (index into `ifindexes` given to [`watch`]) and whether
/// its carrier is now up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarrierChange {
    /// The link's slot.
    pub link: usize,
    /// Carrier up (IFF_LOWER_UP).
    pub up: bool,
}

/// Subscribes to link notifications and sends a [`CarrierChange`] whenever the carrier
/// of one of `ifindexes` (by slot) changes; runs until `out` is closed. Must run inside
/// a tokio runtime.
pub async fn watch(
    ifindexes: Vec<u32>,
    out: mpsc::UnboundedSender<CarrierChange>,
) -> io::Result<()> {
    let (connection, _handle, mut messages) = new_multicast_connection(&[MulticastGroup::Link])?;
    let connection = tokio::spawn(connection);
    let mut last: Vec<Option<bool>> = vec![None; ifindexes.len()];
    while let Some((message, _)) = messages.next().await {
        if let Some(change) = carrier_change(&message, &ifindexes)
            && last[change.link] != Some(change.up)
        {
            last[change.link] = Some(change.up);
            if out.send(change).is_err() {
                break;
            }
        }
    }
    connection.abort();
    Ok(())
}

/// The carrier state a link notification reports for one of `ifindexes`, if any.
pub fn carrier_change(
    message: &NetlinkMessage<RouteNetlinkMessage>,
    ifindexes: &[u32],
) -> Option<CarrierChange> {
    let NetlinkPayload::InnerMessage(inner) = &message.payload else {
        return None;
    };
    let (link, up) = match inner {
        RouteNetlinkMessage::NewLink(link) => (link, lower_up(link)),
        RouteNetlinkMessage::DelLink(link) => (link, false),
        _ => return None,
    };
    let slot = ifindexes
        .iter()
        .position(|&index| index == link.header.index)?;
    Some(CarrierChange { link: slot, up })
}

fn lower_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::LowerUp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_message(
        index: u32,
        flags: LinkFlags,
        deleted: bool,
    ) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = flags;
        let inner = if deleted {
            RouteNetlinkMessage::DelLink(link)
        } else {
            RouteNetlinkMessage::NewLink(link)
        };
        NetlinkMessage::from(inner)
    }

    #[test]
    fn lower_up_is_carrier_and_its_absence_or_deletion_is_loss() {
        let ifindexes = [7, 9];
        assert_eq!(
            carrier_change(
                &link_message(9, LinkFlags::Up | LinkFlags::LowerUp, false),
                &ifindexes
            ),
            Some(CarrierChange { link: 1, up: true })
        );
        assert_eq!(
            carrier_change(&link_message(7, LinkFlags::Up, false), &ifindexes),
            Some(CarrierChange { link: 0, up: false })
        );
        assert_eq!(
            carrier_change(
                &link_message(7, LinkFlags::Up | LinkFlags::LowerUp, true),
                &ifindexes
            ),
            Some(CarrierChange { link: 0, up: false })
        );
    }

    #[test]
    fn other_interfaces_are_ignored() {
        assert_eq!(
            carrier_change(&link_message(3, LinkFlags::LowerUp, false), &[7, 9]),
            None
        );
    }
}
