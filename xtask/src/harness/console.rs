//! The console protocol: what dom0 reports on the serial console, in lines
//! the runner parses — `G NAME| ...` (a guest's console line), `HARNESS:
//! guest NAME end state=...` (how it ended), `HARNESS: guest NAME <event>`
//! (dump-core, xl-mem, the dom0 scripts' output ...) and other `HARNESS:`
//! progress — and how each line lands in the runs.
use super::guest::{End, GuestRun};

fn parse_end(state: &str) -> End {
    match state {
        "poweroff" => End::Poweroff,
        "reboot" => End::Reboot,
        "crashed" => End::Crashed,
        "timeout" => End::Timeout,
        "create-failed" => End::CreateFailed,
        s => End::Other(s.to_string()),
    }
}

/// Parses `HARNESS: guest NAME end state=S ...`.
fn parse_guest_end(line: &str) -> Option<(&str, End)> {
    let rest = line.strip_prefix("HARNESS: guest ")?;
    let (name, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("end ")?;
    let state = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix("state="))?;
    Some((name, parse_end(state)))
}

/// Parses `HARNESS: guest NAME <event>` for events other than created/end.
fn parse_guest_event(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("HARNESS: guest ")?;
    let (name, event) = rest.split_once(' ')?;
    [
        "dump-core ",
        "xl-mem ",
        "xl ",
        "idle ",
        "mem-set ",
        "burst ",
        "dom0",
        "early",
        "before",
        "after",
        "virsh",
        "rebooted ",
        "flood ",
    ]
    .iter()
    .any(|p| event.starts_with(p))
    .then_some((name, event))
}

/// Files a line of a domU session's serial output into `runs`; returns the
/// line to show, if it is one (guest console lines get their guest's name).
pub(super) fn take_line(runs: &mut [GuestRun], t: f64, line: &str) -> Option<String> {
    let find = |runs: &mut [GuestRun], name: &str| runs.iter_mut().position(|r| r.name == name);
    if let Some((name, rest)) = line.strip_prefix("G ").and_then(|l| l.split_once("| ")) {
        let i = find(runs, name)?;
        runs[i].console.push(rest.to_string());
        return Some(format!("{name}| {rest}"));
    }
    if let Some((name, event)) = parse_guest_event(line) {
        if let Some(i) = find(runs, name) {
            runs[i].events.push(event.to_string());
        }
    } else if let Some((name, end)) = parse_guest_end(line) {
        if let Some(i) = find(runs, name) {
            let r = &mut runs[i];
            r.end = end;
            r.t_end = Some(t);
            // Kept whole for judges that need its `seconds=`.
            if let Some((_, rest)) = line.split_once(" end ") {
                r.events.push(format!("end {rest}"));
            }
        }
    } else if let Some(msg) = line.strip_prefix("HARNESS: ") {
        let diag = msg
            .strip_prefix("xl: ")
            .or_else(|| msg.strip_prefix("xl-dmesg: "));
        // Diagnostics belong to the guest still running (the first without an end).
        if let (Some(d), Some(r)) = (diag, runs.iter_mut().find(|r| r.t_end.is_none())) {
            r.diagnostics.push(d.to_string());
        }
    } else if !(line.contains("Panic on CPU")
        || line.contains("Kernel panic")
        || line.contains("/harness/"))
    {
        // Only Xen/Linux panics and errors from the harness scripts
        // themselves are shown besides the reports above.
        return None;
    }
    Some(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_end_lines_parse() {
        assert_eq!(
            parse_guest_end("HARNESS: guest hello-pv end state=poweroff reason=0 seconds=1.2"),
            Some(("hello-pv", End::Poweroff))
        );
        assert_eq!(
            parse_guest_end("HARNESS: guest x end state=crashed reason=3"),
            Some(("x", End::Crashed))
        );
        assert_eq!(parse_guest_end("HARNESS: guest x created rc=0"), None);
        assert_eq!(
            parse_guest_end("G x| HARNESS: guest x end state=poweroff"),
            None
        );
    }

    #[test]
    fn guest_events_parse() {
        assert_eq!(
            parse_guest_event("HARNESS: guest m xl-mem tag=start mib=64"),
            Some(("m", "xl-mem tag=start mib=64"))
        );
        assert_eq!(
            parse_guest_event("HARNESS: guest m dump-core rc=0 bytes=9"),
            Some(("m", "dump-core rc=0 bytes=9"))
        );
        assert_eq!(
            parse_guest_event("HARNESS: guest m xl shutdown rc=0 at=3.2"),
            Some(("m", "xl shutdown rc=0 at=3.2"))
        );
        assert_eq!(
            parse_guest_event("HARNESS: guest m burst lines=2 good=2 bytes=9"),
            Some(("m", "burst lines=2 good=2 bytes=9"))
        );
        for e in [
            "virsh| Used memory:    20480 KiB",
            "virsh dominfo rc=0 at=1 done=2",
            "virsh-console rc=0",
            "rebooted domid=1->2 seconds=3",
        ] {
            assert_eq!(
                parse_guest_event(&format!("HARNESS: guest m {e}")),
                Some(("m", e))
            );
        }
        assert_eq!(parse_guest_event("HARNESS: guest m created rc=0"), None);
        assert_eq!(
            parse_guest_event("HARNESS: guest m deadline reached: x"),
            None
        );
        assert_eq!(
            parse_guest_event("G m| HARNESS: guest m xl-mem tag=x mib=1"),
            None
        );
    }

    #[test]
    fn lines_land_in_their_runs() {
        let mut runs = vec![GuestRun::new("a"), GuestRun::new("b")];
        assert_eq!(
            take_line(&mut runs, 1.0, "G b| hello"),
            Some("b| hello".into())
        );
        assert_eq!(take_line(&mut runs, 1.0, "G c| stray"), None);
        take_line(&mut runs, 2.0, "HARNESS: xl: something failed");
        take_line(
            &mut runs,
            3.0,
            "HARNESS: guest a end state=poweroff seconds=1",
        );
        take_line(&mut runs, 4.0, "HARNESS: guest b xl-mem tag=t mib=8");
        assert_eq!(take_line(&mut runs, 5.0, "random dom0 noise"), None);
        assert_eq!(runs[1].console, ["hello"]);
        assert_eq!(runs[0].diagnostics, ["something failed"]);
        assert_eq!(
            (runs[0].end.clone(), runs[0].t_end),
            (End::Poweroff, Some(3.0))
        );
        assert_eq!(runs[0].events, ["end state=poweroff seconds=1"]);
        assert_eq!(runs[1].events, ["xl-mem tag=t mib=8"]);
    }
}
