//! LIKWID 5.2's PciDeviceIndex numbering (Debian's LIKWID), the one our header and library
//! use. Generated from src/policy/pci/index-5.2.txt by `make header`; do not edit.

use super::PciDeviceIndex;

/// PciDeviceIndex 1 (LIKWID 5.2).
pub const PCI_R3QPI_DEVICE_LINK_0: PciDeviceIndex = 1;

/// PciDeviceIndex 2 (LIKWID 5.2).
pub const PCI_R3QPI_DEVICE_LINK_1: PciDeviceIndex = 2;

/// PciDeviceIndex 3 (LIKWID 5.2).
pub const PCI_R3QPI_DEVICE_LINK_2: PciDeviceIndex = 3;

/// PciDeviceIndex 4 (LIKWID 5.2).
pub const PCI_R2PCIE_DEVICE: PciDeviceIndex = 4;

/// PciDeviceIndex 5 (LIKWID 5.2).
pub const PCI_IMC_DEVICE_0_CH_0: PciDeviceIndex = 5;

/// PciDeviceIndex 6 (LIKWID 5.2).
pub const PCI_IMC_DEVICE_0_CH_1: PciDeviceIndex = 6;

/// PciDeviceIndex 7 (LIKWID 5.2).
pub const PCI_IMC_DEVICE_0_CH_2: PciDeviceIndex = 7;

/// PciDeviceIndex 8 (LIKWID 5.2).
pub const PCI_IMC_DEVICE_0_CH_3: PciDeviceIndex = 8;

/// PciDeviceIndex 9 (LIKWID 5.2).
pub const PCI_IMC_DEVICE_1_CH_0: PciDeviceIndex = 9;

/// PciDeviceIndex 10 (LIKWID 5.2).
pub const PCI_IMC_DEVICE_1_CH_1: PciDeviceIndex = 10;

/// PciDeviceIndex 11 (LIKWID 5.2).
pub const PCI_IMC_DEVICE_1_CH_2: PciDeviceIndex = 11;

/// PciDeviceIndex 12 (LIKWID 5.2).
pub const PCI_IMC_DEVICE_1_CH_3: PciDeviceIndex = 12;

/// PciDeviceIndex 13 (LIKWID 5.2).
pub const PCI_HA_DEVICE_0: PciDeviceIndex = 13;

/// PciDeviceIndex 14 (LIKWID 5.2).
pub const PCI_HA_DEVICE_1: PciDeviceIndex = 14;

/// PciDeviceIndex 15 (LIKWID 5.2).
pub const PCI_HA_DEVICE_2: PciDeviceIndex = 15;

/// PciDeviceIndex 16 (LIKWID 5.2).
pub const PCI_HA_DEVICE_3: PciDeviceIndex = 16;

/// PciDeviceIndex 17 (LIKWID 5.2).
pub const PCI_QPI_DEVICE_PORT_0: PciDeviceIndex = 17;

/// PciDeviceIndex 18 (LIKWID 5.2).
pub const PCI_QPI_DEVICE_PORT_1: PciDeviceIndex = 18;

/// PciDeviceIndex 19 (LIKWID 5.2).
pub const PCI_QPI_DEVICE_PORT_2: PciDeviceIndex = 19;

/// PciDeviceIndex 20 (LIKWID 5.2).
pub const PCI_QPI_MASK_DEVICE_PORT_0: PciDeviceIndex = 20;

/// PciDeviceIndex 21 (LIKWID 5.2).
pub const PCI_QPI_MASK_DEVICE_PORT_1: PciDeviceIndex = 21;

/// PciDeviceIndex 22 (LIKWID 5.2).
pub const PCI_QPI_MASK_DEVICE_PORT_2: PciDeviceIndex = 22;

/// PciDeviceIndex 23 (LIKWID 5.2).
pub const PCI_QPI_MISC_DEVICE_PORT_0: PciDeviceIndex = 23;

/// PciDeviceIndex 24 (LIKWID 5.2).
pub const PCI_QPI_MISC_DEVICE_PORT_1: PciDeviceIndex = 24;

