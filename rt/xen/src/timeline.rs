//! The boot timeline's bookkeeping: named TSC stamps, each with the Xen work
//! counted up to it (hypercalls, page-table entries written, page tables
//! made, xenstore round trips) and the time Xen kept the vCPU from running
//! (stolen), and the per-phase report built from them.
//!
//! Pure: the runtime takes the stamps and the counters (`rt::bootinfo`) and
//! converts TSC ticks to time; this module only keeps, subtracts and prints.
//! Invariant: marks are kept in the order they were taken, the first is the
//! entry point, and a phase is what happened between a mark and the one
//! before it — so the phases' counts add up to the last mark's totals.
use core::fmt;

/// Most marks a timeline holds; later marks are dropped.
pub const MAX_MARKS: usize = 20;

/// Xen work counted since the domain started.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Hypercalls issued (all numbers; a multicall is one).
    pub hypercalls: u64,
    /// Page-table entries written: requests Xen validated one by one (PV
    /// `mmu_update`; PVH plain stores) plus entries stored into new tables
    /// before Xen validated each table whole.
    pub ptes: u64,
    /// Page-table pages made (PV: each validated by Xen when linked or pinned).
    pub tables: u64,
    /// Xenstore requests, each a round trip to xenstored.
    pub xenstore: u64,
    /// Nanoseconds the vCPU was runnable but not running, or offline (Xen's
    /// runstate area): time in a phase that was not ours.
    pub stolen_ns: u64,
}

impl Counts {
    /// What was counted between `earlier` and `self` (0 where a counter went
    /// backwards, as a restarted count would).
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            hypercalls: self.hypercalls.saturating_sub(earlier.hypercalls),
            ptes: self.ptes.saturating_sub(earlier.ptes),
            tables: self.tables.saturating_sub(earlier.tables),
            xenstore: self.xenstore.saturating_sub(earlier.xenstore),
            stolen_ns: self.stolen_ns.saturating_sub(earlier.stolen_ns),
        }
    }
}

/// One phase: what happened between a mark and the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    /// The name of the mark that ends the phase.
    pub name: &'static str,
    /// TSC ticks the phase took.
    pub ticks: u64,
    /// Xen work done in it.
    pub counts: Counts,
}

/// Named TSC stamps with counts, in order (the first is the entry point).
#[derive(Clone, Copy, Debug)]
pub struct Timeline {
    /// `Some` name for each of the first `len`; the rest `None`, so an
    /// empty timeline is all zero bytes (a static one costs the image
    /// nothing: it lands in `.bss`, not `.data`).
    marks: [(Option<&'static str>, u64, Counts); MAX_MARKS],
    len: usize,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    /// An empty timeline.
    pub const fn new() -> Self {
        const NONE: Counts = Counts {
            hypercalls: 0,
            ptes: 0,
            tables: 0,
            xenstore: 0,
            stolen_ns: 0,
        };
        Timeline {
            marks: [(None, 0, NONE); MAX_MARKS],
            len: 0,
        }
    }

    /// Appends a mark (dropped once [`MAX_MARKS`] are kept).
    pub fn push(&mut self, name: &'static str, tsc: u64, counts: Counts) {
        if self.len < MAX_MARKS {
            self.marks[self.len] = (Some(name), tsc, counts);
            self.len += 1;
        }
    }

    /// Marks kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no mark was taken yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The marks taken (`len` never passes [`MAX_MARKS`]: [`Self::push`]).
    fn kept(&self) -> &[(Option<&'static str>, u64, Counts)] {
        self.marks.get(..self.len).unwrap_or(&self.marks)
    }

    /// The last mark's name and TSC.
    pub fn last(&self) -> Option<(&'static str, u64)> {
        self.kept().last().map(|m| (m.0.unwrap_or_default(), m.1))
    }

    /// The marks as (name, TSC ticks since the first mark).
    pub fn ticks(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let t0 = self.marks[0].1;
        self.kept()
            .iter()
            .map(move |&(n, t, _)| (n.unwrap_or_default(), t.wrapping_sub(t0)))
    }

    /// The phases: one per mark after the first.
    pub fn phases(&self) -> impl Iterator<Item = Phase> + '_ {
        self.kept().windows(2).map(|w| Phase {
            name: w[1].0.unwrap_or_default(),
            ticks: w[1].1.wrapping_sub(w[0].1),
            counts: w[1].2.since(w[0].2),
        })
    }

    /// Everything from the first mark to the last: (ticks, counts).
    pub fn total(&self) -> (u64, Counts) {
        match (self.kept().first(), self.kept().last()) {
            (Some(a), Some(z)) => (z.1.wrapping_sub(a.1), z.2.since(a.2)),
            _ => (0, Counts::default()),
        }
    }

    /// The per-phase report, one line: `boot: timeline
    /// phase=us/hypercalls/ptes/tables/xenstore/stolen-us name=a/b/c/d/e/f
    /// ... total=...`, with `us` converting TSC ticks to microseconds (`?`
    /// when it cannot); stolen time is Xen's, in ns, shown in whole us.
    pub fn report<'a>(&'a self, us: &'a dyn Fn(u64) -> Option<u64>) -> Report<'a> {
        Report { t: self, us }
    }
}

/// See [`Timeline::report`].
pub struct Report<'a> {
    t: &'a Timeline,
    us: &'a dyn Fn(u64) -> Option<u64>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report").field("t", self.t).finish()
    }
}

