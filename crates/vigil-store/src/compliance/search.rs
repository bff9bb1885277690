//! Searching an assessment's endpoints.
//!
//! SQL decides what it can decide exactly: statuses, the name pattern (a
//! `LIKE` over names the store lower-cased, because SQLite's `lower()` folds
//! ASCII only) and the last-seen bounds. The IP range (over a JSON list),
//! the OS pattern and the container (DNs compare ignoring case, spaces and
//! escape spellings) are decided by vigil-core's own matcher over the rows
//! SQL selected, so totals and pages stay exact either way; SQL narrows
//! those rows first (by the lowest and highest address of each endpoint,
//! which is exact for the usual single address).

use super::endpoints::{addr_key, EndpointRow, ENDPOINT_COLS};
use super::{db_count, parse_addrs, parse_dn, stored_count};
use crate::ids::{AccountId, AssessmentId};
use crate::validate::limits;
use crate::{with_pool, Backend, Result, Store, StoreError};
use std::collections::HashMap;
use vigil_core::compliance::{AdvancedQuery, Endpoint, EndpointStatus};

/// What the Rust side of a search needs of a row.
#[derive(sqlx::FromRow)]
struct SearchRow {
    seq: i64,
    name_key: String,
    name: String,
    addrs: String,
    os: Option<String>,
    container: Option<String>,
}

/// A value bound to a dynamically built query.
#[derive(Clone)]
enum Arg {
    Text(String),
    Int(i64),
}

/// Binds every [`Arg`] in order.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}

/// A WHERE clause over `compliance_endpoints` with its bound values.
struct Filter {
    sql: String,
    args: Vec<Arg>,
    /// Appended to a text column compared by order, for byte order on both
    /// backends (PostgreSQL's default collation may differ from SQLite's).
    bytewise: &'static str,
    backend: Backend,
    /// An index finds the few matching rows (an exact name).
    narrow: bool,
}

impl Filter {
    fn new(backend: Backend, account: AccountId, assessment: AssessmentId) -> Self {
        Filter {
            sql: "assessment_id = $1 AND account_id = $2".to_owned(),
            args: vec![Arg::Text(assessment.db()), Arg::Text(account.db())],
            bytewise: match backend {
                Backend::Sqlite => "",
                Backend::Postgres => " COLLATE \"C\"",
            },
            backend,
            narrow: false,
        }
    }

    /// Adds a value; returns its placeholder.
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// The order of results: by name ignoring case, then as stored.
    fn order(&self) -> String {
        let c = self.bytewise;
        // SQLite would rather walk the name index in order than look the
        // few rows up and sort them; a unary + keeps it off that index.
        let plus = if self.narrow && self.backend == Backend::Sqlite {
            "+"
        } else {
            ""
        };
        format!("{plus}name_key{c}, name{c}, seq")
    }

    fn and(&mut self, condition: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
    }

    /// The criteria of `query` SQL decides exactly, plus cheap pre-checks
    /// for the others. Returns the query of what is left for Rust, if any.
    fn add_query(&mut self, query: &AdvancedQuery) -> Result<Option<RustFilter>> {
        let mut statuses = query.wanted_statuses().to_vec();
        statuses.sort();
        statuses.dedup();
        if statuses.len() < EndpointStatus::ALL.len() {
            let list: Vec<String> = statuses
                .iter()
                .map(|s| self.arg(Arg::Text(s.as_str().to_owned())))
                .collect();
            self.and(&format!("status IN ({})", list.join(", ")));
        }
        if let Some(pattern) = &query.name {
            if pattern.as_str().len() > limits::MAX_SEARCH_PATTERN_LEN {
                return Err(StoreError::invalid(format!(
                    "the name to search for is longer than {} bytes",
                    limits::MAX_SEARCH_PATTERN_LEN
                )));
            }
            // NamePattern lower-cases the pattern and the name the same way.
            let lower = pattern.as_str().to_lowercase();
            if pattern.has_wildcard() {
                let p = self.arg(Arg::Text(like_pattern(&lower)));
                self.and(&format!(
                    "(name_key LIKE {p} ESCAPE '\\' OR dns_key LIKE {p} ESCAPE '\\')"
                ));
            } else {
                // One index lookup per name column; SQLite does not combine
                // two indexes for an OR under the shared assessment_id.
                let p = self.arg(Arg::Text(lower));
                self.narrow = true;
                self.and(&format!(
                    "seq IN (SELECT seq FROM compliance_endpoints \
                             WHERE assessment_id = $1 AND name_key = {p} \
                             UNION ALL SELECT seq FROM compliance_endpoints \
                             WHERE assessment_id = $1 AND dns_key = {p})"
                ));
            }
        }
        if let Some(after) = query.last_seen_after {
            let p = self.arg(Arg::Int(after));
            self.and(&format!("last_seen >= {p}"));
        }
        if let Some(before) = query.last_seen_before {
            let p = self.arg(Arg::Int(before));
            self.and(&format!("last_seen < {p}"));
        }
        if let Some(range) = &query.ip_range {
            // Some address in the range: then the lowest is not above its
            // end and the highest not below its start (exact for one address).
            let start = self.arg(Arg::Text(addr_key(range.start())));
            let end = self.arg(Arg::Text(addr_key(range.end())));
            let c = self.bytewise;
            self.and(&format!("addr_hi{c} >= {start} AND addr_lo{c} <= {end}"));
        }
        if query.os.is_some() {
            self.and("os IS NOT NULL");
        }
        if query.container.is_some() {
            self.and("container IS NOT NULL");
        }
        Ok(RustFilter::new(query))
    }
}

