//! Driver for QEMU's virtio disk device, in the MODERN (version 2)
//! virtio-mmio interface (xv6-riscv's virtio_disk.c): QEMU runs with
//! `-global virtio-mmio.force-legacy=false` and
//! `-drive file=fs.img,if=none,format=raw,id=x0
//!  -device virtio-blk-device,drive=x0,bus=virtio-mmio-bus.0`.
//!
//! The buffer cache (bio.rs) calls [`virtio_disk_rw`], which queues a
//! three-descriptor request (header, data, status) and sleeps until the
//! device's interrupt ([`virtio_disk_intr`], from the PLIC) marks it done.
//! Addresses handed to the device are physical: the rings, request headers
//! and status bytes live in pages from kalloc, and the data in the buffer
//! cache, all mapped one-to-one. The driver's own bookkeeping is inside the
//! `SpinLock` `DISK`; what the device touches is reached only through raw
//! pointers, never through the guard's `&mut`.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

use crate::bio::Buf;
use crate::fs::BSIZE;
use crate::kalloc::kzalloc;
use crate::memlayout::VIRTIO0;
use crate::proc::wakeup;
use crate::spinlock::SpinLock;

// virtio mmio control registers, mapped starting at 0x10001000.
// from qemu virtio_mmio.h
const VIRTIO_MMIO_MAGIC_VALUE: u64 = 0x000; // 0x74726976
const VIRTIO_MMIO_VERSION: u64 = 0x004; // version; should be 2
const VIRTIO_MMIO_DEVICE_ID: u64 = 0x008; // device type; 1 is net, 2 is disk
const VIRTIO_MMIO_VENDOR_ID: u64 = 0x00c; // 0x554d4551
const VIRTIO_MMIO_DEVICE_FEATURES: u64 = 0x010;
const VIRTIO_MMIO_DRIVER_FEATURES: u64 = 0x020;
const VIRTIO_MMIO_QUEUE_SEL: u64 = 0x030; // select queue, write-only
const VIRTIO_MMIO_QUEUE_NUM_MAX: u64 = 0x034; // max size of current queue, read-only
const VIRTIO_MMIO_QUEUE_NUM: u64 = 0x038; // size of current queue, write-only
const VIRTIO_MMIO_QUEUE_READY: u64 = 0x044; // ready bit
const VIRTIO_MMIO_QUEUE_NOTIFY: u64 = 0x050; // write-only
const VIRTIO_MMIO_INTERRUPT_STATUS: u64 = 0x060; // read-only
const VIRTIO_MMIO_INTERRUPT_ACK: u64 = 0x064; // write-only
const VIRTIO_MMIO_STATUS: u64 = 0x070; // read/write
const VIRTIO_MMIO_QUEUE_DESC_LOW: u64 = 0x080; // descriptor table, write-only
const VIRTIO_MMIO_QUEUE_DESC_HIGH: u64 = 0x084;
const VIRTIO_MMIO_DRIVER_DESC_LOW: u64 = 0x090; // available ring, write-only
const VIRTIO_MMIO_DRIVER_DESC_HIGH: u64 = 0x094;
const VIRTIO_MMIO_DEVICE_DESC_LOW: u64 = 0x0a0; // used ring, write-only
const VIRTIO_MMIO_DEVICE_DESC_HIGH: u64 = 0x0a4;

// status register bits, from qemu virtio_config.h
const VIRTIO_CONFIG_S_ACKNOWLEDGE: u32 = 1;
const VIRTIO_CONFIG_S_DRIVER: u32 = 2;
const VIRTIO_CONFIG_S_DRIVER_OK: u32 = 4;
const VIRTIO_CONFIG_S_FEATURES_OK: u32 = 8;

// device feature bits
const VIRTIO_BLK_F_RO: u32 = 5; // Disk is read-only
const VIRTIO_BLK_F_SCSI: u32 = 7; // Supports scsi command passthru
const VIRTIO_BLK_F_CONFIG_WCE: u32 = 11; // Writeback mode available in config
const VIRTIO_BLK_F_MQ: u32 = 12; // support more than one vq
const VIRTIO_F_ANY_LAYOUT: u32 = 27;
const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
const VIRTIO_RING_F_EVENT_IDX: u32 = 29;

