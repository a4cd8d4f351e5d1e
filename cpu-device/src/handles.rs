//! Opaque handles: what the C caller sees as a `CUcontext`, `CUstream`, … is a tagged id, looked up in
//! a per-kind table. A handle of the wrong kind, a destroyed one, or a made-up pointer fails the lookup
//! (the caller gets `INVALID_HANDLE`/`INVALID_CONTEXT`), and nothing is ever dereferenced on trust.
//!
//! Layout of a handle value: `kind << 48 | salt << 32 | id`. The per-process salt keeps a handle
//! from another process from matching by accident; ids are never reused, so stale handles stay invalid.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use dashmap::DashMap;

/// What a handle refers to; the tag is part of the handle value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum HandleKind {
    /// `CUcontext`
    Context = 0xC7,
    /// `CUmodule`
    Module = 0xA1,
    /// `CUfunction`
    Function = 0xF1,
    /// `CUstream`
    Stream = 0x57,
    /// `CUevent`
    Event = 0xE7,
    /// `CUlibrary`
    Library = 0x11,
    /// `CUkernel`
    Kernel = 0x4E,
    /// `CUmemGenericAllocationHandle`
    MemHandle = 0x3A,
}

static SALT: LazyLock<u64> = LazyLock::new(|| {
    let mix = (std::process::id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    (mix >> 17) & 0xFFFF
});

/// A table of live objects of one kind, keyed by handle value.
pub struct HandleTable<T> {
    kind: HandleKind,
    next: AtomicU32,
    objects: DashMap<u64, Arc<T>>,
}

impl<T> HandleTable<T> {
    /// An empty table for `kind`.
    pub fn new(kind: HandleKind) -> Self {
        HandleTable {
            kind,
            next: AtomicU32::new(1),
            objects: DashMap::new(),
        }
    }

    /// Stores `object` and returns its new handle value (never 0, 1 or 2, which CUDA reserves for
    /// special streams).
    pub fn insert(&self, object: Arc<T>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) as u64;
        let handle = ((self.kind as u64) << 48) | (*SALT << 32) | id;
        self.objects.insert(handle, object);
        handle
    }

    /// The object behind `handle`, if it is a live handle of this kind.
    pub fn get(&self, handle: u64) -> Option<Arc<T>> {
        self.objects.get(&handle).map(|o| Arc::clone(&o))
    }

    /// Removes and returns the object behind `handle`.
    pub fn remove(&self, handle: u64) -> Option<Arc<T>> {
        self.objects.remove(&handle).map(|(_, o)| o)
    }

    /// Live handles and objects (a snapshot).
    pub fn snapshot(&self) -> Vec<(u64, Arc<T>)> {
        self.objects
            .iter()
            .map(|e| (*e.key(), Arc::clone(e.value())))
            .collect()
    }

    /// Removes every object for which `pred` is true; returns them.
    pub fn remove_where(&self, mut pred: impl FnMut(&T) -> bool) -> Vec<(u64, Arc<T>)> {
        let victims: Vec<u64> = self
            .objects
            .iter()
            .filter(|e| pred(e.value()))
            .map(|e| *e.key())
            .collect();
        victims
            .into_iter()
            .filter_map(|h| self.objects.remove(&h))
            .collect()
    }

    /// Number of live objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when no object is live.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_tagged_and_not_reused() {
        let streams: HandleTable<u32> = HandleTable::new(HandleKind::Stream);
        let events: HandleTable<u32> = HandleTable::new(HandleKind::Event);
        let a = streams.insert(Arc::new(7));
        assert!(a > 2);
        assert_eq!(*streams.get(a).unwrap(), 7);
        assert!(events.get(a).is_none(), "a stream handle is not an event");
        assert!(streams.remove(a).is_some());
        assert!(streams.get(a).is_none(), "stale handle");
        let b = streams.insert(Arc::new(8));
        assert_ne!(a, b);
        assert!(streams.get(0xdead_beef).is_none());
    }
}
