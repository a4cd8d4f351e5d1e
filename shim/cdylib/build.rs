//! Gives the cdylib the SONAME of NVIDIA's driver so the loader uses it for `libcuda.so.1`
//! (a preloaded shim then satisfies every later `dlopen("libcuda.so.1")` by SONAME).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so.1");
}
