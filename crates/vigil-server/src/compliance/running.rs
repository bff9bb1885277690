//! The assessment each account has running, so that starting another
//! cancels it at once. Held by [`crate::app::App`]; knows nothing of it.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;
use vigil_store::{AccountId, AssessmentId};

/// The running assessment of each account, to cancel it at once.
#[derive(Default)]
pub(crate) struct Running {
    tokens: Mutex<HashMap<AccountId, (AssessmentId, CancellationToken)>>,
}

impl Running {
    pub(super) fn replace(&self, account: AccountId, id: AssessmentId) -> CancellationToken {
        let token = CancellationToken::new();
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = map.insert(account, (id, token.clone())) {
            old.cancel();
        }
        token
    }

    pub(super) fn finished(&self, account: AccountId, id: AssessmentId) {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&account).is_some_and(|(running, _)| *running == id) {
            map.remove(&account);
        }
    }
}
