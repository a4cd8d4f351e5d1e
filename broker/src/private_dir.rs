//! Directories other users cannot tamper with: checked before the broker puts its socket in one,
//! or `gpushare run` puts the directory that comes first on a tenant's `LD_LIBRARY_PATH` in one.
//!
//! A directory in a shared place (`/tmp`) may have been made by someone else first: whatever is
//! in it would then be theirs (a library that runs inside the tenant, a socket that is not the
//! broker's). So an existing directory is used only if it is a real directory (not a symbolic
//! link), owned by the effective user, and not writable by others ([`Rule::NoOthersWrite`]) or
//! not open to others at all ([`Rule::Private`]) — or, for the broker's socket
//! ([`Rule::NoTamper`]), owned by the user or root and, if others may write to it, sticky (as
//! `/tmp` is: nobody else can remove or rename what the user put there). New directories are
//! made with an explicit mode, not the umask's.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What a directory must deny others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Group and others have no access (mode `..00`).
    Private,
    /// Group and others may not write (no `0o022` bits).
    NoOthersWrite,
    /// Owned by the user or root; writable by others only with the sticky bit.
    NoTamper,
}

impl Rule {
    fn forbidden(self, mode: u32) -> u32 {
        match self {
            Rule::Private => 0o077,
            Rule::NoOthersWrite => 0o022,
            Rule::NoTamper if mode & 0o1000 != 0 => 0,
            Rule::NoTamper => 0o022,
        }
    }
}

/// Why a directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Creating or inspecting it failed.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// It is a symbolic link or not a directory.
    #[error("{path} is not a directory (a symbolic link or another kind of file)")]
    NotDir {
        /// The path.
        path: String,
    },
    /// Another user owns it.
    #[error("{path} belongs to uid {owner}, not to uid {uid} (who runs this)")]
    Owner {
        /// The directory.
        path: String,
        /// Its owner.
        owner: u32,
        /// The effective uid.
        uid: u32,
    },
    /// Others may write to it (or enter it, for a private one).
    #[error("{path} has mode {mode:04o}: other users may {what} it")]
    Mode {
        /// The directory.
        path: String,
        /// Its permission bits.
        mode: u32,
        /// "write to" or "enter".
        what: &'static str,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DirError + '_ {
    move |source| DirError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub use gpushare_client::os::effective_uid;

/// Checks that `path` is a directory of the effective user that `rule` keeps others out of.
pub fn check(path: &Path, rule: Rule) -> Result<(), DirError> {
    let meta = std::fs::symlink_metadata(path).map_err(io_error(path))?;
    let name = || path.display().to_string();
    if !meta.file_type().is_dir() {
        return Err(DirError::NotDir { path: name() });
    }
    let uid = effective_uid();
    if meta.uid() != uid && !(rule == Rule::NoTamper && meta.uid() == 0) {
        return Err(DirError::Owner {
            path: name(),
            owner: meta.uid(),
            uid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & rule.forbidden(mode) != 0 {
        let what = if mode & 0o022 != 0 {
            "write to"
        } else {
            "enter"
        };
        return Err(DirError::Mode {
            path: name(),
            mode,
            what,
        });
    }
    Ok(())
}

/// `path`, created with mode 0700 if missing (its parent must exist), then [`check`]ed.
pub fn ensure(path: &Path, rule: Rule) -> Result<(), DirError> {
    ensure_with_mode(path, rule, 0o700)
}

/// `path`, created with `mode` if missing (its parent must exist; the umask does not apply),
/// then [`check`]ed.
pub fn ensure_with_mode(path: &Path, rule: Rule, mode: u32) -> Result<(), DirError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) if mode != 0o700 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(io_error(path))?;
        }
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(path)(e)),
    }
    check(path, rule)
}

/// A new directory under `parent` named `prefix` plus an unpredictable suffix, mode 0700.
pub fn fresh(parent: &Path, prefix: &str) -> Result<PathBuf, DirError> {
    use std::hash::{BuildHasher, Hasher};
    let seed = std::collections::hash_map::RandomState::new();
    let mut last = None;
    for attempt in 0u32..16 {
        let mut h = seed.build_hasher();
        h.write_u32(std::process::id());
        h.write_u32(attempt);
        let path = parent.join(format!("{prefix}{:016x}", h.finish()));
        // mkdir fails if anything (a link included) is already there: the directory is ours.
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                check(&path, Rule::Private)?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    Err(io_error(parent)(last.unwrap_or_else(|| {
        std::io::Error::other("no unused name for a private directory")
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "gpushare-private-dir-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).expect("scratch dir");
        p
    }

    #[test]
    fn a_new_directory_is_private_whatever_the_umask() {
        let root = scratch("new");
        let d = root.join("d");
        ensure(&d, Rule::Private).expect("created and private");
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure(&d, Rule::Private).expect("an existing private directory is fine");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn open_directories_links_and_files_are_refused() {
        let root = scratch("open");
        let d = root.join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            ensure(&d, Rule::NoOthersWrite),
            Err(DirError::Mode {
                what: "write to",
                ..
            })
        ));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure(&d, Rule::NoOthersWrite).expect("readable by others is allowed");
        let e = ensure(&d, Rule::Private).expect_err("not private");
        assert!(e.to_string().contains("0755"), "{e}");
        let link = root.join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(matches!(
            ensure(&link, Rule::NoOthersWrite),
            Err(DirError::NotDir { .. })
        ));
        let file = root.join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(
            check(&file, Rule::Private),
            Err(DirError::NotDir { .. })
        ));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_socket_directory_may_be_open_only_if_sticky() {
        let root = scratch("sticky");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            check(&root, Rule::NoTamper),
            Err(DirError::Mode { .. })
        ));
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1777)).unwrap();
        check(&root, Rule::NoTamper).expect("sticky, like /tmp");
        assert!(check(&root, Rule::NoOthersWrite).is_err());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn fresh_directories_are_new_and_private() {
        let root = scratch("fresh");
        let a = fresh(&root, "x-").unwrap();
        let b = fresh(&root, "x-").unwrap();
        assert_ne!(a, b);
        check(&a, Rule::Private).unwrap();
        std::fs::remove_dir_all(root).unwrap();
    }
}
