//! Deduplication in a session (docs/dedup.md): the hooks the ring thread and the request
//! handlers call with the tenant's tables locked, deciding what each command means for the
//! tenant's granules ([`crate::dedup`]), and the exclusive work ([`remap`]) that carries the
//! decisions out on the worker in the tenant's command order.
//!
//! - Allocations of a tenant in dedup (one physical allocation per granule) are made and freed
//!   in [`super::granules`], below the tenant in the session's layers.
//! - [`upload`]: a host-to-device copy. Its bytes are hashed per granule piece as they sit in
//!   shared memory; granules it completes are registered in the worker's index, or joined to a
//!   copy already there (after the copy; *instead of* it when the copy covers whole granules
//!   whose content is resident and verified).
//! - [`written`], [`launch_writes`]: any other write (a device-to-device copy, a memset, a
//!   stream write, a kernel that may store through a pointer parameter) makes private
//!   granules dirty and gives shared ones back to the writer first: copy-on-write, or simply
//!   back when the writer is the copy's only user and it was never read-only.

mod copies;
mod remap;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use gpushare_client::proto::ParamInfo;

use super::state::TenantState;
use super::tenant::Tenant;
use crate::dedup::index::Content;
use crate::dedup::{Completed, Fill, Granule, Hash, Key, TenantGranules, UNHASHED};
use crate::device::{HostMem, Stream};
use crate::work::Op;

/// What an upload takes besides its copy.
#[derive(Default)]
pub struct Upload {
    /// Before the copy: copy-on-write of shared granules it overwrites, and, for an upload of
    /// whole granules all resident, their remap onto the resident copies (which then sets
    /// `skip`).
    pub before: Option<Op>,
    /// Set when the copy is no longer needed.
    pub skip: Option<Arc<AtomicBool>>,
    /// Remaps of the granules it completed onto resident copies, after the copy.
    pub after: Option<Op>,
    /// Granules it completed whose content is new: registered as copies only once the copy is
    /// done ([`key_from_device`], which keeps their keys), so no other tenant can join — and
    /// make read-only — a granule whose upload is still queued.
    pub fresh: Vec<Completed>,
}

/// A host-to-device copy of `src` to `dst` (tables locked; `dst` checked to be the tenant's).
pub fn upload(t: &Tenant, st: &mut TenantState, seq: u64, dst: u64, src: &HostMem) -> Upload {
    let len = src.len() as u64;
    let Some(granules) = st.granules.as_mut() else {
        return Upload::default();
    };
    let cow_first = cow(t, granules, seq, dst, len);
    let mut unhashable = false;
    let completed = granules.uploaded(dst, len, |offset, n| {
        src.hash(offset as usize, n as usize).unwrap_or_else(|| {
            unhashable = true;
            [0; 32]
        })
    });
    let mut plan = Upload {
        before: cow_first,
        ..Upload::default()
    };
    if unhashable {
        // Cannot happen for a checked span; never share what was not hashed.
        granules.written(dst, len);
        return plan;
    }
    let g = granules.granule();
    let completed = with_prefixes(completed, src, dst, g);
    let whole = dst.is_multiple_of(g) && len.is_multiple_of(g) && completed.len() as u64 == len / g;
    let (joins, unkeyed, fresh) = classify(t, granules, completed);
    plan.fresh = fresh;
    if !unkeyed.is_empty() {
        // Granules completed by this upload after unhashed ones: keys from the device's bytes
        // once the copy is done.
        plan.after = Some(remap::then_key(t, seq, unkeyed));
    }
    if joins.is_empty() {
        return plan;
    }
    if whole && joins.len() as u64 == len / g {
        // Every granule's content is resident: map it before the copy and skip the copy.
        let skip = Arc::new(AtomicBool::new(false));
        let prejoin = remap::prejoin(t, seq, joins.clone(), Arc::clone(&skip));
        plan.before = remap::combine(plan.before.into_iter().chain([prejoin]).collect());
        plan.skip = Some(skip);
    }
    plan.after = remap::combine(
        plan.after
            .into_iter()
            .chain([remap::joins(t, seq, joins)])
            .collect(),
    );
    plan
}

