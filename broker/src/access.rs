//! Who may use the broker and who administers it: the policy's `[access]` table applied to a
//! connection's peer credentials (`SO_PEERCRED`: uid, primary gid).
//!
//! Root and the broker's own user are always admitted and always admins. Beyond them, `users`
//! admits users (by name or uid) and `groups` the members of groups (by name or gid: the
//! peer's primary group or any of its user's supplementary groups in the group database);
//! `admins` and `admin_groups` name who, besides root and the broker's user, sees every user's
//! tenants in `gpushare status` (others see their own). Names are looked up when a connection
//! arrives (the passwd and group databases, NSS included), so edits to them apply without a
//! reload; a name that does not resolve matches nobody.

/// A user or group named by number or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A uid or gid.
    Id(u32),
    /// A user or group name.
    Name(String),
}

/// The `[access]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRules {
    /// Users admitted besides root and the broker's user.
    pub users: Vec<Principal>,
    /// Groups whose members are admitted.
    pub groups: Vec<Principal>,
    /// Users who see every user's tenants.
    pub admins: Vec<Principal>,
    /// Groups whose members see every user's tenants.
    pub admin_groups: Vec<Principal>,
}

/// The user and group databases, as access decisions need them.
pub trait Directory {
    /// The name of user `uid`.
    fn user_name(&self, uid: u32) -> Option<String>;
    /// The gid of group `name`.
    fn group_id(&self, name: &str) -> Option<u32>;
    /// Every group of user `uid` whose primary group is `gid` (`gid` included).
    fn groups_of(&self, uid: u32, gid: u32) -> Vec<u32>;
}

/// The system's databases (NSS included).
pub struct SystemDirectory;

impl Directory for SystemDirectory {
    fn user_name(&self, uid: u32) -> Option<String> {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
    }

    fn group_id(&self, name: &str) -> Option<u32> {
        nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    }

    fn groups_of(&self, uid: u32, gid: u32) -> Vec<u32> {
        let mut groups = vec![gid];
        let name = self
            .user_name(uid)
            .and_then(|n| std::ffi::CString::new(n).ok());
        if let Some(name) = name {
            if let Ok(list) = nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid)) {
                groups.extend(list.into_iter().map(|g| g.as_raw()));
            }
        }
        groups
    }
}

/// A connection's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

impl AccessRules {
    /// True if users other than root and the broker's own may connect: the socket must then
    /// be open to them (its mode), the check per connection being [`AccessRules::admits`].
    pub fn opens_socket(&self) -> bool {
        !self.users.is_empty() || !self.groups.is_empty()
    }

    /// The mode of the broker's socket: 0600 (its own user; root connects regardless) unless
    /// others are admitted (0666: whom to serve is then decided per connection, by
    /// [`AccessRules::admits`]).
    pub fn socket_mode(&self) -> u32 {
        if self.opens_socket() {
            0o666
        } else {
            0o600
        }
    }

    /// True if `peer` may use a broker running as `broker_uid`.
    pub fn admits(&self, peer: Peer, broker_uid: u32, dir: &dyn Directory) -> bool {
        owner(peer, broker_uid) || matches(&self.users, &self.groups, peer, dir)
    }

    /// True if `peer` sees every user's tenants.
    pub fn is_admin(&self, peer: Peer, broker_uid: u32, dir: &dyn Directory) -> bool {
        owner(peer, broker_uid) || matches(&self.admins, &self.admin_groups, peer, dir)
    }
}

fn owner(peer: Peer, broker_uid: u32) -> bool {
    peer.uid == 0 || peer.uid == broker_uid
}

/// True if user `uid` is one of `users` (by uid, or by name: looked up once, only if needed).
pub fn is_listed(users: &[Principal], uid: u32, dir: &dyn Directory) -> bool {
    let mut name: Option<Option<String>> = None;
    users.iter().any(|u| match u {
        Principal::Id(id) => *id == uid,
        Principal::Name(n) => {
            name.get_or_insert_with(|| dir.user_name(uid)).as_deref() == Some(n.as_str())
        }
    })
}

/// True if `peer` is one of `users` or a member of one of `groups`.
fn matches(users: &[Principal], groups: &[Principal], peer: Peer, dir: &dyn Directory) -> bool {
    let is_user = is_listed(users, peer.uid, dir);
    if is_user || groups.is_empty() {
        return is_user;
    }
    let member_of = dir.groups_of(peer.uid, peer.gid);
    groups.iter().any(|g| {
        let gid = match g {
            Principal::Id(id) => Some(*id),
            Principal::Name(n) => dir.group_id(n),
        };
        gid.is_some_and(|gid| member_of.contains(&gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// alice = 1000 (groups 1000, gpu = 44), bob = 1001 (group 1001), carol = 1002 (primary
    /// group gpu).
    struct Fake;

    impl Directory for Fake {
        fn user_name(&self, uid: u32) -> Option<String> {
            match uid {
                1000 => Some("alice".into()),
                1001 => Some("bob".into()),
                1002 => Some("carol".into()),
                _ => None,
            }
        }

        fn group_id(&self, name: &str) -> Option<u32> {
            (name == "gpu").then_some(44)
        }

        fn groups_of(&self, uid: u32, gid: u32) -> Vec<u32> {
            match uid {
                1000 => vec![gid, 44],
                _ => vec![gid],
            }
        }
    }

    const BROKER: u32 = 500;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer { uid, gid }
    }

    #[test]
    fn by_default_only_root_and_the_brokers_user_get_in() {
        let a = AccessRules::default();
        assert!(!a.opens_socket());
        assert!(a.admits(peer(0, 0), BROKER, &Fake));
        assert!(a.admits(peer(BROKER, 7), BROKER, &Fake));
        assert!(!a.admits(peer(1000, 1000), BROKER, &Fake));
        assert!(a.is_admin(peer(BROKER, 7), BROKER, &Fake));
        assert!(!a.is_admin(peer(1000, 1000), BROKER, &Fake));
    }

    #[test]
    fn users_by_name_or_uid_and_groups_by_membership() {
        let a = AccessRules {
            users: vec![Principal::Name("bob".into()), Principal::Id(4242)],
            groups: vec![Principal::Name("gpu".into())],
            admins: vec![Principal::Name("alice".into())],
            admin_groups: vec![],
        };
        assert!(a.opens_socket());
        assert!(a.admits(peer(1001, 1001), BROKER, &Fake), "bob by name");
        assert!(a.admits(peer(4242, 4242), BROKER, &Fake), "by uid");
        assert!(
            a.admits(peer(1000, 1000), BROKER, &Fake),
            "alice: supplementary gpu"
        );
        assert!(
            a.admits(peer(1002, 44), BROKER, &Fake),
            "carol: primary gpu"
        );
        assert!(!a.admits(peer(1003, 1003), BROKER, &Fake), "nobody named");
        assert!(a.is_admin(peer(1000, 1000), BROKER, &Fake));
        assert!(!a.is_admin(peer(1001, 1001), BROKER, &Fake));
        let unknown = AccessRules {
            groups: vec![Principal::Name("no-such-group".into())],
            ..AccessRules::default()
        };
        assert!(!unknown.admits(peer(1000, 1000), BROKER, &Fake));
    }
}
