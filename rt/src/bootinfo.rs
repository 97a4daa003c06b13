//! What the runtime learned while booting — the mode, the memory, the
//! command line — and the boot timeline: named TSC stamps from the entry
//! point to `main` and on (the runtime marks its first xenstore connection,
//! the connected vif and a configured address).
//!
//! May import: `time`, `arch`, `platform`. Boot code records; anyone reads.
use core::fmt;
use core::time::Duration;

use rt_xen::once::Once;
use rt_xen::proto::untrusted::Escaped;
use rt_xen::timeline::Counts;

use crate::platform::Platform;

/// Longest command line we keep (Xen's `MAX_GUEST_CMDLINE`).
const CMDLINE_MAX: usize = 1024;

/// Named TSC stamps taken during boot, in order (the first is the entry
/// point), each with the Xen work counted up to it.
#[derive(Debug, Clone, Copy)]
pub struct Timeline(rt_xen::timeline::Timeline);

impl Timeline {
    /// The marks as (name, time since the entry point).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Option<Duration>)> + '_ {
        self.0
            .ticks()
            .map(|(n, t)| (n, crate::time::tsc_delta_to_duration(t)))
    }

    /// The phases between the marks, with their time in TSC ticks and their
    /// counts (hypercalls, page-table entries, tables, xenstore round trips).
    pub fn phases(&self) -> impl Iterator<Item = rt_xen::timeline::Phase> + '_ {
        self.0.phases()
    }

    /// The per-phase line: `boot: timeline phase=us/hypercalls/ptes/tables/xenstore/stolen-us ...`.
    pub fn report(&self) -> impl fmt::Display + '_ {
        self.0.report(&|ticks| {
            crate::time::tsc_delta_to_duration(ticks).map(|d| d.as_micros() as u64)
        })
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("boot timeline (us since entry):")?;
        for (name, d) in self.iter() {
            match d {
                Some(d) => write!(f, " {name}={}", d.as_micros() as u64)?,
                None => write!(f, " {name}=?")?,
            }
        }
        Ok(())
    }
}

static TIMELINE: spin::Mutex<rt_xen::timeline::Timeline> =
    spin::Mutex::new(rt_xen::timeline::Timeline::new());

/// The Xen work counted so far. Reads only counters that never block:
/// the hypercall page's tallies, the MMU's (skipped while the MMU is busy),
/// the xenstore client's request count and the runstate area's stolen time.
fn counts() -> Counts {
    let mm = crate::mm::stats();
    Counts {
        hypercalls: crate::xen::HYPERVISOR.issued_total(),
        ptes: mm.pte_writes + mm.entries_filled,
        tables: mm.tables_allocated,
        xenstore: crate::xenstore::round_trips(),
        stolen_ns: crate::xen::runstate::stolen_ns(),
    }
}

/// Records a boot milestone (the entry point is recorded first, automatically).
/// After `main` the runtime marks its first xenstore connection (`xenstore`),
/// the connected vif (`netfront`) and a configured address (`ip`); see
/// [`timeline`].
pub(crate) fn mark(name: &'static str) {
    let now = crate::arch::rdtsc();
    let c = counts();
    let mut t = TIMELINE.lock();
    if t.is_empty() {
        t.push("entry", crate::arch::entry_tsc(), Counts::default());
    }
    t.push(name, now, c);
}

/// Records a milestone the first time it is reached only (a vif that
/// reconnects after a restore passes its handshake's marks again).
pub(crate) fn mark_once(name: &'static str) {
    if !timeline().0.ticks().any(|(n, _)| n == name) {
        mark(name);
    }
}

/// The boot milestones so far: [`BootInfo::timeline`]'s marks up to `main`
/// and those the runtime recorded since (e.g. `xenstore`, `netfront`, `ip`
/// once the network is up).
pub fn timeline() -> Timeline {
    Timeline(*TIMELINE.lock())
}

