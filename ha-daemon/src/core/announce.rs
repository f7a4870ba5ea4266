//! Gratuitous ARP and unsolicited neighbour advertisement frames (pure).
