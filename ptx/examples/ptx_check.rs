//! Load PTX files and report per-file success, kernels and resource usage, or the
//! first error. Usage: `cargo run -p gpushare-ptx --example ptx_check -- a.ptx b.ptx`.

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
                continue;
            }
        };
        match gpushare_ptx::Module::load(&text) {
            Ok(m) => {
                println!(
                    "{path}: ok ({} kernels, {} globals)",
                    m.kernels().count(),
                    m.globals().len()
                );
                for k in m.kernels() {
                    println!(
                        "  {}: {} params ({} B), {} instructions, {} regs, {} B shared, {} B local",
                        k.name(),
                        k.params().len(),
                        k.param_bytes(),
                        k.instruction_count(),
                        k.num_regs(),
                        k.static_shared_bytes(),
                        k.local_bytes_per_thread()
                    );
                }
            }
            Err(e) => {
                println!("{path}: {e}");
                failed = true;
            }
        }
    }
    std::process::exit(failed as i32);
}
