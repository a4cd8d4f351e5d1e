use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{futex_wait, futex_wake, memfd_create, FutexWait, Mapping};

#[test]
fn value_changed_and_timeout() {
    let w = AtomicU32::new(5);
    assert_eq!(futex_wait(&w, 4, None).unwrap(), FutexWait::ValueChanged);
    let start = Instant::now();
    assert_eq!(
        futex_wait(&w, 5, Some(Duration::from_millis(20))).unwrap(),
        FutexWait::TimedOut
    );
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(futex_wake(&w, 1).unwrap(), 0);
    assert_eq!(futex_wake(&w, u32::MAX).unwrap(), 0);
}

/// A waiter sleeping on a word through one mapping of a memfd is woken through another mapping
/// of the same file (another virtual address): non-private futexes are keyed by file and offset,
/// which is what makes them work across processes.
#[test]
fn wake_through_another_mapping_of_the_same_file() {
    let fd = memfd_create("gpushare-futex", 4096, true).unwrap();
    let a = Arc::new(Mapping::map_fd(fd.as_fd(), 4096, false).unwrap());
    let b = Arc::new(Mapping::map_fd(fd.as_fd(), 4096, false).unwrap());
    assert_ne!(a.as_ptr(), b.as_ptr());
    let wa = a.atomic::<AtomicU32>(64).unwrap();
    let wb = b.atomic::<AtomicU32>(64).unwrap();
    let waiter = std::thread::spawn(move || {
        let mut woken = 0;
        while wa.load(Ordering::Acquire) == 0 {
            match futex_wait(&wa, 0, Some(Duration::from_secs(10))).unwrap() {
                FutexWait::Woken => woken += 1,
                FutexWait::TimedOut => return Err("timed out"),
                FutexWait::ValueChanged | FutexWait::Interrupted => {}
            }
        }
        Ok(woken)
    });
    // Wake (through `b`, the word still 0, so the waiter goes back to sleep) until the kernel
    // reports that it found the waiter sleeping through `a`.
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let n = futex_wake(&wb, 1).unwrap();
        if n == 1 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    wb.store(1, Ordering::Release);
    futex_wake(&wb, u32::MAX).unwrap();
    assert_eq!(
        found, 1,
        "the wake through the second mapping found no waiter"
    );
    assert!(waiter.join().unwrap().unwrap() >= 1);
}