/// This many virtio descriptors. Must be a power of two.
const NUM: usize = 8;

/// A single descriptor, from the spec.
#[repr(C)]
struct VirtqDesc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}
const VRING_DESC_F_NEXT: u16 = 1; // chained with another descriptor
const VRING_DESC_F_WRITE: u16 = 2; // device writes (vs read)

/// The (entire) avail ring, from the spec.
#[repr(C)]
struct VirtqAvail {
    flags: u16,       // always zero
    idx: u16,         // driver will write ring[idx] next
    ring: [u16; NUM], // descriptor numbers of chain heads
    unused: u16,
}

/// One entry in the "used" ring, with which the device tells the driver
/// about completed requests.
#[repr(C)]
struct VirtqUsedElem {
    id: u32, // index of start of completed descriptor chain
    len: u32,
}

#[repr(C)]
struct VirtqUsed {
    flags: u16, // always zero
    idx: u16,   // device increments when it adds a ring[] entry
    ring: [VirtqUsedElem; NUM],
}

// these are specific to virtio block devices, e.g. disks, described in
// Section 5.2 of the spec.
const VIRTIO_BLK_T_IN: u32 = 0; // read the disk
const VIRTIO_BLK_T_OUT: u32 = 1; // write the disk

/// The format of the first descriptor in a disk request, followed by two
/// more descriptors containing the block, and a one-byte status.
#[repr(C)]
#[derive(Clone, Copy)]
struct VirtioBlkReq {
    typ: u32, // VIRTIO_BLK_T_IN or ..._OUT
    reserved: u32,
    sector: u64,
}

/// What the device reads and writes by DMA besides the rings: the request
/// headers and the status bytes (in C, `disk.ops` and `disk.info[i].status`).
/// It lives in its own page, reached through a raw pointer like the rings,
/// so that no `&mut Disk` from the lock's guard covers bytes the device
/// writes. Entry `i` belongs to the request whose chain starts at
/// descriptor `i`.
#[repr(C)]
struct DiskDma {
    /// Disk command headers. One-for-one with descriptors, for convenience.
    ops: [VirtioBlkReq; NUM],
    /// The device writes 0 here on success.
    status: [u8; NUM],
}
const _: () = assert!(core::mem::size_of::<DiskDma>() <= 4096);

#[derive(Clone, Copy)]
struct Info {
    b: *mut Buf,
}

/// The driver's state (xv6's `struct disk` without `vdisk_lock`: the
/// [`SpinLock`] around it is that lock). Until [`virtio_disk_init`] the
/// four page pointers are null; after it they point at the driver's DMA
/// pages, for good.
struct Disk {
    /// A page of NUM DMA descriptors.
    desc: *mut VirtqDesc,
    /// A page with the ring of descriptors the driver wants the device to process.
    avail: *mut VirtqAvail,
    /// A page with the ring of descriptors the device has finished.
    used: *mut VirtqUsed,
    /// A page with the request headers and status bytes.
    dma: *mut DiskDma,
    /// Is a descriptor free?
    free: [bool; NUM],
    /// We've looked this far in used[2..NUM].
    used_idx: u16,
    /// Track info about in-flight operations, for use when completion
    /// interrupt arrives. Indexed by first descriptor index of chain.
    info: [Info; NUM],
}

// SAFETY: desc, avail, used and dma are the driver's DMA pages (kalloc'd
// once at init), and info[i].b a buffer-cache entry: addresses any hart may
// hold, used only under the lock.
unsafe impl Send for Disk {}

/// The disk (xv6's `disk`); its lock is xv6's `vdisk_lock`.
static DISK: SpinLock<Disk> = SpinLock::new(
    Disk {
        desc: core::ptr::null_mut(),
        avail: core::ptr::null_mut(),
        used: core::ptr::null_mut(),
        dma: core::ptr::null_mut(),
        free: [false; NUM],
        used_idx: 0,
        info: [Info {
            b: core::ptr::null_mut(),
        }; NUM],
    },
    "virtio_disk",
);

