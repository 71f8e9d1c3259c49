//! CPU identity from the kernel's `/proc/cpuinfo`, and which built-in table serves it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
}

impl Vendor {
    pub fn vendor_id(self) -> &'static str {
        match self {
            Vendor::Intel => "GenuineIntel",
            Vendor::Amd => "AuthenticAMD",
        }
    }
}

/// Vendor, display family and model as the kernel prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuIdentity {
    pub vendor: Option<Vendor>,
    pub family: u32,
    pub model: u32,
}

impl std::fmt::Display for CpuIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vendor = self.vendor.map_or("unknown vendor", Vendor::vendor_id);
        write!(f, "{vendor} family {:#x} model {:#x}", self.family, self.model)
    }
}

/// A CPU generation with its own built-in table, `src/policy/tables/NAME.txt` (parsed at build
/// time: `Policy::builtin`). `models[0]` is what `likwid-access sim` puts into a simulated
/// `/proc/cpuinfo`.
#[derive(Debug)]
pub struct CpuModel {
    pub name: &'static str,
    pub description: &'static str,
    pub vendor: Vendor,
    pub family: u32,
    pub models: &'static [u32],
}

impl CpuModel {
    pub fn matches(&self, id: &CpuIdentity) -> bool {
        id.vendor == Some(self.vendor) && id.family == self.family && self.models.contains(&id.model)
    }

    pub fn by_name(name: &str) -> Option<&'static CpuModel> {
        CPU_MODELS.iter().find(|m| m.name == name)
    }

    pub fn for_identity(id: &CpuIdentity) -> Option<&'static CpuModel> {
        CPU_MODELS.iter().find(|m| m.matches(id))
    }

    /// The identity a simulated machine of this model reports.
    pub fn identity(&self) -> CpuIdentity {
        CpuIdentity { vendor: Some(self.vendor), family: self.family, model: self.models[0] }
    }
}

/// Every model number of a family, `first` first (what `likwid-access sim` reports): LIKWID 5
/// selects AMD families 0x10, 0x15 and 0x16 by family alone.
const fn whole_family(first: u32) -> [u32; 256] {
    let mut models = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        models[i] = i as u32;
        i += 1;
    }
    models[first as usize] = 0;
    models[0] = first;
    models
}

static K10_MODELS: [u32; 256] = whole_family(0x02);
static FAM15H_MODELS: [u32; 256] = whole_family(0x01);
static FAM16H_MODELS: [u32; 256] = whole_family(0x00);

