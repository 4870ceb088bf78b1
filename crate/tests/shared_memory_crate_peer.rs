//! Interop with another Rust shared-memory library: the `shared_memory` crate (a peer, used
//! only here) opens shmkit's segments under their `/psm_…` names, and the other way round.
#![cfg(target_os = "linux")]

use shared_memory::ShmemConf;
use shmkit_core::{unlink, Segment};

#[test]
fn peer_opens_a_shmkit_segment_and_writes() {
    let seg = Segment::create(4096).unwrap();
    let name = seg.name().to_owned();
    let result = std::panic::catch_unwind(|| {
        let peer = ShmemConf::new().os_id(format!("/{name}")).open().unwrap();
        assert!(peer.len() >= 4096);
        // SAFETY: the peer's mapping is at least 4096 bytes long, as asserted just above.
        unsafe { std::ptr::copy_nonoverlapping(b"from peer".as_ptr(), peer.as_ptr(), 9) };
    });
    let mut got = [0u8; 9];
    assert!(seg.read_at(0, &mut got));
    unlink(&name).unwrap();
    result.unwrap();
    assert_eq!(&got, b"from peer");
}

#[test]
fn shmkit_opens_a_peer_segment_and_writes() {
    let peer = ShmemConf::new().size(4096).create().unwrap();
    let name = peer.get_os_id().trim_start_matches('/').to_owned();
    let seg = Segment::open(&name).unwrap();
    assert!(seg.len() >= 4096);
    assert!(seg.write_at(10, b"from shmkit"));
    let mut got = [0u8; 11];
    // SAFETY: the peer's mapping is at least 4096 bytes long.
    unsafe { std::ptr::copy_nonoverlapping(peer.as_ptr().add(10), got.as_mut_ptr(), 11) };
    assert_eq!(&got, b"from shmkit");
    drop(peer); // the peer owns its segment and unlinks it on drop
    assert_eq!(Segment::open(&name).unwrap_err().errno_name(), Some("ENOENT"));
}
