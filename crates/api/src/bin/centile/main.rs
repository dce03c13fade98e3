//! `centile query …`: the API's questions from a terminal, answered by
//! ClickHouse directly (with the shared `CENTILE_CLICKHOUSE_*` settings,
//! running the same queries as the API) or by a running API (`--api`).
//! Prints a table, `--csv` or `--json`.
//!
//! `centile reprice …`: restates computed cost after a price correction
//! ([`reprice`]).

mod reprice;

use std::{path::PathBuf, process::ExitCode};

use centile_api::{
    auth::Scope,
    catalog::Catalog,
    output::{render, Format},
    params::Params,
    queries::{
        ModelsRequest, Queries, RealtimeRequest, Request, TopModelsRequest, TrendsRequest,
        UsageRequest, WindowsRequest,
    },
    server::now,
    ApiError,
};
use centile_runtime::Config;
use centile_sink::prices::Prices;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about = "Centile from the command line.")]
struct Cli {
    /// TOML config file; `CENTILE_*` environment variables override it.
    #[arg(long, global = true, env = "CENTILE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Ask the analytics questions the API answers.
    Query(QueryArgs),
    /// Recompute the price book's cost of a range after a price change or
    /// correction, with an audit record.
    Reprice(reprice::RepriceArgs),
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// Ask a running centile-api instead of ClickHouse.
    #[arg(long, global = true, env = "CENTILE_QUERY_API")]
    api: Option<String>,
    /// The API key for `--api`.
    #[arg(long, global = true, env = "CENTILE_QUERY_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Print CSV.
    #[arg(long, global = true, conflicts_with = "json")]
    csv: bool,
    /// Print the JSON answer.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    question: Question,
}

#[derive(Debug, Subcommand)]
enum Question {
    /// Response-time trends: calls, success rate, p50/p95/p99 per bucket.
    Trends {
        #[arg(long)]
        model_id: Option<String>,
        #[arg(long)]
        tool: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        parameter_hash: Option<String>,
        #[arg(long)]
        tenant_id: Option<String>,
        /// RFC 3339 time, date, or Unix seconds.
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
        /// minute, hour, day or week.
        #[arg(long)]
        granularity: Option<String>,
    },
    /// Usage per model, day or feature.
    Usage {
        /// model, day or feature.
        #[arg(long, default_value = "model")]
        group_by: String,
        #[arg(long)]
        model_id: Option<String>,
        #[arg(long)]
        tenant_id: Option<String>,
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
    },
    /// The most used models over the last days.
    TopModels {
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long)]
        days: Option<u64>,
        #[arg(long)]
        tenant_id: Option<String>,
    },
    /// Every model: the catalog and those seen in events.
    Models,
    /// One model by id.
    Model { id: String },
    /// Search models by id, name, description or provider.
    Search {
        q: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// The last five minutes: events per minute, users, top pairs.
    Realtime {
        #[arg(long)]
        tenant_id: Option<String>,
    },
    /// Completeness per tier.
    Status,
}

impl Question {
    /// The API path and its parameters.
    fn path_and_params(&self) -> (String, Params) {
        let s = |v: &Option<String>| v.clone();
        let n = |v: &Option<u64>| v.map(|n| n.to_string());
        match self {
            Question::Trends {
                model_id,
                tool,
                provider,
                parameter_hash,
                tenant_id,
                start,
                end,
                granularity,
            } => (
                "/v1/performance/trends".into(),
                Params::from_pairs([
                    ("model_id", s(model_id)),
                    ("tool", s(tool)),
                    ("provider", s(provider)),
                    ("parameter_hash", s(parameter_hash)),
                    ("tenant_id", s(tenant_id)),
                    ("start", s(start)),
                    ("end", s(end)),
                    ("granularity", s(granularity)),
                ]),
            ),
            Question::Usage {
                group_by,
                model_id,
                tenant_id,
                start,
                end,
            } => (
                "/v1/usage/stats".into(),
                Params::from_pairs([
                    ("group_by", Some(group_by.clone())),
                    ("model_id", s(model_id)),
                    ("tenant_id", s(tenant_id)),
                    ("start", s(start)),
                    ("end", s(end)),
                ]),
            ),
            Question::TopModels {
                limit,
                days,
                tenant_id,
            } => (
                "/v1/usage/top-models".into(),
                Params::from_pairs([
                    ("limit", n(limit)),
                    ("days", n(days)),
                    ("tenant_id", s(tenant_id)),
                ]),
            ),
            Question::Models => ("/v1/models".into(), Params::default()),
            Question::Model { id } => (format!("/v1/models/{}", encode(id)), Params::default()),
            Question::Search {
                q,
                status,
                provider,
                limit,
            } => (
                "/v1/models/search".into(),
                Params::from_pairs([
                    ("q", s(q)),
                    ("status", s(status)),
                    ("provider", s(provider)),
                    ("limit", n(limit)),
                ]),
            ),
            Question::Realtime { tenant_id } => (
                "/v1/realtime".into(),
                Params::from_pairs([("tenant_id", s(tenant_id))]),
            ),
            Question::Status => ("/v1/windows/status".into(), Params::default()),
        }
    }

