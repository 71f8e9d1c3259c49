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

/// Reads the first processor's vendor, family and model. None when a field is missing.
pub fn parse_cpuinfo(text: &str) -> Option<CpuIdentity> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim())
        })
    };
    let vendor = match field("vendor_id")? {
        "GenuineIntel" => Some(Vendor::Intel),
        "AuthenticAMD" => Some(Vendor::Amd),
        _ => None,
    };
    Some(CpuIdentity { vendor, family: field("cpu family")?.parse().ok()?, model: field("model")?.parse().ok()? })
}

/// A CPU generation with its own built-in table. `models[0]` is what `likwid-access sim`
/// puts into a simulated `/proc/cpuinfo`.
#[derive(Debug)]
pub struct CpuModel {
    pub name: &'static str,
    pub description: &'static str,
    pub vendor: Vendor,
    pub family: u32,
    pub models: &'static [u32],
    pub table: &'static str,
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

/// Model lists follow LIKWID 5's own CPU detection (see `tables/README.md`).
pub static CPU_MODELS: &[CpuModel] = &[
    CpuModel {
        name: "zen",
        description: "AMD Zen/Zen+ (family 0x17)",
        vendor: Vendor::Amd,
        family: 0x17,
        models: &[0x01, 0x08, 0x18],
        table: include_str!("tables/zen.txt"),
    },
    CpuModel {
        name: "zen2",
        description: "AMD Zen 2 (family 0x17)",
        vendor: Vendor::Amd,
        family: 0x17,
        models: &[0x31, 0x60, 0x71],
        table: include_str!("tables/zen2.txt"),
    },
    CpuModel {
        name: "zen3",
        description: "AMD Zen 3 (family 0x19)",
        vendor: Vendor::Amd,
        family: 0x19,
        models: &[0x01, 0x21, 0x30, 0x50],
        table: include_str!("tables/zen3.txt"),
    },
    CpuModel {
        name: "zen4",
        description: "AMD Zen 4 (family 0x19)",
        vendor: Vendor::Amd,
        family: 0x19,
        models: &[0x11, 0x08, 0x61, 0x74, 0x75, 0xA0],
        table: include_str!("tables/zen4.txt"),
    },
    CpuModel {
        name: "zen5",
        description: "AMD Zen 5 (family 0x1A)",
        vendor: Vendor::Amd,
        family: 0x1A,
        models: &[0x02, 0x11],
        table: include_str!("tables/zen5.txt"),
    },
    CpuModel {
        name: "skx",
        description: "Intel Skylake-SP/Cascade Lake-SP",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x55],
        table: include_str!("tables/skx.txt"),
    },
    CpuModel {
        name: "icx",
        description: "Intel Icelake-SP",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x6A, 0x6C],
        table: include_str!("tables/icx.txt"),
    },
    CpuModel {
        name: "skl",
        description: "Intel Skylake/Kaby Lake/Coffee Lake/Comet Lake client, Cannon Lake",
        vendor: Vendor::Intel,
        family: 6,
        models: &[0x5E, 0x4E, 0x8E, 0x9E, 0x66, 0xA5, 0xA6],
        table: include_str!("tables/skl.txt"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

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
        let k10 = CpuIdentity { vendor: Some(Vendor::Amd), family: 0x10, model: 2 };
        assert!(CpuModel::for_identity(&k10).is_none());
        let other = parse_cpuinfo("vendor_id : HygonGenuine\ncpu family : 24\nmodel : 1\n").unwrap();
        assert_eq!(other.vendor, None);
        assert!(CpuModel::for_identity(&other).is_none());
        assert_eq!(parse_cpuinfo("vendor_id : GenuineIntel\n"), None);
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
