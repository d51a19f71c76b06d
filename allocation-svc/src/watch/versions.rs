//! The one rule by which the watch code orders an investment's updates, for the hub (what it
//! dispatches) and for each watcher (what it sends): an update carries its `status_version`,
//! which goes up by one per change, and the log holds every version with no gap.

/// Where an update stands against the version last handed on for its investment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// That version or a later one was handed on already: drop it.
    Seen,
    /// The next version: hand it on.
    Next,
    /// The versions after `after` and before this one are missing: read them from the log.
    Gap {
        /// The version last handed on (0 when none was).
        after: i64,
    },
}

/// Where an update of `version` stands when `last` was handed on last (`None`: nothing yet).
pub(super) fn step(last: Option<i64>, version: i64) -> Step {
    let last = last.unwrap_or(0);
    if version <= last {
        Step::Seen
    } else if version == last + 1 {
        Step::Next
    } else {
        Step::Gap { after: last }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_versions_are_seen_the_next_is_next_and_a_jump_is_a_gap() {
        assert_eq!(step(Some(3), 2), Step::Seen);
        assert_eq!(step(Some(3), 3), Step::Seen);
        assert_eq!(step(Some(3), 4), Step::Next);
        assert_eq!(step(Some(3), 6), Step::Gap { after: 3 });
        assert_eq!(step(None, 1), Step::Next);
        assert_eq!(step(None, 2), Step::Gap { after: 0 });
    }
}
