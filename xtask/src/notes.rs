//! Decoding and checking the Xen ELF notes of an image.
//!
//! binutils' `readelf -n` does not know Xen's note types, so this reads the
//! PT_NOTE segments itself (as Xen's libelf and QEMU's PVH loader do) and checks
//! every note a PV and a PVH boot depend on.
use anyhow::{Context, Result, bail};
use object::Endianness;
use object::elf::{FileHeader64, PF_X, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};

/// Xen note types (`public/elfnote.h`) and how their descriptor reads.
const KINDS: &[(u32, &str, Kind)] = &[
    (1, "ENTRY", Kind::Num),
    (2, "HYPERCALL_PAGE", Kind::Num),
    (3, "VIRT_BASE", Kind::Num),
    (4, "PADDR_OFFSET", Kind::Num),
    (5, "XEN_VERSION", Kind::Str),
    (6, "GUEST_OS", Kind::Str),
    (7, "GUEST_VERSION", Kind::Str),
    (8, "LOADER", Kind::Str),
    (9, "PAE_MODE", Kind::Str),
    (10, "FEATURES", Kind::Str),
    (17, "SUPPORTED_FEATURES", Kind::Num),
    (18, "PHYS32_ENTRY", Kind::Num),
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Num,
    Str,
}

/// One Xen note.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// `XEN_ELFNOTE_*` type.
    pub kind: u32,
    /// Raw descriptor.
    pub desc: Vec<u8>,
}

impl Note {
    fn num(&self) -> Option<u64> {
        (matches!(self.desc.len(), 1 | 2 | 4 | 8)).then(|| {
            self.desc
                .iter()
                .rev()
                .fold(0u64, |a, &b| (a << 8) | u64::from(b))
        })
    }

    fn str(&self) -> Option<&str> {
        let s = self.desc.strip_suffix(&[0])?;
        std::str::from_utf8(s).ok()
    }

    fn name(&self) -> &'static str {
        KINDS.iter().find(|k| k.0 == self.kind).map_or("?", |k| k.1)
    }

    /// Human-readable value.
    pub fn value(&self) -> String {
        match KINDS.iter().find(|k| k.0 == self.kind).map(|k| k.2) {
            Some(Kind::Num) => self
                .num()
                .map_or_else(|| format!("{:02x?}", self.desc), |n| format!("{n:#x}")),
            Some(Kind::Str) => self
                .str()
                .map_or_else(|| format!("{:02x?}", self.desc), |s| format!("{s:?}")),
            None => format!("{:02x?}", self.desc),
        }
    }
}

/// What the checks need from the ELF.
#[derive(Debug)]
pub struct ImageInfo {
    /// `e_entry`.
    pub entry: u64,
    /// Executable PT_LOAD ranges `[start, end)` (virtual).
    pub exec: Vec<(u64, u64)>,
    /// Xen notes, in file order.
    pub notes: Vec<Note>,
}

