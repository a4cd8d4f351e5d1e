//! Gates: a tenant's host function holds its stream on the worker until the broker opens the
//! gate (`HOST_FN_DONE{token}`, once the tenant ran the function), at most [`GATE_LIMIT`].
//!
//! With stream waits (the driver runs `cuStreamWaitValue32` on registered host memory: the
//! probe streamed copies use), a gate is *in the stream*: the marker's host function only posts
//! `HOST_FN_READY` and returns, and a `cuStreamWaitValue32` behind it holds the stream on a word
//! of a page registered once (one word per stream that has gates; the stream's k-th gate waits
//! for its word to reach k). Opening raises the word. So a host function the tenant takes long
//! over holds only its own stream, not the driver's callback thread, which every completion
//! marker of the group's other tenants needs too. A thread opens gates left closed past
//! [`GATE_LIMIT`]. Without stream waits, or with every word in use, the marker's host function
//! itself waits for the gate on the callback thread, as before.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gpushare_client::os::{futex_wake, Mapping, SharedAtomic};

use super::driver::{DResult, Driver, HostRegistration, Stream};
use super::proto::GATE_LIMIT;

/// Words of the gate page (one per stream with gates at a time).
const WORDS: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gates the broker has opened and the streams waiting at them.
pub struct Gates {
    /// Blocking gates opened (`HOST_FN_DONE` seen), for [`Gates::pass`].
    open: Mutex<HashSet<u64>>,
    opened: Condvar,
    /// In-stream gates, when the driver has stream waits.
    words: Option<Words>,
}

/// The registered page of gate words and who uses them.
struct Words {
    reg: HostRegistration,
    words: Vec<SharedAtomic<AtomicU32>>,
    state: Mutex<WordState>,
}

/// A gate given a word: the stream waits for word `word` to reach `k`.
pub struct Reserved {
    word: usize,
    k: u32,
}

#[derive(Default)]
struct WordState {
    /// Per stream id: its word and the gates queued on it so far.
    streams: HashMap<u64, (usize, u32)>,
    /// Words no stream uses.
    free: Vec<usize>,
    /// Gates queued and not opened: token → (word, its count, deadline).
    closed: HashMap<u64, (usize, u32, Instant)>,
}

impl Gates {
    /// Gates for `drv`: in the stream when it has stream waits.
    pub fn new(drv: &Arc<Driver>) -> Arc<Gates> {
        let words = drv.has_streamed_copies().then(|| Words::new(drv)).flatten();
        let gates = Arc::new(Gates {
            open: Mutex::default(),
            opened: Condvar::new(),
            words,
        });
        if gates.words.is_some() {
            let weak = Arc::downgrade(&gates);
            let spawned = std::thread::Builder::new()
                .name("gpushare-gates".into())
                .spawn(move || expire_loop(&weak));
            if let Err(e) = spawned {
                tracing::warn!("no thread to open overdue gates: {e}");
            }
        }
        gates
    }

    /// Gives gate `token` of stream `stream_id` a word, to wait on in the stream behind its
    /// marker ([`Gates::queue`]); `None` when it cannot (no stream waits, every word in use):
    /// the marker must then wait itself ([`Gates::pass`]).
    pub fn reserve(&self, stream_id: u64, token: u64) -> Option<Reserved> {
        let w = self.words.as_ref()?;
        let mut st = lock(&w.state);
        let (word, k) = match st.streams.get(&stream_id) {
            Some(&(word, k)) => (word, k.wrapping_add(1)),
            None => {
                let word = st.free.pop()?;
                w.words[word].store(0, Ordering::SeqCst);
                (word, 1)
            }
        };
        st.streams.insert(stream_id, (word, k));
        st.closed
            .insert(token, (word, k, Instant::now() + GATE_LIMIT));
        Some(Reserved { word, k })
    }

    /// Queues the wait of gate `token` (reserved as `r`) on `stream`, after its marker; if the
    /// driver refuses it, the gate is opened (the stream goes on, as after [`GATE_LIMIT`]).
    pub fn queue(&self, drv: &Driver, stream: &Stream, token: u64, r: Reserved) -> DResult<()> {
        let Some(w) = &self.words else {
            return Ok(());
        };
        let addr = w.reg.device_ptr() + 4 * r.word as u64;
        drv.stream_wait_value32(stream, addr, r.k)
            .inspect_err(|_| self.open(token))
    }

    /// The broker opened gate `token` (before or after its stream reached it).
    pub fn open(&self, token: u64) {
        if let Some(w) = &self.words {
            let mut st = lock(&w.state);
            if let Some((word, k, _)) = st.closed.remove(&token) {
                drop(st);
                w.raise(word, k);
                return;
            }
        }
        lock(&self.open).insert(token);
        self.opened.notify_all();
    }

    /// Holds the calling stream until blocking gate `token` opens, at most [`GATE_LIMIT`];
    /// false if it did not.
    pub fn pass(&self, token: u64) -> bool {
        let deadline = Instant::now() + GATE_LIMIT;
        let mut open = lock(&self.open);
        loop {
            if open.remove(&token) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            open = self
                .opened
                .wait_timeout(open, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Stream `stream_id` is being destroyed: its word is free again, unless a gate of it is
    /// still closed (CUDA lets a stream be destroyed with work pending; that word is then not
    /// reused, so opening the old gate cannot open another stream's).
    pub fn forget_stream(&self, stream_id: u64) {
        if let Some(w) = &self.words {
            let mut st = lock(&w.state);
            if let Some((word, _)) = st.streams.remove(&stream_id) {
                if !st.closed.values().any(|&(w, _, _)| w == word) {
                    st.free.push(word);
                }
            }
        }
    }

    /// Opens in-stream gates closed past their deadline.
    fn expire(&self, now: Instant) {
        let Some(w) = &self.words else {
            return;
        };
        let mut st = lock(&w.state);
        let overdue: Vec<u64> = st
            .closed
            .iter()
            .filter(|(_, &(_, _, deadline))| deadline <= now)
            .map(|(&token, _)| token)
            .collect();
        for token in overdue {
            if let Some((word, k, _)) = st.closed.remove(&token) {
                tracing::error!(
                    token,
                    "a host function's gate stayed closed for {GATE_LIMIT:?}; the stream goes on"
                );
                w.raise(word, k);
            }
        }
    }
}

impl Words {
    fn new(drv: &Arc<Driver>) -> Option<Words> {
        let map = Arc::new(Mapping::anonymous(WORDS * 4).ok()?);
        let words = (0..WORDS)
            .map(|i| map.atomic::<AtomicU32>(i * 4))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        let reg = drv
            .host_register(Arc::clone(&map), 0, WORDS * 4)
            .inspect_err(|e| tracing::info!("gates wait in host functions: {e}"))
            .ok()?;
        Some(Words {
            reg,
            words,
            state: Mutex::new(WordState {
                free: (0..WORDS).rev().collect(),
                ..WordState::default()
            }),
        })
    }

    /// Raises word `i` to `k` (never lowers it, modulo 2³²) and wakes a wait sleeping on it.
    fn raise(&self, i: usize, k: u32) {
        let w = &self.words[i];
        let _ = w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
            ((k.wrapping_sub(cur) as i32) > 0).then_some(k)
        });
        let _ = futex_wake(w, u32::MAX);
    }
}

/// Opens overdue gates about once a second until the gates are dropped.
fn expire_loop(gates: &std::sync::Weak<Gates>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(g) = gates.upgrade() else {
            return;
        };
        g.expire(Instant::now());
    }
}
