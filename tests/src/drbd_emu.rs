//! The DRBD emulator (`drbd-emu`): a drop-in drbdadm/drbdsetup pair for tests and the lab.