/// Reads the entry point, executable segments and Xen notes of an ELF image.
pub fn read(data: &[u8]) -> Result<ImageInfo> {
    let hdr = FileHeader64::<Endianness>::parse(data).context("not a 64-bit ELF")?;
    let e = hdr.endian().context("bad ELF endianness")?;
    let mut info = ImageInfo {
        entry: hdr.e_entry(e),
        exec: vec![],
        notes: vec![],
    };
    for ph in hdr
        .program_headers(e, data)
        .context("bad program headers")?
    {
        match ph.p_type(e) {
            PT_LOAD if ph.p_flags(e) & PF_X != 0 => {
                info.exec
                    .push((ph.p_vaddr(e), ph.p_vaddr(e) + ph.p_memsz(e)));
            }
            PT_NOTE => {
                if ph.p_offset(e) == 0 {
                    continue; // Xen ignores a PT_NOTE at offset 0
                }
                let Some(mut it) = ph.notes(e, data).context("bad PT_NOTE")? else {
                    continue;
                };
                while let Some(n) = it.next().context("bad note")? {
                    if n.name() == b"Xen" {
                        info.notes.push(Note {
                            kind: n.n_type(e),
                            desc: n.desc().to_vec(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

/// One check on an image's notes.
#[derive(Debug)]
pub struct Check {
    /// What is checked.
    pub what: &'static str,
    /// Whether it holds.
    pub ok: bool,
}

/// Checks that the notes make a bootable PV (domU and dom0) and PVH image.
pub fn check(info: &ImageInfo) -> Vec<Check> {
    let get = |k: u32| info.notes.iter().find(|n| n.kind == k);
    let num = |k: u32| get(k).and_then(Note::num);
    let text = |k: u32| get(k).and_then(Note::str).map(str::to_owned);
    let in_exec = |a: u64| info.exec.iter().any(|&(s, e)| (s..e).contains(&a));
    vec![
        Check {
            what: "ENTRY is e_entry, inside executable code",
            ok: num(1) == Some(info.entry) && in_exec(info.entry),
        },
        Check {
            what: "HYPERCALL_PAGE is page aligned, inside executable code",
            ok: num(2).is_some_and(|a| a % 4096 == 0 && in_exec(a)),
        },
        Check {
            what: "VIRT_BASE is 0",
            ok: num(3) == Some(0),
        },
        Check {
            what: "PADDR_OFFSET is 0",
            ok: num(4) == Some(0),
        },
        Check {
            what: "XEN_VERSION is \"xen-3.0\"",
            ok: text(5).as_deref() == Some("xen-3.0"),
        },
        Check {
            what: "GUEST_OS is set",
            ok: text(6).is_some_and(|s| !s.is_empty()),
        },
        Check {
            what: "LOADER is \"generic\"",
            ok: text(8).as_deref() == Some("generic"),
        },
        Check {
            what: "FEATURES requires !writable_page_tables",
            ok: text(10).is_some_and(|s| s.split('|').any(|f| f == "!writable_page_tables")),
        },
        Check {
            what: "SUPPORTED_FEATURES has XENFEAT_dom0 (bit 11)",
            ok: num(17).is_some_and(|f| f & (1 << 11) != 0),
        },
        Check {
            what: "PHYS32_ENTRY is a 32-bit address inside executable code",
            ok: get(18).is_some_and(|n| n.desc.len() == 4) && num(18).is_some_and(in_exec),
        },
    ]
}

/// Prints the decoded notes and the checks; fails if any check fails.
pub fn report(path: &std::path::Path) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let info = read(&data)?;
    println!(
        "Xen notes of {} (e_entry {:#x}):",
        path.display(),
        info.entry
    );
    for n in &info.notes {
        println!("  {:>2} {:<20} {}", n.kind, n.name(), n.value());
    }
    let checks = check(&info);
    for c in &checks {
        println!("  [{}] {}", if c.ok { " ok " } else { "FAIL" }, c.what);
    }
    let bad = checks.iter().filter(|c| !c.ok).count();
    if bad > 0 {
        bail!("{bad} Xen note check(s) failed for {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(kind: u32, desc: &[u8]) -> Note {
        Note {
            kind,
            desc: desc.to_vec(),
        }
    }

    fn good() -> ImageInfo {
        ImageInfo {
            entry: 0x1000c0,
            exec: vec![(0x100000, 0x108000)],
            notes: vec![
                note(1, &0x1000c0u64.to_le_bytes()),
                note(2, &0x101000u64.to_le_bytes()),
                note(3, &0u64.to_le_bytes()),
                note(4, &0u64.to_le_bytes()),
                note(5, b"xen-3.0\0"),
                note(6, b"rt\0"),
                note(8, b"generic\0"),
                note(10, b"!writable_page_tables\0"),
                note(17, &(1u32 << 11).to_le_bytes()),
                note(18, &0x100000u32.to_le_bytes()),
            ],
        }
    }

    #[test]
    fn a_correct_image_passes_every_check() {
        assert!(check(&good()).iter().all(|c| c.ok));
    }

    #[test]
    fn each_broken_note_is_caught() {
        let cases: &[(usize, Note)] = &[
            (0, note(1, &0x2000u64.to_le_bytes())),
            (1, note(2, &0x101008u64.to_le_bytes())),
            (4, note(5, b"xen-4.0\0")),
            (6, note(8, b"linux\0")),
            (8, note(17, &0u32.to_le_bytes())),
            (9, note(18, &0x100000u64.to_le_bytes())), // 8-byte PHYS32_ENTRY misreads in QEMU
        ];
        for (i, bad) in cases {
            let mut info = good();
            let pos = info.notes.iter().position(|n| n.kind == bad.kind).unwrap();
            info.notes[pos] = bad.clone();
            let checks = check(&info);
            assert!(!checks[*i].ok, "note {} not caught", bad.kind);
            assert_eq!(
                checks.iter().filter(|c| !c.ok).count(),
                1,
                "only check {i} should fail"
            );
        }
    }

    #[test]
    fn values_decode() {
        assert_eq!(note(1, &0x1234u64.to_le_bytes()).value(), "0x1234");
        assert_eq!(note(6, b"rt\0").value(), "\"rt\"");
        assert_eq!(note(6, b"rt").value(), "[72, 74]");
    }
}
