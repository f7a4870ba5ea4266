//! DRBD state lines (`drbdsetup events2`) and command refusals, parsed (pure).
