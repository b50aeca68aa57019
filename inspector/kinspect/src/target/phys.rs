//! Every [`Target`] as the Sv39 walker's physical memory
//! ([`kinspect_sv39::PhysRead`]), implemented once here for all backends.
//!
//! Unreadable memory (`TargetError::Memory`: outside RAM, unassigned) is a
//! finding the walk reports; any other failure (the connection went away)
//! stops the walk and comes back as the same typed [`TargetError`].
//!
//! [`Target::read_phys`] takes a raw `u64`, as the gdb protocol does: the
//! typed [`PhysAddr`] becomes a number here, at the edge.

use kinspect_sv39::{PhysAddr, PhysRead, ReadError};

use super::{Target, TargetError};

impl PhysRead for dyn Target + '_ {
    type Error = TargetError;

    fn read(&mut self, pa: PhysAddr, buf: &mut [u8]) -> Result<(), ReadError<TargetError>> {
        self.read_phys(pa.0, buf).map_err(|e| match e {
            TargetError::Memory { .. } => ReadError::Unreadable(e.to_string()),
            e => ReadError::Fatal(e),
        })
    }
}
