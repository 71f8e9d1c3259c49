use super::*;
use crate::policy::pci::Numbering;
use crate::sim::discovery::layout;

/// A table's bytes: the global entry and the units in order.
fn table_bytes(global: &Global, units: &[Unit]) -> Vec<u8> {
    let mut out = vec![0u8; global.table_len() as usize];
    out[..ENTRY_LEN].copy_from_slice(&global.encode(1));
    let stride = (global.stride * 8) as usize;
    for (i, u) in units.iter().enumerate().take_while(|_| stride >= ENTRY_LEN) {
        let at = (i + 1) * stride;
        if at + ENTRY_LEN > out.len() {
            out.resize(at + ENTRY_LEN, 0);
        }
        out[at..at + ENTRY_LEN].copy_from_slice(&u.encode());
    }
    out
}

fn nothing_forbidden(_: u32) -> bool {
    false
}

fn parse(model: &str, global: &Global, units: &[Unit]) -> Result<Table, Refused> {
    parse_table(&table_bytes(global, units), UnitMap::for_model(model).unwrap(), &nothing_forbidden)
}

fn spr() -> (Global, Vec<Unit>) {
    layout("spr", 0).unwrap()
}

fn unit_index(units: &[Unit], name: &str, id: u16) -> usize {
    let kind = UnitMap::for_model("spr").unwrap().kinds.iter().find(|k| k.name == name).unwrap().box_type;
    units.iter().position(|u| u.box_type == kind && u.box_id == id).unwrap()
}

#[test]
fn simulated_tables_of_spr_emr_gnr_parse_with_every_unit() {
    for (model, count) in [("spr", 225), ("emr", 225), ("gnr", 286)] {
        for socket in 0..2 {
            let (global, units) = layout(model, socket).unwrap();
            let table = parse(model, &global, &units).unwrap_or_else(|e| panic!("{model}: {e}"));
            assert_eq!(table.units.len(), count, "{model} socket {socket}");
            assert_eq!(table.global.global_ctl, 0x2FF0);
        }
    }
}

#[test]
fn registers_land_where_likwid_5_5_1_puts_them() {
    let (global, units) = spr();
    let table = parse("spr", &global, &units).unwrap();
    let map = UnitMap::for_model("spr").unwrap();
    let at = |name: &str, id: u16, reg: FakeReg| {
        let kind = map.kinds.iter().find(|k| k.name == name).unwrap();
        locate(&table.units[&(kind.box_type, id)], kind.layout, reg)
    };
    // CHA 3: MSR box 0x2030, CTRL n at +2+n, CTR n at +8+n, FILTER0 at +0xE.
    assert_eq!(
        at("CHA", 3, FakeReg::Ctrl(1)),
        Some(Location { space: Space::Msr, address: 0x2033, width: Width::W64 })
    );
    assert_eq!(at("CHA", 3, FakeReg::Ctr(3)).map(|l| l.address), Some(0x203B));
    assert_eq!(at("CHA", 3, FakeReg::Filter0).map(|l| l.address), Some(0x203E));
    assert_eq!(at("IIO", 0, FakeReg::Filter0), None, "FILTER0 is a CHA register");
    // iMC 0: MMIO, 32-bit controls 4 bytes apart, 64-bit counters 8 apart, fixed at 0x54/0x38.
    let imc = units[unit_index(&units, "iMC", 0)].box_ctl;
    assert_eq!(
        at("iMC", 0, FakeReg::Ctrl(2)),
        Some(Location { space: Space::Mem, address: imc + 0x48, width: Width::W32 })
    );
    assert_eq!(
        at("iMC", 0, FakeReg::Ctr(2)),
        Some(Location { space: Space::Mem, address: imc + 0x18, width: Width::W64 })
    );
    assert_eq!(at("iMC", 0, FakeReg::FixedCtrl).map(|l| (l.address, l.width)), Some((imc + 0x54, Width::Split)));
    assert_eq!(at("iMC", 0, FakeReg::FixedCtr).map(|l| l.address), Some(imc + 0x38));
    // UPI 1: PCI config space of the device in box_ctl, halves 4 bytes apart (as LIKWID codes it).
    let upi = units[unit_index(&units, "UPI", 1)].box_ctl;
    let dev = pci_address(upi);
    assert_eq!(
        at("UPI", 1, FakeReg::Ctr(1)),
        Some(Location { space: Space::Pci(dev), address: 0x324, width: Width::Split })
    );
    assert_eq!(at("UPI", 1, FakeReg::UnitCtrl).map(|l| l.address), Some(0x318));
    // Nothing beyond CTRL3/CTR3, no reset, no free-running counters.
    for reg in [FakeReg::Ctrl(4), FakeReg::Ctr(4), FakeReg::UnitReset, FakeReg::Freerun(0), FakeReg::GlobalCtrl] {
        assert_eq!(at("CHA", 0, reg), None, "{reg:?}");
    }
    assert_eq!(locate_global(&table.global, FakeReg::GlobalStatus(3)), Some(0x2FF5));
    assert_eq!(locate_global(&table.global, FakeReg::GlobalStatus(4)), None);
}

