//! `drbdadm` / `drbdsetup` emulator and its per-node module process; see
//! `ha_tests::drbd_emu`.

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    std::process::exit(ha_tests::drbd_emu::client::main(&argv));
}
