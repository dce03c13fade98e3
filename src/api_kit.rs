//! A `centile-api` process of a test's own, and an HTTP client for it.

use std::time::Duration;

use centile_runtime::secret::hash_key;
use reqwest::header::{HeaderMap, AUTHORIZATION};

use crate::testkit::{eventually, free_port, Service, TestEnv};

/// A running `centile-api` and its base URL.
#[derive(Debug)]
pub struct TestApi {
    pub service: Service,
    pub url: String,
    pub http: reqwest::Client,
}

/// An answer: status, headers and the body (JSON when it parses).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: serde_json::Value,
}

impl TestApi {
    /// Starts an API for `env` granting each `(key, role)` (`admin` or
    /// `tenant:<id>`), plus `extra` settings; waits until it is ready.
    pub async fn start(env: &TestEnv, keys: &[(&str, &str)], extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let grants = keys
            .iter()
            .map(|(key, role)| format!("{}={role}", hex::encode(hash_key(key))))
            .collect::<Vec<_>>()
            .join(",");
        let mut vars = vec![
            ("CENTILE_API_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("CENTILE_API_KEYS".to_owned(), grants),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let service = env.spawn_with("centile-api", &[], &vars);
        let api = Self {
            service,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        eventually(
            "the api's /readyz to answer 200",
            Duration::from_secs(60),
            || async {
                let response = api
                    .http
                    .get(format!("{}/readyz", api.url))
                    .send()
                    .await
                    .ok()?;
                (response.status() == 200).then_some(())
            },
        )
        .await;
        api
    }

    /// GETs `path_and_query` with `key` (if any) and `extra` headers.
    pub async fn get_with(
        &self,
        path_and_query: &str,
        key: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.get(format!("{}{path_and_query}", self.url));
        if let Some(key) = key {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the api answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, path_and_query: &str, key: &str) -> Reply {
        self.get_with(path_and_query, Some(key), &[]).await
    }
}
