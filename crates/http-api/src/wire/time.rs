//! Times on the wire: RFC 3339, UTC, microseconds as the stores keep them.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

/// RFC 3339, UTC.
pub fn timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Parses an RFC 3339 time.
pub fn parse_timestamp(field: &str, s: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(ports::to_micros)
        .map_err(|_| ApiError::bad_request(format!("{field} must be an RFC 3339 time")))
}
