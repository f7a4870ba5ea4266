//! Sending address announcements (gratuitous ARP, unsolicited NA) on a raw socket.
