//! The REST API calls the set-up needs: log in, create enrollment tokens,
//! set security policies. Plain HTTP on loopback.

use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::time::{Duration, Instant};
use vigil_core::SecurityPolicy;
use vigil_proto::api::{EnrollmentView, LoginRequest, LoginResponse, NewEnrollment};

pub struct Rest {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Rest {
    pub fn new(base: String) -> Result<Rest> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Rest {
            http,
            base,
            token: None,
        })
    }

    /// Waits until `/healthz` answers, at most `limit`; `alive` fails if the
    /// server has exited meanwhile.
    pub async fn wait_healthy(
        &self,
        limit: Duration,
        mut alive: impl FnMut() -> Result<()>,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            alive()?;
            let ok = self
                .http
                .get(format!("{}/healthz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the server did not answer /healthz within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn login(&mut self, email: &str, password: &str) -> Result<()> {
        let req = LoginRequest {
            email: email.into(),
            password: password.into(),
            token_name: Some("bench".into()),
            totp: None,
        };
        let resp: LoginResponse = self.send(reqwest::Method::POST, "/login", &req).await?;
        self.token = Some(resp.token);
        Ok(())
    }

    pub async fn create_enrollment(&self, name: &str) -> Result<EnrollmentView> {
        let req = NewEnrollment {
            name: name.into(),
            plan: vigil_core::Plan::Extended,
            ttl_minutes: Some(120),
        };
        self.send(reqwest::Method::POST, "/enrollments", &req).await
    }

    pub async fn put_policy(&self, agent_id: &str, policy: &SecurityPolicy) -> Result<()> {
        let path = format!("/agents/{agent_id}/policy");
        let _: serde_json::Value = self.send(reqwest::Method::PUT, &path, policy).await?;
        Ok(())
    }

    /// An account-wide maintenance window open from a minute ago for a day.
    pub async fn open_maintenance(&self) -> Result<()> {
        let at = |minutes: i64| {
            (chrono::Utc::now() + chrono::Duration::minutes(minutes))
                .format("%Y-%m-%dT%H:%M")
                .to_string()
        };
        let window = vigil_core::maintenance::Window {
            name: "bench".into(),
            schedule: vigil_core::maintenance::Schedule::Once {
                start: at(-1),
                end: at(24 * 60),
                time_zone: "UTC".into(),
            },
            scope: vigil_core::maintenance::Scope::Account,
            notify_start_end: false,
        };
        let _: serde_json::Value = self
            .send(reqwest::Method::POST, "/maintenance", &window)
            .await?;
        Ok(())
    }

    /// `GET` below `/api/v1`; the JSON answer.
    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        let url = format!("{}{}{path}", self.base, vigil_proto::api::API_PREFIX);
        let mut req = self.http.get(&url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("GET {url}: {status}: {text}");
        }
        resp.json()
            .await
            .with_context(|| format!("GET {url}: unexpected answer"))
    }

    /// `PUT` of `body` below `/api/v1`; the JSON answer.
    pub async fn put(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        self.send(reqwest::Method::PUT, path, body).await
    }

    /// `POST` of `body` below `/api/v1`; the JSON answer.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        self.send(reqwest::Method::POST, path, body).await
    }

    /// `GET` of a page outside the API (a console page, `/metrics`) as the
    /// logged-in user (an API token is also a console session); the body.
    pub async fn page(&self, path: &str) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url);
        if let Some(token) = &self.token {
            req = req.header(reqwest::header::COOKIE, format!("vigil_session={token}"));
        }
        let resp = req.send().await.with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("GET {url}: {status}: {text}");
        }
        Ok(text)
    }

    async fn send<B: Serialize, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<R> {
        let url = format!("{}{}{path}", self.base, vigil_proto::api::API_PREFIX);
        let mut req = self.http.request(method.clone(), &url).json(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("{method} {url}: {status}: {text}");
        }
        resp.json()
            .await
            .with_context(|| format!("{method} {url}: unexpected answer"))
    }
}