impl Report<'_> {
    fn one(&self, f: &mut fmt::Formatter<'_>, name: &str, ticks: u64, c: Counts) -> fmt::Result {
        match (self.us)(ticks) {
            Some(us) => write!(f, " {name}={us}")?,
            None => write!(f, " {name}=?")?,
        }
        write!(
            f,
            "/{}/{}/{}/{}/{}",
            c.hypercalls,
            c.ptes,
            c.tables,
            c.xenstore,
            c.stolen_ns / 1000
        )
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("boot: timeline phase=us/hypercalls/ptes/tables/xenstore/stolen-us")?;
        for p in self.t.phases() {
            self.one(f, p.name, p.ticks, p.counts)?;
        }
        let (ticks, c) = self.t.total();
        self.one(f, "total", ticks, c)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    fn c(hypercalls: u64, ptes: u64, tables: u64, xenstore: u64) -> Counts {
        Counts {
            hypercalls,
            ptes,
            tables,
            xenstore,
            stolen_ns: 0,
        }
    }

    #[test]
    fn phases_are_the_differences_and_add_up_to_the_total() {
        let mut t = Timeline::new();
        t.push("entry", 1000, c(0, 0, 0, 0));
        t.push("traps", 1100, c(2, 0, 0, 0));
        t.push(
            "space",
            5100,
            Counts {
                stolen_ns: 2_500_400,
                ..c(40, 8200, 20, 0)
            },
        );
        t.push(
            "xenstore",
            5600,
            Counts {
                stolen_ns: 2_600_000,
                ..c(45, 8200, 20, 3)
            },
        );
        let p: std::vec::Vec<Phase> = t.phases().collect();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[1],
            Phase {
                name: "space",
                ticks: 4000,
                counts: Counts {
                    stolen_ns: 2_500_400,
                    ..c(38, 8200, 20, 0)
                }
            }
        );
        let sum = p.iter().fold(Counts::default(), |a, p| Counts {
            hypercalls: a.hypercalls + p.counts.hypercalls,
            ptes: a.ptes + p.counts.ptes,
            tables: a.tables + p.counts.tables,
            xenstore: a.xenstore + p.counts.xenstore,
            stolen_ns: a.stolen_ns + p.counts.stolen_ns,
        });
        assert_eq!(t.total(), (4600, sum));
        let us = |ticks: u64| Some(ticks / 10);
        assert_eq!(
            t.report(&us).to_string(),
            "boot: timeline phase=us/hypercalls/ptes/tables/xenstore/stolen-us traps=10/2/0/0/0/0 space=400/38/8200/20/0/2500 xenstore=50/5/0/0/3/99 total=460/45/8200/20/3/2600"
        );
        let none = |_: u64| None;
        assert!(t.report(&none).to_string().contains(" traps=?/2/0/0/0/0"));
    }

    #[test]
    fn a_full_timeline_drops_later_marks_and_a_counter_going_back_is_zero() {
        let mut t = Timeline::new();
        for i in 0..(MAX_MARKS as u64 + 5) {
            t.push("m", i, c(i, 0, 0, 0));
        }
        assert_eq!(t.len(), MAX_MARKS);
        assert_eq!(t.last(), Some(("m", MAX_MARKS as u64 - 1)));
        assert_eq!(c(1, 5, 0, 0).since(c(3, 2, 0, 0)), c(0, 3, 0, 0));
        assert_eq!(Timeline::new().total(), (0, Counts::default()));
        assert_eq!(Timeline::new().phases().count(), 0);
    }
}
