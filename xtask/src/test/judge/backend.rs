//! Judge of the hostile-backend test (`scripts/dom0/tests/hostile-backend.sh`):
//! dom0 drives the vif backend's state out of order behind netback's back;
//! the guest must reconnect after one close and after a short loop (its
//! grants and event channels as they were, dom0's TCP connection alive),
//! give up on a backend that keeps at it — once, telling the app — and
//! still power off on `xl shutdown`.
use super::lifecycle::{dom0, echoed, same_resources, stat};
use crate::harness::{End, GuestRun};

/// The guest's reconnection notices in the whole run: one per close, and
/// the closes are bounded by the vif's close limit in each of the three
/// steps (`rt_xen::dev::net::lifecycle::CLOSE_LIMIT`, 5).
pub const MAX_RECONNECT_LINES: usize = 15;

/// The seconds dom0 reported after `key` ("1.23"), if it is a time.
fn seconds(run: &GuestRun, key: &str) -> Result<f64, String> {
    let v = dom0(run, key).first().copied().unwrap_or("no report");
    v.trim_end_matches(" s")
        .parse()
        .map_err(|_| format!("{}{v}", key.trim_end()))
}

/// Judges `hostile-backend-*` (see the module doc).
pub fn judge_hostile_backend(run: &GuestRun) -> Result<String, String> {
    let said = |pat: &str| run.console.iter().filter(|l| l.contains(pat)).count();
    if let Some(l) = run
        .console
        .iter()
        .find(|l| l.contains("panicked") || l.contains("panic:"))
    {
        return Err(format!("the guest panicked: {l:?}"));
    }
    let once = seconds(run, "one close: reconnected in ")?;
    echoed(
        run,
        "tcp one close: ",
        "hello after one close",
        "the echo after one close",
    )?;
    let writes = dom0(run, "loop: ")
        .into_iter()
        .find(|l| l.ends_with("writes in 3 s"))
        .unwrap_or("none")
        .to_string();
    let looped = seconds(run, "loop: reconnected in ")?;
    echoed(
        run,
        "tcp loop: ",
        "hello after the loop",
        "the echo after the loop",
    )?;
    let (before, _) = same_resources(run, "stats-before: ", "stats-after: ", "the reconnections")?;
    let one = |key: &str| dom0(run, key).first().copied().unwrap_or("").to_string();
    let again = said("rt: net: device/vif/0 connected to ");
    if again < 2 {
        return Err(format!(
            "{again} reconnections on the console (want one after the close and one after the loop)"
        ));
    }
    let notices = said("rt: net: reconnecting device/vif/0 in ");
    if notices > MAX_RECONNECT_LINES {
        return Err(format!(
            "{notices} reconnection notices (at most {MAX_RECONNECT_LINES}: the closes in a row are limited)"
        ));
    }
    let gave_up: Vec<usize> = (0..run.console.len())
        .filter(|&i| run.console[i].starts_with("rt: net: giving up on device/vif/0"))
        .collect();
    if gave_up.len() != 1 {
        return Err(format!(
            "{} give-up lines (want exactly one, for the backend that kept closing)",
            gave_up.len()
        ));
    }
    if !run.console[gave_up[0]..]
        .iter()
        .any(|l| l == "echo: udp: the network is down for good: no more echoes")
    {
        return Err("the app was not told the network is down for good".into());
    }
    if one("for good: frontend state ") != "6" {
        return Err(format!(
            "after giving up the frontend's state is {:?} (want 6, Closed: no coming back)",
            one("for good: frontend state ")
        ));
    }
    if one("for good: ping ") != "0 received" {
        return Err(format!(
            "after giving up dom0's ping got {:?} (want 0 received)",
            one("for good: ping ")
        ));
    }
    if run.end != End::Poweroff {
        return Err(format!(
            "ended {} after xl shutdown (want poweroff)",
            run.end
        ));
    }
    Ok(format!(
        "one close: reconnected in {once:.2} s; loop of {writes}: reconnected in {looped:.2} s; \
         {again} reconnections, {notices} notices; gave up once; grants {} and ports {} before and after",
        stat(&before, "grants ").unwrap_or(0),
        stat(&before, "ports open ").unwrap_or(0)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "reconnects 0, ports open 8, free frames 7170; heap 1068312 B in 62 allocations; grants 514; sockets 6 (0 closing)";

    fn good() -> GuestRun {
        let events = [
            "one close: reconnected in 1.42 s".to_string(),
            "tcp one close: hello after one close".into(),
            "loop: 240 writes in 3 s".into(),
            "loop: reconnected in 6.10 s".into(),
            "tcp loop: hello after the loop".into(),
            format!("stats-before: {STATS}"),
            format!(
                "stats-after: {}",
                STATS.replace("reconnects 0", "reconnects 3")
            ),
            "for good: 3600 writes in 45 s".into(),
            "for good: frontend state 6".into(),
            "for good: ping 0 received".into(),
        ]
        .into_iter()
        .map(|e| format!("dom0| {e}"))
        .collect();
        let mut console: Vec<String> = Vec::new();
        for _ in 0..4 {
            console.push(
                "rt: net: the backend closed device/vif/0 (state 5): the network is down".into(),
            );
            console.push("rt: net: reconnecting device/vif/0 in 1000 ms (close 1 in a row; at 5 the vif gives up)".into());
            console.push(
                "rt: net: device/vif/0 connected to /local/domain/0/backend/vif/1/0 again".into(),
            );
        }
        console.push(
            "rt: net: giving up on device/vif/0: its backend closed it 5 times in a row".into(),
        );
        console.push("echo: udp: the network is down for good: no more echoes".into());
        GuestRun {
            events,
            console,
            end: End::Poweroff,
            ..GuestRun::new("hostile-backend-pvh")
        }
    }

    #[test]
    fn a_guest_that_reconnects_then_gives_up_passes() {
        let r = judge_hostile_backend(&good());
        assert!(
            r.as_ref()
                .is_ok_and(|d| d.contains("reconnected in 1.42 s")),
            "{r:?}"
        );
    }

    #[test]
    fn each_way_of_failing_is_caught() {
        let fails = |f: &dyn Fn(&mut GuestRun), want: &str| {
            let mut r = good();
            f(&mut r);
            let e = judge_hostile_backend(&r).expect_err(want);
            assert!(e.contains(want), "{e} (want {want})");
        };
        fails(&|r| r.console.push("rt: panicked at x".into()), "panicked");
        fails(
            &|r| r.events[0] = "dom0| one close: reconnected in not within 30 s".into(),
            "not within",
        );
        fails(
            &|r| r.events[1] = "dom0| tcp one close: no reply".into(),
            "one close",
        );
        fails(
            &|r| r.events[3] = "dom0| loop: reconnected in not within 60 s".into(),
            "not within",
        );
        fails(
            &|r| r.events[4] = "dom0| tcp loop: no reply".into(),
            "after the loop",
        );
        fails(
            &|r| {
                r.events[6] = format!(
                    "dom0| stats-after: {}",
                    STATS.replace("grants 514", "grants 1028")
                )
            },
            "grants",
        );
        fails(
            &|r| {
                r.events[6] = format!(
                    "dom0| stats-after: {}",
                    STATS.replace("ports open 8", "ports open 9")
                )
            },
            "ports",
        );
        fails(
            &|r| r.console.retain(|l| !l.contains("connected to")),
            "reconnections on the console",
        );
        fails(
            &|r| {
                for _ in 0..12 {
                    r.console
                        .push("rt: net: reconnecting device/vif/0 in 1 ms".into());
                }
            },
            "notices",
        );
        fails(
            &|r| r.console.retain(|l| !l.contains("giving up")),
            "give-up lines",
        );
        fails(
            &|r| {
                let l = r.console[12].clone();
                r.console.push(l);
            },
            "give-up lines",
        );
        fails(
            &|r| {
                r.console.pop();
            },
            "the app was not told",
        );
        fails(
            &|r| r.events[8] = "dom0| for good: frontend state 4".into(),
            "frontend's state",
        );
        fails(
            &|r| r.events[9] = "dom0| for good: ping 3 received".into(),
            "ping",
        );
        fails(&|r| r.end = End::Crashed, "poweroff");
    }
}
