/* test_pci_icx: test_pci on a simulated two-socket Icelake-SP (UPI links in config space; the
 * memory controllers memory-mapped, through /dev/mem). */
#define PCI_TEST_ICX 1
#include "test_pci.c"
