use super::*;

#[test]
fn parses_single_registers_ranges_and_comments() {
    let rules = parse("# header\n\n0x10 0x0 # TSC\n0xC0010200-0xC001020B 0xFFFFFFFFFFFFFFFF\n").unwrap();
    assert_eq!(
        rules,
        vec![
            Rule { first: 0x10, last: 0x10, write_mask: 0 },
            Rule { first: 0xC001_0200, last: 0xC001_020B, write_mask: u64::MAX },
        ]
    );
}

#[test]
fn rejects_malformed_lines_with_their_line_number() {
    let bad = [
        ("0x10\n", "expected"),
        ("0x10 0x0 0x1\n", "expected"),
        ("16 0x0\n", "not a 32-bit"),
        ("0x100000000 0x0\n", "not a 32-bit"),
        ("0x20-0x10 0x0\n", "ends before"),
        ("0x10 0x10000000000000000\n", "not a 64-bit"),
        ("0x10 zz\n", "not a 64-bit"),
        ("0x10-0x20 0x0\n0x18 0x1\n", "overlaps"),
    ];
    for (text, want) in bad {
        let e = parse(&format!("# x\n{text}")).unwrap_err();
        assert!(e.message.contains(want), "{text:?}: {e}");
        assert!(e.line >= 2, "{text:?}: line {}", e.line);
    }
}

#[test]
fn unlisted_registers_are_denied_for_read_and_write() {
    let p = Policy::new("test", "0xC1 0x0\n0x20-0x2F 0xFF\n").unwrap();
    for reg in [0x0, 0x1F, 0x30, 0xC0, 0xC2, u32::MAX] {
        assert!(!p.may_read(reg), "{reg:#x}");
        assert_eq!(p.write_mask(reg), None, "{reg:#x}");
    }
    assert!(p.may_read(0xC1) && p.may_read(0x20) && p.may_read(0x2F));
    assert_eq!(p.write_mask(0xC1), None, "mask 0 is read-only");
    assert_eq!(p.write_rule(0xC1), WriteRule::Unchanged);
    assert_eq!(p.write_rule(0xC2), WriteRule::Denied);
    assert_eq!(p.write_mask(0x25), Some(0xFF));
}

#[test]
fn ceiling_caps_any_table() {
    // A table that tries to make SYSCFG, EFER and HWCR fully writable.
    let p = Policy::new(
        "hostile",
        "0xC0000080 0xFFFFFFFFFFFFFFFF\n0xC0010010 0xFFFFFFFFFFFFFFFF\n0xC0010015 0xFFFFFFFFFFFFFFFF\n",
    )
    .unwrap();
    assert_eq!(p.write_mask(0xC000_0080), None, "EFER");
    assert_eq!(p.write_rule(0xC000_0080), WriteRule::Denied, "never writable, not even unchanged");
    assert_eq!(p.write_mask(0xC001_0010), None, "SYSCFG");
    assert_eq!(p.write_mask(0xC001_0015), Some(1 << 30), "HWCR only IRPerfEn");
}

#[test]
fn masked_write_keeps_protected_bits() {
    assert_eq!(apply_mask(0x0123_4567_89AB_CDEF, u64::MAX, 1 << 30), 0x0123_4567_C9AB_CDEF);
    assert_eq!(apply_mask(0xFFFF_FFFF_FFFF_FFFF, 0, 0xF), 0xFFFF_FFFF_FFFF_FFF0);
    assert_eq!(apply_mask(5, 9, u64::MAX), 9);
}

#[test]
fn every_builtin_table_parses_and_respects_the_ceiling() {
    let ceiling = parse(CEILING_TABLE).unwrap();
    assert!(!ceiling.is_empty());
    for model in CPU_MODELS {
        let p = Policy::builtin(model);
        assert!(!p.rules().is_empty(), "{}", model.name);
        for rule in p.rules() {
            for reg in [rule.first, rule.last] {
                assert!(p.may_read(reg), "{} {reg:#x}", model.name);
                if let Some(cap) = find(&ceiling, reg) {
                    let mask = p.write_mask(reg).unwrap_or(0);
                    assert_eq!(mask & !cap.write_mask, 0, "{} {reg:#x} exceeds its ceiling", model.name);
                }
            }
        }
    }
}

#[test]
fn never_writable_registers_are_refused_on_every_builtin_table() {
    let ceiling = parse(CEILING_TABLE).unwrap();
    for model in CPU_MODELS {
        let p = Policy::builtin(model);
        for rule in ceiling.iter().filter(|r| r.write_mask == 0) {
            for reg in [rule.first, rule.last] {
                assert_eq!(p.write_rule(reg), WriteRule::Denied, "{}: {reg:#x} writable", model.name);
            }
        }
    }
}

#[test]
fn the_byte_splitter_splits_as_split_whitespace_does() {
    let lines = [
        "0xC1 0xFF",
        "0xC1\t \x0b\x0c0xFF",
        "0xC1",
        "0xC1 0xFF 0x1",
        "0xC1\u{a0}0xFF",
        "a\u{2003}b c",
        "x\ry",
        "0x1-0x2  0x0",
    ];
    for line in lines {
        let mut words = line.split_whitespace();
        let want = match (words.next(), words.next(), words.next()) {
            (Some(a), Some(b), None) => Some((a, b)),
            _ => None,
        };
        assert_eq!(two_words(line), want, "{line:?}");
    }
}

#[test]
fn build_time_tables_are_what_the_parser_makes_of_their_text() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/policy/tables");
    for m in CPU_MODELS {
        let text = std::fs::read_to_string(dir.join(format!("{}.txt", m.name))).unwrap();
        let rules = builtin::parsed(m.name).unwrap_or_else(|| panic!("no built-in table for {}", m.name));
        assert_eq!(rules, parse(&text).unwrap().as_slice(), "{}", m.name);
    }
    assert_eq!(builtin::NEVER_WRITABLE, parse(CEILING_TABLE).unwrap().as_slice());
    assert_eq!(builtin::PERSISTENT, parse(PERSISTENT_TABLE).unwrap().as_slice());
}
