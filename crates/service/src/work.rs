//! What background steps share: the batch size, the backoff, the report, and
//! running a claimed batch side by side while one subject's items stay in order.

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{StreamExt, stream};
use time::Duration;

/// What one batch of background work did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkReport {
    /// Items finished.
    pub done: usize,
    /// Items put back to try again later.
    pub deferred: usize,
}

impl WorkReport {
    /// Counts one item finished or deferred.
    pub(crate) fn count(&mut self, finished: bool) {
        if finished {
            self.done += 1;
        } else {
            self.deferred += 1;
        }
    }

    fn add(mut self, other: Self) -> Self {
        self.done += other.done;
        self.deferred += other.deferred;
        self
    }
}

/// What this process is working on now, shared by its passes (the test
/// clock's and a worker's run side by side): a pass skips what another one
/// holds instead of racing it to a conflict that throws the work away.
#[derive(Debug)]
pub(crate) struct InProgress<K>(Arc<Mutex<HashSet<K>>>);

impl<K> Clone for InProgress<K> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<K> Default for InProgress<K> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<K: Hash + Eq + Clone> InProgress<K> {
    /// Takes `key`, unless a pass holds it already; it is released when the
    /// returned claim is dropped.
    pub(crate) fn claim(&self, key: &K) -> Option<Claim<K>> {
        let taken = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone());
        taken.then(|| Claim {
            set: self.clone(),
            key: key.clone(),
        })
    }

    /// How many keys are held now.
    pub(crate) fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One key of an [`InProgress`] set, held until dropped.
pub(crate) struct Claim<K: Hash + Eq> {
    set: InProgress<K>,
    key: K,
}

impl<K: Hash + Eq> Drop for Claim<K> {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// How many items one background step takes at a time.
pub(crate) const BATCH: u32 = 50;

/// Exponential backoff from one second, capped at ten minutes.
pub(crate) fn backoff(attempts: u32) -> Duration {
    Duration::seconds(1_i64 << attempts.min(10)).min(Duration::minutes(10))
}

/// Splits a batch into groups of items about one subject, keeping the
/// batch's order inside each group: an item joins the first group holding an
/// item `same` says it shares a subject with.
pub(crate) fn group_by_subject<T>(items: Vec<T>, same: impl Fn(&T, &T) -> bool) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    for item in items {
        match groups
            .iter_mut()
            .find(|group| group.iter().any(|other| same(other, &item)))
        {
            Some(group) => group.push(item),
            None => groups.push(vec![item]),
        }
    }
    groups
}

/// Runs `run` on each group, at most `in_flight` groups at a time, and adds
/// up their reports; the first error is returned after every group ran.
async fn run_groups<T, E, F>(
    groups: Vec<Vec<T>>,
    in_flight: usize,
    run: impl Fn(Vec<T>) -> F,
) -> Result<WorkReport, E>
where
    F: Future<Output = Result<WorkReport, E>>,
{
    let reports: Vec<Result<WorkReport, E>> = stream::iter(groups)
        .map(run)
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    reports
        .into_iter()
        .try_fold(WorkReport::default(), |sum, r| Ok(sum.add(r?)))
}

/// [`run_groups`] for items that each finish (`true`) or are put back
/// (`false`): a group's items run one after the other, and are counted.
pub(crate) async fn run_each<T, E, F>(
    groups: Vec<Vec<T>>,
    in_flight: usize,
    run: impl Fn(T) -> F,
) -> Result<WorkReport, E>
where
    F: Future<Output = Result<bool, E>>,
{
    let run = &run;
    run_groups(groups, in_flight, |group| async move {
        let mut report = WorkReport::default();
        for item in group {
            report.count(run(item).await?);
        }
        Ok(report)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::{InProgress, WorkReport, group_by_subject, run_groups};

    #[test]
    fn a_key_in_progress_is_held_by_one_claim_until_it_is_dropped() {
        let set = InProgress::default();
        let claim = set.claim(&"sub_1").expect("free");
        assert!(
            set.clone().claim(&"sub_1").is_none(),
            "held by another pass"
        );
        assert!(set.claim(&"sub_2").is_some(), "another key is free");
        assert_eq!(set.count(), 1, "the second claim was dropped at once");
        drop(claim);
        assert!(set.claim(&"sub_1").is_some(), "released");
    }

    #[test]
    fn items_about_one_subject_stay_together_in_batch_order() {
        // (subject a, subject b): items sharing either are one group.
        let items = vec![(1, 10), (2, 20), (1, 11), (3, 20), (4, 40), (1, 12)];
        let groups = group_by_subject(items, |x, y| x.0 == y.0 || x.1 == y.1);
        assert_eq!(
            groups,
            vec![
                vec![(1, 10), (1, 11), (1, 12)],
                vec![(2, 20), (3, 20)],
                vec![(4, 40)],
            ]
        );
    }

    #[tokio::test]
    async fn groups_run_side_by_side_and_the_reports_add_up() {
        // Each group waits at a barrier for a second one: run one at a time,
        // they would never get past it.
        let barrier = tokio::sync::Barrier::new(2);
        let groups = vec![vec![true, false], vec![true], vec![true, true], vec![true]];
        let run = run_groups(groups, 2, |group| {
            let barrier = &barrier;
            async move {
                barrier.wait().await;
                let mut report = WorkReport::default();
                for done in group {
                    report.count(done);
                }
                Ok::<_, ()>(report)
            }
        });
        let report = tokio::time::timeout(std::time::Duration::from_secs(5), run)
            .await
            .expect("two groups in flight at once");
        assert_eq!(
            report,
            Ok(WorkReport {
                done: 5,
                deferred: 1
            })
        );
    }
}
