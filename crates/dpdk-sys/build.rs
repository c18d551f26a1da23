//! Links DPDK 22.11 as pkg-config describes it (Debian's shared
//! libraries; the EAL loads the vdev/PMD drivers from its plugin
//! directory, so nothing is dropped by `--as-needed`) and compiles the
//! fast-path shim with DPDK's own cflags.

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/wrapper.h");
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "dpdk-sys needs DPDK 22.11 development files (Debian: apt-get install libdpdk-dev pkg-config): {e}"
            )
        });
    let mut build = cc::Build::new();
    build.file("shim/shim.c").opt_level(3);
    for dir in &dpdk.include_paths {
        build.include(dir);
    }
    // DPDK's cflags carry -march/-include rte_config.h and defines: keep
    // them so the inline functions compile exactly as DPDK intends.
    let cflags = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config --cflags libdpdk");
    for flag in String::from_utf8_lossy(&cflags.stdout).split_whitespace() {
        if !flag.starts_with("-I") {
            build.flag(flag);
        }
    }
    build.warnings(false).compile("oxvs_dpdk_shim");
}
