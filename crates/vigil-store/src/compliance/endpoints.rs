//! The endpoints an assessment found: stored in bulk, counted by status,
//! and looked up by machine to notice status changes.

use super::{parse_addrs, parse_dn, parse_guid, stored_count};
use crate::ids::{AccountId, AssessmentId};
use crate::model::{parse_stored, to_json};
use crate::validate::limits;
use crate::{with_pool, Backend, Pool, Result, Store, StoreError};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use uuid::Uuid;
use vigil_core::compliance::{Dn, Endpoint, EndpointStatus, StatusCounts};

#[derive(sqlx::FromRow)]
pub(super) struct EndpointRow {
    pub(super) seq: i64,
    name: String,
    name_source: Option<String>,
    dns_name: Option<String>,
    addrs: String,
    status: String,
    os: Option<String>,
    container: Option<String>,
    ad_guid: Option<String>,
    agent_id: Option<String>,
    server_id: Option<String>,
    agent_version: Option<String>,
    identify: Option<String>,
    last_seen: Option<i64>,
    disabled: bool,
}

pub(super) const ENDPOINT_COLS: &str =
    "seq, name, name_source, dns_name, addrs, status, os, container, ad_guid, \
     agent_id, server_id, agent_version, identify, last_seen, disabled";

impl TryFrom<EndpointRow> for Endpoint {
    type Error = StoreError;

    fn try_from(r: EndpointRow) -> Result<Endpoint> {
        Ok(Endpoint {
            name: r.name,
            name_source: r
                .name_source
                .as_deref()
                .map(|s| parse_stored("name source", s))
                .transpose()?,
            dns_name: r.dns_name,
            addrs: parse_addrs(&r.addrs)?,
            status: parse_stored("endpoint status", &r.status)?,
            os: r.os,
            container: r.container.as_deref().map(parse_dn).transpose()?,
            ad_guid: r.ad_guid.as_deref().map(parse_guid).transpose()?,
            agent_id: r.agent_id,
            server_id: r.server_id,
            agent_version: r.agent_version,
            identify: r
                .identify
                .as_deref()
                .map(|c| parse_stored("identify check", c))
                .transpose()?,
            last_seen: r.last_seen,
            disabled: r.disabled,
        })
    }
}

/// What [`Store::previous_statuses`] needs of a row.
#[derive(sqlx::FromRow)]
struct KeyRow {
    name_key: String,
    addrs: String,
    ad_guid: Option<String>,
    status: String,
}

/// The key [`Store::previous_statuses`] files an endpoint under, to find the
/// same machine in another assessment: `guid:` and the AD objectGUID if it
/// has one, else `addr:` and its first address, else `name:` and its name
/// lower-cased (names compare ignoring case).
pub fn endpoint_key(ep: &Endpoint) -> String {
    key_of(
        ep.ad_guid,
        ep.addrs.first().copied(),
        &ep.name.to_lowercase(),
    )
}

fn key_of(guid: Option<Uuid>, first_addr: Option<IpAddr>, name_key: &str) -> String {
    match (guid, first_addr) {
        (Some(guid), _) => format!("guid:{}", guid.hyphenated()),
        (None, Some(addr)) => format!("addr:{addr}"),
        (None, None) => format!("name:{name_key}"),
    }
}

fn check_endpoint(index: usize, ep: &Endpoint) -> Result<()> {
    if ep.name.is_empty() {
        return Err(StoreError::invalid(format!(
            "endpoint {index} has an empty name"
        )));
    }
    let fields = [
        ("name", Some(ep.name.as_str())),
        ("DNS name", ep.dns_name.as_deref()),
        ("OS", ep.os.as_deref()),
        ("container", ep.container.as_ref().map(Dn::as_str)),
        ("agent id", ep.agent_id.as_deref()),
        ("server id", ep.server_id.as_deref()),
        ("agent version", ep.agent_version.as_deref()),
    ];
    for (what, value) in fields {
        let Some(value) = value else { continue };
        if value.len() > limits::MAX_ENDPOINT_FIELD_LEN || value.contains('\0') {
            return Err(StoreError::invalid(format!(
                "the {what} of endpoint {index} ({}) must be at most {} bytes without NUL",
                ep.name.escape_debug(),
                limits::MAX_ENDPOINT_FIELD_LEN
            )));
        }
    }
    Ok(())
}

/// An endpoint ready to bind.
struct NewEndpoint<'a> {
    ep: &'a Endpoint,
    name_key: String,
    dns_key: Option<String>,
    addrs: String,
    addr_lo: Option<String>,
    addr_hi: Option<String>,
    container: Option<&'a str>,
    ad_guid: Option<String>,
}

