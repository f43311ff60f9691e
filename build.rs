//! Release builds abort on panic, so nothing ever unwinds: the unwind tables (`.eh_frame`, about
//! 1.2 MB, an eighth of the binary) serve only a backtrace, which a stripped binary cannot name
//! anyway. The linker drops them there (bench/size). Builds that unwind (debug, tests) keep them.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // The release profile is the one with `panic = "abort"` (Cargo.toml); a build script sees the
    // profile's name, not its panic strategy.
    let aborts = std::env::var("PROFILE").as_deref() == Ok("release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if !(aborts && linux) {
        return;
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = out.join("discard-unwind-tables.ld");
    // INSERT keeps the linker's default script and only adds the discard to it.
    std::fs::write(
        &script,
        "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) } } INSERT AFTER .text;\n",
    )
    .expect("write the linker script");
    println!("cargo::rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
    println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
}
