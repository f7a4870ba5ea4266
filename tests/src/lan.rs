//! A LAN: a bridge namespace joining node namespaces and a client namespace.
