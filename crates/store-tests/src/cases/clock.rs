//! The test clock's kept time.

use ports::*;
use time::Duration;

use crate::Harness;
use crate::fixtures::now;

/// The test clock's time survives a reopen and never moves back, whoever
/// writes an earlier time later.
pub async fn the_test_clock_is_kept_and_never_moves_back<H: Harness>(h: &H) {
    let s = h.store();
    assert_eq!(TestClockStore::load(&*s).await.unwrap(), None);
    let later = now() + Duration::days(100);
    s.save(later).await.unwrap();
    s.save(now()).await.unwrap();
    assert_eq!(TestClockStore::load(&*s).await.unwrap(), Some(later));
    drop(s);
    let r = h.reopen().await;
    assert_eq!(TestClockStore::load(&*r).await.unwrap(), Some(later));
}
