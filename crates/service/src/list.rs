//! Pages of the merchant's lists.

/// A page of a list, and whether more follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// The page, newest first.
    pub items: Vec<T>,
    /// Whether a next page exists.
    pub has_more: bool,
}

impl<T> Listed<T> {
    /// The page of `limit` from `items` read with one more than `limit`: the
    /// extra one only tells that more follow.
    pub(crate) fn of(mut items: Vec<T>, limit: u32) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = items.len() > limit;
        items.truncate(limit);
        Self { items, has_more }
    }
}