#[test]
fn counters_beyond_num_regs_are_not_registers() {
    let (global, mut units) = spr();
    units[0].num_regs = 2;
    let table = parse("spr", &global, &units).unwrap();
    let kind = UnitMap::for_model("spr").unwrap().kind(0).unwrap();
    let unit = &table.units[&(units[0].box_type, units[0].box_id)];
    assert!(locate(unit, kind.layout, FakeReg::Ctr(1)).is_some());
    assert_eq!(locate(unit, kind.layout, FakeReg::Ctr(2)), None);
    assert_eq!(locate(unit, kind.layout, FakeReg::Ctrl(3)), None);
}

/// Each hostile change to a valid table, and a word its refusal must contain.
#[test]
fn hostile_tables_are_refused_with_the_reason() {
    type Change = fn(&mut Global, &mut Vec<Unit>);
    let cases: Vec<(&str, Change, &str)> = vec![
        ("stride 0", |g, _| g.stride = 0, "stride"),
        ("stride smaller than an entry", |g, _| g.stride = 2, "stride"),
        ("no units", |g, _| g.max_units = 0, "no units"),
        ("units beyond the window", |g, _| (g.stride, g.max_units) = (255, 300), "window"),
        ("absurd num_regs", |_, u| u[0].num_regs = 200, "counters"),
        ("counter width 0", |_, u| u[0].bit_width = 0, "width"),
        ("counter width 65", |_, u| u[5].bit_width = 65, "width"),
        ("unit control 0", |_, u| u[1].box_ctl = 0, "address 0"),
        ("undefined access type", |_, u| u[0].access = Access::Msr, ""),
        (
            "MMIO unit leaving its page",
            |_, u| {
                let i = unit_index(u, "iMC", 3);
                u[i].box_ctl = (u[i].box_ctl & !0xFFF) | 0xFC0;
            },
            "page",
        ),
        (
            "MMIO offset beyond the page",
            |_, u| {
                let i = unit_index(u, "HBM", 0);
                u[i].ctr_offset = 0xFF;
                u[i].box_ctl |= 0xF00;
            },
            "page",
        ),
        (
            "PCI control with bits above the address",
            |_, u| {
                let i = unit_index(u, "M2M", 0);
                u[i].box_ctl |= 1 << 40;
            },
            "above",
        ),
        (
            "PCI registers beyond 4 KiB of config space",
            |_, u| {
                let i = unit_index(u, "UPI", 0);
                u[i].box_ctl |= 0xFF8;
            },
            "page",
        ),
        ("overlapping MSR units", |_, u| u[1].box_ctl = u[0].box_ctl + 4, "overlaps"),
        (
            "overlapping MMIO units",
            |_, u| {
                let (a, b) = (unit_index(u, "iMC", 0), unit_index(u, "iMC", 1));
                u[b].box_ctl = u[a].box_ctl + 0x10;
            },
            "overlaps",
        ),
        (
            "same type and id twice",
            |_, u| {
                u[1].box_id = 0;
                u[1].box_ctl = 0x7000;
            },
            "twice",
        ),
        ("MSR unit on a core register", |_, u| u[0].box_ctl = 0x180, "outside the uncore"),
        ("MSR unit beyond 32 bits", |_, u| u[0].box_ctl = 1 << 33, "32-bit"),
    ];
    let forbidden = |reg: u32| (0x180..0x190).contains(&reg);
    for (what, change, word) in cases {
        let (mut global, mut units) = spr();
        change(&mut global, &mut units);
        let mut bytes = table_bytes(&global, &units);
        if what == "undefined access type" {
            bytes[(unit_index(&units, "CHA", 0) + 1) * 32 + 7] |= 0xC0; // bits 63:62 = 3
        }
        let result = parse_table(&bytes, UnitMap::for_model("spr").unwrap(), &forbidden);
        match result {
            Err(Refused(why)) => assert!(why.contains(word), "{what}: refused, but for `{why}`"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
}

#[test]
fn invalid_global_entries_and_truncated_tables_are_refused() {
    let (global, units) = spr();
    let mut bytes = table_bytes(&global, &units);
    assert!(parse_table(&bytes[..100], UnitMap::for_model("spr").unwrap(), &nothing_forbidden).is_err());
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(parse_global(&bytes).is_err());
    bytes[..8].copy_from_slice(&0u64.to_le_bytes());
    assert!(parse_global(&bytes).is_err());
    assert!(parse_global(&[0u8; 10]).is_err());
}

#[test]
fn empty_unit_entries_and_unknown_types_are_skipped_as_likwid_skips_them() {
    let (global, mut units) = spr();
    units[0].num_regs = 0; // no counters: not a unit
    units[1].box_type = 99; // a type LIKWID does not map
    units[2].box_id = 500; // beyond the CHA count
    let table = parse("spr", &global, &units).unwrap();
    assert_eq!(table.units.len(), units.len() - 3);
}

/// Config space with one capability list: (offset, id, next) headers and the DVSEC words.
fn config(caps: &[(usize, u32, usize)], bar: &[(usize, u32)], bir: u32) -> Vec<u8> {
    let mut c = vec![0u8; 4096];
    for &(at, id, next) in caps {
        c[at..at + 4].copy_from_slice(&(id | 1 << 16 | (next as u32) << 20).to_le_bytes());
        c[at + 8..at + 12].copy_from_slice(&1u32.to_le_bytes());
        c[at + 12..at + 16].copy_from_slice(&bir.to_le_bytes());
    }
    for &(at, v) in bar {
        c[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    c
}

#[test]
fn the_capability_walk_finds_the_table_behind_other_capabilities() {
    let c = config(&[(0x100, 0x0B, 0x200), (0x200, 0x23, 0)], &[(0x10, 0x0000_1004), (0x14, 0x2)], 0);
    assert_eq!(table_addresses(&c), Ok(vec![0x2_0000_1000]));
    let c = config(&[(0x100, 0x23, 0)], &[(0x18, 0xC000_0000)], 2);
    assert_eq!(table_addresses(&c), Ok(vec![0xC000_0000]), "32-bit BAR 2");
    assert_eq!(table_addresses(&[0u8; 64]), Ok(vec![]), "64 bytes: what an unprivileged reader sees");
    assert_eq!(table_addresses(&config(&[(0x100, 0x0B, 0)], &[], 0)), Ok(vec![]));
    let mut not_pmon = config(&[(0x100, 0x23, 0)], &[(0x10, 0x1000)], 0);
    not_pmon[0x108] = 2;
    assert_eq!(table_addresses(&not_pmon), Ok(vec![]), "a DVSEC that is not PMON is not followed");
}

#[test]
fn hostile_capabilities_and_bars_are_refused() {
    let cases = [
        ("list loops", config(&[(0x100, 0x0B, 0x200), (0x200, 0x0B, 0x100)], &[], 0), "forward"),
        ("next below 0x100", config(&[(0x100, 0x0B, 0x40)], &[], 0), "forward"),
        ("next unaligned", config(&[(0x100, 0x0B, 0x202)], &[], 0), "forward"),
        ("BAR 0 unassigned", config(&[(0x100, 0x23, 0)], &[], 0), "unassigned"),
        ("I/O BAR", config(&[(0x100, 0x23, 0)], &[(0x10, 0x1001)], 0), "I/O"),
        ("BIR 6", config(&[(0x100, 0x23, 0)], &[], 6), "BARs 0 to 5"),
        ("64-bit BAR 5", config(&[(0x100, 0x23, 0)], &[(0x24, 0x1004)], 5), "BAR 5"),
        ("reserved memory type", config(&[(0x100, 0x23, 0)], &[(0x10, 0x1002)], 0), "type"),
    ];
    for (what, c, word) in cases {
        match table_addresses(&c) {
            Err(Refused(why)) => assert!(why.contains(word), "{what}: `{why}`"),
            Ok(a) => panic!("{what}: accepted {a:x?}"),
        }
    }
}

#[test]
fn fake_registers_follow_each_release_layout() {
    use Numbering::*;
    assert_eq!(FakeReg::decode(0x8000_0000, Likwid54), Some(FakeReg::UnitCtrl));
    assert_eq!(FakeReg::decode(0x8000_0004, Likwid54), Some(FakeReg::Ctrl(1)));
    assert_eq!(FakeReg::decode(0x8000_0018, Likwid54), Some(FakeReg::Ctr(15)));
    assert_eq!(FakeReg::decode(0x8000_001B, Likwid53), Some(FakeReg::GlobalCtrl));
    assert_eq!(FakeReg::decode(0x8000_0020, Likwid53), Some(FakeReg::Filter0), "5.3.0: four global statuses");
    assert_eq!(FakeReg::decode(0x8000_0020, Likwid54), Some(FakeReg::GlobalStatus(4)));
    assert_eq!(FakeReg::decode(0x8000_0025, Likwid54), Some(FakeReg::Filter0), "5.4+: nine global statuses");
    assert_eq!(FakeReg::decode(0x8000_0029, Likwid54), Some(FakeReg::Freerun(3)));
    assert_eq!(FakeReg::decode(0x8000_002A, Likwid54), None);
    assert_eq!(FakeReg::decode(0x8000_0000, Likwid52), None, "5.2 has no discovery");
    assert_eq!(FakeReg::decode(0x7FFF_FFFF, Likwid54), None);
    for n in [Likwid53, Likwid54] {
        for reg in 0x8000_0000..0x8000_0030u32 {
            if let Some(f) = FakeReg::decode(reg, n) {
                assert_eq!(f.encode(n), Some(reg), "{n:?} {reg:#x}");
            }
        }
    }
}

#[test]
fn clients_number_units_from_their_base_index() {
    let spr = UnitMap::for_model("spr").unwrap();
    let cha = |n: Numbering| n.index("MSR_CBOX_DEVICE_C0").unwrap();
    assert_eq!(
        spr.unit_of(Numbering::Likwid54, cha(Numbering::Likwid54) + 5).map(|(k, id)| (k.box_type, id)),
        Some((0, 5))
    );
    assert_eq!(
        spr.unit_of(Numbering::Likwid53, cha(Numbering::Likwid53) + 59).map(|(k, id)| (k.box_type, id)),
        Some((0, 59))
    );
    assert_eq!(spr.unit_of(Numbering::Likwid54, cha(Numbering::Likwid54) + 60).map(|(k, _)| k.box_type), None);
    // PCU: MSR_PCU_DEVICE in 5.3.0, MSR_PCU_DEVICE_0 from 5.4.0.
    for n in [Numbering::Likwid53, Numbering::Likwid54] {
        let d = spr.device_of(n, 4, 0).unwrap();
        assert_eq!(spr.unit_of(n, d).map(|(k, id)| (k.name.as_str(), id)), Some(("PCU", 0)), "{n:?}");
    }
    assert_eq!(spr.unit_of(Numbering::Likwid54, 0), None, "MSR_DEV is no unit");
}

#[test]
fn the_allow_table_lists_only_what_likwid_programs() {
    let rules = RegisterRule::parse(regs::ALLOW_TABLE).unwrap();
    assert!(rules.iter().all(|(n, _)| n != "UNIT_RESET" && n != "FREERUN"));
    assert_eq!(RegisterRule::of(FakeReg::UnitCtrl).unwrap().write_mask, Some(1), "freeze only, never reset");
    assert_eq!(RegisterRule::of(FakeReg::Ctrl(0)).unwrap().write_mask, Some(0x00FF_FFFF_FF95_FFFF));
    assert_eq!(RegisterRule::of(FakeReg::UnitReset), None);
    assert!(RegisterRule::parse("CTRL r 0x1\nCTRL r 0x1\n").is_err());
    assert!(RegisterRule::parse("CTRL x 0x1\n").is_err());
    assert!(UnitMap::parse("spr 0 CHA X 60 bogus\n", "spr").is_err());
}
