//! The CPU's last-level cache: its size, from sysfs (`/sys/devices/system/cpu/cpu0/cache`), for
//! deciding which copies are too large to stay in the cache (their destination is then written
//! with streaming stores, [`crate::raw::streaming`]).

use std::path::Path;

/// Where the kernel describes CPU 0's caches, one `indexN` directory per cache.
const CACHES: &str = "/sys/devices/system/cpu/cpu0/cache";

/// The size in bytes of CPU 0's highest-level data or unified cache, or `None` where sysfs does
/// not say (no sysfs in the container, another operating system).
pub fn last_level_cache_bytes() -> Option<u64> {
    last_level_cache_in(Path::new(CACHES))
}

/// [`last_level_cache_bytes`] from a directory laid out like sysfs's.
fn last_level_cache_in(dir: &Path) -> Option<u64> {
    let read = |d: &Path, name: &str| std::fs::read_to_string(d.join(name)).ok();
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| {
            let d = e.path();
            let kind = read(&d, "type")?;
            if kind.trim() == "Instruction" {
                return None;
            }
            let level = read(&d, "level")?.trim().parse::<u32>().ok()?;
            Some((level, parse_size(&read(&d, "size")?)?))
        })
        .max()
        .map(|(_, bytes)| bytes)
}

/// A sysfs cache size: `32768K`, `1M`, `512` (bytes).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_sysfs_writes_them() {
        assert_eq!(parse_size("32768K\n"), Some(32 << 20));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size(""), None);
    }

    /// The highest level wins, instruction caches never; a directory without caches gives none.
    #[test]
    fn the_last_level_is_the_highest_data_or_unified_cache() {
        let dir = std::env::temp_dir().join(format!("gpushare-os-cache-{}", std::process::id()));
        let caches = [
            ("index0", "1", "Data", "32K"),
            ("index1", "1", "Instruction", "32K"),
            ("index2", "2", "Unified", "1024K"),
            ("index3", "3", "Unified", "32768K"),
            ("index4", "4", "Instruction", "65536K"),
        ];
        for (name, level, kind, size) in caches {
            let d = dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        }
        assert_eq!(last_level_cache_in(&dir), Some(32 << 20));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(last_level_cache_in(&dir), None);
        // Whatever this machine says is a plausible cache, or nothing.
        if let Some(bytes) = last_level_cache_bytes() {
            assert!(bytes >= 64 << 10, "last-level cache of {bytes} bytes");
        }
    }
}
