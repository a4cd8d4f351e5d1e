//! Admission: how many connections the broker holds, how long a handshake may take, and how many
//! sessions one user may open — so that no local user can exhaust the broker's descriptors,
//! threads or memory by connecting, or hold a connection without finishing its handshake.
//!
//! The acceptor asks [`Admission::arrive`] before it starts a connection's thread: beyond
//! [`AdmissionLimits::pending`] unfinished handshakes (of which one uid — known from
//! `SO_PEERCRED` at once — may hold [`AdmissionLimits::pending_per_uid`]) or
//! [`AdmissionLimits::sessions`] connections in all, the connection is closed at once (no
//! thread, no read). A [`Pending`]
//! handshake has [`AdmissionLimits::handshake`] in total — not per read — after which the
//! watchdog ([`Admission::sweep`], every [`SWEEP`]) shuts its socket down, so a client sending a
//! byte now and then cannot keep it. Once the peer's identity is known, [`Pending::admit`] turns
//! the slot into a [`SessionSlot`] if its uid is under [`AdmissionLimits::per_uid`]. Dropping
//! a slot releases it.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the watchdog looks for expired handshakes.
pub const SWEEP: Duration = Duration::from_millis(200);

/// The bounds (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections whose handshake has not finished.
    pub pending: usize,
    /// Of those, connections of one uid.
    pub pending_per_uid: usize,
    /// Connections in all (pending and open sessions).
    pub sessions: usize,
    /// Open sessions per uid.
    pub per_uid: usize,
    /// Time a handshake may take in total.
    pub handshake: Duration,
}

impl AdmissionLimits {
    /// The defaults for a process allowed `descriptors` open descriptors: 128 pending handshakes
    /// (32 per uid: a burst of a user's processes starting together gets through), 5 s per
    /// handshake, sessions bounded by the descriptors (each holds about 6: its socket
    /// and clones of it, its region's memfd, the worker's side) up to 4096, and 512 per uid.
    pub fn for_descriptors(descriptors: u64) -> AdmissionLimits {
        let sessions = (descriptors.saturating_sub(256) / 6).clamp(16, 4096) as usize;
        AdmissionLimits {
            pending: 128.min(sessions),
            pending_per_uid: 32,
            sessions,
            per_uid: 512.min(sessions),
            handshake: Duration::from_secs(5),
        }
    }
}

/// Why a connection or session was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// Too many handshakes in progress.
    #[error("{0} connections are already waiting to finish their handshake")]
    Pending(usize),
    /// Too many handshakes of one uid in progress.
    #[error("uid {uid} already has {count} connections waiting to finish their handshake")]
    PendingPerUid {
        /// The uid.
        uid: u32,
        /// Its limit, reached.
        count: usize,
    },
    /// Too many connections.
    #[error("the broker already holds {0} connections")]
    Sessions(usize),
    /// Too many sessions of this uid.
    #[error("uid {uid} already has {count} sessions (at most {count} per user)")]
    PerUid {
        /// The uid.
        uid: u32,
        /// Its limit, reached.
        count: usize,
    },
}

#[derive(Default)]
struct State {
    /// Unfinished handshakes: their deadline, a handle to shut their socket down with, and the
    /// peer's uid (`u32::MAX` when the kernel did not say).
    pending: HashMap<u64, (Instant, UnixStream, u32)>,
    /// Connections in all (pending included).
    connections: usize,
    /// Open sessions per uid.
    per_uid: HashMap<u32, usize>,
    next: u64,
}

/// The broker's admission state (see the module documentation).
pub struct Admission {
    limits: AdmissionLimits,
    state: Mutex<State>,
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: AdmissionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            state: Mutex::default(),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection of `uid` arrived at `now`: a pending slot (its handshake must finish by
    /// `now + handshake`), or why not. `stream` is what the watchdog shuts down when it expires.
    pub fn arrive(
        self: &Arc<Self>,
        stream: &UnixStream,
        uid: Option<u32>,
        now: Instant,
    ) -> Result<Pending, Refusal> {
        let uid = uid.unwrap_or(u32::MAX);
        let mut st = self.lock();
        if st.pending.len() >= self.limits.pending {
            return Err(Refusal::Pending(st.pending.len()));
        }
        let of_uid = st.pending.values().filter(|p| p.2 == uid).count();
        if of_uid >= self.limits.pending_per_uid {
            return Err(Refusal::PendingPerUid {
                uid,
                count: self.limits.pending_per_uid,
            });
        }
        if st.connections >= self.limits.sessions {
            return Err(Refusal::Sessions(st.connections));
        }
        // Without a handle to shut it down, the deadline could not be enforced: refuse.
        let handle = stream
            .try_clone()
            .map_err(|_| Refusal::Sessions(st.connections))?;
        st.next += 1;
        let key = st.next;
        st.pending
            .insert(key, (now + self.limits.handshake, handle, uid));
        st.connections += 1;
        Ok(Pending {
            adm: Arc::clone(self),
            key,
            open: true,
        })
    }

    /// Shuts down the sockets of handshakes past their deadline at `now`; how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut st = self.lock();
        let expired: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, (deadline, _, _))| *deadline <= now)
            .map(|(&k, _)| k)
            .collect();
        for k in &expired {
            if let Some((_, s, _)) = st.pending.remove(k) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        expired.len()
    }

    /// Connections held now (pending and open), and pending handshakes.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.connections, st.pending.len())
    }
}

