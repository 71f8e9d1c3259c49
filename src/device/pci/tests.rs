use super::*;

fn device(dir: &Path, name: &str, id: &str, numa: &str) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("vendor"), "0x8086\n").unwrap();
    std::fs::write(d.join("device"), format!("{id}\n")).unwrap();
    std::fs::write(d.join("numa_node"), format!("{numa}\n")).unwrap();
    std::fs::write(d.join("config"), [0u8; 256]).unwrap();
}

#[test]
fn sockets_come_from_numa_node_else_bus_order_and_other_devices_are_ignored() {
    let dir = std::env::temp_dir().join(format!("likwid-pci-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = Root::new(&dir);
    let devs = root.pci_devices();
    let skx = Generation::for_model("skx").unwrap();
    device(&devs, "0000:97:0e.0", "0x2058", "-1"); // UPI port 0, higher bus: socket 1
    device(&devs, "0000:17:0e.0", "0x2058", "-1"); // UPI port 0, lower bus: socket 0
    device(&devs, "0000:3a:0a.2", "0x2042", "1"); // IMC 0 channel 0 on NUMA node 1
    device(&devs, "0000:3a:0a.3", "0x2042", "0"); // right id, wrong function: not an IMC
    device(&devs, "0000:00:1f.6", "0x15b8", "0"); // a NIC
    let mut found: Vec<(&str, u32)> = scan(&root, skx).into_iter().map(|f| (f.name, f.socket)).collect();
    found.sort();
    assert_eq!(found, vec![("PCI_IMC_DEVICE_0_CH_0", 1), ("PCI_QPI_DEVICE_PORT_0", 0), ("PCI_QPI_DEVICE_PORT_0", 1)]);
    let opened = PciDevices::open_all(&root, Some(skx));
    assert_eq!(opened.list().count(), 3);
    assert!(opened.get(1, "PCI_IMC_DEVICE_0_CH_0").is_some_and(|(kind, _)| kind == "IMC"));
    assert_eq!(PciDevices::open_all(&root, None).list().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A `proc/bus/pci/devices` line as the kernel prints it (drivers/pci/proc.c, show_device).
fn proc_line(bus: u8, dev: u8, func: u8, ids: u32) -> String {
    format!("{:04x}\t{ids:08x}\t0{}\t\n", bus_devfn(bus, dev, func), "\t               0".repeat(14))
}

fn scanned(root: &Root) -> Vec<(&'static str, u32, String)> {
    let skx = Generation::for_model("skx").unwrap();
    let mut found: Vec<_> = scan(root, skx)
        .into_iter()
        .map(|f| (f.name, f.socket, f.path.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned()))
        .collect();
    found.sort();
    found
}

#[test]
fn the_kernels_pci_list_reads_as_bus_devfn_and_ids() {
    let text = proc_line(0x3a, 0x0a, 2, 0x8086_2042) + &proc_line(0x00, 0x1f, 6, 0x8086_15b8);
    assert_eq!(proc_pci_ids(&text), Some(vec![(0x00fe, 0x8086_15b8), (0x3a52, 0x8086_2042)]));
    assert_eq!(proc_pci_ids(""), Some(vec![]));
    assert_eq!(proc_pci_ids("3a52 80862042\n"), None, "not the kernel's tab-separated form");
    assert_eq!(proc_pci_ids("3a5\t80862042\t0\n"), None);
}

/// With the kernel's list consistent with sysfs, ids come from the list: a function whose
/// bus·devfn is there once needs no file read, and one the list says is not served is not,
/// whatever its files say. Where domains share a bus·devfn, each function's own files decide.
#[test]
fn the_kernels_list_decides_where_it_is_unambiguous_and_files_decide_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let devs = root.pci_devices();
    device(&devs, "0000:17:0e.0", "0x2058", "0"); // UPI port 0: served
    device(&devs, "0000:3a:0a.2", "0x2021", "0"); // files say not an IMC channel ...
    device(&devs, "0000:3b:0a.2", "0x2042", "1"); // ... and say an IMC channel
    device(&devs, "0000:40:0a.2", "0x2042", "0"); // two domains share 40:0a.2:
    device(&devs, "0001:40:0a.2", "0x2021", "1"); // the files of each decide
    std::fs::remove_file(devs.join("0000:17:0e.0/vendor")).unwrap(); // the list alone says it
    let list = proc_line(0x17, 0x0e, 0, 0x8086_2058)
        + &proc_line(0x3a, 0x0a, 2, 0x8086_2042) // the kernel's ids: these win
        + &proc_line(0x3b, 0x0a, 2, 0x8086_2021)
        + &proc_line(0x40, 0x0a, 2, 0x8086_2021)
        + &proc_line(0x40, 0x0a, 2, 0x8086_2042);
    std::fs::create_dir_all(dir.path().join("proc/bus/pci")).unwrap();
    std::fs::write(dir.path().join("proc/bus/pci/devices"), &list).unwrap();
    assert_eq!(
        scanned(&root),
        vec![
            ("PCI_IMC_DEVICE_0_CH_0", 0, "0000:3a:0a.2".into()),
            ("PCI_IMC_DEVICE_0_CH_0", 0, "0000:40:0a.2".into()),
            ("PCI_QPI_DEVICE_PORT_0", 0, "0000:17:0e.0".into()),
        ]
    );
    // A list that does not match sysfs (a function more or less) is not used: the files decide.
    std::fs::write(dir.path().join("proc/bus/pci/devices"), list + &proc_line(0x99, 0, 0, 0x8086_2058)).unwrap();
    assert_eq!(
        scanned(&root),
        vec![("PCI_IMC_DEVICE_0_CH_0", 0, "0000:40:0a.2".into()), ("PCI_IMC_DEVICE_0_CH_0", 1, "0000:3b:0a.2".into())]
    );
}

#[test]
fn mmio_names_of_both_numberings_name_the_same_windows() {
    assert_eq!(mmio_window("MMIO_IMC_DEVICE_0_CH_0"), Some((MMIO_CHANNEL, 0)));
    assert_eq!(mmio_window("MMIO_IMC_DEVICE_1_CH_1"), Some((MMIO_CHANNEL, 3)), "5.2: two channels per controller");
    assert_eq!(mmio_window("MMIO_IMC_DEVICE_0_CH_7"), Some((MMIO_CHANNEL, 7)), "5.3+: eight under controller 0");
    assert_eq!(mmio_window("MMIO_IMC_DEVICE_2_FREERUN"), Some((MMIO_FREERUN, 2)));
    assert_eq!(mmio_window("PCI_IMC_DEVICE_0_CH_0"), None);
    assert_eq!(mmio_window("MMIO_IMC_DEVICE_X_CH_0"), None);
}

#[test]
fn unprogrammed_or_absent_memory_controller_bars_are_refused() {
    let path = std::env::temp_dir().join(format!("likwid-bar-test-{}", std::process::id()));
    let bars = |base: u32, controller1: u32| {
        let mut config = vec![0u8; 4096];
        config[0xD0..0xD4].copy_from_slice(&base.to_le_bytes());
        for c in 0..4usize {
            let v: u32 = if c == 1 { controller1 } else { c as u32 + 1 };
            config[0xD8 + 4 * c..0xDC + 4 * c].copy_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&path, config).unwrap();
        mmio_windows(&PciConfig::open(&path).unwrap())
    };
    for bad in [0, 0xE000_0000, u32::MAX] {
        assert!(bars(bad, 2).is_err(), "base BAR {bad:#x}");
    }
    let windows = bars(1, 2).unwrap();
    assert_eq!(windows.len(), 12);
    assert_eq!(windows[0], (MMIO_CHANNEL, 0, (1 << 23) | (1 << 12) | 0x22800));
    let windows = bars(1, u32::MAX).unwrap();
    assert_eq!(windows.len(), 9, "controller 1 left out");
    assert!(windows.iter().all(|(kind, i, _)| !(*kind == MMIO_FREERUN && *i == 1)));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn keys_sort_as_sort_unstable_does() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in [0, 1, 5, 64, 65, 600, 4000] {
        let mut keys: Vec<u16> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Few distinct high bytes and duplicates, as buses on a site.
                (seed as u16) & 0x3F07 | 0x4000
            })
            .collect();
        let mut expected = keys.clone();
        expected.sort_unstable();
        sort_keys(&mut keys);
        assert_eq!(keys, expected, "{len} keys");
    }
}

#[test]
fn sysfs_addresses_parse() {
    let parse_address = |name: &str| super::parse_address(name.as_bytes());
    assert_eq!(parse_address("0000:3a:0a.2"), Some((0, 0x3a, 0x0a, 2)));
    assert_eq!(parse_address("0000:3a:0a"), None);
    assert_eq!(parse_address("pci0000:00"), None);
    assert_eq!(parse_address("10000:e1:00.5"), Some((0x10000, 0xe1, 0, 5)), "a VMD domain");
    assert_eq!(parse_address("0:1:2.3"), Some((0, 1, 2, 3)), "not sysfs's shape: field by field");
    // The fixed places read what the field-by-field parser reads, for every shape near them.
    for name in [
        "0000:3a:0a.2",
        "ffff:FF:1f.7",
        "0000:3a:0a.8",
        "0000:3a:0a.f",
        "0000:3a:0a.g",
        "00000000:00:00.0",
        "000000000:00:00.0",
        ":00:00.0",
        "0:0:00:00.0",
        "0000:3a:0a:2",
        "0000.3a:0a.2",
        "00 0:3a:0a.2",
        "0000:+3:0a.2",
        "0000:3a:0\u{e9}.2",
        "0000:3a.0a:2",
        "0000:3a:0a.2\n",
    ] {
        assert_eq!(parse_address(name), fields(name.as_bytes()), "{name:?}");
    }
    for bad in [
        "0000:3a:0a.",
        "0000::0a.2",
        ":3a:0a.2",
        "0000:3a:+a.2",
        "0000:13a:0a.2",
        "0000:3a:0a.2x",
        "1000000000:3a:0a.2",
    ] {
        assert_eq!(parse_address(bad), None, "{bad}");
    }
}
