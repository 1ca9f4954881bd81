//! Lets the built binaries find libtorch without LD_LIBRARY_PATH, and rebuilds when migrations change.

fn main() {
    // torch-sys (links = "tch") reports where it found libtorch; an rpath to that directory is
    // embedded in every binary, test and bench of this crate.
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // Every binary of the crate (the service, its tests and benches) allocates with jemalloc, for
    // our code and libtorch's alike: linked ahead of libc, its malloc is the process's (Debian's libjemalloc2, installed by
    // scripts/setup.sh and the Docker image). glibc's malloc was 5-9% of the CPU under load
    // (malloc_consolidate and friends in the request threads, _int_malloc / _int_free in the
    // model thread's tensor allocations); jemalloc gave 5-10% more images/s (docs/benchmarks.md).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
        let multiarch = format!("/usr/lib/{arch}-linux-gnu");
        let found = [
            multiarch.as_str(),
            "/usr/lib",
            "/usr/lib64",
            "/usr/local/lib",
        ]
        .iter()
        .any(|dir| std::path::Path::new(dir).join("libjemalloc.so.2").exists());
        assert!(
            found,
            "libjemalloc.so.2 not found: install Debian's libjemalloc2 (scripts/setup.sh does)"
        );
        println!("cargo:rustc-link-lib=dylib:+verbatim=libjemalloc.so.2");
    }
    println!("cargo:rerun-if-changed=migrations");
}