/// A connection whose handshake is in progress; dropping it releases its slot.
pub struct Pending {
    adm: Arc<Admission>,
    key: u64,
    /// Still counted among the connections.
    open: bool,
}

impl Pending {
    /// The handshake identified the peer as `uid`: its session slot, unless the uid is at its
    /// limit (then the connection's slot is released with this value).
    pub fn admit(mut self, uid: u32) -> Result<SessionSlot, Refusal> {
        let mut st = self.adm.lock();
        st.pending.remove(&self.key);
        let n = st.per_uid.entry(uid).or_default();
        if *n >= self.adm.limits.per_uid {
            return Err(Refusal::PerUid {
                uid,
                count: self.adm.limits.per_uid,
            });
        }
        *n += 1;
        drop(st);
        self.open = false;
        Ok(SessionSlot {
            adm: Arc::clone(&self.adm),
            uid,
        })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut st = self.adm.lock();
        st.pending.remove(&self.key);
        if self.open {
            st.connections -= 1;
        }
    }
}

/// An open session's place in the counts; dropping it releases the place.
pub struct SessionSlot {
    adm: Arc<Admission>,
    uid: u32,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut st = self.adm.lock();
        st.connections -= 1;
        if let Some(n) = st.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                st.per_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            pending: 2,
            pending_per_uid: 2,
            sessions: 3,
            per_uid: 1,
            handshake: Duration::from_secs(5),
        }
    }

    #[test]
    fn connections_beyond_the_caps_are_refused_and_slots_come_back() {
        let adm = Admission::new(limits());
        let (a, _ka) = UnixStream::pair().unwrap();
        let now = Instant::now();
        let p1 = adm.arrive(&a, Some(7), now).unwrap();
        let p2 = adm.arrive(&a, Some(7), now).unwrap();
        assert_eq!(
            adm.arrive(&a, Some(7), now).err(),
            Some(Refusal::Pending(2))
        );
        let s1 = p1.admit(1000).unwrap();
        let p3 = adm.arrive(&a, Some(7), now).unwrap();
        assert_eq!(adm.counts(), (3, 2));
        assert_eq!(
            adm.arrive(&a, Some(7), now).err(),
            Some(Refusal::Pending(2))
        );
        // uid 1000 is at its limit; its second session is refused and its slot released.
        assert_eq!(
            p2.admit(1000).err(),
            Some(Refusal::PerUid {
                uid: 1000,
                count: 1
            })
        );
        assert_eq!(adm.counts(), (2, 1));
        let s2 = p3.admit(1001).unwrap();
        let p4 = adm.arrive(&a, Some(7), now).unwrap();
        assert_eq!(
            adm.arrive(&a, Some(7), now).err(),
            Some(Refusal::Sessions(3))
        );
        drop((s1, s2, p4));
        assert_eq!(adm.counts(), (0, 0));
    }

    #[test]
    fn one_uid_cannot_hold_every_pending_slot() {
        let adm = Admission::new(AdmissionLimits {
            pending_per_uid: 1,
            ..limits()
        });
        let (a, _ka) = UnixStream::pair().unwrap();
        let now = Instant::now();
        let p = adm.arrive(&a, Some(1000), now).unwrap();
        assert_eq!(
            adm.arrive(&a, Some(1000), now).err(),
            Some(Refusal::PendingPerUid {
                uid: 1000,
                count: 1
            })
        );
        let q = adm
            .arrive(&a, Some(1001), now)
            .expect("another uid gets in");
        drop((p, q));
        assert_eq!(adm.counts(), (0, 0));
    }

    #[test]
    fn a_handshake_past_its_total_deadline_is_cut_off() {
        let adm = Admission::new(limits());
        let (broker_side, client_side) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let pending = adm.arrive(&broker_side, None, start).unwrap();
        assert_eq!(adm.sweep(start + Duration::from_secs(4)), 0);
        assert_eq!(adm.sweep(start + Duration::from_secs(5)), 1);
        // The broker's reads now end; the client sees the connection closed.
        let mut buf = [0u8; 1];
        use std::io::Read;
        assert_eq!((&broker_side).read(&mut buf).unwrap(), 0);
        assert_eq!((&client_side).read(&mut buf).unwrap(), 0);
        drop(pending);
        assert_eq!(adm.counts(), (0, 0));
    }
}
