//! Windows backend on windows-sys: pagefile-backed named sections, as CPython makes them.
//! `CreateFileMappingW(INVALID_HANDLE_VALUE, …)`, `OpenFileMappingW`, `MapViewOfFile`,
//! `VirtualQuery`, `UnmapViewOfFile`, `CloseHandle`. One small function per OS call.
//!
//! A section lives while any handle or view is open, so there is nothing to unlink.

use std::io;
use std::mem::MaybeUninit;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr::NonNull;

use windows_sys::Win32::Foundation::{GetLastError, ERROR_ALREADY_EXISTS, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualQuery, FILE_MAP_WRITE,
    MEMORY_BASIC_INFORMATION, MEMORY_MAPPED_VIEW_ADDRESS, PAGE_READWRITE,
};

use super::{ObjectId, SegmentImpl, SegmentOptions};
use crate::ShmName;

#[derive(Debug)]
pub(crate) struct SegmentInner {
    ptr: NonNull<u8>,
    len: usize,
    // Keeps the section alive for as long as this handle is open, as CPython does.
    _section: OwnedHandle,
}

impl SegmentImpl for SegmentInner {
    fn create(
        name: &ShmName,
        len: usize,
        _options: &SegmentOptions,
        named: &mut dyn FnMut(Option<ObjectId>) -> io::Result<()>,
    ) -> io::Result<Self> {
        let section = create_file_mapping(name, len)?;
        named(None)?;
        let ptr = map_view_of_file(&section, len)?;
        // The creator reports the size it asked for, as CPython does; attachers see the
        // page-rounded size from VirtualQuery.
        Ok(SegmentInner {
            ptr,
            len,
            _section: section,
        })
    }

    fn open(name: &ShmName) -> io::Result<Self> {
        let section = open_file_mapping(name)?;
        let ptr = map_view_of_file(&section, 0)?;
        let len = match virtual_query(ptr) {
            Ok(len) => len,
            Err(e) => {
                unmap_view_of_file(ptr);
                return Err(e);
            }
        };
        Ok(SegmentInner {
            ptr,
            len,
            _section: section,
        })
    }

    fn unlink(_name: &ShmName) -> io::Result<()> {
        Ok(())
    }

    fn unlink_created(_name: &ShmName, _created: Option<ObjectId>) -> io::Result<()> {
        Ok(())
    }

    fn created_object(&self) -> Option<ObjectId> {
        None
    }

    /// Windows has no small per-process limit on the number of views.
    fn mapping_budget() -> usize {
        usize::MAX
    }

    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn len(&self) -> usize {
        self.len
    }
}

fn wide(name: &ShmName) -> Vec<u16> {
    name.os_name().encode_utf16().chain(Some(0)).collect()
}

/// `CreateFileMappingW(INVALID_HANDLE_VALUE, …)`—a new pagefile-backed section. An existing
/// name is `ERROR_ALREADY_EXISTS` (CPython raises FileExistsError the same way).
fn create_file_mapping(name: &ShmName, len: usize) -> io::Result<OwnedHandle> {
    let wide = wide(name);
    let len = len as u64;
    // SAFETY: `wide` is NUL-terminated and outlives the call; a null SECURITY_ATTRIBUTES
    // means the default descriptor.
    let raw = unsafe {
        CreateFileMappingW(
            INVALID_HANDLE_VALUE,
            std::ptr::null(),
            PAGE_READWRITE,
            (len >> 32) as u32,
            len as u32,
            wide.as_ptr(),
        )
    };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: GetLastError has no preconditions; it is read on the line after the call.
    let last = unsafe { GetLastError() };
    // SAFETY: `raw` is a fresh, non-null handle that nothing else owns.
    let section = unsafe { OwnedHandle::from_raw_handle(raw) };
    if last == ERROR_ALREADY_EXISTS {
        return Err(io::Error::from_raw_os_error(ERROR_ALREADY_EXISTS as i32));
    }
    Ok(section)
}

/// `OpenFileMappingW(FILE_MAP_WRITE)`—an existing section by name.
fn open_file_mapping(name: &ShmName) -> io::Result<OwnedHandle> {
    let wide = wide(name);
    // SAFETY: `wide` is NUL-terminated and outlives the call.
    let raw = unsafe { OpenFileMappingW(FILE_MAP_WRITE, 0, wide.as_ptr()) };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, non-null handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(raw) })
}

/// `MapViewOfFile(FILE_MAP_WRITE)`—maps `len` bytes (0: the whole section).
fn map_view_of_file(section: &OwnedHandle, len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: `section` is an open section handle; the kernel picks the address.
    let view = unsafe { MapViewOfFile(section.as_raw_handle(), FILE_MAP_WRITE, 0, 0, len) };
    NonNull::new(view.Value.cast::<u8>()).ok_or_else(io::Error::last_os_error)
}

/// `VirtualQuery`—the size of the view starting at `ptr` (page-rounded).
fn virtual_query(ptr: NonNull<u8>) -> io::Result<usize> {
    let mut info = MaybeUninit::<MEMORY_BASIC_INFORMATION>::uninit();
    let size = std::mem::size_of::<MEMORY_BASIC_INFORMATION>();
    // SAFETY: `info` is writable for `size` bytes; `ptr` is the base of a live view.
    let written = unsafe { VirtualQuery(ptr.as_ptr().cast(), info.as_mut_ptr(), size) };
    if written == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: VirtualQuery returned non-zero, so it filled `info`.
    Ok(unsafe { info.assume_init() }.RegionSize)
}

/// `UnmapViewOfFile`.
fn unmap_view_of_file(ptr: NonNull<u8>) {
    // SAFETY: `ptr` is the base address MapViewOfFile returned, unmapped only here.
    let ok = unsafe {
        UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
            Value: ptr.as_ptr().cast(),
        })
    };
    // Unmapping a view we own cannot fail in a correct program.
    debug_assert_ne!(ok, 0, "UnmapViewOfFile failed: {}", io::Error::last_os_error());
}

impl Drop for SegmentInner {
    fn drop(&mut self) {
        unmap_view_of_file(self.ptr);
        // `_section` closes its handle right after.
    }
}

// SAFETY: the view is process-wide memory, not tied to the thread that mapped it.
unsafe impl Send for SegmentInner {}
// SAFETY: `&SegmentInner` only exposes the pointer and length; access through the pointer is
// governed by the type-level contract in `segment/mod.rs`.
unsafe impl Sync for SegmentInner {}
