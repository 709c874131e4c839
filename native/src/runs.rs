//! How `WindowFleet` takes a batch's models through their runs (`advance.rs`): each model's
//! state taken from its Python objects (with the GIL), its run (without), its state given
//! back (with the GIL), models in first-seen order.
//!
//! On one thread the three steps follow each other for all the models. On several, they
//! overlap as a pipeline: the models are cut into chunks of about equal events; the
//! thread that holds the GIL takes one chunk after another and hands each to the helper
//! threads, gives back every chunk that is done, in order, and once all are handed out
//! runs chunks itself. With 10 000 models (one event each per batch) taking and giving
//! back took a fifth of the main thread's time while the other thread waited
//! (docs/benchmarks.md, stage 12). Each run touches its own model alone, and the chunks
//! are given back in order, so the windows, charts, stops and their order are the same on
//! any number of threads.

use crate::advance::{Hold, Objects, Run};
use crate::fleet::{Enrolled, Staged, Stop};
use pyo3::exceptions::{PyKeyError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::mpsc;
use std::sync::Mutex;

/// The events a batch must have per thread its models run on: below, starting and joining
/// a thread (30-80 µs on a busy 2-core machine) costs more than the thread saves.
const EVENTS_PER_THREAD: usize = 64;

/// How many chunks per thread the pipeline cuts a batch into: the first chunk reaches a
/// helper after a quarter of a thread's share is taken.
const CHUNKS_PER_THREAD: usize = 4;

/// How many runs ahead `go_in_order` prefetches.
pub(crate) const AHEAD: usize = 2;

/// How many threads the runs of `models` models with `events` events between them take:
/// one per `EVENTS_PER_THREAD` events, at most one per model, at most `most`.
pub(crate) fn threads_for(most: usize, models: usize, events: usize) -> usize {
    most.min(models).min(events / EVENTS_PER_THREAD).max(1)
}

/// The models' consecutive chunks, of about `events / (threads * CHUNKS_PER_THREAD)`
/// events each; one chunk of all on one thread. `pending[i]`: model i's events.
pub(crate) fn chunks(pending: &[usize], threads: usize) -> Vec<Range<usize>> {
    if threads <= 1 {
        return std::iter::once(0..pending.len()).collect();
    }
    let events: usize = pending.iter().sum();
    let share = events.div_ceil(threads * CHUNKS_PER_THREAD).max(1);
    let mut out = Vec::new();
    let (mut start, mut taken) = (0, 0);
    for (i, &p) in pending.iter().enumerate() {
        taken += p;
        if taken >= share {
            out.push(start..i + 1);
            (start, taken) = (i + 1, 0);
        }
    }
    if start < pending.len() {
        out.push(start..pending.len());
    }
    out
}

/// The runs one after another, each run's first memory (`Run::prefetch`) asked for
/// `AHEAD` runs before its turn: with many models, a model's window row, its reference's
/// sparse index and its charts are never in the cache, and their loads then overlap the
/// runs before it instead of stalling its own.
pub(crate) fn go_in_order(runs: &mut [Run<'_>]) {
    runs.iter().take(AHEAD).for_each(Run::prefetch);
    for i in 0..runs.len() {
        if let Some(next) = runs.get(i + AHEAD) {
            next.prefetch();
        }
        runs[i].go();
    }
}

/// A batch's models on their way through `take_run_give`.
pub(crate) struct Batch<'s> {
    pub(crate) slots: &'s [Option<Enrolled>],
    /// each model's slot, in first-seen order
    pub(crate) slot_of: Vec<usize>,
    /// each model's staged events, in the same order
    pub(crate) staged: Vec<&'s mut Staged>,
    pub(crate) threads: usize,
}

/// What the models' state given back has said so far: each model's stop, in order, and
/// the first error (the others' state is given back all the same).
struct Given {
    stops: Vec<Option<Stop>>,
    first_error: Option<PyErr>,
}

fn enrolled(slots: &[Option<Enrolled>], slot: usize) -> PyResult<&Enrolled> {
    slots
        .get(slot)
        .and_then(Option::as_ref)
        .ok_or_else(|| PyKeyError::new_err(format!("slot {slot} holds no enrolled model")))
}

/// Takes a model's state into `hold` and makes its run.
fn start<'a, 'py>(
    py: Python<'py>,
    entry: &'a Enrolled,
    hold: &'a mut Option<Hold<'py>>,
    staged: &'a mut Staged,
) -> PyResult<(&'a Objects<'py>, Run<'a>)> {
    let Hold { objects, arrays } = hold.insert(Hold::take(py, entry)?);
    let run = arrays.run(entry, staged, objects.start)?;
    Ok((objects, run))
}

impl Given {
    /// Gives back the runs of a chunk that starts at model `first`.
    fn chunk(
        &mut self,
        py: Python<'_>,
        slots: &[Option<Enrolled>],
        objects: &[&Objects<'_>],
        first: usize,
        runs: Vec<Run<'_>>,
        windows: &Bound<'_, PyDict>,
    ) {
        for (i, mut run) in (first..).zip(runs) {
            let (staged, outcome) = run.finish();
            let given = match (enrolled(slots, staged.slot), outcome, objects.get(i)) {
                (Ok(entry), Some(outcome), Some(o)) => {
                    o.give_back(py, entry, staged, outcome, windows)
                }
                (Err(e), _, _) => Err(e),
                _ => Err(PyRuntimeError::new_err("a model's run did not finish")),
            };
            match given {
                Ok(stop) => self.stops.push(stop),
                Err(e) => {
                    self.stops.push(None);
                    self.first_error.get_or_insert(e);
                }
            }
        }
    }
}

/// Takes, runs and gives back the batch's models (see the module docstring); each model's
/// stop, in order. A model whose state cannot be taken ends the taking: the chunks taken
/// before its chunk are run and given back, the rest (its chunk too; on one thread, every
/// model) are left as they were, and its error is raised. An error giving one model back
/// does not keep the others' state from being written back; the first is raised after.
pub(crate) fn take_run_give(
    py: Python<'_>,
    batch: Batch<'_>,
    windows: &Bound<'_, PyDict>,
) -> PyResult<Vec<Option<Stop>>> {
    let Batch {
        slots,
        slot_of,
        staged,
        threads,
    } = batch;
    let n = slot_of.len();
    let pending: Vec<usize> = staged.iter().map(|s| s.pending()).collect();
    let mut holds: Vec<Option<Hold<'_>>> = (0..n).map(|_| None).collect();
    let mut objects: Vec<&Objects<'_>> = Vec::with_capacity(n);
    let mut given = Given {
        stops: Vec::with_capacity(n),
        first_error: None,
    };
    let mut take_error = None;
    let mut models = holds.iter_mut().zip(staged).enumerate();
    // a chunk's models taken: their objects and runs, as long as every state could be
    let mut take = |range: Range<usize>| {
        let (mut taken, mut runs) = (Vec::with_capacity(range.len()), Vec::new());
        for _ in range {
            let Some((i, (hold, s))) = models.next() else {
                break;
            };
            if let Some(&ahead) = slot_of.get(i + AHEAD) {
                if let Ok(e) = enrolled(slots, ahead) {
                    e.prefetch_objects();
                }
            }
            let (o, run) = enrolled(slots, slot_of[i]).and_then(|e| start(py, e, hold, s))?;
            taken.push(o);
            runs.push(run);
        }
        Ok::<_, PyErr>((taken, runs))
    };
    let cuts = chunks(&pending, threads);
    if threads <= 1 {
        match take(0..n) {
            Ok((taken, mut runs)) => {
                objects.extend(taken);
                go_in_order(&mut runs);
                given.chunk(py, slots, &objects, 0, runs, windows);
            }
            Err(e) => take_error = Some(e),
        }
    } else {
        let (work, work_out) = mpsc::channel::<(usize, Vec<Run<'_>>)>();
        let work_out = Mutex::new(work_out);
        let (done_in, done) = mpsc::channel::<(usize, Vec<Run<'_>>)>();
        let done = Mutex::new(done); // shared with the detached waits below
        std::thread::scope(|scope| {
            for _ in 1..threads {
                let (jobs, done_in) = (&work_out, done_in.clone());
                scope.spawn(move || help(jobs, &done_in));
            }
            drop(done_in);
            let mut finished = BTreeMap::new();
            let mut next = 0; // the next chunk to give back
            let mut sent = 0;
            for (k, range) in cuts.iter().enumerate() {
                match take(range.clone()) {
                    Ok((taken, runs)) => {
                        objects.extend(taken);
                        if work.send((k, runs)).is_err() {
                            break; // every helper is gone: raised when they are joined
                        }
                        sent += 1;
                    }
                    Err(e) => {
                        take_error = Some(e);
                        break;
                    }
                }
                if let Ok(d) = done.lock() {
                    finished.extend(d.try_iter());
                }
                while let Some(runs) = finished.remove(&next) {
                    given.chunk(py, slots, &objects, cuts[next].start, runs, windows);
                    next += 1;
                }
            }
            drop(work);
            while next < sent {
                if let Some(runs) = finished.remove(&next) {
                    given.chunk(py, slots, &objects, cuts[next].start, runs, windows);
                    next += 1;
                    continue;
                }
                // run a chunk here if one is left, else wait for the helpers'
                let got = py.detach(|| match work_out.lock().map(|w| w.try_recv()) {
                    Ok(Ok((k, mut runs))) => {
                        go_in_order(&mut runs);
                        Some((k, runs))
                    }
                    _ => done.lock().ok().and_then(|d| d.recv().ok()),
                });
                match got {
                    Some((k, runs)) => {
                        finished.insert(k, runs);
                    }
                    None => break, // a helper panicked: raised when it is joined
                }
            }
        });
    }
    match take_error.or(given.first_error) {
        Some(e) => Err(e),
        None => Ok(given.stops),
    }
}

/// A helper thread: runs the chunks it is handed and hands them back, until no more come.
fn help<'a>(
    jobs: &Mutex<mpsc::Receiver<(usize, Vec<Run<'a>>)>>,
    done: &mpsc::Sender<(usize, Vec<Run<'a>>)>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(j) => j.recv(),
            Err(_) => return,
        };
        let Ok((k, mut runs)) = job else {
            return;
        };
        go_in_order(&mut runs);
        if done.send((k, runs)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_model_once_in_order() {
        for pending in [
            vec![],
            vec![5],
            vec![1; 1000],
            vec![20; 50],
            vec![0, 0, 300, 1, 1],
        ] {
            for threads in [1, 2, 3, 8] {
                let cuts = chunks(&pending, threads);
                let flat: Vec<usize> = cuts.iter().flat_map(Range::clone).collect();
                assert_eq!(flat, (0..pending.len()).collect::<Vec<_>>());
                assert!(cuts.iter().all(|r| !r.is_empty()) || pending.is_empty());
                if threads == 1 {
                    assert_eq!(cuts.len(), 1);
                }
            }
        }
        // 1 000 models of one event on two threads: 8 chunks of 125
        let cuts = chunks(&[1; 1000], 2);
        assert_eq!(cuts.len(), 8);
        assert!(cuts.iter().all(|r| r.len() == 125));
    }

    #[test]
    fn threads_need_enough_events_and_models() {
        assert_eq!(threads_for(2, 1000, 1000), 2);
        assert_eq!(threads_for(8, 3, 1000), 3);
        assert_eq!(threads_for(8, 1000, 100), 1);
        assert_eq!(threads_for(1, 1000, 1000), 1);
    }
}
