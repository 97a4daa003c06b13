//! Judges of the block guests: what the guest checked itself (its `test
//! result` line), and what dom0 found on the backing files once the domain
//! was gone (`scripts/dom0/tests/blk-after.sh`): the same CRC-32 the guest
//! computed over what it wrote, the read-only disk untouched, no loop
//! device left behind.
use crate::harness::{End, GuestRun};

/// The rest of the first console line starting with `p`.
fn said<'a>(run: &'a GuestRun, p: &str) -> Option<&'a str> {
    run.console.iter().find_map(|l| l.strip_prefix(p))
}

/// The rest of the first line of dom0's after-script starting with `p`.
fn after<'a>(run: &'a GuestRun, p: &str) -> Option<&'a str> {
    run.events
        .iter()
        .find_map(|e| e.strip_prefix("after| ")?.strip_prefix(p))
}

/// What every disk test asks beyond its own checks: the guest did not fail
/// and said PASS, dom0 found no loop device left, and the domain powered off.
fn common(run: &GuestRun, name: &str) -> Result<(), String> {
    if let Some(why) = said(run, &format!("{name}: FAIL ")) {
        return Err(why.to_string());
    }
    if !run
        .console
        .iter()
        .any(|l| *l == format!("test result: PASS {name}"))
    {
        return Err(format!("no PASS from the guest (ended {})", run.end));
    }
    if after(run, "loops left: ") != Some("0") {
        return Err(format!(
            "loop devices left in dom0: {:?}",
            after(run, "loops left: ")
        ));
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(())
}

/// Judges a `blktest` run.
pub fn judge_blk(run: &GuestRun) -> Result<String, String> {
    let said = |p: &str| said(run, p);
    let after = |p: &str| after(run, p);
    common(run, "blk")?;
    let guest = said("blk: crc32 ").ok_or("the guest printed no CRC")?;
    let dom0 = after("crc32: ").ok_or("dom0 did not check the disk after the guest")?;
    if guest.trim() != dom0.trim() {
        return Err(format!(
            "the disk's CRC-32 in dom0 is {dom0:?}, the guest wrote {guest:?}"
        ));
    }
    if after("ro: ") != Some("read-only disk|") {
        return Err(format!("the read-only disk changed: {:?}", after("ro: ")));
    }
    Ok(format!(
        "CRC-32 {} matches dom0's; {}; {}",
        guest.trim(),
        said("blk: figures ").unwrap_or("-"),
        said("blk: requests ").unwrap_or("-")
    ))
}

/// Judges a `fattest` run: the guest read what dom0 put on the FAT disk and
/// wrote its files; dom0's `fsck.vfat -n` found the file system clean and the
/// files the guest wrote as it wrote them.
pub fn judge_fat(run: &GuestRun) -> Result<String, String> {
    let after = |p: &str| after(run, p);
    common(run, "fat")?;
    if after("fsck: ") != Some("rc=0") {
        let report: Vec<&str> = run
            .events
            .iter()
            .filter_map(|e| e.strip_prefix("after| fsck| "))
            .collect();
        return Err(format!(
            "fsck.vfat -n: {:?} ({})",
            after("fsck: "),
            report.join("; ")
        ));
    }
    if after("out: ") != Some("identical") {
        return Err(format!("OUT.TXT in dom0: {:?}", after("out: ")));
    }
    if after("more: ") != Some("written by the unikernel") {
        return Err(format!("DOCS/SUB/MORE.TXT in dom0: {:?}", after("more: ")));
    }
    Ok(format!(
        "{}; fsck clean; OUT.TXT and MORE.TXT as written",
        said(run, "fat: / holds ").map_or(String::new(), |l| format!("/ holds {l}"))
    ))
}

/// Judges a store crash run: the first boot made the store, dom0's client
/// had records acknowledged before `xl destroy` cut the guest down, and the
/// second boot on the same disk recovered at least those, every one intact
/// (the guest checks each against the payload its id determines).
pub fn judge_store_crash(run: &GuestRun) -> Result<String, String> {
    let dom0 = |p: &str| {
        run.events
            .iter()
            .find_map(|e| e.strip_prefix("dom0| ")?.strip_prefix(p))
    };
    let recoveries: Vec<&String> = run
        .console
        .iter()
        .filter(|l| l.starts_with("store: recovered "))
        .collect();
    if let Some(bad) = run.console.iter().find(|l| l.contains(" is damaged")) {
        return Err(bad.clone());
    }
    let [first, second] = recoveries[..] else {
        return Err(format!(
            "{} boots recovered the store (want 2: before and after the destroy)",
            recoveries.len()
        ));
    };
    if !first.starts_with("store: recovered 0 records") || !first.contains("formatted true") {
        return Err(format!(
            "the first boot did not start a blank store: {first}"
        ));
    }
    let acked: u64 = dom0("crash: acknowledged ")
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .ok_or("dom0's client reported no acknowledged count")?;
    let got: u64 = second
        .strip_prefix("store: recovered ")
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("unreadable: {second}"))?;
    if acked < 10 {
        return Err(format!(
            "only {acked} records were acknowledged before the destroy"
        ));
    }
    if got < acked {
        return Err(format!(
            "{acked} records were acknowledged, {got} came back"
        ));
    }
    let want = format!("store: all {got} records intact");
    if !run.console.contains(&want) {
        return Err(format!("no {want:?} after the second boot"));
    }
    if dom0("crash: recovered ").is_none_or(|r| !r.ends_with("intact: yes")) {
        return Err(format!("dom0's check: {:?}", dom0("crash: recovered ")));
    }
    let loops = run
        .events
        .iter()
        .find_map(|e| e.strip_prefix("after| loops left: "));
    if loops != Some("0") {
        return Err(format!("loop devices left in dom0: {loops:?}"));
    }
    if run.end != End::Poweroff {
        return Err(format!("ended {} (want poweroff)", run.end));
    }
    Ok(format!(
        "{acked} acknowledged before xl destroy, {got} recovered intact ({})",
        second.split("; ").nth(1).unwrap_or("-")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(console: &[&str], after: &[&str]) -> GuestRun {
        let mut r = GuestRun::new("blk-pv");
        r.console = console.iter().map(|s| s.to_string()).collect();
        r.events = after.iter().map(|s| format!("after| {s}")).collect();
        r.end = End::Poweroff;
        r
    }

    const GOOD: &[&str] = &[
        "blk: figures write 4K 1.00 MB/s",
        "blk: crc32 123 268435456",
        "test result: PASS blk",
    ];
    const DOM0: &[&str] = &[
        "crc32: 123 268435456",
        "ro: read-only disk|",
        "loops left: 0",
    ];

    fn crash_run(second: &str, acked: u64) -> GuestRun {
        let mut r = run(
            &[
                "store: recovered 0 records (0 bytes) in 1 ms; formatted true; the scan stopped at End; 1 free",
                "store: all 0 records intact",
                second,
                "store: all 120 records intact",
            ],
            &["loops left: 0"],
        );
        r.events.push(format!(
            "dom0| crash: acknowledged {acked} before the destroy"
        ));
        r.events
            .push("dom0| crash: recovered 120 records, intact: yes".into());
        r
    }

    #[test]
    fn a_crash_run_passes_only_with_every_acknowledged_record_back() {
        let second = "store: recovered 120 records (1 bytes) in 9 ms; formatted false; the scan stopped at Torn; 1 free";
        assert!(judge_store_crash(&crash_run(second, 120)).is_ok());
        assert!(
            judge_store_crash(&crash_run(second, 119)).is_ok(),
            "one more than acknowledged"
        );
        let e = judge_store_crash(&crash_run(second, 121)).unwrap_err();
        assert!(
            e.contains("121 records were acknowledged, 120 came back"),
            "{e}"
        );
        let mut r = crash_run(second, 100);
        r.console
            .push("store: record 7 is damaged (1 in all)".into());
        assert!(judge_store_crash(&r).unwrap_err().contains("damaged"));
        let mut r = crash_run(second, 100);
        r.console.remove(2);
        assert!(judge_store_crash(&r).unwrap_err().contains("1 boots"));
        assert!(
            judge_store_crash(&crash_run(second, 3)).is_err(),
            "too few to mean anything"
        );
    }

    #[test]
    fn a_fat_run_needs_a_clean_fsck_and_the_files_as_written() {
        let console = ["fat: / holds HELLO.TXT DOCS/", "test result: PASS fat"];
        let good = [
            "fsck: rc=0",
            "out: identical",
            "more: written by the unikernel",
            "loops left: 0",
        ];
        assert!(judge_fat(&run(&console, &good)).is_ok());
        for (i, bad) in ["fsck: rc=1", "out: differs", "more: ", "loops left: 2"]
            .iter()
            .enumerate()
        {
            let mut a = good;
            a[i] = bad;
            assert!(judge_fat(&run(&console, &a)).is_err(), "{bad}");
        }
        assert!(judge_fat(&run(&["fat: FAIL x"], &good)).is_err());
    }

    #[test]
    fn a_matching_disk_passes_and_each_difference_fails() {
        assert!(judge_blk(&run(GOOD, DOM0)).is_ok());
        let bad_sum = ["crc32: 124 268435456", DOM0[1], DOM0[2]];
        assert!(
            judge_blk(&run(GOOD, &bad_sum))
                .unwrap_err()
                .contains("CRC-32")
        );
        let ro = [DOM0[0], "ro: changed|", DOM0[2]];
        assert!(
            judge_blk(&run(GOOD, &ro))
                .unwrap_err()
                .contains("read-only")
        );
        let loops = [DOM0[0], DOM0[1], "loops left: 1"];
        assert!(judge_blk(&run(GOOD, &loops)).unwrap_err().contains("loop"));
        assert!(
            judge_blk(&run(GOOD, &DOM0[1..])).is_err(),
            "no check in dom0"
        );
        let failed = ["blk: FAIL read back", "test result: FAIL blk"];
        assert_eq!(judge_blk(&run(&failed, DOM0)).unwrap_err(), "read back");
        let mut crashed = run(GOOD, DOM0);
        crashed.end = End::Crashed;
        assert!(judge_blk(&crashed).is_err());
    }
}
