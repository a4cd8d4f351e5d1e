//! Who this process is and what it may hold: its effective user id, which decides whom it
//! trusts at the other end of a socket and which directories are its own, and its limit on open
//! descriptors, which bounds how many connections a server can serve.

use crate::OsError;

/// The effective uid (`geteuid`).
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Raises this process's soft limit on open descriptors (`RLIMIT_NOFILE`) to its hard limit;
/// returns the soft limit now in force.
pub fn raise_descriptor_limit() -> Result<u64, OsError> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim).map_err(|e| OsError::sys("setrlimit", e))?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
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

    #[test]
    fn the_descriptor_limit_is_raised_to_the_hard_limit() {
        let soft = super::raise_descriptor_limit().expect("setrlimit");
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        assert_eq!(Some(soft), hard.or(Some(u64::MAX)));
    }
}