/// A lower-cased [`vigil_core::compliance::NamePattern`] as a `LIKE`
/// pattern with `\` as the escape: `*` is `%`, `%` `_` `\` are literal.
fn like_pattern(lower: &str) -> String {
    let mut out = String::with_capacity(lower.len() + 4);
    for c in lower.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Rows the Rust side of a search reads per query.
const SEARCH_BATCH: i64 = 10_000;

/// The criteria Rust decides (see the module docs), each as a vigil-core
/// query of its own. Verdicts on OS and container texts are remembered: an
/// assessment has few distinct ones, and a DN takes a while to parse.
struct RustFilter {
    ip: Option<AdvancedQuery>,
    os: Option<(AdvancedQuery, HashMap<String, bool>)>,
    container: Option<(AdvancedQuery, HashMap<String, bool>)>,
}

impl RustFilter {
    /// `None` if SQL decides every criterion of `query`.
    fn new(query: &AdvancedQuery) -> Option<RustFilter> {
        let just = |q: AdvancedQuery| (q, HashMap::new());
        let filter = RustFilter {
            ip: query.ip_range.map(|r| AdvancedQuery {
                ip_range: Some(r),
                ..AdvancedQuery::default()
            }),
            os: query.os.clone().map(|os| {
                just(AdvancedQuery {
                    os: Some(os),
                    ..AdvancedQuery::default()
                })
            }),
            container: query.container.clone().map(|c| {
                just(AdvancedQuery {
                    container: Some(c),
                    ..AdvancedQuery::default()
                })
            }),
        };
        let any = filter.ip.is_some() || filter.os.is_some() || filter.container.is_some();
        any.then_some(filter)
    }

    fn matches(&mut self, row: &SearchRow) -> Result<bool> {
        if let Some(q) = &self.ip {
            let mut ep = Endpoint::new("", EndpointStatus::NoAgent);
            ep.addrs = parse_addrs(&row.addrs)?;
            if !q.matches(&ep) {
                return Ok(false);
            }
        }
        if let Some((q, seen)) = &mut self.os {
            let set = |ep: &mut Endpoint, text: &str| {
                ep.os = Some(text.to_owned());
                Ok(())
            };
            if !remembered(q, seen, row.os.as_deref(), set)? {
                return Ok(false);
            }
        }
        if let Some((q, seen)) = &mut self.container {
            let set = |ep: &mut Endpoint, text: &str| {
                ep.container = Some(parse_dn(text)?);
                Ok(())
            };
            if !remembered(q, seen, row.container.as_deref(), set)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Whether `q` matches an endpoint whose one field (put there by `set`) is
/// `text`, remembered in `seen`.
fn remembered(
    q: &AdvancedQuery,
    seen: &mut HashMap<String, bool>,
    text: Option<&str>,
    set: impl Fn(&mut Endpoint, &str) -> Result<()>,
) -> Result<bool> {
    let mut ep = Endpoint::new("", EndpointStatus::NoAgent);
    let Some(text) = text else {
        return Ok(q.matches(&ep));
    };
    if let Some(&verdict) = seen.get(text) {
        return Ok(verdict);
    }
    set(&mut ep, text)?;
    let verdict = q.matches(&ep);
    seen.insert(text.to_owned(), verdict);
    Ok(verdict)
}

/// Rows read per query when fetching a page by seq.
const PAGE_FETCH_BATCH: usize = 500;

impl Store {
    /// The assessment's endpoints matching `query` (see
    /// [`AdvancedQuery::matches`]), by name ignoring case, then in stored
    /// order: at most `limit` (1 to [`limits::MAX_ENDPOINT_PAGE`], enough
    /// for an export in one call) after skipping `offset`, with the number
    /// of all matches.
    pub async fn endpoints(
        &self,
        account: AccountId,
        assessment: AssessmentId,
        query: &AdvancedQuery,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<Endpoint>, u64)> {
        query
            .validate()
            .map_err(|e| StoreError::invalid(e.to_string()))?;
        if limit == 0 || limit > limits::MAX_ENDPOINT_PAGE {
            return Err(StoreError::invalid(format!(
                "limit must be between 1 and {}",
                limits::MAX_ENDPOINT_PAGE
            )));
        }
        let limit = db_count("limit", limit)?;
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.assessment(account, assessment).await?;
        let mut filter = Filter::new(self.backend(), account, assessment);
        match filter.add_query(query)? {
            None => self.endpoints_sql(filter, offset, limit).await,
            Some(rest) => self.endpoints_filtered(filter, rest, offset, limit).await,
        }
    }

    /// A search SQL decides alone: a count and one page.
    async fn endpoints_sql(
        &self,
        filter: Filter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Endpoint>, u64)> {
        let count_sql = format!(
            "SELECT COUNT(*) FROM compliance_endpoints WHERE {}",
            filter.sql
        );
        let total = with_pool!(self, pool => bind_args!(
            sqlx::query_scalar::<_, i64>(&count_sql), &filter.args
        )
        .fetch_one(pool)
        .await)?;
        let total = stored_count(total)?;
        if u64::try_from(offset).unwrap_or(u64::MAX) >= total {
            return Ok((Vec::new(), total));
        }
        let n = filter.args.len();
        let page_sql = format!(
            "SELECT {ENDPOINT_COLS} FROM compliance_endpoints WHERE {} \
             ORDER BY {} LIMIT ${} OFFSET ${}",
            filter.sql,
            filter.order(),
            n + 1,
            n + 2
        );
        let rows = with_pool!(self, pool => bind_args!(
            sqlx::query_as::<_, EndpointRow>(&page_sql), &filter.args
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await)?;
        let page = rows
            .into_iter()
            .map(Endpoint::try_from)
            .collect::<Result<_>>()?;
        Ok((page, total))
    }

    /// A search with criteria Rust decides: walks the rows SQL selected in
    /// batches (narrow columns only), keeps the matches' sort keys, then
    /// reads the page's rows in full.
    async fn endpoints_filtered(
        &self,
        filter: Filter,
        mut rest: RustFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Endpoint>, u64)> {
        let n = filter.args.len();
        let batch_sql = format!(
            "SELECT seq, name_key, name, addrs, os, container FROM compliance_endpoints \
             WHERE {} AND seq > ${} ORDER BY seq LIMIT ${}",
            filter.sql,
            n + 1,
            n + 2
        );
        let mut matches: Vec<(String, String, i64)> = Vec::new();
        let mut after = -1;
        loop {
            let rows = with_pool!(self, pool => bind_args!(
                sqlx::query_as::<_, SearchRow>(&batch_sql), &filter.args
            )
            .bind(after)
            .bind(SEARCH_BATCH)
            .fetch_all(pool)
            .await)?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == SEARCH_BATCH;
            for row in rows {
                if rest.matches(&row)? {
                    matches.push((row.name_key, row.name, row.seq));
                }
            }
            if !full {
                break;
            }
        }
        // `Filter::order`: byte order of the same three keys.
        matches.sort_unstable();
        let total = matches.len() as u64;
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        let page: Vec<i64> = matches.iter().skip(skip).take(take).map(|m| m.2).collect();
        drop(matches);

        let mut by_seq: HashMap<i64, EndpointRow> = HashMap::with_capacity(page.len());
        for seqs in page.chunks(PAGE_FETCH_BATCH) {
            let list: Vec<String> = (0..seqs.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT {ENDPOINT_COLS} FROM compliance_endpoints \
                 WHERE assessment_id = $1 AND account_id = $2 AND seq IN ({})",
                list.join(", ")
            );
            // The assessment and account, then the seqs.
            let mut args: Vec<Arg> = filter.args[..2].to_vec();
            args.extend(seqs.iter().map(|&seq| Arg::Int(seq)));
            let rows = with_pool!(self, pool => bind_args!(
                sqlx::query_as::<_, EndpointRow>(&sql), &args
            )
            .fetch_all(pool)
            .await)?;
            by_seq.extend(rows.into_iter().map(|r| (r.seq, r)));
        }
        let page = page
            .iter()
            .map(|seq| {
                by_seq
                    .remove(seq)
                    .ok_or(StoreError::NotFound)
                    .and_then(Endpoint::try_from)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((page, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_everything_but_the_wildcard() {
        let cases = [
            ("web*", "web%"),
            ("*01", "%01"),
            ("w*b*1", "w%b%1"),
            ("a_b*", "a\\_b%"),
            ("100%*", "100\\%%"),
            ("a\\b*", "a\\\\b%"),
            ("?*", "?%"),
            ("école-*", "école-%"),
        ];
        for (pattern, want) in cases {
            assert_eq!(like_pattern(pattern), want, "{pattern:?}");
        }
    }
}
