//! The CSV export of the endpoint list, shared by `GET
//! /api/v1/compliance/endpoints.csv` and the console's
//! `/compliance/endpoints.csv`.
//!
//! The export pages through the store's endpoint search
//! ([`EXPORT_PAGE`] rows at a time, the list's order) and streams each
//! page to the response body as it is read, so an export of the largest
//! scope never holds every row in memory. Every cell goes through
//! [`vigil_core::csv_cell`] (no spreadsheet formulas from endpoint names).

use super::query::{chosen, EndpointQuery};
use crate::app::App;
use crate::http::error::ApiError;
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use vigil_core::compliance::{AdvancedQuery, Endpoint};
use vigil_core::csv_cell;
use vigil_store::{AccountId, AssessmentId, StoreError};

/// Largest CSV export (every address of the largest scope).
pub(crate) const MAX_EXPORT: u64 = 1 << 20;
/// Rows read from the store, and written to the body, at a time.
pub(crate) const EXPORT_PAGE: u64 = 1000;

/// The columns of the endpoint list (added later, last: `identify`, the
/// verdict on the identify reply, e.g. `forged`; `name_source`, where the
/// name came from: `ad`, `dns`, `netbios`, `agent`, empty for an address).
const HEADER: [&str; 14] = [
    "name",
    "dns_name",
    "addresses",
    "status",
    "os",
    "container",
    "ad_guid",
    "agent_id",
    "server_id",
    "agent_version",
    "last_seen",
    "disabled",
    "identify",
    "name_source",
];

/// Every endpoint that matches `q` (from `offset`, at most `limit`, by
/// default all) as a CSV download, streamed page by page. A bad search
/// is an error answer: the first page is read before the response starts
/// (an export that fits in it is sent whole, with a length; a longer one
/// is sent chunked).
/// A store error later on aborts the body (the download fails rather than
/// ending short).
///
/// The pages are read with offsets: rows an assessment still running
/// adds meanwhile may shift them (as they would between pages of the
/// JSON list).
pub(crate) async fn endpoints_csv(
    app: Arc<App>,
    account: AccountId,
    q: &EndpointQuery,
) -> Result<Response, ApiError> {
    let query = q.advanced()?;
    let start = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(MAX_EXPORT);
    if !(1..=MAX_EXPORT).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit {limit} is out of range: use 1 to {MAX_EXPORT}"
        )));
    }
    let a = chosen(&app, account, q.assessment.as_deref()).await?;
    let (first, total) = app
        .store
        .endpoints(account, a.id, &query, start, EXPORT_PAGE.min(limit))
        .await
        .map_err(|e| match e {
            StoreError::Invalid(m) => ApiError::Invalid(m),
            e => e.into(),
        })?;
    let chunk = csv_chunk(true, &first).map_err(|e| ApiError::Internal(format!("CSV: {e}")))?;
    let next = start.saturating_add(first.len() as u64);
    let end = total.min(start.saturating_add(limit));
    drop(first);
    let body = if next >= end {
        // One page holds it all: a plain body (with a Content-Length).
        Body::from(chunk)
    } else {
        let export = Export {
            app,
            account,
            assessment: a.id,
            query,
            next,
            end,
            first: Some(chunk),
        };
        Body::from_stream(futures::stream::unfold(export, Export::next_chunk))
    };
    let disposition = format!("attachment; filename=\"vigil-endpoints-{}.csv\"", a.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Where a streamed export is.
struct Export {
    app: Arc<App>,
    account: AccountId,
    assessment: AssessmentId,
    query: AdvancedQuery,
    /// Offset of the next page.
    next: u64,
    /// Offset after the last row to export.
    end: u64,
    /// The header and first page, read before the response started.
    first: Option<Vec<u8>>,
}

impl Export {
    /// The next chunk of the body: the first page, then one page of rows
    /// per store read, until `end` (or an empty page).
    async fn next_chunk(mut self) -> Option<(Result<Vec<u8>, std::io::Error>, Export)> {
        if let Some(chunk) = self.first.take() {
            return Some((Ok(chunk), self));
        }
        if self.next >= self.end {
            return None;
        }
        let n = EXPORT_PAGE.min(self.end - self.next);
        let page = self
            .app
            .store
            .endpoints(self.account, self.assessment, &self.query, self.next, n)
            .await
            .map_err(|e| e.to_string())
            .and_then(|(page, _)| {
                let chunk = csv_chunk(false, &page).map_err(|e| e.to_string())?;
                Ok((page.len() as u64, chunk))
            });
        match page {
            Ok((0, _)) => None,
            Ok((rows, chunk)) => {
                self.next += rows;
                Some((Ok(chunk), self))
            }
            Err(e) => {
                tracing::warn!(
                    account = %self.account,
                    assessment = %self.assessment,
                    offset = self.next,
                    "endpoint CSV export failed: {e}"
                );
                // End after this error.
                self.end = self.next;
                Some((Err(std::io::Error::other(e)), self))
            }
        }
    }
}

/// One row per endpoint (after the header row when `header`), every cell
/// spreadsheet-safe.
fn csv_chunk(header: bool, endpoints: &[Endpoint]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if header {
        w.write_record(HEADER)?;
    }
    for e in endpoints {
        let addrs: Vec<String> = e.addrs.iter().map(|a| a.to_string()).collect();
        let row = [
            e.name.clone(),
            e.dns_name.clone().unwrap_or_default(),
            addrs.join(" "),
            e.status.as_str().to_string(),
            e.os.clone().unwrap_or_default(),
            e.container
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            e.ad_guid.map(|g| g.to_string()).unwrap_or_default(),
            e.agent_id.clone().unwrap_or_default(),
            e.server_id.clone().unwrap_or_default(),
            e.agent_version.clone().unwrap_or_default(),
            e.last_seen.map(|t| t.to_string()).unwrap_or_default(),
            e.disabled.to_string(),
            e.identify
                .map(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
            e.name_source
                .map(|s| s.as_str())
                .unwrap_or_default()
                .to_string(),
        ];
        w.write_record(row.iter().map(|cell| csv_cell(cell).into_owned()))?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::compliance::EndpointStatus;

    #[test]
    fn chunks_quote_formula_cells_and_only_the_first_has_the_header() {
        let mut e = Endpoint::new("=1+1", EndpointStatus::NoAgent);
        e.addrs = vec!["192.0.2.1".parse().unwrap()];
        e.os = Some("@SUM(A1)".into());
        e.last_seen = Some(-2);
        e.identify = Some(vigil_core::compliance::IdentifyCheck::Forged);
        let first = String::from_utf8(csv_chunk(true, std::slice::from_ref(&e)).unwrap()).unwrap();
        let mut lines = first.lines();
        assert_eq!(lines.next(), Some(HEADER.join(",").as_str()));
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("'=1+1,,192.0.2.1,no_agent,'@SUM(A1),"),
            "{row}"
        );
        assert!(row.ends_with(",'-2,false,forged,"), "{row}");
        let next = String::from_utf8(csv_chunk(false, &[e]).unwrap()).unwrap();
        assert_eq!(next, format!("{row}\n"));
    }
}
