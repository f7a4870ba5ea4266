//! Rebuild the eBPF object when `bpf-linker` changes: cargo cannot see this dependency.
fn main() {
    if let Ok(bpf_linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
}