impl<'a> NewEndpoint<'a> {
    fn new(index: usize, ep: &'a Endpoint) -> Result<Self> {
        check_endpoint(index, ep)?;
        Ok(NewEndpoint {
            ep,
            name_key: ep.name.to_lowercase(),
            dns_key: ep.dns_name.as_deref().map(str::to_lowercase),
            addrs: to_json("endpoint addresses", &ep.addrs)?,
            addr_lo: ep.addrs.iter().map(|&a| addr_key(a)).min(),
            addr_hi: ep.addrs.iter().map(|&a| addr_key(a)).max(),
            container: ep.container.as_ref().map(Dn::as_str),
            ad_guid: ep.ad_guid.map(|g| g.hyphenated().to_string()),
        })
    }
}

/// An address as text that sorts like the address, IPv4 before IPv6.
pub(super) fn addr_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => format!("4{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("6{:032x}", u128::from(v6)),
    }
}

/// Values per row of [`insert_endpoints_sql`].
const VALUES_PER_ROW: usize = 21;
/// Rows per INSERT: 21,000 values, under SQLite's 32,766 and PostgreSQL's 65,535.
const ROWS_PER_INSERT: usize = 1000;
const _: () = assert!(ROWS_PER_INSERT * VALUES_PER_ROW <= 32_766);

/// A multi-row INSERT. SQLite gets anonymous `?` placeholders: it looks a
/// numbered one up by name in a list, which makes binding thousands of
/// them quadratic.
fn insert_endpoints_sql(backend: Backend, rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO compliance_endpoints (assessment_id, account_id, seq, name, name_key, \
         name_source, dns_name, dns_key, addrs, addr_lo, addr_hi, status, os, container, ad_guid, agent_id, \
         server_id, agent_version, identify, last_seen, disabled) VALUES ",
    );
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..VALUES_PER_ROW {
            if col > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${n}");
                }
            }
        }
        sql.push(')');
    }
    sql
}