    /// The same request the API would build, for an admin.
    fn request(&self, p: &Params) -> Result<Request, ApiError> {
        let admin = Scope::Admin;
        let tenant = || admin.tenant(p.text("tenant_id")?);
        Ok(match self {
            Question::Trends { .. } => {
                Request::Trends(TrendsRequest::parse(p, tenant()?, now(), u64::MAX)?)
            }
            Question::Usage { .. } => Request::Usage(UsageRequest::parse(p, tenant()?, now())?),
            Question::TopModels { .. } => {
                Request::TopModels(TopModelsRequest::parse(p, tenant()?, now())?)
            }
            Question::Models => Request::Models(ModelsRequest::all(None, now())),
            Question::Model { id } => Request::Models(ModelsRequest::one(id.clone(), None, now())),
            Question::Search { .. } => Request::Models(ModelsRequest::search(p, None, now())?),
            Question::Realtime { .. } => {
                Request::Realtime(RealtimeRequest::parse(p, tenant()?, now())?)
            }
            Question::Status => Request::Windows(WindowsRequest::at(now())),
        })
    }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Top::Query(args) => args,
        Top::Reprice(args) => {
            return match reprice::run(&args, cli.config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("centile reprice: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
    };
    let format = if args.json {
        Format::Json
    } else if args.csv {
        Format::Csv
    } else {
        Format::Table
    };
    match ask(&args, cli.config).await {
        Ok(answer) => {
            print!("{}", render(&answer, format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("centile query: {e}");
            ExitCode::from(match e {
                ApiError::BadParameter { .. } => 2,
                _ => 1,
            })
        }
    }
}

async fn ask(args: &QueryArgs, config: Option<PathBuf>) -> Result<serde_json::Value, ApiError> {
    let (path, params) = args.question.path_and_params();
    match &args.api {
        Some(url) => remote(url, args.key.as_deref(), &path, &params).await,
        None => {
            let config = Config::load(config.as_deref())?;
            let catalog = Catalog::load(config.api.catalog_file.as_deref())?;
            let prices = Prices::load(config.pricing.book.as_deref())?;
            let client = centile_sink::client::database_client(&config.clickhouse);
            let queries =
                Queries::new(client, &config.clickhouse.database, catalog).with_prices(prices);
            queries.answer(&args.question.request(&params)?).await
        }
    }
}

async fn remote(
    url: &str,
    key: Option<&str>,
    path: &str,
    params: &Params,
) -> Result<serde_json::Value, ApiError> {
    let remote_error = |reason: String| ApiError::Remote {
        url: url.to_owned(),
        reason,
    };
    let mut request = reqwest::Client::new()
        .get(format!("{}{path}", url.trim_end_matches('/')))
        .query(&params.pairs().collect::<Vec<_>>());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .map_err(|e| remote_error(e.to_string()))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| remote_error(e.to_string()))?;
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"].as_str().unwrap_or("no detail").to_owned();
    Err(match body["parameter"].as_str() {
        Some(parameter) if status.as_u16() == 400 => ApiError::BadParameter {
            parameter: parameter.to_owned(),
            reason: detail
                .strip_prefix(&format!("{parameter}: "))
                .unwrap_or(&detail)
                .to_owned(),
        },
        _ => remote_error(format!("{status}: {detail}")),
    })
}
