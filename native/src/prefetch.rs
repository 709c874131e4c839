//! Prefetch hints: a run asks for the memory it will read first while the runs before it
//! run (`go_in_order` in runs.rs). A hint never changes a result; where the target has
//! no prefetch instruction it does nothing.

/// A cache line's worth of bytes, for `prefetch_span`.
const LINE: usize = 64;

/// Prefetches every cache line of `values`: a hint, with no effect on any result.
pub fn prefetch_span<T>(values: &[T]) {
    prefetch_bytes(values.as_ptr().cast(), std::mem::size_of_val(values));
}

/// Prefetches the cache lines of the `bytes` bytes from `start` (an object the caller
/// does not borrow, such as a Python object's fields): any address, nothing is read.
pub fn prefetch_bytes(start: *const u8, bytes: usize) {
    let mut offset = 0;
    while offset < bytes {
        prefetch_address(start.wrapping_add(offset));
        offset += LINE;
    }
    if bytes > 0 {
        prefetch_address(start.wrapping_add(bytes - 1));
    }
}

/// Prefetches the line of `value`, if any.
#[inline]
pub fn prefetch<T>(value: Option<&T>) {
    if let Some(v) = value {
        prefetch_address((v as *const T).cast());
    }
}

#[inline]
fn prefetch_address(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never reads or writes the memory (any address is
    // allowed), and SSE, which provides it, is part of every x86-64 processor. Why it is
    // here: with 10 000 models, prefetching each run's memory two runs ahead cut 3-3.5 %
    // of the time per event (`go_in_order` in runs.rs; docs/benchmarks.md, stage 10).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_take_any_slice_and_read_nothing() {
        let values = vec![1.5f64; 100];
        prefetch_span(&values);
        prefetch_span(&values[99..]);
        prefetch_span::<f64>(&[]);
        prefetch(values.get(3));
        prefetch::<f64>(None);
        prefetch_bytes(std::ptr::null(), 256);
        assert_eq!(values, vec![1.5; 100]);
    }
}
