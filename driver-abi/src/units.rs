//! Sizes as people write them in configuration (`GPUSHARE_CPU_MEMORY`, the broker's
//! `memory_quota`): one parser, so both accept the same spellings.

/// Parses a size: bytes, or a number with a unit (`K`, `KiB`, `M`, `MiB`, `G`, `GiB`, `T`,
/// `TiB` are powers of 1024; `KB`, `MB`, `GB`, `TB` powers of 1000; case and surrounding spaces
/// ignored). `None` for anything else or a value beyond `u64`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        const GIB: u64 = 1 << 30;
        assert_eq!(parse_size("1073741824"), Some(GIB));
        assert_eq!(parse_size("16GiB"), Some(16 * GIB));
        assert_eq!(parse_size(" 16 gib "), Some(16 * GIB));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2TiB"), Some(2 << 40));
        assert_eq!(parse_size("3GB"), Some(3_000_000_000));
        assert_eq!(parse_size("0"), Some(0));
        for bad in [
            "",
            "GiB",
            "1.5GiB",
            "-1",
            "12 parsecs",
            "99999999999TiB",
            "x",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
