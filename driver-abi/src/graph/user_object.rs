//! User objects (`cuUserObjectCreate`): reference-counted host resources whose destructor runs
//! when the last reference goes, references held by the caller, by graphs
//! (`cuGraphRetainUserObject`) and by the executable graphs instantiated from them. As in CUDA,
//! destructors run on a thread of their own (never inside the call that dropped the last
//! reference: the caller may hold locks the destructor needs) and must not call CUDA.

use std::collections::HashMap;
use std::ffi::c_void;

use super::store::Id;
use crate::cuda_h::CUhostFn;
use crate::error::{CuError, CuResult};

/// `CU_USER_OBJECT_NO_DESTRUCTOR_SYNC`: required by `cuUserObjectCreate`.
pub const NO_DESTRUCTOR_SYNC: u32 = 0x1;
/// `CU_GRAPH_USER_OBJECT_MOVE`: the graph takes the caller's references.
pub const GRAPH_USER_OBJECT_MOVE: u32 = 0x1;

/// A destructor to run, with its argument.
#[derive(Clone, Copy)]
pub struct Destructor {
    func: CUhostFn,
    data: *mut c_void,
}

// SAFETY: the destructor and its argument are the caller's, meant to be called from a driver
// thread (CUDA runs them on an internal thread).
unsafe impl Send for Destructor {}

impl Destructor {
    /// Runs it on a thread of its own.
    pub fn spawn(self) {
        let run = move || {
            let d = self;
            // SAFETY: the caller's destructor with its own argument, called once, outside any
            // driver lock, as `cuUserObjectCreate` promises.
            unsafe { (d.func)(d.data) };
        };
        if std::thread::Builder::new()
            .name("gpushare-userobj".into())
            .spawn(run)
            .is_err()
        {
            tracing::warn!("could not start a thread for a user object's destructor");
        }
    }
}

/// One user object.
struct UserObject {
    destructor: Destructor,
    refs: u64,
}

/// Every user object of the process.
#[derive(Default)]
pub struct UserObjects {
    objects: HashMap<Id, UserObject>,
}

impl UserObjects {
    /// A new object with `refs` references.
    pub fn create(&mut self, id: Id, func: CUhostFn, data: *mut c_void, refs: u32) -> CuResult {
        if refs == 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let destructor = Destructor { func, data };
        self.objects.insert(
            id,
            UserObject {
                destructor,
                refs: u64::from(refs),
            },
        );
        Ok(())
    }

    /// Adds `n` references.
    pub fn retain(&mut self, id: Id, n: u32) -> CuResult {
        let o = self.objects.get_mut(&id).ok_or(CuError::INVALID_VALUE)?;
        if n == 0 {
            return Err(CuError::INVALID_VALUE);
        }
        o.refs += u64::from(n);
        Ok(())
    }

    /// Drops `n` references; the destructor to run when none is left.
    pub fn release(&mut self, id: Id, n: u32) -> CuResult<Option<Destructor>> {
        let o = self.objects.get_mut(&id).ok_or(CuError::INVALID_VALUE)?;
        if n == 0 || u64::from(n) > o.refs {
            return Err(CuError::INVALID_VALUE);
        }
        o.refs -= u64::from(n);
        if o.refs > 0 {
            return Ok(None);
        }
        Ok(self.objects.remove(&id).map(|o| o.destructor))
    }

    /// Whether `id` is a live user object.
    pub fn contains(&self, id: Id) -> bool {
        self.objects.contains_key(&id)
    }
}
