//! Exposure trends ([`vigil_core::trend`]) of an account or one agent, for
//! the REST API (`GET /trends`, `GET /agents/{id}/trends`) and the console
//! (the dashboard's and an agent page's chart).

use crate::app::App;
use vigil_core::trend::{series, TrendPoint, TrendWindow};
use vigil_store::{AccountId, AgentId, StoreError, UnixTime};

/// The days of `window` up to `now`, of one agent or (`None`) the account.
pub(crate) async fn trend(
    app: &App,
    account: AccountId,
    agent: Option<AgentId>,
    window: TrendWindow,
    now: UnixTime,
) -> Result<Vec<TrendPoint>, StoreError> {
    let from = window.start(now);
    let open = app.store.open_ports_by_day(account, agent, from).await?;
    let spans = app.store.unauthorized_spans(account, agent, from).await?;
    Ok(series(window, now, &open, &spans))
}
