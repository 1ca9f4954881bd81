//! Lets the built binaries find libtorch without LD_LIBRARY_PATH, and rebuilds when migrations change.

fn main() {
    // torch-sys (links = "tch") reports where it found libtorch; an rpath to that directory is
    // embedded in every binary, test and bench of this crate.
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=migrations");
}