/// What the runtime learned while booting.
#[derive(Debug)]
pub struct BootInfo {
    platform: Platform,
    memory_bytes: u64,
    cmdline: Cmdline,
    entry_tsc: u64,
    main_tsc: u64,
    timeline: Timeline,
}

#[derive(Debug)]
struct Cmdline {
    buf: [u8; CMDLINE_MAX],
    len: usize,
}

impl Cmdline {
    /// Copies a command line, stopping at NUL or the limit; invalid UTF-8 is cut
    /// at the first bad byte.
    fn new(raw: impl Iterator<Item = u8>) -> Self {
        let mut c = Cmdline {
            buf: [0; CMDLINE_MAX],
            len: 0,
        };
        for b in raw.take(CMDLINE_MAX).take_while(|&b| b != 0) {
            c.buf[c.len] = b;
            c.len += 1;
        }
        c.len = match core::str::from_utf8(&c.buf[..c.len]) {
            Ok(_) => c.len,
            Err(e) => e.valid_up_to(),
        };
        c
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl BootInfo {
    /// The boot mode.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// RAM given to the domain, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// The command line the image was started with.
    pub fn cmdline(&self) -> &str {
        self.cmdline.as_str()
    }

    /// Whether the command line has `word` (words are separated by ASCII
    /// whitespace).
    #[inline(never)]
    pub fn cmdline_has(&self, word: &str) -> bool {
        self.cmdline().split_ascii_whitespace().any(|w| w == word)
    }

    /// What follows `key` in the first word of the command line that starts
    /// with it: `cmdline_value("ip=")` is `10.0.0.2/24` for `ip=10.0.0.2/24`.
    #[inline(never)]
    pub fn cmdline_value(&self, key: &str) -> Option<&str> {
        self.cmdline()
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(key))
    }

    /// The boot milestones up to `main`.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Time from the first instruction of the entry point to `main`.
    pub fn entry_to_main(&self) -> Option<Duration> {
        crate::time::tsc_delta_to_duration(self.main_tsc.wrapping_sub(self.entry_tsc))
    }
}

impl fmt::Display for BootInfo {
    /// The one-line boot report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "boot: mode={} memory={} MiB",
            self.platform,
            self.memory_bytes >> 20
        )?;
        match self.entry_to_main() {
            Some(d) => write!(f, " entry-to-main={} us", d.as_micros() as u64)?,
            None => write!(
                f,
                " entry-to-main={} tsc-ticks",
                self.main_tsc.wrapping_sub(self.entry_tsc)
            )?,
        }
        // Quoted and escaped (`{:?}` would link core's Unicode tables).
        write!(f, " cmdline=\"{}\"", Escaped(self.cmdline()))
    }
}

static BOOT: Once<BootInfo> = Once::new();

unsafe extern "Rust" {
    /// Defined by `rt::main!`: the app's crate name.
    static __RT_APP_NAME: &'static str;
}

/// What the runtime learned while booting (available from the start of `main`).
pub fn boot_info() -> &'static BootInfo {
    BOOT.get().expect("rt::boot_info() called before main")
}

/// The application's crate name.
pub fn app_name() -> &'static str {
    // SAFETY: `rt::main!` defines this immutable static in every image.
    unsafe { __RT_APP_NAME }
}

/// Records the boot facts (boot code, once, right before `main`): marks
/// `main` on the timeline.
pub(crate) fn record(platform: Platform, memory_bytes: u64, cmdline: &[u8]) {
    let entry_tsc = crate::arch::entry_tsc();
    let cmdline = Cmdline::new(cmdline.iter().copied());
    mark("main");
    let timeline = timeline();
    let main_tsc = timeline.0.last().map_or(entry_tsc, |(_, t)| t);
    BOOT.call_once(|| BootInfo {
        platform,
        memory_bytes,
        cmdline,
        entry_tsc,
        main_tsc,
        timeline,
    });
}
