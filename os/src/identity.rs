//! Who this process is: its effective user id, which decides whom it trusts at the other end of
//! a socket and which directories are its own.

/// The effective uid (`geteuid`).
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_effective_uid_owns_what_this_process_creates() {
        let path = std::env::temp_dir().join(format!("gpushare-os-uid-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let owner = std::fs::metadata(&path).unwrap().uid();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(super::effective_uid(), owner);
    }
}