/// What virtio_disk_rw sleeps on while no descriptors are free (C: `&disk.free[0]`).
fn free_chan() -> usize {
    &DISK as *const SpinLock<Disk> as usize
}

fn reg_read(r: u64) -> u32 {
    // SAFETY: VIRTIO0's registers are mapped (kvmmake) and 4-byte aligned.
    unsafe { read_volatile((VIRTIO0 + r) as *const u32) }
}

fn reg_write(r: u64, v: u32) {
    // SAFETY: as reg_read.
    unsafe { write_volatile((VIRTIO0 + r) as *mut u32, v) }
}

/// Find and set up the disk. Panics if there is no modern virtio disk.
pub fn virtio_disk_init() {
    if reg_read(VIRTIO_MMIO_MAGIC_VALUE) != 0x7472_6976
        || reg_read(VIRTIO_MMIO_VERSION) != 2
        || reg_read(VIRTIO_MMIO_DEVICE_ID) != 2
        || reg_read(VIRTIO_MMIO_VENDOR_ID) != 0x554d_4551
    {
        panic!("could not find virtio disk");
    }

    // reset device
    let mut status = 0;
    reg_write(VIRTIO_MMIO_STATUS, status);
    // set ACKNOWLEDGE status bit
    status |= VIRTIO_CONFIG_S_ACKNOWLEDGE;
    reg_write(VIRTIO_MMIO_STATUS, status);
    // set DRIVER status bit
    status |= VIRTIO_CONFIG_S_DRIVER;
    reg_write(VIRTIO_MMIO_STATUS, status);

    // negotiate features
    let mut features = reg_read(VIRTIO_MMIO_DEVICE_FEATURES);
    for bit in [
        VIRTIO_BLK_F_RO,
        VIRTIO_BLK_F_SCSI,
        VIRTIO_BLK_F_CONFIG_WCE,
        VIRTIO_BLK_F_MQ,
        VIRTIO_F_ANY_LAYOUT,
        VIRTIO_RING_F_EVENT_IDX,
        VIRTIO_RING_F_INDIRECT_DESC,
    ] {
        features &= !(1 << bit);
    }
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES, features);

    // tell device that feature negotiation is complete.
    status |= VIRTIO_CONFIG_S_FEATURES_OK;
    reg_write(VIRTIO_MMIO_STATUS, status);

    // re-read status to ensure FEATURES_OK is set.
    status = reg_read(VIRTIO_MMIO_STATUS);
    if status & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
        panic!("virtio disk FEATURES_OK unset");
    }

    // initialize queue 0.
    reg_write(VIRTIO_MMIO_QUEUE_SEL, 0);

    // ensure queue 0 is not in use.
    if reg_read(VIRTIO_MMIO_QUEUE_READY) != 0 {
        panic!("virtio disk should not be ready");
    }

    // check maximum queue size.
    let max = reg_read(VIRTIO_MMIO_QUEUE_NUM_MAX);
    if max == 0 {
        panic!("virtio disk has no queue 0");
    }
    if (max as usize) < NUM {
        panic!("virtio disk max queue too short");
    }

    // allocate and zero queue memory.
    let page = || kzalloc().unwrap_or_else(|| panic!("virtio disk kalloc")).0;
    let (desc, avail, used, dma) = (page(), page(), page(), page());

    // set queue size.
    reg_write(VIRTIO_MMIO_QUEUE_NUM, NUM as u32);

    // write physical addresses.
    reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW, desc as u32);
    reg_write(VIRTIO_MMIO_QUEUE_DESC_HIGH, (desc >> 32) as u32);
    reg_write(VIRTIO_MMIO_DRIVER_DESC_LOW, avail as u32);
    reg_write(VIRTIO_MMIO_DRIVER_DESC_HIGH, (avail >> 32) as u32);
    reg_write(VIRTIO_MMIO_DEVICE_DESC_LOW, used as u32);
    reg_write(VIRTIO_MMIO_DEVICE_DESC_HIGH, (used >> 32) as u32);

    // queue is ready.
    reg_write(VIRTIO_MMIO_QUEUE_READY, 0x1);

    {
        // the pages are ours (physical = virtual), zeroed, for good.
        let mut disk = DISK.lock();
        disk.desc = desc as *mut VirtqDesc;
        disk.avail = avail as *mut VirtqAvail;
        disk.used = used as *mut VirtqUsed;
        disk.dma = dma as *mut DiskDma;
        // all NUM descriptors start out unused.
        disk.free = [true; NUM];
    }

    // tell device we're completely ready.
    status |= VIRTIO_CONFIG_S_DRIVER_OK;
    reg_write(VIRTIO_MMIO_STATUS, status);

    // plic.rs and trap.rs arrange for interrupts from VIRTIO0_IRQ.
}

