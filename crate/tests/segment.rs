//! Segments on the real OS: /dev/shm on Linux, named sections on Windows.

use shmkit_core::{unlink, Segment, SegmentOptions, ShmName};

mod common;

use common::{unique, Unlink};

#[test]
fn create_then_open_share_bytes() {
    let created = Segment::create(4096).unwrap();
    let _cleanup = Unlink(created.name().to_owned());
    assert!(created.name().starts_with(shmkit_core::name::NAME_PREFIX));
    let attached = Segment::open(created.name()).unwrap();
    assert!(attached.len() >= 4096);
    assert!(created.write_at(100, b"hello"));
    let mut got = [0u8; 5];
    assert!(attached.read_at(100, &mut got));
    assert_eq!(&got, b"hello");
}

#[test]
fn new_segments_are_zeroed() {
    let seg = Segment::create(8192).unwrap();
    let _cleanup = Unlink(seg.name().to_owned());
    let mut all = vec![1u8; seg.len()];
    assert!(seg.read_at(0, &mut all));
    assert!(all.iter().all(|&b| b == 0));
}

#[test]
fn out_of_bounds_copies_are_refused() {
    let seg = Segment::create(16).unwrap();
    let _cleanup = Unlink(seg.name().to_owned());
    let mut buf = [0u8; 8];
    assert!(!seg.read_at(seg.len() - 4, &mut buf));
    assert!(!seg.write_at(usize::MAX, &buf));
    assert!(seg.read_at(seg.len() - 8, &mut buf));
}

#[test]
fn named_create_and_exclusive() {
    let name = unique("excl");
    let seg = SegmentOptions::new()
        .name(ShmName::new(&name).unwrap())
        .create(100)
        .unwrap();
    let _cleanup = Unlink(name.clone());
    assert_eq!(seg.name(), name);
    let again = SegmentOptions::new()
        .name(ShmName::new(&name).unwrap())
        .create(100)
        .unwrap_err();
    assert_eq!(again.errno_name(), Some("EEXIST"));
}

#[test]
fn leading_slash_names_the_same_segment() {
    let name = unique("slash");
    let _seg = SegmentOptions::new()
        .name(ShmName::new(&name).unwrap())
        .create(64)
        .unwrap();
    let _cleanup = Unlink(name.clone());
    let other = Segment::open(&format!("/{name}")).unwrap();
    assert_eq!(other.name(), name);
}

#[test]
fn open_missing_is_enoent() {
    let err = Segment::open(&unique("missing")).unwrap_err();
    assert_eq!(err.errno_name(), Some("ENOENT"));
    #[cfg(unix)]
    assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::NOENT.raw_os_error()));
}

#[test]
fn invalid_sizes_and_names_are_refused_before_any_syscall() {
    assert!(matches!(
        Segment::create(0).unwrap_err(),
        shmkit_core::Error::InvalidSize(_)
    ));
    assert!(matches!(
        Segment::create(usize::MAX).unwrap_err(),
        shmkit_core::Error::InvalidSize(_)
    ));
    assert!(matches!(
        Segment::open("a/b").unwrap_err(),
        shmkit_core::Error::InvalidName(_)
    ));
    assert!(matches!(unlink("").unwrap_err(), shmkit_core::Error::InvalidName(_)));
    let err = SegmentOptions::new().mode(0o1000).create(10).unwrap_err();
    assert!(matches!(err, shmkit_core::Error::InvalidArgument(_)));
}

#[cfg(unix)]
#[test]
fn unlink_twice_is_enoent_and_mapping_survives() {
    let seg = Segment::create(64).unwrap();
    assert!(seg.write_at(0, b"still here"));
    seg.unlink().unwrap();
    assert_eq!(seg.unlink().unwrap_err().errno_name(), Some("ENOENT"));
    assert_eq!(Segment::open(seg.name()).unwrap_err().errno_name(), Some("ENOENT"));
    let mut got = [0u8; 10];
    assert!(seg.read_at(0, &mut got));
    assert_eq!(&got, b"still here");
}

#[cfg(target_os = "linux")]
#[test]
fn created_with_mode_0600_and_exact_size() {
    use std::os::unix::fs::PermissionsExt;
    let seg = Segment::create(1000).unwrap();
    let _cleanup = Unlink(seg.name().to_owned());
    let meta = std::fs::metadata(format!("/dev/shm/{}", seg.name())).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 1000);
    assert_eq!(seg.len(), 1000);
}

#[cfg(target_os = "linux")]
#[test]
fn mode_option_widens_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let seg = SegmentOptions::new().mode(0o640).create(10).unwrap();
    let _cleanup = Unlink(seg.name().to_owned());
    let meta = std::fs::metadata(format!("/dev/shm/{}", seg.name())).unwrap();
    // Exactly the mode asked for: the umask does not take bits back.
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
}

