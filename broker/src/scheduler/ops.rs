//! A tenant's queued operations and which one it offers next: the first of its most urgent
//! stream priority that no barrier precedes (see *stream priorities* in [`super::queue`]).
//!
//! Operations of one stream share the stream's priority, so the first queued operation of a
//! priority is the first of its stream: passing less urgent streams' work never reorders a
//! stream. Barriers (operations that order several streams) pass nothing and nothing passes them.

use std::collections::{BTreeMap, VecDeque};

use super::cost::{CostClass, Nanos};

/// Where an operation sits among its tenant's streams (see *stream priorities* in the module
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// On one stream of this CUDA priority (lower is more urgent): it may pass the tenant's
    /// queued operations of less urgent streams.
    Stream(i32),
    /// Orders several streams: it passes nothing and nothing passes it.
    Barrier,
}

/// A queued operation, with what the queue needs to know about it.
pub struct Queued<J> {
    /// The work.
    pub job: J,
    /// Its cost class.
    pub class: CostClass,
    /// Its place among the tenant's streams.
    pub lane: Lane,
    /// Its stream ([`super::queue::Work::stream_key`]; 0: unknown, passes nothing).
    pub stream: u64,
    /// When it was queued.
    pub at: Nanos,
}

/// A tenant's queued operations in command order, and which one it offers next.
pub struct Ops<J> {
    /// In command order.
    queue: VecDeque<Queued<J>>,
    /// Index of the head: the operation offered next.
    head: usize,
    /// Queued operations per stream priority (barriers not counted).
    levels: BTreeMap<i32, usize>,
    /// Barriers queued.
    barriers: usize,
}