impl Disk {
    /// Find a free descriptor, mark it non-free, return its index.
    fn alloc_desc(&mut self) -> Option<usize> {
        let i = self.free.iter().position(|&f| f)?;
        self.free[i] = false;
        Some(i)
    }

    /// Mark a descriptor as free.
    fn free_desc(&mut self, i: usize) {
        if i >= NUM {
            panic!("free_desc 1");
        }
        if self.free[i] {
            panic!("free_desc 2");
        }
        // SAFETY: desc is the descriptor page (a descriptor is allocated,
        // so init has run) and i < NUM; descriptor i was ours.
        unsafe {
            let desc = self.desc.add(i);
            (*desc).addr = 0;
            (*desc).len = 0;
            (*desc).flags = 0;
            (*desc).next = 0;
        }
        self.free[i] = true;
        wakeup(free_chan());
    }

    /// Free a chain of descriptors.
    fn free_chain(&mut self, mut i: usize) {
        loop {
            // SAFETY: as free_desc: i is an allocated descriptor.
            let (flag, nxt) = unsafe {
                let desc = self.desc.add(i);
                ((*desc).flags, (*desc).next as usize)
            };
            self.free_desc(i);
            if flag & VRING_DESC_F_NEXT != 0 {
                i = nxt;
            } else {
                break;
            }
        }
    }

    /// Allocate three descriptors (they need not be contiguous). Disk
    /// transfers always use three descriptors.
    fn alloc3_desc(&mut self) -> Option<[usize; 3]> {
        let mut idx = [0usize; 3];
        for i in 0..3 {
            match self.alloc_desc() {
                Some(x) => idx[i] = x,
                None => {
                    for &j in &idx[..i] {
                        self.free_desc(j);
                    }
                    return None;
                }
            }
        }
        Some(idx)
    }
}

