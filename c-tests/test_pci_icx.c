/* test_pci_icx: test_pci on a simulated two-socket Icelake-SP (UPI links; its memory
 * controllers are memory-mapped, not in config space, and not served yet). */
#define PCI_TEST_ICX 1
#include "test_pci.c"
