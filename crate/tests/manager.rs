//! The manager and the tracker on the real OS, with real processes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmkit_core::{tracker, unlink, Manager, Segment, SegmentOptions};

fn exists(name: &str) -> bool {
    Segment::open(name).is_ok()
}

#[test]
fn shutdown_unlinks_and_forbids_more() {
    let mut manager = Manager::new();
    let a = manager.create(100).unwrap();
    let b = manager
        .create_named(&format!("shmkit_mgr_{:x}", std::process::id()), 50)
        .unwrap();
    assert_eq!(manager.segments(), [a.name().to_owned(), b.name().to_owned()]);
    assert!(a.write_at(0, b"kept"));
    manager.shutdown();
    // POSIX: the names are gone now. Windows: a section, and its name, lives while a handle is
    // open, and `a` and `b` still are (`unlink` has nothing to do there).
    let live = cfg!(windows);
    assert_eq!((exists(a.name()), exists(b.name())), (live, live));
    let mut got = [0u8; 4];
    assert!(a.read_at(0, &mut got), "handles stay readable after shutdown");
    assert_eq!(&got, b"kept");
    assert!(matches!(manager.create(10).unwrap_err(), shmkit_core::Error::Closed(_)));
    manager.shutdown();
}

#[test]
fn shutdown_unlinks_filled_segments_and_what_follows_them() {
    let mut manager = Manager::new();
    let filled = manager.create_filled(64, |_| Ok(())).unwrap();
    let plain = manager.create(64).unwrap();
    let names = [filled.name().to_owned(), plain.name().to_owned()];
    manager.shutdown();
    // Windows: a section lives until its last handle closes.
    drop((filled, plain));
    assert_eq!(names.map(|n| exists(&n)), [false, false]);
}

#[test]
fn drop_unlinks_even_what_the_user_unlinked_first() {
    let mut manager = Manager::new();
    let a = manager.create(10).unwrap();
    let b = manager.create(10).unwrap();
    let name = a.name().to_owned();
    b.unlink().unwrap();
    drop(manager);
    if cfg!(windows) {
        // A section lives until its last handle closes.
        drop(a);
    }
    assert!(!exists(&name));
}

/// Run by `a_killed_creator_leaves_nothing` in a child process.
#[test]
#[ignore = "child half of a_killed_creator_leaves_nothing"]
fn child_creates_tracked_segments_and_waits() {
    let tracked = SegmentOptions::new().track(true).create(4096).unwrap();
    let mut manager = Manager::new();
    let managed = manager.create(4096).unwrap();
    let untracked = SegmentOptions::new().create(64).unwrap();
    println!(
        "\nNAMES {} {} {} {}",
        tracked.name(),
        managed.name(),
        untracked.name(),
        tracker::helper_pid().unwrap_or(0) // none on Windows
    );
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_creator_leaves_nothing_tracked() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_creates_tracked_segments_and_waits",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !line.starts_with("NAMES ") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
    }
    let fields: Vec<String> = line.split_whitespace().skip(1).map(str::to_owned).collect();
    let (tracked, managed, untracked) = (&fields[0], &fields[1], &fields[2]);
    assert!(exists(tracked) && exists(managed) && exists(untracked));
    child.kill().unwrap(); // SIGKILL, TerminateProcess on Windows
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while (exists(tracked) || exists(managed)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = (exists(tracked), exists(managed), exists(untracked));
    unlink(untracked).unwrap();
    // POSIX: the tracker unlinks what was tracked, and `track: false` outlives its creator.
    // Windows: every section dies with the creator's handles, tracked or not.
    let untracked_stays = cfg!(unix);
    assert_eq!(
        left,
        (false, false, untracked_stays),
        "(tracked, managed, untracked) left"
    );
}

#[cfg(unix)]
#[test]
fn unlink_forgets_tracking_in_this_process() {
    let seg = SegmentOptions::new().track(true).create(16).unwrap();
    assert!(tracker::helper_pid().is_some());
    seg.unlink().unwrap();
    // Re-create the name untracked: the helper must not unlink it later.
    let name = seg.name().to_owned();
    drop(seg);
    let again = SegmentOptions::new()
        .name(shmkit_core::ShmName::new(&name).unwrap())
        .create(16)
        .unwrap();
    again.unlink().unwrap();
}

/// A manager's cleanup removes only the object it created: a name that another process
/// unlinked and re-created names their segment, which must survive the manager's shutdown.
#[cfg(target_os = "linux")]
#[test]
fn shutdown_leaves_a_segment_someone_else_recreated_under_the_name() {
    use shmkit_core::ShmName;
    let name = format!("shmkit_mgr_re_{:x}", std::process::id());
    let mut manager = Manager::new();
    let ours = manager.create_named(&name, 64).unwrap();
    // Another program: attaches, unlinks (the README's pattern), then makes its own.
    unlink(&name).unwrap();
    let theirs = SegmentOptions::new()
        .name(ShmName::new(&name).unwrap())
        .create(128)
        .unwrap();
    manager.shutdown();
    let survivor = Segment::open(&name).expect("the re-created segment was unlinked by shutdown");
    assert_eq!(survivor.len(), 128);
    theirs.unlink().unwrap();
    drop(ours);
}
