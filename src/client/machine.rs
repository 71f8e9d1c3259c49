//! The machine a daemon (or direct mode) serves, and the one mapping of a caller's (hardware
//! thread, device) to the `cpu` a record carries: every API (HPM*, HPMbatch, LIKWID 3's
//! msr_*/pci_*/accessClient_*, the tool) addresses through `Machine::record_cpu`.

use super::HEADER_NUMBERING;
use crate::error::AccessError;
use crate::wire::{DeviceIndex, HwThread, Socket};
use std::collections::BTreeSet;

/// Ok when `device` is the MSRs or a device of our PciDeviceIndex numbering: the first check
/// of `Machine::record_cpu`, also made on its own where a cpu is checked before the machine is
/// at hand (LIKWID 3's process-wide session).
pub(crate) fn served(device: DeviceIndex) -> Result<(), AccessError> {
    match device.is_msr() || HEADER_NUMBERING.name(device.0).is_some() {
        true => Ok(()),
        false => Err(AccessError::BadDevice),
    }
}

/// The machine's hardware threads with their sockets, sorted by thread. Empty until a daemon
/// greeted (or direct mode opened the devices): then nothing is known about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Machine(Vec<(HwThread, Socket)>);

impl Machine {
    /// Nothing known yet.
    pub(crate) const EMPTY: Machine = Machine(Vec::new());

    pub(crate) fn new(mut cpus: Vec<(HwThread, Socket)>) -> Machine {
        cpus.sort_unstable();
        Machine(cpus)
    }

    /// From the engine's or cpuinfo's (thread, socket) numbers.
    pub(crate) fn from_raw(cpus: &[(u32, u32)]) -> Machine {
        Machine::new(cpus.iter().map(|&(t, s)| (HwThread(t), Socket(s))).collect())
    }

    pub(crate) fn threads(&self) -> impl Iterator<Item = HwThread> + '_ {
        self.0.iter().map(|(t, _)| *t)
    }

    fn socket(&self, thread: HwThread) -> Option<Socket> {
        let i = self.0.binary_search_by_key(&thread, |(t, _)| *t).ok()?;
        Some(self.0[i].1)
    }

    pub(crate) fn has(&self, thread: HwThread) -> bool {
        self.socket(thread).is_some()
    }

    /// The record's `cpu` for an access to `device` on `thread`: the thread for MSRs, its
    /// socket for PCI uncore devices (as LIKWID's client addresses them). `added` is the set
    /// of HPMaddThread, for the APIs that require it (None: LIKWID 3 sessions, HPMcheck).
    ///
    /// Checks in LIKWID's order (LIKWID 5.5.1 src/access.c, `HPMread` and `HPMwrite`): the
    /// device first (EFAULT), then whether the thread is on the machine (ERANGE), then whether
    /// it was added (ENODEV). While the machine is unknown (before the first HPMaddThread)
    /// no thread can have been added: ENODEV.
    pub(crate) fn record_cpu(
        &self,
        thread: HwThread,
        device: DeviceIndex,
        added: Option<&BTreeSet<HwThread>>,
    ) -> Result<u32, AccessError> {
        served(device)?;
        let socket = self.thread_socket(thread, added)?;
        Ok(Machine::cpu_of(thread, socket, device))
    }

    /// The thread half of `record_cpu`'s checks (after the device's): its socket, or why the
    /// thread cannot be used. It depends on the thread alone, so a batch asks once per thread.
    pub(crate) fn thread_socket(
        &self,
        thread: HwThread,
        added: Option<&BTreeSet<HwThread>>,
    ) -> Result<Socket, AccessError> {
        let socket = match self.socket(thread) {
            Some(socket) => socket,
            None if self.0.is_empty() && added.is_some() => return Err(AccessError::NotAdded),
            None => return Err(AccessError::OutOfRange),
        };
        if added.is_some_and(|added| !added.contains(&thread)) {
            return Err(AccessError::NotAdded);
        }
        Ok(socket)
    }

    /// The record's `cpu` once both halves passed: the thread for MSRs, its socket otherwise.
    pub(crate) fn cpu_of(thread: HwThread, socket: Socket, device: DeviceIndex) -> u32 {
        if device.is_msr() {
            thread.0
        } else {
            socket.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads 0-3 on socket 0, 4-7 on socket 1.
    fn machine() -> Machine {
        Machine::from_raw(&[(4, 1), (0, 0), (1, 0), (2, 0), (3, 0), (5, 1), (6, 1), (7, 1)])
    }

    const PCI: DeviceIndex = DeviceIndex(5); // an IMC channel in LIKWID 5.2's numbering
    const BAD: DeviceIndex = DeviceIndex(999);

    #[test]
    fn msrs_address_the_thread_and_pci_devices_its_socket() {
        let m = machine();
        assert_eq!(m.record_cpu(HwThread(6), DeviceIndex::MSR, None), Ok(6));
        assert_eq!(m.record_cpu(HwThread(6), PCI, None), Ok(1));
        assert_eq!(m.record_cpu(HwThread(2), PCI, None), Ok(0));
    }

    #[test]
    fn checks_run_in_likwids_order_device_then_range_then_added() {
        let m = machine();
        let added: BTreeSet<_> = [HwThread(0)].into();
        // A bad device wins over everything else, whichever API asks.
        for set in [None, Some(&added)] {
            assert_eq!(m.record_cpu(HwThread(99), BAD, set), Err(AccessError::BadDevice));
            assert_eq!(m.record_cpu(HwThread(1), DeviceIndex(-5), set), Err(AccessError::BadDevice));
            assert_eq!(m.record_cpu(HwThread(99), PCI, set), Err(AccessError::OutOfRange));
        }
        assert_eq!(m.record_cpu(HwThread(1), PCI, Some(&added)), Err(AccessError::NotAdded));
        assert_eq!(m.record_cpu(HwThread(1), PCI, None), Ok(0));
        assert_eq!(Machine::EMPTY.record_cpu(HwThread(99), BAD, Some(&added)), Err(AccessError::BadDevice));
        // Before the machine is known nothing is added.
        assert_eq!(Machine::EMPTY.record_cpu(HwThread(99), PCI, Some(&added)), Err(AccessError::NotAdded));
    }
}
