//! The memory of the arrays the fleet reads and writes, recorded when a model is enrolled,
//! so that each batch can reach them through plain slices.
//!
//! numpy's dynamic borrow checking (`PyReadwriteArray`, `PyReadonlyArray`) books every
//! array in a process-wide hash map each time it is borrowed: seven arrays per model per
//! batch. With 10 000 models, one event each per batch, that bookkeeping took 15 % of the
//! engine's time, and without it the engine ran 10 000 models at 0.52 of its 50-model
//! rate instead of 0.40 (docs/benchmarks.md, stage 9). What it guards against is two Rust
//! borrows of one memory at once, one of them writing. The fleet rules that out once, at
//! enrolment: a span that is written must overlap no other span, and a span that is only
//! read (a reference's values, which several models may share) may coincide with another
//! read one but overlap nothing written. Each batch then checks that every array still
//! spans what it did (`advance.rs`), which catches an array reshaped or reallocated in
//! place since.

use std::collections::BTreeMap;
use std::fmt;

/// How the fleet uses an array's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Write,
    Read,
}

/// The bytes an array's elements occupy: `start..start + len` (addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

impl Span {
    /// The span of a slice's elements.
    pub fn of<T>(slice: &[T]) -> Span {
        Span {
            start: slice.as_ptr() as usize,
            len: std::mem::size_of_val(slice),
        }
    }

    fn end(self) -> usize {
        self.start + self.len
    }
}

/// Why a span cannot be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlap {
    pub span: Span,
    pub with: Span,
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the array's memory ({} bytes) overlaps an array the fleet already reads or \
             writes ({} bytes)",
            self.span.len, self.with.len
        )
    }
}

impl std::error::Error for Overlap {}

struct Held {
    end: usize,
    access: Access,
    /// how many enrolments hold this span (several only for `Access::Read`)
    holders: usize,
}

/// The spans held, none overlapping another except identical read ones (kept once).
#[derive(Default)]
pub struct Spans {
    by_start: BTreeMap<usize, Held>,
}

impl Spans {
    /// Holds `span` for `access`, or says what it overlaps. An empty span holds nothing.
    pub fn add(&mut self, span: Span, access: Access) -> Result<(), Overlap> {
        if span.len == 0 {
            return Ok(());
        }
        // the held span starting last before `span` ends is the only one that can overlap
        // it: held spans do not overlap each other
        if let Some((&start, held)) = self.by_start.range_mut(..span.end()).next_back() {
            if held.end > span.start {
                let with = Span {
                    start,
                    len: held.end - start,
                };
                if with == span && access == Access::Read && held.access == Access::Read {
                    held.holders += 1;
                    return Ok(());
                }
                return Err(Overlap { span, with });
            }
        }
        self.by_start.insert(
            span.start,
            Held {
                end: span.end(),
                access,
                holders: 1,
            },
        );
        Ok(())
    }

    /// Lets go of a span `add` held.
    pub fn remove(&mut self, span: Span) {
        if span.len == 0 {
            return;
        }
        if let Some(held) = self.by_start.get_mut(&span.start) {
            if held.end == span.end() {
                held.holders -= 1;
                if held.holders == 0 {
                    self.by_start.remove(&span.start);
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.by_start.clear();
    }

    /// How many distinct spans are held.
    pub fn len(&self) -> usize {
        self.by_start.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_start.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize, len: usize) -> Span {
        Span { start, len }
    }

    #[test]
    fn disjoint_spans_are_held() {
        let mut s = Spans::default();
        assert!(s.add(span(100, 50), Access::Write).is_ok());
        assert!(s.add(span(150, 10), Access::Write).is_ok()); // touching, not overlapping
        assert!(s.add(span(40, 60), Access::Read).is_ok());
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_written_span_overlaps_nothing() {
        let mut s = Spans::default();
        s.add(span(100, 50), Access::Write).unwrap();
        for (start, len) in [(90, 11), (149, 5), (120, 1), (50, 200), (100, 50)] {
            let e = s.add(span(start, len), Access::Write).unwrap_err();
            assert_eq!(e.with, span(100, 50));
            assert!(s.add(span(start, len), Access::Read).is_err());
        }
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn identical_read_spans_are_shared_and_counted() {
        let mut s = Spans::default();
        s.add(span(0, 80), Access::Read).unwrap();
        s.add(span(0, 80), Access::Read).unwrap();
        assert!(s.add(span(0, 80), Access::Write).is_err());
        assert!(s.add(span(8, 8), Access::Read).is_err()); // inside, not identical
        s.remove(span(0, 80));
        assert!(s.add(span(0, 80), Access::Write).is_err()); // one reader left
        s.remove(span(0, 80));
        assert!(s.is_empty());
        assert!(s.add(span(0, 80), Access::Write).is_ok());
    }

    #[test]
    fn empty_spans_hold_nothing() {
        let mut s = Spans::default();
        s.add(span(100, 50), Access::Write).unwrap();
        assert!(s.add(span(120, 0), Access::Write).is_ok());
        s.remove(span(120, 0));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_removed_span_can_be_held_again() {
        let mut s = Spans::default();
        s.add(span(100, 50), Access::Write).unwrap();
        s.remove(span(100, 50));
        s.remove(span(100, 50)); // twice: nothing held, nothing changes
        assert!(s.add(span(110, 10), Access::Write).is_ok());
    }
}