/// `completed` with the prefix keys of those granules the upload of `src` to `dst` filled whole
/// in one piece (their bytes at hand in `src`).
fn with_prefixes(mut completed: Vec<Completed>, src: &HostMem, dst: u64, g: u64) -> Vec<Completed> {
    for c in &mut completed {
        if c.key.is_some() && c.pieces == [(0, g)] {
            let at = c
                .addr
                .checked_sub(dst)
                .and_then(|a| usize::try_from(a).ok());
            c.prefix = at.and_then(|at| src.prefix_key(at, g as usize));
        }
    }
    completed
}

/// A host-to-device copy whose hashing waits ([`hash_later`]): copy-on-write of shared
/// granules it overwrites, then the copy.
pub fn copy_ops(
    t: &Tenant,
    st: &mut TenantState,
    dst: u64,
    src: HostMem,
    stream: Arc<Stream>,
) -> Vec<Op> {
    let len = src.len() as u64;
    let cow_first = st
        .granules
        .as_mut()
        .and_then(|granules| cow(t, granules, 0, dst, len));
    let copy = Op::CopyHtoD {
        dst,
        src,
        stream,
        skip: None,
    };
    cow_first.into_iter().chain([copy]).collect()
}

/// What must run once an upload's copy completed: queueing the granules it covered for their
/// keys ([`key_from_device`]). A completion marker after the copy may run it (one marker per
/// piece of a pipelined upload instead of two), or [`after_copy`] makes it a host function.
pub type Keying = Box<dyn FnOnce() + Send>;

/// A host-to-device copy with what deduplication adds around it (or instead of it), in order,
/// and the keying to run once the copy completed, if any ([`Keying`]: the caller attaches it to
/// a completion marker, or queues it with [`after_copy`]).
pub fn upload_ops(
    t: &Tenant,
    st: &mut TenantState,
    seq: u64,
    dst: u64,
    src: HostMem,
    stream: Arc<Stream>,
) -> (Vec<Op>, Option<Keying>) {
    if hash_later(t, st, dst, &src) {
        // Large and not resident: copied without hashing; once the stream has done the copy,
        // the covered granules are keyed from the device's bytes.
        let len = src.len() as u64;
        let ops = copy_ops(t, st, dst, src, stream);
        let covered = uploaded_unhashed(st, dst, len);
        let keying = (!covered.is_empty()).then(|| keying(t, covered));
        return (ops, keying);
    }
    let plan = upload(t, st, seq, dst, &src);
    let keying = (!plan.fresh.is_empty()).then(|| keying(t, plan.fresh));
    let copy = Op::CopyHtoD {
        dst,
        src,
        stream,
        skip: plan.skip,
    };
    let ops = plan
        .before
        .into_iter()
        .chain([copy])
        .chain(plan.after)
        .collect();
    (ops, keying)
}

/// Uploads smaller than this are hashed before their copy is queued (a thread to overlap
/// them with the copy costs more than it saves).
const HASH_LATER_FROM: u64 = 1 << 20;

/// Whether the upload of `src` to `dst` is better keyed from the device's bytes after its copy
/// (tables locked; synchronous uploads: `exec::copy`, asynchronous ones: [`upload_ops`]):
/// a tenant in dedup, an upload of at least [`HASH_LATER_FROM`] bytes, unless its first whole
/// granule is resident (then the copy may be skipped, which needs the keys first:
/// [`upload_ops`]).
pub fn hash_later(t: &Tenant, st: &mut TenantState, dst: u64, src: &HostMem) -> bool {
    decide_later(t, st, dst, src.len() as u64, src)
}

/// [`hash_later`] for an upload of `len` bytes whose first bytes are `first` (at least its
/// first granule, or the probe finds nothing resident).
fn decide_later(t: &Tenant, st: &mut TenantState, dst: u64, len: u64, first: &HostMem) -> bool {
    let Some(granules) = st.granules.as_mut() else {
        return false;
    };
    let g = granules.granule();
    if len < HASH_LATER_FROM {
        return false;
    }
    // A large upload arrives in chunks: the one continuing the previous takes its decision
    // (one probe per upload, not per chunk).
    if let Some((end, later)) = granules.probe {
        if end == dst {
            granules.probe = Some((dst.saturating_add(len), later));
            return later;
        }
    }
    // The prefix key first: most large uploads are new content (a model's first load), which
    // 64 KiB tell, rather than the whole granule's 2 MiB.
    let across = granules.across_groups;
    let later = !dst.is_multiple_of(g)
        || !len.is_multiple_of(g)
        || first
            .prefix_key(0, g as usize)
            .is_none_or(|prefix| !copies::may_be_resident(&t.dev, &prefix, across))
        || first
            .hash(0, g as usize)
            .is_none_or(|first| !copies::resident(&t.dev, &first, across));
    granules.probe = Some((dst.saturating_add(len), later));
    later
}

