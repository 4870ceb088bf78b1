//! The per-process mapping budget (Linux): creating and opening stop with a coded error while
//! the process still has room for the mappings its runtime needs, and work again after close.
//! A file of its own, so the test owns its process's budget.
#![cfg(target_os = "linux")]

use shmkit_core::{Segment, SegmentOptions};

mod common;

use common::Unlink;

/// Mappings this process holds now (one line of /proc/self/maps each).
fn mappings_now() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

#[test]
fn opens_stop_with_a_coded_error_before_the_kernel_limit() {
    let max_map_count: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let creator = SegmentOptions::new().create(4096).unwrap();
    let name = creator.name().to_owned();
    let _cleanup = Unlink(name.clone());
    let mut handles = vec![creator];
    let err = loop {
        match Segment::open(&name) {
            Ok(handle) => handles.push(handle),
            Err(err) => break err,
        }
        assert!(handles.len() <= max_map_count, "no limit before vm.max_map_count");
    };
    assert!(matches!(err, shmkit_core::Error::TooManyMappings { .. }), "{err}");
    assert!(err.to_string().contains("close()"), "{err}");
    // A quarter of the kernel's budget is left for everything else in the process.
    assert!(mappings_now() <= max_map_count - max_map_count / 4 + 1000);
    assert!(matches!(
        SegmentOptions::new().create(4096).unwrap_err(),
        shmkit_core::Error::TooManyMappings { .. }
    ));
    // The process can still map memory of its own.
    let plenty: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 20]).collect();
    assert_eq!(plenty[63][0], 63);
    handles.truncate(1);
    let again = Segment::open(&name).unwrap();
    assert_eq!(again.len(), 4096);
}
