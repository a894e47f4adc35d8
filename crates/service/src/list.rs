//! Pages of the merchant's lists.

use std::future::Future;

use ports::{Page, StoreError};

use crate::ServiceError;

/// A page of a list, and whether more follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// The page, newest first.
    pub items: Vec<T>,
    /// Whether a next page exists.
    pub has_more: bool,
}

impl<T> Listed<T> {
    /// Reads `page` through `read`, asking for one item more than the page
    /// holds: the extra one only tells that more follow. `cursor_is_theirs`
    /// says whether the cursor (if any) is an item of this very list.
    pub(crate) async fn read<Id, Fut>(
        page: Page<Id>,
        cursor_is_theirs: bool,
        read: impl FnOnce(Page<Id>) -> Fut,
    ) -> Result<Self, ServiceError>
    where
        Fut: Future<Output = Result<Vec<T>, StoreError>>,
    {
        if !cursor_is_theirs {
            return Err(ServiceError::InvalidCursor);
        }
        let limit = page.limit;
        let mut items = read(Page {
            after: page.after,
            limit: limit.saturating_add(1),
        })
        .await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = items.len() > limit;
        items.truncate(limit);
        Ok(Self { items, has_more })
    }
}