/// PciDeviceIndex 25 (LIKWID 5.2).
pub const PCI_QPI_MISC_DEVICE_PORT_2: PciDeviceIndex = 25;

/// PciDeviceIndex 26 (LIKWID 5.2).
pub const PCI_IRP_DEVICE: PciDeviceIndex = 26;

/// PciDeviceIndex 27 (LIKWID 5.2).
pub const PCI_EDC0_UCLK_DEVICE: PciDeviceIndex = 27;

/// PciDeviceIndex 28 (LIKWID 5.2).
pub const PCI_EDC0_DCLK_DEVICE: PciDeviceIndex = 28;

/// PciDeviceIndex 29 (LIKWID 5.2).
pub const PCI_EDC1_UCLK_DEVICE: PciDeviceIndex = 29;

/// PciDeviceIndex 30 (LIKWID 5.2).
pub const PCI_EDC1_DCLK_DEVICE: PciDeviceIndex = 30;

/// PciDeviceIndex 31 (LIKWID 5.2).
pub const PCI_EDC2_UCLK_DEVICE: PciDeviceIndex = 31;

/// PciDeviceIndex 32 (LIKWID 5.2).
pub const PCI_EDC2_DCLK_DEVICE: PciDeviceIndex = 32;

/// PciDeviceIndex 33 (LIKWID 5.2).
pub const PCI_EDC3_UCLK_DEVICE: PciDeviceIndex = 33;

/// PciDeviceIndex 34 (LIKWID 5.2).
pub const PCI_EDC3_DCLK_DEVICE: PciDeviceIndex = 34;

/// PciDeviceIndex 35 (LIKWID 5.2).
pub const PCI_EDC4_UCLK_DEVICE: PciDeviceIndex = 35;

/// PciDeviceIndex 36 (LIKWID 5.2).
pub const PCI_EDC4_DCLK_DEVICE: PciDeviceIndex = 36;

/// PciDeviceIndex 37 (LIKWID 5.2).
pub const PCI_EDC5_UCLK_DEVICE: PciDeviceIndex = 37;

/// PciDeviceIndex 38 (LIKWID 5.2).
pub const PCI_EDC5_DCLK_DEVICE: PciDeviceIndex = 38;

/// PciDeviceIndex 39 (LIKWID 5.2).
pub const PCI_EDC6_UCLK_DEVICE: PciDeviceIndex = 39;

/// PciDeviceIndex 40 (LIKWID 5.2).
pub const PCI_EDC6_DCLK_DEVICE: PciDeviceIndex = 40;

/// PciDeviceIndex 41 (LIKWID 5.2).
pub const PCI_EDC7_UCLK_DEVICE: PciDeviceIndex = 41;

/// PciDeviceIndex 42 (LIKWID 5.2).
pub const PCI_EDC7_DCLK_DEVICE: PciDeviceIndex = 42;

/// PciDeviceIndex 43 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_0_CH_0: PciDeviceIndex = 43;

/// PciDeviceIndex 44 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_0_CH_1: PciDeviceIndex = 44;

/// PciDeviceIndex 45 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_1_CH_0: PciDeviceIndex = 45;

/// PciDeviceIndex 46 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_1_CH_1: PciDeviceIndex = 46;

/// PciDeviceIndex 47 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_2_CH_0: PciDeviceIndex = 47;

/// PciDeviceIndex 48 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_2_CH_1: PciDeviceIndex = 48;

/// PciDeviceIndex 49 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_3_CH_0: PciDeviceIndex = 49;

/// PciDeviceIndex 50 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_3_CH_1: PciDeviceIndex = 50;

/// PciDeviceIndex 51 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_0_FREERUN: PciDeviceIndex = 51;

/// PciDeviceIndex 52 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_1_FREERUN: PciDeviceIndex = 52;

/// PciDeviceIndex 53 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_2_FREERUN: PciDeviceIndex = 53;

/// PciDeviceIndex 54 (LIKWID 5.2).
pub const MMIO_IMC_DEVICE_3_FREERUN: PciDeviceIndex = 54;