impl<J> Ops<J> {
    pub fn new() -> Ops<J> {
        Ops {
            queue: VecDeque::new(),
            head: 0,
            levels: BTreeMap::new(),
            barriers: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn head(&self) -> Option<&Queued<J>> {
        self.queue.get(self.head)
    }

    fn count(&mut self, lane: Lane, up: bool) {
        match lane {
            Lane::Barrier if up => self.barriers += 1,
            Lane::Barrier => self.barriers -= 1,
            Lane::Stream(p) if up => *self.levels.entry(p).or_default() += 1,
            Lane::Stream(p) => {
                if let Some(n) = self.levels.get_mut(&p) {
                    *n -= 1;
                    if *n == 0 {
                        self.levels.remove(&p);
                    }
                }
            }
        }
    }

    /// Appends `q`; it becomes the head when no barrier precedes it and its stream is more
    /// urgent than the head's.
    pub fn push(&mut self, q: Queued<J>) {
        let more_urgent = match (q.lane, self.head().map(|h| h.lane)) {
            (Lane::Stream(p), Some(Lane::Stream(h))) => self.barriers == 0 && p < h,
            _ => false,
        };
        if more_urgent {
            self.head = self.queue.len();
        }
        self.count(q.lane, true);
        self.queue.push_back(q);
    }

    /// Removes the head and finds the next.
    pub fn take(&mut self) -> Option<Queued<J>> {
        let q = self.queue.remove(self.head)?;
        self.count(q.lane, false);
        self.settle();
        Some(q)
    }

    /// Operations that may go instead of the head when the head must wait for its engine: the
    /// first queued operation of each other stream, before the first barrier (each stream
    /// keeps its order; nothing passes a barrier). With their index, in command order.
    pub fn alternatives(&self) -> impl Iterator<Item = (usize, &Queued<J>)> {
        // The head's stream counts as seen, so the head itself is never offered; a head of
        // unknown stream lets nothing pass.
        let head_stream = self.head().map_or(0, |h| h.stream);
        let mut seen = vec![head_stream];
        self.queue
            .iter()
            .enumerate()
            .take_while(move |(_, q)| head_stream != 0 && q.lane != Lane::Barrier && q.stream != 0)
            .filter(move |(_, q)| {
                let first = !seen.contains(&q.stream);
                if first {
                    seen.push(q.stream);
                }
                first
            })
    }

    /// Removes the operation at `index` (an [`Ops::alternatives`] one) and finds the head.
    pub fn take_at(&mut self, index: usize) -> Option<Queued<J>> {
        let q = self.queue.remove(index)?;
        self.count(q.lane, false);
        self.settle();
        Some(q)
    }

    /// Replaces the head by what `cut` makes of it (its pieces, of its lane, in order).
    pub fn replace_head(&mut self, cut: impl FnOnce(Queued<J>) -> Vec<Queued<J>>) {
        let Some(old) = self.queue.remove(self.head) else {
            return;
        };
        self.count(old.lane, false);
        for (i, q) in cut(old).into_iter().enumerate() {
            self.count(q.lane, true);
            self.queue.insert(self.head + i, q);
        }
    }

    /// The head: the first operation of the most urgent priority before the first barrier (the
    /// barrier itself when it is first).
    fn settle(&mut self) {
        let best = self.levels.keys().next().copied();
        let mut found: Option<(i32, usize)> = None;
        for (i, q) in self.queue.iter().enumerate() {
            let Lane::Stream(p) = q.lane else {
                break;
            };
            if found.is_none_or(|(f, _)| p < f) {
                found = Some((p, i));
            }
            if Some(p) == best {
                break;
            }
        }
        self.head = found.map_or(0, |(_, i)| i);
    }

    pub fn into_jobs(self) -> impl Iterator<Item = J> {
        self.queue.into_iter().map(|q| q.job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queued operation named `name` on `lane`.
    fn op(name: u32, lane: Lane) -> Queued<u32> {
        Queued {
            job: name,
            class: CostClass::Free,
            lane,
            stream: 0,
            at: 0,
        }
    }

    fn drain(ops: &mut Ops<u32>) -> Vec<u32> {
        std::iter::from_fn(|| ops.take().map(|q| q.job)).collect()
    }

    #[test]
    fn a_more_urgent_stream_passes_and_each_stream_keeps_its_order() {
        let mut ops = Ops::new();
        for (name, p) in [(1, 0), (2, 0), (3, -1), (4, 0), (5, -1), (6, -3)] {
            ops.push(op(name, Lane::Stream(p)));
        }
        assert_eq!(ops.head().map(|q| q.job), Some(6));
        assert_eq!(drain(&mut ops), vec![6, 3, 5, 1, 2, 4]);
        assert!(ops.is_empty() && ops.levels.is_empty());
    }

    #[test]
    fn barriers_pass_nothing_and_nothing_passes_them() {
        let mut ops = Ops::new();
        let b = Lane::Barrier;
        for (name, lane) in [
            (1, Lane::Stream(0)),
            (2, Lane::Stream(-1)),
            (3, b),
            (4, Lane::Stream(0)),
            (5, Lane::Stream(-2)),
            (6, b),
            (7, Lane::Stream(-5)),
        ] {
            ops.push(op(name, lane));
        }
        assert_eq!(drain(&mut ops), vec![2, 1, 3, 5, 4, 6, 7]);
        assert_eq!(ops.barriers, 0);
    }

    #[test]
    fn an_arrival_becomes_the_head_only_if_more_urgent_and_unbarred() {
        let mut ops = Ops::new();
        ops.push(op(1, Lane::Stream(0)));
        ops.push(op(2, Lane::Stream(-1)));
        assert_eq!(ops.head().map(|q| q.job), Some(2));
        ops.push(op(3, Lane::Stream(-1)));
        assert_eq!(ops.head().map(|q| q.job), Some(2), "same stream: FIFO");
        ops.push(op(4, Lane::Barrier));
        ops.push(op(5, Lane::Stream(-4)));
        assert_eq!(ops.head().map(|q| q.job), Some(2), "behind a barrier");
        assert_eq!(drain(&mut ops), vec![2, 3, 1, 4, 5]);
    }

    #[test]
    fn alternatives_are_the_first_of_other_streams_before_a_barrier() {
        let mut ops = Ops::new();
        let on = |name, stream| Queued {
            stream,
            ..op(name, Lane::Stream(0))
        };
        for (name, stream) in [(1, 7), (2, 7), (3, 8), (4, 8), (5, 9)] {
            ops.push(on(name, stream));
        }
        ops.push(op(6, Lane::Barrier));
        ops.push(on(7, 10));
        let alt: Vec<u32> = ops.alternatives().map(|(_, q)| q.job).collect();
        assert_eq!(
            alt,
            vec![3, 5],
            "stream 7 is the head's, 4 follows 3, 7 is barred"
        );
        let (i, _) = ops.alternatives().nth(1).expect("5");
        assert_eq!(ops.take_at(i).map(|q| q.job), Some(5));
        assert_eq!(drain(&mut ops), vec![1, 2, 3, 4, 6, 7]);
        // An operation of unknown stream (0) passes nothing and is passed by nothing.
        ops.push(on(1, 7));
        ops.push(on(2, 0));
        ops.push(on(3, 8));
        assert_eq!(ops.alternatives().count(), 0);
    }

    #[test]
    fn a_head_cut_in_pieces_keeps_its_place() {
        let mut ops = Ops::new();
        ops.push(op(1, Lane::Stream(0)));
        ops.push(op(2, Lane::Stream(-1)));
        ops.push(op(3, Lane::Stream(-1)));
        ops.replace_head(|q| {
            let lane = q.lane;
            (20..23).map(|n| op(n, lane)).collect()
        });
        assert_eq!(ops.levels.get(&-1), Some(&4));
        assert_eq!(drain(&mut ops), vec![20, 21, 22, 3, 1]);
    }

    /// Random command sequences: every take is the first operation of the most urgent
    /// priority before the first barrier (or that barrier), so each stream's order and every
    /// barrier's place hold.
    #[test]
    fn random_sequences_keep_the_ordering_rules() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut ops = Ops::new();
            // The model: the queue as a plain list.
            let mut model: Vec<(u32, Lane)> = Vec::new();
            let mut name = 0;
            for _ in 0..60 {
                if next(3) > 0 {
                    name += 1;
                    let lane = match next(6) {
                        0 => Lane::Barrier,
                        k => Lane::Stream(-(k as i32 % 3)),
                    };
                    ops.push(op(name, lane));
                    model.push((name, lane));
                } else if let Some(q) = ops.take() {
                    let open: Vec<_> = model
                        .iter()
                        .take_while(|(_, l)| *l != Lane::Barrier)
                        .collect();
                    let want = match open.iter().min_by_key(|(_, l)| match l {
                        Lane::Stream(p) => *p,
                        Lane::Barrier => i32::MAX,
                    }) {
                        Some((n, _)) => *n,
                        None => model[0].0,
                    };
                    assert_eq!(q.job, want, "queue {model:?}");
                    model.retain(|(n, _)| *n != want);
                }
            }
        }
    }
}
