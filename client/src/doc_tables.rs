//! Test support: keeps the generated tables of `docs/protocol.md` equal to the declarations
//! they are rendered from (record kinds, requests).
//!
//! A generated table sits between `<!-- generated: NAME ... -->` and `<!-- end: NAME -->`. A
//! test renders the declaration and calls [`check`]: a difference fails with the first differing
//! line, or, with `GPUSHARE_BLESS=1` in the environment, rewrites the file.

use std::path::PathBuf;

/// `docs/protocol.md` of this checkout.
fn protocol_md() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md")
}

/// Compares the generated table `name` of `docs/protocol.md` with `rendered` (see the module
/// documentation).
pub fn check(name: &str, rendered: &str, declared_in: &str) {
    let path = protocol_md();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let begin_tag = format!("<!-- generated: {name} ");
    let end_tag = format!("<!-- end: {name} -->");
    let begin = text
        .find(&begin_tag)
        .and_then(|b| text[b..].find('\n').map(|n| b + n + 1))
        .unwrap_or_else(|| panic!("{}: no `{begin_tag}...-->` line", path.display()));
    let end = text[begin..]
        .find(&end_tag)
        .map(|e| begin + e)
        .unwrap_or_else(|| panic!("{}: no `{end_tag}` line", path.display()));
    let current = &text[begin..end];
    if current == rendered {
        return;
    }
    if std::env::var_os("GPUSHARE_BLESS").is_some_and(|v| v == "1") {
        let updated = format!("{}{rendered}{}", &text[..begin], &text[end..]);
        std::fs::write(&path, updated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let n = rendered.lines().count().max(current.lines().count()) + 1;
    let (line, (want, have)) = rendered
        .lines()
        .chain(std::iter::repeat("(end of table)"))
        .zip(current.lines().chain(std::iter::repeat("(end of table)")))
        .take(n)
        .enumerate()
        .find(|(_, (w, h))| w != h)
        .unwrap_or((n, ("(trailing newline)", "")));
    panic!(
        "the table `{name}` in docs/protocol.md differs from the declaration in {declared_in} \
         (table line {}):\n  declared: {want}\n  docs:     {have}\n\
         Rerun with GPUSHARE_BLESS=1 (cargo test -p gpushare-client) to rewrite the table.",
        line + 1
    );
}
