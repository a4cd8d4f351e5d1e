//! Gives the cdylib the SONAME of NVIDIA's driver so the loader uses it for `libcuda.so.1`.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so.1");
}