/// A streamed upload of `len` bytes to `dst` whose first bytes are `first` (tables locked;
/// `dst` checked): the operations around `copy` and the keying to run once it completed, or
/// `None` when the upload must be hashed on its way (its content may be resident, so the copy
/// may be skipped), which a streamed copy cannot be: the broker then declines it.
pub fn streamed_upload_ops(
    t: &Tenant,
    st: &mut TenantState,
    dst: u64,
    len: u64,
    first: &HostMem,
    copy: Op,
) -> Option<(Vec<Op>, Option<Keying>)> {
    if st.granules.is_none() {
        return Some((vec![copy], None));
    }
    if len < HASH_LATER_FROM || !decide_later(t, st, dst, len, first) {
        return None;
    }
    let cow_first = st
        .granules
        .as_mut()
        .and_then(|granules| cow(t, granules, 0, dst, len));
    let covered = uploaded_unhashed(st, dst, len);
    let keying = (!covered.is_empty()).then(|| keying(t, covered));
    Some((cow_first.into_iter().chain([copy]).collect(), keying))
}

/// After the copy of a large upload ([`hash_later`]) completed (tables locked): records its
/// pieces unhashed; the granules it covered get their keys from the device's bytes
/// ([`key_from_device`], returned for the caller to start once the tables are released).
pub fn uploaded_unhashed(st: &mut TenantState, dst: u64, len: u64) -> Vec<Completed> {
    let Some(granules) = st.granules.as_mut() else {
        return Vec::new();
    };
    granules
        .uploaded(dst, len, |_, _| UNHASHED)
        .into_iter()
        .filter(|c| c.key.is_none())
        .collect()
}

/// How long a tenant's uploads must pause before the keys of what they covered are computed.
const KEYING_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Queues covered granules for their keys from the device's bytes (those hashed on their way
/// keep theirs): a thread of the tenant's computes them once its uploads pause for
/// [`KEYING_PAUSE`] (off the tenant's path, and not
/// competing with the rest of a model load), then registers them or queues their joins — for
/// granules still covered exactly as they were (anything written since is left alone). Takes
/// only the queue's leaf lock (markers call it on driver threads).
pub fn key_from_device(t: &Tenant, covered: Vec<Completed>) {
    if covered.is_empty() {
        return;
    }
    let mut q = t.key_queue.lock().unwrap_or_else(|p| p.into_inner());
    q.pending.extend(covered);
    q.last = Some(std::time::Instant::now());
    if q.running {
        return;
    }
    let weak = t.weak();
    let spawned = std::thread::Builder::new()
        .name("gpushare-keying".into())
        .spawn(move || drain_keys(&weak));
    match spawned {
        Ok(_) => q.running = true,
        Err(e) => tracing::warn!(
            session = t.info.id,
            "no thread to compute content keys: {e}"
        ),
    }
}

/// The keying thread of a tenant: waits for a pause in its uploads, keys what is queued, until
/// the queue is empty.
fn drain_keys(weak: &std::sync::Weak<Tenant>) {
    loop {
        std::thread::sleep(KEYING_PAUSE);
        let Some(t) = weak.upgrade() else {
            return;
        };
        let batch = {
            let mut q = t.key_queue.lock().unwrap_or_else(|p| p.into_inner());
            if t.is_closing() {
                q.pending.clear();
                q.running = false;
                return;
            }
            if q.last.is_some_and(|l| l.elapsed() < KEYING_PAUSE) {
                continue;
            }
            if q.pending.is_empty() {
                q.running = false;
                return;
            }
            std::mem::take(&mut q.pending)
        };
        key_covered(&t, batch);
    }
}

