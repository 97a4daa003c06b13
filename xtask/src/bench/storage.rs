//! The storage rows of `cargo xtask bench`: `app/blktest` in its `bench`
//! mode (as PV and PVH) and the Linux PV domU running the same workload
//! (`xtask/bench-echo/src/disk.rs`, `O_DIRECT` on its `/dev/xvda`), each on
//! a 256 MiB disk file of its own in dom0's tmpfs behind blkback — the same
//! backing file type for all. Sequential write and read in 1 MiB requests,
//! 4 KiB random reads at queue depth 1 and 32; and our grants per MiB moved.
use std::path::Path;

use crate::harness::{GuestRun, GuestSpec};
use crate::manifest::Mode;

use super::render::render;
use super::{Kind, Metric, linux};

/// dom0 makes each guest's disk before `xl create` and drops it after.
const BEFORE: &str = "#!/bin/bash\nset -e\ntruncate -s 256M \"/tmp/$NAME.img\"\n";
const AFTER: &str = "#!/bin/bash\nrm -f \"/tmp/$NAME.img\"\n";
/// The Linux domU's disk bench runs in the background of its /init: once it
/// printed its line, dom0 shuts the domain down.
const LINUX_DOM0: &str = "#!/bin/bash\nlog=/var/log/xen/console/guest-$NAME.log\n\
for _ in $(seq 3000); do grep -aq '^bench-disk:' \"$log\" && break; sleep 0.1; done\n\
timeout -k 5 30 xl shutdown \"$NAME\"\n";

/// The disk guests: `reps` of each kind.
pub(super) fn guests(
    reps: u32,
    blktest: &Path,
    linux_kernel: &Path,
    linux_initrd: &Path,
) -> Vec<GuestSpec> {
    let mut v = Vec::new();
    for r in 1..=reps {
        for k in Kind::ALL {
            let name = format!("disk-{}-{r}", k.tag());
            let linux = k == Kind::LinuxPv;
            let (elf, mode, mib) = match k {
                Kind::OursPv => (blktest, Mode::Pv, 64),
                Kind::OursPvh => (blktest, Mode::Pvh, 64),
                Kind::LinuxPv => (linux_kernel, Mode::Pv, linux::MIB),
            };
            let mut g = GuestSpec::new(&name, elf, mode, mib, 600);
            g.cmdline = if linux {
                format!("{} bench.disk=/dev/xvda", linux::CMDLINE)
            } else {
                "bench".into()
            };
            g.disks = vec![format!(
                "format=raw,vdev=xvda,access=rw,backendtype=phy,target=/tmp/{name}.img"
            )];
            g.before = Some(BEFORE.into());
            g.after = Some(AFTER.into());
            if linux {
                g.ramdisk = Some(linux_initrd.into());
                g.dom0 = Some(LINUX_DOM0.into());
            }
            v.push(g);
        }
    }
    v
}

/// The figures of a `bench-disk:` line: seq write, seq read (MB/s), QD1,
/// QD32 (IOPS), grants per MiB (ours only).
pub(super) fn figures(run: &GuestRun) -> [Option<f64>; 5] {
    let Some(line) = run
        .console
        .iter()
        .find_map(|l| l.strip_prefix("bench-disk: seq-write "))
    else {
        return [None; 5];
    };
    let w: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        w.iter()
            .position(|t| *t == key)
            .and_then(|i| w.get(i + 1)?.parse().ok())
    };
    [
        w.first().and_then(|t| t.parse().ok()),
        after("seq-read"),
        after("qd1"),
        after("qd32"),
        after("grants-per-MiB"),
    ]
}

/// The storage table, ratios to Linux.
pub(super) fn table(
    guests: &[GuestSpec],
    runs: &[GuestRun],
    reps: u32,
    failures: &mut Vec<String>,
) -> String {
    let mut metrics = [
        (
            "disk: sequential write, 1 MiB requests, then flush",
            "MB/s",
            true,
        ),
        ("disk: sequential read, 1 MiB requests", "MB/s", true),
        ("disk: 4 KiB random reads, queue depth 1", "IOPS", true),
        ("disk: 4 KiB random reads, queue depth 32", "IOPS", true),
    ]
    .map(|(name, unit, higher_better)| Metric {
        name,
        unit,
        higher_better,
        samples: [vec![], vec![], vec![]],
    });
    let mut grants = Vec::new();
    for (g, run) in guests.iter().zip(runs) {
        let Some(i) = Kind::ALL
            .iter()
            .position(|k| g.name.starts_with(&format!("disk-{}-", k.tag())))
        else {
            continue;
        };
        let f = figures(run);
        if f[..4].iter().any(Option::is_none) {
            failures.push(format!(
                "{}: ended {}; no bench-disk figures ({})",
                g.name,
                run.end,
                run.console
                    .iter()
                    .find(|l| l.starts_with("bench-disk"))
                    .map_or("-", String::as_str)
            ));
        }
        for (m, v) in metrics.iter_mut().zip(f) {
            if let Some(v) = v {
                m.samples[i].push(v);
            }
        }
        if let Some(gpm) = f[4] {
            grants.push(gpm);
        }
    }
    let max = grants.iter().cloned().fold(f64::NAN, f64::max);
    format!(
        "\nStorage, a 256 MiB disk file in dom0's tmpfs behind blkback for every guest (the same session):\n\n{}\
         Grants issued by our data path per MiB moved: {} (the pool is granted once, at connect; Linux's \
         blkfront also keeps persistent grants, uncounted here)\n",
        render(&metrics, reps),
        if max.is_nan() {
            "-".into()
        } else {
            format!("{max:.3} (at most, over {} runs)", grants.len())
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_disk_line_parses() {
        let mut r = GuestRun::new("disk-echo-pv-1");
        r.console.push(
            "bench-disk: seq-write 40.10 MB/s seq-read 70.20 MB/s qd1 600 IOPS qd32 7000 IOPS grants-per-MiB 0.000 (577 granted once at connect for 276 MiB)".into(),
        );
        assert_eq!(
            figures(&r),
            [Some(40.1), Some(70.2), Some(600.0), Some(7000.0), Some(0.0)]
        );
        let mut l = GuestRun::new("disk-linux-pv-1");
        l.console
            .push("bench-disk: seq-write 1 MB/s seq-read 2 MB/s qd1 3 IOPS qd32 4 IOPS".into());
        assert_eq!(
            figures(&l),
            [Some(1.0), Some(2.0), Some(3.0), Some(4.0), None]
        );
        assert_eq!(figures(&GuestRun::new("x")), [None; 5]);
    }
}
