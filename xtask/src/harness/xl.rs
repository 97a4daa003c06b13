//! The xl config of a test guest.
use super::guest::GuestSpec;
/// The guests' TSC is never emulated (see [`crate::image::TSC_NATIVE`]).
use crate::image::TSC_NATIVE;

/// Every guest runs on the harness's second CPU only (`cpus = "1"`); dom0
/// has both.
///
/// PVH needs it: CPU 0 takes every physical interrupt of the QEMU machine —
/// among them the 1 kHz poll of Xen's serial console (see `XEN_SERIAL` (run.rs)) —
/// and a VM exit for a physical interrupt is where QEMU's emulated SVM lets a
/// PVH guest triple-fault now and then: a PVH guest arming one-shot timers
/// back to back triple-faulted within 5 to 80 s on CPU 0 or unpinned (and
/// an echo guest once under a flood ping), and ran 2 x 200,000 of them
/// cleanly on CPU 1. Why the exit goes wrong inside QEMU is not known.
///
/// PV guests and the bench's Linux domU get the same placement, so that
/// every guest is measured alike: unpinned, Xen's scheduler put a PV guest
/// on dom0's busy CPU in some boots and not in others, and the TCP figure of
/// one image swung between 3.3 and 7.7 MB/s with it.
const GUEST_CPUS: &str = "cpus = \"1\"\n";

/// The xl config of a test guest: every shutdown preserved so the harness can
/// read the reason before destroying the domain. `kernel` and `ramdisk` are
/// the files' paths in dom0.
pub fn test_xl_config(g: &GuestSpec, kernel: &str, ramdisk: Option<&str>) -> String {
    let mut extra = g
        .vif
        .as_ref()
        .map_or(String::new(), |v| format!("vif = [ '{v}' ]\n"));
    if let Some(r) = ramdisk {
        extra.push_str(&format!("ramdisk = \"{r}\"\n"));
    }
    if !g.disks.is_empty() {
        let list: Vec<String> = g.disks.iter().map(|d| format!("'{d}'")).collect();
        extra.push_str(&format!("disk = [ {} ]\n", list.join(", ")));
    }
    format!(
        "name = \"{}\"\ntype = \"{}\"\nkernel = \"{kernel}\"\ncmdline = \"{}\"\nmemory = {}\nvcpus = 1\n{GUEST_CPUS}\
         on_poweroff = \"preserve\"\non_reboot = \"preserve\"\non_crash = \"preserve\"\n{TSC_NATIVE}{extra}",
        g.name,
        g.mode.xl_type(),
        g.cmdline,
        g.memory,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Mode;

    #[test]
    fn test_configs_preserve_every_shutdown() {
        let g = GuestSpec {
            cmdline: "a".into(),
            disks: vec![
                "vdev=xvda,target=/tmp/a.img".into(),
                "vdev=xvdb,access=r,target=/tmp/b.img".into(),
            ],
            ..GuestSpec::new("t", "/x".as_ref(), Mode::Pvh, 16, 5)
        };
        let c = test_xl_config(
            &g,
            "/harness/shared-0.elf",
            Some("/harness/shared-1.ramdisk"),
        );
        assert!(c.contains("type = \"pvh\"") && c.contains("kernel = \"/harness/shared-0.elf\""));
        assert!(c.contains("ramdisk = \"/harness/shared-1.ramdisk\""));
        assert_eq!(c.matches("\"preserve\"").count(), 3);
        assert!(c.contains(
            "disk = [ 'vdev=xvda,target=/tmp/a.img', 'vdev=xvdb,access=r,target=/tmp/b.img' ]\n"
        ));
    }
}