/// A marker on `stream` that starts [`key_from_device`] for `covered` once the stream has
/// reached it (the copies that covered them are done). Runs on a driver thread: it only
/// starts a thread.
/// The keying of `covered` ([`key_from_device`]), for when the copy that covered them is done.
fn keying(t: &Tenant, covered: Vec<Completed>) -> Keying {
    let weak = t.weak();
    Box::new(move || {
        if let Some(t) = weak.upgrade() {
            if !t.is_closing() {
                key_from_device(&t, covered);
            }
        }
    })
}

/// A host function running `f` once `stream`'s earlier work (the copy) is done.
pub fn after_copy(stream: Arc<Stream>, f: Keying) -> Op {
    Op::HostFn {
        stream,
        f,
        gate: false,
    }
}

fn key_covered(t: &Tenant, covered: Vec<Completed>) {
    // Granules hashed on their way keep that key (a second user verifies it); the others are
    // keyed from the device's bytes.
    let keyed: Vec<Completed> = covered
        .into_iter()
        .filter_map(|c| {
            if c.key.is_some() {
                return Some(c);
            }
            device_key(t, &c).map(|(k, prefix)| Completed {
                key: Some(k),
                prefix,
                ..c
            })
        })
        .collect();
    let mut guard = t.state();
    let Some(granules) = guard.as_mut().and_then(|st| st.granules.as_mut()) else {
        return;
    };
    let still: Vec<Completed> = keyed
        .into_iter()
        .filter(|c| {
            let Some((a, Granule::Private { handle, fill })) = granules.granule_at(c.addr) else {
                return false;
            };
            let as_covered = match fill {
                Fill::Covered(p) => *p == c.pieces,
                Fill::Complete(k, p) => c.key == Some(*k) && *p == c.pieces,
                Fill::Pieces(_) | Fill::Dirty => false,
            };
            if a != c.addr || *handle != c.handle || !as_covered {
                return false;
            }
            *fill = Fill::Complete(c.key.unwrap_or(UNHASHED), c.pieces.clone());
            true
        })
        .collect();
    let (joins, _) = place(t, granules, still);
    if !joins.is_empty() && t.enqueue(0, vec![remap::joins(t, 0, joins)]).is_err() {
        tracing::debug!(session = t.info.id, "joins dropped: session closing");
    }
}

/// The key of covered granule `c` from the device's bytes, read through the physical granule
/// — not the tenant's address, which the tenant may free meanwhile (a read of unmapped memory
/// is a fault that loses the group's context) — while that handle provably stays the
/// granule's: checked under the tenant's tables, then the device's remap lock held across the
/// read (frees, joins and copy-on-write release handles only under it), so it cannot be
/// released, and reused by another allocation, mid-read. `None` when the granule changed or
/// the read failed.
fn device_key(t: &Tenant, c: &Completed) -> Option<(Key, Option<Hash>)> {
    let _remap = {
        let mut guard = t.state();
        let granules = guard.as_mut()?.granules.as_mut()?;
        match granules.granule_at(c.addr) {
            Some((a, Granule::Private { handle, .. })) if a == c.addr && *handle == c.handle => {}
            _ => return None,
        }
        t.dev.remap_lock()
    };
    match t.dev.handle_key(c.handle, c.pieces.clone()) {
        Ok(keyed) => Some(keyed),
        Err(e) => {
            tracing::debug!(session = t.info.id, addr = c.addr, "content key: {e}");
            None
        }
    }
}

/// Completed granules sorted: `(joins, unkeyed, fresh)` ([`classify`]).
type Sorted = (Vec<(u64, Key)>, Vec<Completed>, Vec<Completed>);

/// Sorts completed granules: those whose content is resident (joins to plan), those without a
/// key yet, and those whose content is new.
fn classify(t: &Tenant, granules: &TenantGranules, completed: Vec<Completed>) -> Sorted {
    let (mut joins, mut unkeyed, mut fresh) = (Vec::new(), Vec::new(), Vec::new());
    for c in completed {
        match c.key {
            None => unkeyed.push(c),
            Some(key) if copies::resident(&t.dev, &key, granules.across_groups) => {
                joins.push((c.addr, key));
            }
            Some(_) => fresh.push(c),
        }
    }
    (joins, unkeyed, fresh)
}