/// Model lists follow LIKWID 5's own CPU detection (see `tables/README.md`).
pub static CPU_MODELS: &[CpuModel] = &[
    CpuModel {
        name: "zen",
        description: "AMD Zen/Zen+ (family 0x17)",
        vendor: Vendor::Amd,
        family: 0x17,
        models: &[0x01, 0x08, 0x18],
    },
    CpuModel {
        name: "zen2",
        description: "AMD Zen 2 (family 0x17)",
        vendor: Vendor::Amd,
        family: 0x17,
        models: &[0x31, 0x60, 0x71],
    },
    CpuModel {
        name: "zen3",
        description: "AMD Zen 3 (family 0x19)",
        vendor: Vendor::Amd,
        family: 0x19,
        models: &[0x01, 0x21, 0x30, 0x50],
    },
    CpuModel {
        name: "zen4",
        description: "AMD Zen 4 (family 0x19)",
        vendor: Vendor::Amd,
        family: 0x19,
        models: &[0x11, 0x08, 0x61, 0x74, 0x75, 0xA0],
    },
    CpuModel {
        name: "zen5",
        description: "AMD Zen 5 (family 0x1A)",
        vendor: Vendor::Amd,
        family: 0x1A,
        models: &[0x02, 0x11],
    },
    CpuModel {
        name: "skx",
        description: "Intel Skylake-SP/Cascade Lake-SP",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x55],
    },
    CpuModel { name: "icx", description: "Intel Icelake-SP", vendor: Vendor::Intel, family: 6, models: &[0x6A, 0x6C] },
    CpuModel {
        name: "skl",
        description: "Intel Skylake/Kaby Lake/Coffee Lake/Comet Lake client, Cannon Lake",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x5E, 0x4E, 0x8E, 0x9E, 0x66, 0xA5, 0xA6],
    },
    CpuModel {
        name: "core2",
        description: "Intel Core 2 / Atom Bonnell (family 6)",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x17, 0x0F, 0x1D, 0x1C, 0x26, 0x27, 0x36],
    },
    CpuModel {
        name: "nehalem",
        description: "Intel Nehalem/Westmere client and EP",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x1A, 0x1E, 0x1F, 0x25, 0x2C],
    },
    CpuModel {
        name: "snb",
        description: "Intel Sandy Bridge client",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x2A],
    },
    CpuModel { name: "ivb", description: "Intel Ivy Bridge client", vendor: Vendor::Intel, family: 6, models: &[0x3A] },
    CpuModel {
        name: "hsw",
        description: "Intel Haswell client",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x3C, 0x45, 0x46],
    },
    CpuModel {
        name: "bdw",
        description: "Intel Broadwell client",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x3D, 0x47],
    },
    CpuModel {
        name: "icl",
        description: "Intel Ice Lake client / Rocket Lake",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x7E, 0x7D, 0xA7],
    },
    CpuModel { name: "tgl", description: "Intel Tiger Lake", vendor: Vendor::Intel, family: 6, models: &[0x8C, 0x8D] },
    CpuModel {
        name: "slm",
        description: "Intel Atom Silvermont/Airmont",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x37, 0x4D, 0x4A, 0x5A, 0x5D, 0x4C],
    },
    CpuModel {
        name: "glm",
        description: "Intel Atom Goldmont/Goldmont Plus/Tremont",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x5C, 0x5F, 0x7A, 0x86],
    },
    CpuModel { name: "spr", description: "Intel Sapphire Rapids", vendor: Vendor::Intel, family: 6, models: &[0x8F] },
    CpuModel { name: "emr", description: "Intel Emerald Rapids", vendor: Vendor::Intel, family: 6, models: &[0xCF] },
    CpuModel { name: "gnr", description: "Intel Granite Rapids", vendor: Vendor::Intel, family: 6, models: &[0xAD] },
    CpuModel { name: "snbep", description: "Intel Sandy Bridge-EP", vendor: Vendor::Intel, family: 6, models: &[0x2D] },
    CpuModel {
        name: "ivbep",
        description: "Intel Ivy Bridge-EP/EX",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x3E],
    },
    CpuModel { name: "hswep", description: "Intel Haswell-EP/EX", vendor: Vendor::Intel, family: 6, models: &[0x3F] },
    CpuModel { name: "bdwd", description: "Intel Broadwell-DE", vendor: Vendor::Intel, family: 6, models: &[0x56] },
    CpuModel { name: "bdwep", description: "Intel Broadwell-EP/EX", vendor: Vendor::Intel, family: 6, models: &[0x4F] },
    CpuModel {
        name: "knl",
        description: "Intel Xeon Phi Knights Landing/Knights Mill",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x57, 0x85],
    },
    CpuModel { name: "nhmex", description: "Intel Nehalem-EX", vendor: Vendor::Intel, family: 6, models: &[0x2E] },
    CpuModel { name: "wsmex", description: "Intel Westmere-EX", vendor: Vendor::Intel, family: 6, models: &[0x2F] },
    CpuModel {
        name: "k10",
        description: "AMD K10 (family 0x10)",
        vendor: Vendor::Amd,
        family: 0x10,
        models: &K10_MODELS,
    },
    CpuModel {
        name: "interlagos",
        description: "AMD family 0x15 (Bulldozer..Excavator)",
        vendor: Vendor::Amd,
        family: 0x15,
        models: &FAM15H_MODELS,
    },
    CpuModel {
        name: "kabini",
        description: "AMD family 0x16 (Jaguar/Puma)",
        vendor: Vendor::Amd,
        family: 0x16,
        models: &FAM16H_MODELS,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_cpuinfo;

    const THIS_VM: &str =
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n";

    #[test]
    fn reads_the_kernels_decimal_family_and_model() {
        let id = parse_cpuinfo(THIS_VM).unwrap();
        assert_eq!(id, CpuIdentity { vendor: Some(Vendor::Amd), family: 0x19, model: 0x11 });
        assert_eq!(CpuModel::for_identity(&id).unwrap().name, "zen4");
    }

    #[test]
    fn unknown_cpus_have_no_table() {
        // Family 0x14 (Bobcat) and Intel's Alder Lake (model 0x97) are not supported by LIKWID 5.
        let bobcat = CpuIdentity { vendor: Some(Vendor::Amd), family: 0x14, model: 2 };
        assert!(CpuModel::for_identity(&bobcat).is_none());
        let alder_lake = CpuIdentity { vendor: Some(Vendor::Intel), family: 6, model: 0x97 };
        assert!(CpuModel::for_identity(&alder_lake).is_none());
        let other = parse_cpuinfo("vendor_id : HygonGenuine\ncpu family : 24\nmodel : 1\n").unwrap();
        assert_eq!(other.vendor, None);
        assert!(CpuModel::for_identity(&other).is_none());
        assert_eq!(parse_cpuinfo("vendor_id : GenuineIntel\n"), None);
    }

    #[test]
    fn rdt_and_debug_registers_are_writable_only_where_they_are_uncore_counters() {
        // 0xC80-0xDDF holds RDT/QoS, DEBUG_INTERFACE, BNDCFGS, XSS, HDC and LBR_INFO on newer
        // CPUs and uncore PMON units on these four; the ceiling cannot tell them apart.
        let old_uncore = ["nhmex", "wsmex", "snbep", "ivbep"];
        for model in CPU_MODELS.iter().filter(|m| !old_uncore.contains(&m.name)) {
            let policy = crate::policy::Policy::builtin(model);
            for reg in 0xC80..=0xDDF {
                assert_eq!(policy.write_mask(reg), None, "{}: {reg:#x} writable", model.name);
            }
        }
    }

    #[test]
    fn model_lists_do_not_overlap_and_sim_identity_selects_its_own_table() {
        for m in CPU_MODELS {
            assert_eq!(CpuModel::for_identity(&m.identity()).unwrap().name, m.name);
            for other in CPU_MODELS.iter().filter(|o| o.name != m.name) {
                assert!(
                    !m.models.iter().any(|x| other.matches(&CpuIdentity {
                        vendor: Some(m.vendor),
                        family: m.family,
                        model: *x
                    })),
                    "{} and {} share a model",
                    m.name,
                    other.name
                );
            }
        }
    }
}
