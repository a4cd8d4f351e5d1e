//! The loader must never panic: mutated / truncated PTX either loads or
//! returns an error.

mod common;
use common::*;
use gpushare_ptx::Module;

#[test]
fn mutated_ptx_never_panics() {
    let files = [
        "basic.ptx",
        "misc.ptx",
        "coverage.ptx",
        "forms.ptx",
        "handwritten.ptx",
    ];
    let mut rng = Rng(0xC0FFEE);
    let mut loaded = 0;
    for f in files {
        let text = fixture(f);
        let lines: Vec<&str> = text.lines().collect();
        for _ in 0..60 {
            let mut ls: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
            for _ in 0..3 {
                let i = rng.next_u32() as usize % ls.len();
                match rng.next_u32() % 6 {
                    0 => {
                        ls.remove(i);
                    }
                    1 => {
                        let j = rng.next_u32() as usize % ls.len();
                        ls.swap(i, j);
                    }
                    2 => {
                        let cut = rng.next_u32() as usize % (ls[i].len() + 1);
                        let cut = (0..=cut)
                            .rev()
                            .find(|&c| ls[i].is_char_boundary(c))
                            .unwrap_or(0);
                        ls[i].truncate(cut);
                    }
                    3 => ls[i] = ls[i].replace("%r", "%rd"),
                    4 => ls[i] = ls[i].replace(".u32", ".f16x2"),
                    _ => ls[i].push_str(" ]}{;,"),
                }
            }
            let src = ls.join("\n");
            let r = std::panic::catch_unwind(|| Module::load(&src).map(|_| ()));
            match r {
                Ok(Ok(())) => loaded += 1,
                Ok(Err(_)) => {}
                Err(_) => panic!("Module::load panicked on a mutation of {f}"),
            }
        }
        // every prefix of the file
        for cut in (0..text.len()).step_by(997) {
            if text.is_char_boundary(cut) {
                let r = std::panic::catch_unwind(|| Module::load(&text[..cut]).map(|_| ()));
                assert!(r.is_ok(), "Module::load panicked on a prefix of {f}");
            }
        }
    }
    assert!(loaded > 0);
}
