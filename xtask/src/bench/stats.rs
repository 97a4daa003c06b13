//! Statistics over the boots of a session: median, min and max; the
//! smallest memory on the ladder; the median boot timeline.
/// Median, min and max of some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub(super) fn spread(v: &[f64]) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: s[0],
        max: s[s.len() - 1],
        n: s.len(),
    })
}

/// The smallest size on the ladder that reached network-ready, with every
/// larger one reaching it too (a size that fails above one that works is
/// noise the table must not hide: then there is no answer).
pub(super) fn smallest(results: &[(u32, bool)]) -> Option<u32> {
    let mut sorted = results.to_vec();
    sorted.sort();
    let first_ok = sorted.iter().position(|&(_, ok)| ok)?;
    sorted[first_ok..]
        .iter()
        .all(|&(_, ok)| ok)
        .then_some(sorted[first_ok].0)
}

/// Per mark, the median over boots (marks in the order of the first boot).
pub(super) fn median_timeline(boots: &[Vec<(String, f64)>]) -> Vec<(String, f64)> {
    let Some(first) = boots.first() else {
        return vec![];
    };
    first
        .iter()
        .filter_map(|(name, _)| {
            let v: Vec<f64> = boots
                .iter()
                .filter_map(|b| b.iter().find(|(n, _)| n == name).map(|&(_, t)| t))
                .collect();
            Some((name.clone(), spread(&v)?.median))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_samples() {
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(spread(&[4.0, 1.0]).unwrap().median, 2.5);
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn the_smallest_memory_needs_every_larger_step_to_work() {
        assert_eq!(
            smallest(&[(8, true), (3, false), (4, true), (6, true)]),
            Some(4)
        );
        assert_eq!(smallest(&[(3, false), (4, false)]), None);
        assert_eq!(
            smallest(&[(3, true), (4, false), (6, true)]),
            None,
            "noise: no answer"
        );
    }
}
