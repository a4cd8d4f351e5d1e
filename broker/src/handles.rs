//! Broker-issued handles and the per-session tables that resolve them.
//!
//! A tenant never sees a driver handle: contexts, modules, functions, streams, events and VMM
//! allocation handles are named by opaque `u64`s the broker issues. Encoding (documented for the
//! shim's logs; the shim must treat them as opaque):
//!
//! ```text
//!  63      56 55             32 31              0
//! +----------+-----------------+-----------------+
//! |   kind   | session (24 b)  | serial (32 b)   |
//! +----------+-----------------+-----------------+
//! ```
//!
//! The session field makes handles unique across tenants, so a tenant naming another tenant's
//! handle finds nothing in its own table and gets `CUDA_ERROR_INVALID_HANDLE` — exactly what an
//! unknown handle gets; the serial is per session, so a tenant learns nothing about others from
//! its handles. Handle 0 is never issued (stream 0 is the tenant's legacy default stream).

use std::collections::HashMap;

use gpushare_client::code::{self, CuCode};

/// Errors of handle tables (a `CUresult` in replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Unknown, stale, foreign or wrong-kind handle.
    #[error("invalid {0:?} handle {1:#x}")]
    Invalid(Kind, u64),
    /// The per-session serial space is exhausted.
    #[error("out of {0:?} handles")]
    Exhausted(Kind),
}

impl HandleError {
    /// The `CUresult` to report.
    pub fn code(&self) -> CuCode {
        match self {
            HandleError::Invalid(..) => code::ERROR_INVALID_HANDLE,
            HandleError::Exhausted(_) => code::ERROR_OUT_OF_MEMORY,
        }
    }
}

/// What a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A context (all of a tenant's contexts alias the broker's shared context).
    Context = 1,
    /// A loaded module.
    Module = 2,
    /// A kernel of a module.
    Function = 3,
    /// A stream.
    Stream = 4,
    /// An event.
    Event = 5,
    /// A VMM physical allocation (`cuMemCreate`).
    MemHandle = 6,
}

/// Builds a handle value.
pub fn encode(kind: Kind, session: u64, serial: u32) -> u64 {
    ((kind as u64) << 56) | ((session & 0xff_ffff) << 32) | u64::from(serial)
}

/// A table of one kind of handle for one session.
#[derive(Debug)]
pub struct Table<T> {
    kind: Kind,
    session: u64,
    next: u32,
    map: HashMap<u64, T>,
}

impl<T> Table<T> {
    /// An empty table issuing `kind` handles for `session`.
    pub fn new(kind: Kind, session: u64) -> Table<T> {
        Table {
            kind,
            session,
            next: 1,
            map: HashMap::new(),
        }
    }

    /// Stores `value` under a fresh handle.
    pub fn insert(&mut self, value: T) -> Result<u64, HandleError> {
        let serial = self.next;
        self.next = self
            .next
            .checked_add(1)
            .ok_or(HandleError::Exhausted(self.kind))?;
        let h = encode(self.kind, self.session, serial);
        self.map.insert(h, value);
        Ok(h)
    }

    /// The value of handle `h`.
    pub fn get(&self, h: u64) -> Result<&T, HandleError> {
        self.map.get(&h).ok_or(HandleError::Invalid(self.kind, h))
    }

    /// The value of handle `h`, mutably.
    pub fn get_mut(&mut self, h: u64) -> Result<&mut T, HandleError> {
        self.map
            .get_mut(&h)
            .ok_or(HandleError::Invalid(self.kind, h))
    }

    /// Removes handle `h`.
    pub fn remove(&mut self, h: u64) -> Result<T, HandleError> {
        self.map
            .remove(&h)
            .ok_or(HandleError::Invalid(self.kind, h))
    }

    /// Number of live handles.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Live handles and values.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &T)> {
        self.map.iter()
    }

    /// Live handles and values, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u64, &mut T)> {
        self.map.iter_mut()
    }

    /// Removes every entry matching `pred`, returning them.
    pub fn extract(&mut self, mut pred: impl FnMut(&T) -> bool) -> Vec<(u64, T)> {
        let keys: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, v)| pred(v))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.map.remove(&k).map(|v| (k, v)))
            .collect()
    }

    /// Removes every entry.
    pub fn drain(&mut self) -> Vec<(u64, T)> {
        self.map.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_and_wrong_kind_handles_are_invalid() {
        let mut a: Table<&str> = Table::new(Kind::Module, 1);
        let mut b: Table<&str> = Table::new(Kind::Module, 2);
        let mut s: Table<&str> = Table::new(Kind::Stream, 1);
        let ha = a.insert("a").unwrap();
        let hb = b.insert("b").unwrap();
        let hs = s.insert("s").unwrap();
        assert_ne!(ha, hb);
        assert_eq!(*a.get(ha).unwrap(), "a");
        assert_eq!(
            b.get(ha).unwrap_err().code(),
            code::ERROR_INVALID_HANDLE,
            "a foreign handle is invalid"
        );
        assert!(a.get(hs).is_err(), "a stream handle is not a module");
        assert!(a.get(0).is_err());
        assert_eq!(a.remove(ha).unwrap(), "a");
        assert!(a.get(ha).is_err(), "a removed handle is stale");
    }
}
