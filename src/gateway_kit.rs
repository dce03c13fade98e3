//! A gateway process of a test's own, and an HTTP client for it.

use std::time::Duration;

use centile_producer::gateway::hash_key;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};

use crate::testkit::{eventually, free_port, Service, TestEnv};

/// A running `centile-producer serve` and its base URL.
#[derive(Debug)]
pub struct TestGateway {
    pub service: Service,
    pub url: String,
    pub http: reqwest::Client,
}

/// An answer: status, `Retry-After` if any, and the body as JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

impl TestGateway {
    /// Starts a gateway for `env` granting each `(key, grant)` where grant
    /// is `tenant` or `tenant@rate`, plus `extra` settings; waits for ready.
    pub async fn start(env: &TestEnv, keys: &[(&str, &str)], extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let grants = keys
            .iter()
            .map(|(key, grant)| format!("{}={grant}", hex::encode(hash_key(key))))
            .collect::<Vec<_>>()
            .join(",");
        let mut vars = vec![
            (
                "CENTILE_GATEWAY_ADDR".to_owned(),
                format!("127.0.0.1:{port}"),
            ),
            ("CENTILE_GATEWAY_KEYS".to_owned(), grants),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let service = env.spawn_with("centile-producer", &["serve"], &vars);
        let gateway = Self {
            service,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        gateway.wait_ready(Duration::from_secs(60)).await;
        gateway
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) {
        self.wait_readyz(200, timeout).await;
    }

    /// Waits until `/readyz` answers `status` (503 once the broker is gone).
    pub async fn wait_readyz(&self, status: u16, timeout: Duration) {
        let what = format!("the gateway's /readyz to answer {status}");
        eventually(&what, timeout, || async {
            let response = self
                .http
                .get(format!("{}/readyz", self.url))
                .send()
                .await
                .ok()?;
            (response.status() == status).then_some(())
        })
        .await;
    }

    /// POSTs `body` to `/v1/events/{kind}` with a content type and key.
    pub async fn post(
        &self,
        kind: &str,
        key: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut map = HeaderMap::new();
        map.insert(CONTENT_TYPE, content_type.parse().expect("content type"));
        if let Some(key) = key {
            map.insert(AUTHORIZATION, format!("Bearer {key}").parse().expect("key"));
        }
        for (name, value) in headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        let response = self
            .http
            .post(format!("{}/v1/events/{kind}", self.url))
            .headers(map)
            .body(body)
            .send()
            .await
            .expect("the gateway answers");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Answer {
            status,
            retry_after,
            body,
        }
    }

    /// POSTs JSON events.
    pub async fn post_json(&self, kind: &str, key: &str, events: &serde_json::Value) -> Answer {
        self.post(kind, Some(key), "application/json", events.to_string(), &[])
            .await
    }
}