impl Store {
    /// Adds endpoints to a running assessment, numbered after those stored
    /// before, in one transaction of multi-row INSERTs. Returns `false` (and
    /// stores nothing) if the assessment is no longer running.
    pub async fn put_endpoints(
        &self,
        account: AccountId,
        assessment: AssessmentId,
        endpoints: &[Endpoint],
    ) -> Result<bool> {
        let rows = endpoints
            .iter()
            .enumerate()
            .map(|(i, ep)| NewEndpoint::new(i, ep))
            .collect::<Result<Vec<_>>>()?;
        let full_sql = insert_endpoints_sql(self.backend(), ROWS_PER_INSERT);
        let (assessment_db, account_db) = (assessment.db(), account.db());

        // The no-op UPDATE checks that the assessment runs and, being a
        // write, locks it: a concurrent cancel waits for (or precedes) the
        // whole batch. SQLite takes the write lock up front.
        macro_rules! put {
            ($begin:expr) => {
                async {
                    let mut tx = $begin.await?;
                    let running = sqlx::query(
                        "UPDATE compliance_assessments SET done = done \
                         WHERE id = $1 AND account_id = $2 AND state = 'running'",
                    )
                    .bind(&assessment_db)
                    .bind(&account_db)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if running == 0 {
                        tx.rollback().await?;
                        return Ok::<bool, StoreError>(false);
                    }
                    let first: i64 = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(seq) + 1, 0) FROM compliance_endpoints \
                         WHERE assessment_id = $1",
                    )
                    .bind(&assessment_db)
                    .fetch_one(&mut *tx)
                    .await?;
                    let mut seq = first;
                    for chunk in rows.chunks(ROWS_PER_INSERT) {
                        let partial;
                        let sql = if chunk.len() == ROWS_PER_INSERT {
                            &full_sql
                        } else {
                            partial = insert_endpoints_sql(self.backend(), chunk.len());
                            &partial
                        };
                        let mut q = sqlx::query(sql);
                        for r in chunk {
                            q = q
                                .bind(&assessment_db)
                                .bind(&account_db)
                                .bind(seq)
                                .bind(r.ep.name.as_str())
                                .bind(r.name_key.as_str())
                                .bind(r.ep.name_source.map(|s| s.as_str()))
                                .bind(r.ep.dns_name.as_deref())
                                .bind(r.dns_key.as_deref())
                                .bind(r.addrs.as_str())
                                .bind(r.addr_lo.as_deref())
                                .bind(r.addr_hi.as_deref())
                                .bind(r.ep.status.as_str())
                                .bind(r.ep.os.as_deref())
                                .bind(r.container)
                                .bind(r.ad_guid.as_deref())
                                .bind(r.ep.agent_id.as_deref())
                                .bind(r.ep.server_id.as_deref())
                                .bind(r.ep.agent_version.as_deref())
                                .bind(r.ep.identify.map(|c| c.as_str()))
                                .bind(r.ep.last_seen)
                                .bind(r.ep.disabled);
                            seq += 1;
                        }
                        q.execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(true)
                }
                .await
            };
        }
        let stored = match &self.inner.pool {
            Pool::Sqlite(pool) => put!(pool.begin_with("BEGIN IMMEDIATE"))?,
            Pool::Postgres(pool) => put!(pool.begin())?,
        };
        if !stored {
            self.assessment(account, assessment).await?;
        }
        Ok(stored)
    }

    /// How many endpoints of the assessment have each status.
    pub async fn endpoint_counts(
        &self,
        account: AccountId,
        assessment: AssessmentId,
    ) -> Result<StatusCounts> {
        // Joined from the assessment: no row at all means not the account's.
        // Counting an indexed column lets the (assessment_id, status) index
        // answer alone.
        let rows = with_pool!(self, pool => sqlx::query_as::<_, (Option<String>, i64)>(
            "SELECT e.status, COUNT(e.assessment_id) FROM compliance_assessments a \
             LEFT JOIN compliance_endpoints e ON e.assessment_id = a.id \
             WHERE a.id = $1 AND a.account_id = $2 \
             GROUP BY e.status",
        )
        .bind(assessment.db())
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        if rows.is_empty() {
            return Err(StoreError::NotFound);
        }
        let mut counts = StatusCounts::default();
        for (status, n) in rows {
            let Some(status) = status else { continue };
            let n = stored_count(n)?;
            let slot = match parse_stored("endpoint status", &status)? {
                EndpointStatus::ManagedHere => &mut counts.managed_here,
                EndpointStatus::ManagedElsewhere => &mut counts.managed_elsewhere,
                EndpointStatus::NoAgent => &mut counts.no_agent,
                EndpointStatus::Unreachable => &mut counts.unreachable,
                EndpointStatus::UnresolvedAd => &mut counts.unresolved_ad,
                EndpointStatus::NoHost => &mut counts.no_host,
            };
            *slot = n;
        }
        Ok(counts)
    }

    /// When each address of an earlier assessment last answered, as far as
    /// it knows (the endpoints' last seen, of AD computers only when they
    /// answered: theirs may be a logon time): what
    /// `vigil_core::compliance::settle_silent_addresses` needs.
    pub async fn addresses_seen(
        &self,
        account: AccountId,
        previous_assessment: AssessmentId,
    ) -> Result<HashMap<IpAddr, i64>> {
        self.assessment(account, previous_assessment).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, (String, i64)>(
            "SELECT addrs, last_seen FROM compliance_endpoints \
             WHERE assessment_id = $1 AND account_id = $2 AND last_seen IS NOT NULL \
               AND (ad_guid IS NULL OR status IN ('managed_here', 'managed_elsewhere', 'no_agent'))",
        )
        .bind(previous_assessment.db())
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        let mut out: HashMap<IpAddr, i64> = HashMap::with_capacity(rows.len());
        for (addrs, seen) in rows {
            for addr in parse_addrs(&addrs)? {
                let at = out.entry(addr).or_insert(seen);
                *at = (*at).max(seen);
            }
        }
        Ok(out)
    }

    /// The status of each endpoint of an earlier assessment, by
    /// [`endpoint_key`], to notice endpoints whose status changed. If two
    /// endpoints share a key, the one stored last wins.
    pub async fn previous_statuses(
        &self,
        account: AccountId,
        previous_assessment: AssessmentId,
    ) -> Result<HashMap<String, EndpointStatus>> {
        self.assessment(account, previous_assessment).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, KeyRow>(
            "SELECT name_key, addrs, ad_guid, status FROM compliance_endpoints \
             WHERE assessment_id = $1 AND account_id = $2 ORDER BY seq",
        )
        .bind(previous_assessment.db())
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let guid = r.ad_guid.as_deref().map(parse_guid).transpose()?;
            let first_addr = if guid.is_none() {
                parse_addrs(&r.addrs)?.first().copied()
            } else {
                None
            };
            let status = parse_stored("endpoint status", &r.status)?;
            out.insert(key_of(guid, first_addr, &r.name_key), status);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keys_sort_like_addresses() {
        let addrs: Vec<IpAddr> = [
            "0.0.0.0",
            "9.255.255.255",
            "10.0.0.1",
            "10.0.0.10",
            "10.0.1.0",
            "255.255.255.255",
            "::",
            "::ffff:0.0.0.1",
            "2001:db8::1",
            "2001:db8::a",
            "ffff::",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let keys: Vec<String> = addrs.iter().map(|&a| addr_key(a)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(keys[2], "40a000001");
        assert!(keys.iter().all(|k| k.len() == 9 || k.len() == 33));
    }

    #[test]
    fn insert_statements_have_a_placeholder_per_value() {
        let sqlite = insert_endpoints_sql(Backend::Sqlite, 3);
        assert_eq!(sqlite.matches('?').count(), 3 * VALUES_PER_ROW);
        assert!(!sqlite.contains('$'));
        let pg = insert_endpoints_sql(Backend::Postgres, 2);
        assert!(pg.contains("($1, $2, "));
        assert!(pg.ends_with(&format!("${})", 2 * VALUES_PER_ROW)));
        let columns = sqlite[..sqlite.find(" VALUES").unwrap()]
            .matches(',')
            .count()
            + 1;
        assert_eq!(columns, VALUES_PER_ROW);
    }
}
