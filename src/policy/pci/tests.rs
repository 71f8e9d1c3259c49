use super::*;

#[test]
fn numbering_lines_parse_sorted_and_unique() {
    let t = parse_numbering("# c\n1 PCI_A\n0 MSR_DEV\n").unwrap();
    assert_eq!(t, vec![(0, "MSR_DEV"), (1, "PCI_A")]);
    assert!(parse_numbering("0 A\n0 B\n").is_err());
    assert!(parse_numbering("x A\n").is_err());
    assert!(parse_numbering("1\n").is_err());
}

#[test]
fn device_lines_parse() {
    let d = parse_devices("PCI_IMC_DEVICE_0_CH_0 IMC 0a.2 8086:2042 # ch0\n").unwrap();
    assert_eq!(
        d[0],
        DeviceEntry { name: "PCI_IMC_DEVICE_0_CH_0", kind: "IMC", dev: 0x0a, func: 2, vendor: 0x8086, device: 0x2042 }
    );
    assert!(parse_devices("A IMC 0a 8086:2042\n").is_err());
    assert!(parse_devices("A IMC 0a.2 80862042\n").is_err());
}

#[test]
fn rules_cover_aligned_offsets_of_their_type_only() {
    let rules = parse_rules("IMC 0xA0-0xB8 0xFFFFFFFFFFFF 64\nIMC 0xD8-0xE4 0xFFFFFF 32\n").unwrap();
    let g = Generation { devices: &[], rules: rules.leak() };
    assert_eq!(g.rule("IMC", 0xA8).map(|r| r.width), Some(8));
    assert!(g.rule("IMC", 0xA4).is_none(), "misaligned inside a 64-bit block");
    assert_eq!(g.rule("IMC", 0xE0).map(|r| r.width), Some(4));
    assert!(g.rule("IMC", 0xE8).is_none());
    assert!(g.rule("HA", 0xA0).is_none(), "another type");
    for bad in ["IMC 0xA2 0x0 64\n", "IMC 0xA0 0x1FFFFFFFF 32\n", "IMC 0xA0 0x0 16\n", "IMC 0x1000 0x0 32\n"] {
        assert!(parse_rules(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn builtin_generations_parse_and_name_devices_of_both_numberings() {
    for model in ["skx", "icx"] {
        let g = Generation::for_model(model).unwrap();
        for d in g.devices.iter().filter(|d| d.name != "MMIO_BASE") {
            assert!(g.rules.iter().any(|r| r.kind == d.kind), "{model}: {} ({}) has no register rules", d.name, d.kind);
        }
    }
    assert_eq!(Numbering::Likwid52.name(0), Some("MSR_DEV"));
    assert_eq!(Numbering::Likwid53.name(0), Some("MSR_DEV"));
    assert_eq!(Numbering::Likwid52.name(-5), None);
    assert!(Generation::for_model("zen4").is_none());
}

/// The tables the daemon uses are build.rs's statics: they must be what `parse` makes of the
/// text files, entry for entry.
#[test]
fn generated_tables_are_the_parsed_text() {
    assert_eq!(builtin::INDEX_5_2.iter().collect::<Vec<_>>(), parse_numbering(include_str!("index-5.2.txt")).unwrap());
    assert_eq!(builtin::INDEX_5_3.iter().collect::<Vec<_>>(), parse_numbering(include_str!("index-5.3.txt")).unwrap());
    assert_eq!(builtin::INDEX_5_4.iter().collect::<Vec<_>>(), parse_numbering(include_str!("index-5.4.txt")).unwrap());
    assert_eq!(builtin::DEVICES_SKX, parse_devices(include_str!("devices-skx.txt")).unwrap());
    assert_eq!(builtin::DEVICES_ICX, parse_devices(include_str!("devices-icx.txt")).unwrap());
    assert_eq!(builtin::ALLOW_SKX, parse_rules(include_str!("allow-skx.txt")).unwrap());
    assert_eq!(builtin::ALLOW_ICX, parse_rules(include_str!("allow-icx.txt")).unwrap());
    for (model, devices, rules) in
        [("skx", builtin::DEVICES_SKX, builtin::ALLOW_SKX), ("icx", builtin::DEVICES_ICX, builtin::ALLOW_ICX)]
    {
        let g = Generation::for_model(model).unwrap();
        assert_eq!((g.devices, g.rules), (devices, rules), "{model}");
        // PCI has 32 devices of 8 functions per bus (the scan looks slots up as devfn).
        assert!(devices.iter().all(|d| d.dev < 0x20 && d.func < 8), "{model}");
        assert!(!devices.is_empty() && !rules.is_empty(), "{model}");
    }
    assert_eq!(
        Numbering::Likwid54.index("PCI_IMC_DEVICE_0_CH_0").and_then(|i| Numbering::Likwid54.name(i)),
        Some("PCI_IMC_DEVICE_0_CH_0")
    );
}