/// Read (write = false) or write buffer `b` from/to its disk block, and
/// sleep until the device is done.
///
/// # Safety
/// `b` came from [`bread`](crate::bio::bread) and the caller still holds it
/// (not yet passed to `brelse`). The caller holds its sleep-lock.
pub unsafe fn virtio_disk_rw(b: *mut Buf, write: bool) {
    // SAFETY: the caller holds b, so its block is fixed.
    let sector = unsafe { (*b).blockno } as u64 * (BSIZE / 512) as u64;

    let mut disk = DISK.lock();

    // the spec's Section 5.2 says that legacy block operations use
    // three descriptors: one for type/reserved/sector, one for the
    // data, one for a 1-byte status result.

    // allocate the three descriptors.
    let idx = loop {
        if let Some(idx) = disk.alloc3_desc() {
            break idx;
        }
        disk = disk.sleep(free_chan());
    };

    // SAFETY: descriptors were allocated, so init has run and desc, avail
    // and dma are the driver's pages; the three descriptors and dma entry
    // idx[0] are ours until free_chain. The caller holds b's sleep lock,
    // and the device owns b->data while b->disk is set.
    unsafe {
        let dma = disk.dma;
        // format the three descriptors.
        let buf0 = &raw mut (*dma).ops[idx[0]];
        (*buf0).typ = if write {
            VIRTIO_BLK_T_OUT // write the disk
        } else {
            VIRTIO_BLK_T_IN // read the disk
        };
        (*buf0).reserved = 0;
        (*buf0).sector = sector;

        let desc0 = disk.desc.add(idx[0]);
        (*desc0).addr = buf0 as u64;
        (*desc0).len = core::mem::size_of::<VirtioBlkReq>() as u32;
        (*desc0).flags = VRING_DESC_F_NEXT;
        (*desc0).next = idx[1] as u16;

        let desc1 = disk.desc.add(idx[1]);
        (*desc1).addr = (&raw mut (*b).data) as u64;
        (*desc1).len = BSIZE as u32;
        (*desc1).flags = if write {
            0 // device reads b->data
        } else {
            VRING_DESC_F_WRITE // device writes b->data
        };
        (*desc1).flags |= VRING_DESC_F_NEXT;
        (*desc1).next = idx[2] as u16;

        let status = &raw mut (*dma).status[idx[0]];
        write_volatile(status, 0xff); // device writes 0 on success
        let desc2 = disk.desc.add(idx[2]);
        (*desc2).addr = status as u64;
        (*desc2).len = 1;
        (*desc2).flags = VRING_DESC_F_WRITE; // device writes the status
        (*desc2).next = 0;

        // record struct buf for virtio_disk_intr().
        write_volatile(&raw mut (*b).disk, true);
        disk.info[idx[0]].b = b;

        // tell the device the first index in our chain of descriptors.
        let avail = disk.avail;
        let slot = (read_volatile(&raw const (*avail).idx) as usize) % NUM;
        write_volatile(&raw mut (*avail).ring[slot], idx[0] as u16);

        fence(Ordering::SeqCst);

        // tell the device another avail ring entry is available.
        let next = read_volatile(&raw const (*avail).idx).wrapping_add(1);
        write_volatile(&raw mut (*avail).idx, next);

        fence(Ordering::SeqCst);

        reg_write(VIRTIO_MMIO_QUEUE_NOTIFY, 0); // value is queue number

        // Wait for virtio_disk_intr() to say request has finished.
        while read_volatile(&raw const (*b).disk) {
            disk = disk.sleep(b as usize);
        }
    }

    disk.info[idx[0]].b = core::ptr::null_mut();
    disk.free_chain(idx[0]);
}

/// The disk's interrupt: mark finished requests done and wake their
/// sleepers.
pub fn virtio_disk_intr() {
    let mut disk = DISK.lock();

    // the device won't raise another interrupt until we tell it
    // we've seen this interrupt, which the following line does.
    // this may race with the device writing new entries to
    // the "used" ring, in which case we may process the new
    // completion entries in this interrupt, and have nothing to do
    // in the next interrupt, which is harmless.
    reg_write(
        VIRTIO_MMIO_INTERRUPT_ACK,
        reg_read(VIRTIO_MMIO_INTERRUPT_STATUS) & 0x3,
    );

    fence(Ordering::SeqCst);

    // the device increments disk.used->idx when it
    // adds an entry to the used ring.
    let used = disk.used;
    if used.is_null() {
        return; // an interrupt before init: nothing is in flight.
    }
    // SAFETY: init has run, so used and dma are the driver's pages; an
    // entry in the used ring names a chain virtio_disk_rw queued, whose
    // info[id].b is a buffer its caller holds until we clear b->disk.
    unsafe {
        while disk.used_idx != read_volatile(&raw const (*used).idx) {
            fence(Ordering::SeqCst);
            let id =
                read_volatile(&raw const (*used).ring[disk.used_idx as usize % NUM].id) as usize;
            if id >= NUM {
                panic!("virtio_disk_intr id");
            }
            if read_volatile(&raw const (*disk.dma).status[id]) != 0 {
                panic!("virtio_disk_intr status");
            }
            let b = disk.info[id].b;
            write_volatile(&raw mut (*b).disk, false); // disk is done with buf
            wakeup(b as usize);

            disk.used_idx = disk.used_idx.wrapping_add(1);
        }
    }
}