#[cfg(target_os = "linux")]
#[test]
fn reserve_allocates_pages_and_sparse_does_not() {
    use std::os::unix::fs::MetadataExt;
    let size = 4 << 20;
    let reserved = Segment::create(size).unwrap();
    let _c1 = Unlink(reserved.name().to_owned());
    let sparse = SegmentOptions::new().reserve(false).create(size).unwrap();
    let _c2 = Unlink(sparse.name().to_owned());
    let blocks = |name: &str| std::fs::metadata(format!("/dev/shm/{name}")).unwrap().blocks() * 512;
    assert!(blocks(reserved.name()) >= size as u64);
    assert_eq!(blocks(sparse.name()), 0);
}

/// A POSIX shm object under `name` that its creator has not sized yet (0 bytes).
#[cfg(target_os = "linux")]
fn created_unsized(name: &str) -> std::os::fd::OwnedFd {
    use rustix::fs::Mode;
    use rustix::shm;
    shm::open(
        format!("/{name}"),
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )
    .unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn empty_object_is_refused_after_a_grace_period() {
    let name = unique("empty");
    let _fd = created_unsized(&name);
    let _cleanup = Unlink(name.clone());
    let err = Segment::open(&name).unwrap_err();
    assert_eq!(err.errno_name(), Some("EINVAL"));
    assert!(err.to_string().contains("size 0"));
}

#[cfg(target_os = "linux")]
#[test]
fn open_waits_for_a_creator_that_is_still_sizing() {
    let name = unique("sizing");
    let fd = created_unsized(&name);
    let _cleanup = Unlink(name.clone());
    let sizer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        rustix::fs::ftruncate(&fd, 4096).unwrap();
    });
    let seg = Segment::open(&name).unwrap();
    assert_eq!(seg.len(), 4096);
    sizer.join().unwrap();
}

/// A symlink planted at `/dev/shm/<name>`, pointing at `target`; removed on drop.
#[cfg(target_os = "linux")]
struct PlantedLink(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl PlantedLink {
    fn new(name: &str, target: &std::path::Path) -> Self {
        let link = std::path::PathBuf::from(format!("/dev/shm/{name}"));
        std::os::unix::fs::symlink(target, &link).unwrap();
        PlantedLink(link)
    }
}

#[cfg(target_os = "linux")]
impl Drop for PlantedLink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn open_refuses_a_symlink_with_eloop_and_leaves_its_target_alone() {
    let dir = std::env::temp_dir().join(format!("shmkit-link-{}", unique("dir")));
    std::fs::create_dir(&dir).unwrap();
    let target = dir.join("target");
    std::fs::write(&target, b"precious").unwrap();
    let name = unique("link");
    let link = PlantedLink::new(&name, &target);
    let err = Segment::open(&name).unwrap_err();
    assert_eq!(err.errno_name(), Some("ELOOP"));
    assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::LOOP.raw_os_error()));
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    drop(link);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn create_refuses_a_symlink_live_or_dangling_and_creates_nothing() {
    let dir = std::env::temp_dir().join(format!("shmkit-link-{}", unique("dir")));
    std::fs::create_dir(&dir).unwrap();
    let live_target = dir.join("live");
    std::fs::write(&live_target, b"precious").unwrap();
    let dangling_target = dir.join("dangling");
    for target in [&live_target, &dangling_target] {
        let name = unique("link");
        let _link = PlantedLink::new(&name, target);
        let err = SegmentOptions::new()
            .name(ShmName::new(&name).unwrap())
            .create(4096)
            .unwrap_err();
        assert_eq!(err.errno_name(), Some("EEXIST"), "{target:?}");
    }
    assert_eq!(std::fs::read(&live_target).unwrap(), b"precious");
    assert!(!dangling_target.exists(), "create went through a dangling link");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn names_of_255_bytes_work_and_256_are_invalid() {
    let base = unique("long");
    let name = format!("{base}{}", "x".repeat(255 - base.len()));
    assert_eq!(name.len(), 255);
    let created = SegmentOptions::new()
        .name(ShmName::new(&name).unwrap())
        .create(64)
        .unwrap();
    let _cleanup = Unlink(name.clone());
    assert!(created.write_at(0, b"long"));
    let attached = Segment::open(&format!("/{name}")).unwrap();
    let mut got = [0u8; 4];
    assert!(attached.read_at(0, &mut got));
    assert_eq!(&got, b"long");
    assert!(std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    unlink(&name).unwrap();
    assert!(matches!(
        Segment::open(&format!("{name}y")).unwrap_err(),
        shmkit_core::Error::InvalidName(_)
    ));
}
