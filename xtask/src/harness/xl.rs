//! The xl config of a test guest, and its libvirt domain XML.
use super::guest::GuestSpec;
/// The guests' TSC is never emulated (see [`crate::image::TSC_NATIVE`]).
use crate::image::TSC_NATIVE;

/// Every guest runs on the harness's second CPU only (`cpus = "1"`) unless
/// its spec says otherwise (`pvh-unpinned`); dom0 has both.
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
pub const GUEST_CPUS: &str = "1";

/// The xl config of a test guest: every shutdown preserved so the harness can
/// read the reason before destroying the domain. `kernel` and `ramdisk` are
/// the files' paths in dom0.
pub fn test_xl_config(g: &GuestSpec, kernel: &str, ramdisk: Option<&str>) -> String {
    let mut extra = g
        .vif
        .as_ref()
        .map_or(String::new(), |v| format!("vif = [ '{v}' ]\n"));
    if let Some(c) = &g.cpus {
        extra.push_str(&format!("cpus = \"{c}\"\n"));
    }
    if let Some(r) = ramdisk {
        extra.push_str(&format!("ramdisk = \"{r}\"\n"));
    }
    if !g.disks.is_empty() {
        let list: Vec<String> = g.disks.iter().map(|d| format!("'{d}'")).collect();
        extra.push_str(&format!("disk = [ {} ]\n", list.join(", ")));
    }
    format!(
        "name = \"{}\"\ntype = \"{}\"\nkernel = \"{kernel}\"\ncmdline = \"{}\"\nmemory = {}\nvcpus = 1\n\
         on_poweroff = \"preserve\"\non_reboot = \"preserve\"\non_crash = \"preserve\"\n{TSC_NATIVE}{extra}",
        g.name,
        g.mode.xl_type(),
        g.cmdline,
        g.memory,
    )
}

/// The libvirt domain XML of a test guest created with `virsh create`
/// (`GuestSpec::libvirt`): the same domain as [`test_xl_config`]'s, except
/// that a reboot restarts it (libvirt's own lifecycle is under test; the
/// harness follows the domain by name across the restart).
pub fn test_libvirt_xml(g: &GuestSpec, kernel: &str) -> String {
    // `key=value,...` entries as xl takes them.
    let field = |entry: &str, key: &str| {
        entry
            .split(',')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    crate::libvirt::Domain {
        name: g.name.clone(),
        mode: g.mode,
        memory_mib: g.memory,
        vcpus: 1,
        cpuset: g.cpus.clone(),
        kernel: kernel.into(),
        cmdline: g.cmdline.clone(),
        on_poweroff: "preserve",
        on_reboot: "restart",
        on_crash: "preserve",
        disks: g
            .disks
            .iter()
            .map(|d| {
                (
                    field(d, "target").unwrap_or_default(),
                    field(d, "vdev").unwrap_or_default(),
                    matches!(field(d, "access").as_deref(), Some("ro" | "r")),
                )
            })
            .collect(),
        nic: g.vif.as_ref().map(|v| {
            (
                field(v, "bridge").unwrap_or_else(|| "xenbr0".into()),
                field(v, "mac"),
                None,
            )
        }),
    }
    .xml()
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

    #[test]
    fn libvirt_test_guests_restart_on_reboot_and_keep_the_rest() {
        let g = GuestSpec {
            cmdline: "ip=10.0.0.2/24".into(),
            vif: Some("bridge=xenbr0,mac=00:16:3e:00:00:02".into()),
            disks: vec!["format=raw,vdev=xvdb,access=r,target=/tmp/b.img".into()],
            ..GuestSpec::new("virsh-pv", "/x".as_ref(), Mode::Pv, 32, 5)
        };
        let x = test_libvirt_xml(&g, "/harness/shared-0.elf");
        for want in [
            "<name>virsh-pv</name>",
            "<vcpu placement='static' cpuset='1'>1</vcpu>",
            "<type arch='x86_64' machine='xenpv'>linux</type>",
            "<kernel>/harness/shared-0.elf</kernel>",
            "<cmdline>ip=10.0.0.2/24</cmdline>",
            "<on_poweroff>preserve</on_poweroff>",
            "<on_reboot>restart</on_reboot>",
            "<mac address='00:16:3e:00:00:02'/>",
            "<source bridge='xenbr0'/>",
            "<source file='/tmp/b.img'/>",
            "<target dev='xvdb' bus='xen'/>",
            "<readonly/>",
        ] {
            assert!(x.contains(want), "missing {want} in\n{x}");
        }
    }
}