/// Registers completed granules whose content is new as the copies of their keys (their
/// copies done); returns the others (their content is resident: joins to plan), and those
/// without a key yet.
fn place(
    t: &Tenant,
    granules: &mut TenantGranules,
    completed: Vec<Completed>,
) -> (Vec<(u64, Key)>, Vec<Completed>) {
    let (joins, unkeyed, fresh) = classify(t, granules, completed);
    for c in fresh {
        let key = c.key.unwrap_or(UNHASHED);
        let entry = register(t, granules, (key, c.pieces, c.prefix), c.handle, c.addr);
        if let Some((_, g)) = granules.granule_at(c.addr) {
            *g = Granule::Shared { entry };
        }
    }
    (joins, unkeyed)
}

/// Registers the tenant's granule at `addr` (physical `handle`) as the copy of `key`,
/// exportable to other groups if the tenant shares across them.
fn register(
    t: &Tenant,
    granules: &TenantGranules,
    key: Content,
    handle: u64,
    addr: u64,
) -> crate::dedup::EntryId {
    let mut index = t.dev.dedup_index();
    let entry = index.register(key, handle, t.info.id, addr);
    if let Some(e) = index.get_mut(entry) {
        e.exportable = granules.across_groups;
    }
    entry
}

/// Any write other than an upload to `[addr, addr + len)` (tables locked): private granules
/// there become dirty; shared ones come back to the tenant first (the returned operation goes
/// before the write).
pub fn written(t: &Tenant, st: &mut TenantState, seq: u64, addr: u64, len: u64) -> Option<Op> {
    let granules = st.granules.as_mut()?;
    let op = cow(t, granules, seq, addr, len);
    granules.written(addr, len);
    op
}

/// A launch (tables locked): every allocation a parameter the kernel may store through points
/// into (any aligned 8-byte word of it, so pointers in structures count) is written in full.
/// `may_write` is per parameter (`None`: the kernel's stores are unknown, so every parameter
/// counts).
pub fn launch_writes(
    t: &Tenant,
    st: &mut TenantState,
    seq: u64,
    (params, layout): (&[u8], &[ParamInfo]),
    may_write: Option<&[bool]>,
) -> Option<Op> {
    let granules = st.granules.as_mut()?;
    if granules.is_empty() {
        return None;
    }
    // The parameter bytes that may hold a pointer the kernel stores through: each such
    // parameter whole (a struct may carry pointers), or every byte when the layout is unknown.
    let spans: Vec<(usize, usize)> = if layout.is_empty() {
        vec![(0, params.len())]
    } else {
        layout
            .iter()
            .enumerate()
            .filter(|(i, _)| may_write.is_none_or(|w| w.get(*i).copied().unwrap_or(true)))
            .map(|(_, p)| (p.offset as usize, p.size as usize))
            .collect()
    };
    let mut ops = Vec::new();
    for (at, size) in spans {
        let Some(bytes) = params.get(at..at.saturating_add(size)) else {
            continue;
        };
        // Pointers are 8-byte aligned within the parameter buffer.
        let first = at.next_multiple_of(8) - at;
        for word in bytes.get(first..).unwrap_or_default().chunks_exact(8) {
            let value = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if let Some((base, len)) = granules.alloc_of(value) {
                ops.extend(cow(t, granules, seq, base, len));
                granules.written(base, len);
            }
        }
    }
    remap::combine(ops)
}

/// Shared granules in `[addr, addr + len)` come back to the tenant: at once when it is the
/// copy's only user and the copy was never read-only (nothing on the device changes), else by
/// an exclusive copy-on-write, returned.
fn cow(t: &Tenant, granules: &mut TenantGranules, seq: u64, addr: u64, len: u64) -> Option<Op> {
    let shared = granules.shared_in(addr, len);
    if shared.is_empty() {
        return None;
    }
    let mut later = Vec::new();
    let mut index = t.dev.dedup_index();
    for (start, entry) in shared {
        let unprotected = index.get(entry).is_some_and(|e| !e.protected);
        match unprotected.then(|| index.take_back(entry)).flatten() {
            Some((handle, _)) => {
                if let Some((_, g)) = granules.granule_at(start) {
                    *g = Granule::Private {
                        handle,
                        fill: crate::dedup::Fill::Dirty,
                    };
                }
            }
            None => later.push((start, entry)),
        }
    }
    drop(index);
    (!later.is_empty()).then(|| remap::privatize(t, seq, later))
}
