//! Seeded, realistic traffic: log-normal latency per model and tool with
//! different medians, per-model error rates, log-normal token counts, and
//! exact per-token prices. Tenants and models are Zipf-weighted, so a few
//! dominate as in real fleets. Pure: the same seed gives the same events.

use std::collections::BTreeMap;

use centile_events::{Event, LatencyEvent, UsageEvent};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

/// A model's behaviour and price.
#[derive(Debug, Clone)]
pub struct ModelProfile {
    pub model_id: &'static str,
    pub provider: &'static str,
    pub median_ms: f64,
    /// Log-space standard deviation of latency.
    pub sigma: f64,
    pub error_rate: f64,
    /// Price per token in billionths of a dollar.
    pub input_nanos_per_token: i64,
    pub output_nanos_per_token: i64,
    /// Whether part of its output is reasoning.
    pub reasoning: bool,
}

pub const MODELS: [ModelProfile; 8] = [
    ModelProfile {
        model_id: "gpt-4o",
        provider: "openai",
        median_ms: 900.0,
        sigma: 0.45,
        error_rate: 0.015,
        input_nanos_per_token: 2_500,
        output_nanos_per_token: 10_000,
        reasoning: false,
    },
    ModelProfile {
        model_id: "claude-sonnet-4",
        provider: "anthropic",
        median_ms: 1_100.0,
        sigma: 0.5,
        error_rate: 0.012,
        input_nanos_per_token: 3_000,
        output_nanos_per_token: 15_000,
        reasoning: true,
    },
    ModelProfile {
        model_id: "gemini-2.5-flash",
        provider: "google",
        median_ms: 380.0,
        sigma: 0.4,
        error_rate: 0.015,
        input_nanos_per_token: 300,
        output_nanos_per_token: 2_500,
        reasoning: true,
    },
    ModelProfile {
        model_id: "gpt-4o-mini",
        provider: "openai",
        median_ms: 450.0,
        sigma: 0.4,
        error_rate: 0.01,
        input_nanos_per_token: 150,
        output_nanos_per_token: 600,
        reasoning: false,
    },
    ModelProfile {
        model_id: "claude-haiku-4",
        provider: "anthropic",
        median_ms: 500.0,
        sigma: 0.35,
        error_rate: 0.008,
        input_nanos_per_token: 800,
        output_nanos_per_token: 4_000,
        reasoning: false,
    },
    ModelProfile {
        model_id: "gemini-2.5-pro",
        provider: "google",
        median_ms: 1_300.0,
        sigma: 0.55,
        error_rate: 0.02,
        input_nanos_per_token: 1_250,
        output_nanos_per_token: 10_000,
        reasoning: true,
    },
    ModelProfile {
        model_id: "llama-3.3-70b",
        provider: "together",
        median_ms: 700.0,
        sigma: 0.6,
        error_rate: 0.03,
        input_nanos_per_token: 880,
        output_nanos_per_token: 880,
        reasoning: false,
    },
    ModelProfile {
        model_id: "mistral-large",
        provider: "mistral",
        median_ms: 800.0,
        sigma: 0.5,
        error_rate: 0.02,
        input_nanos_per_token: 2_000,
        output_nanos_per_token: 6_000,
        reasoning: false,
    },
];

/// Tools and how much each slows a call down.
pub const TOOLS: [(&str, f64); 5] = [
    ("chat", 1.0),
    ("web_search", 2.2),
    ("code_interpreter", 1.6),
    ("retrieval", 1.3),
    ("image_generation", 3.5),
];

const FEATURES: [&str; 4] = ["chat", "image", "comparison", "auto-router"];
const ERRORS: [&str; 4] = ["timeout", "rate_limited", "server_error", "content_filter"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub tenants: usize,
    pub models: usize,
    pub tools: usize,
    /// Distinct performance-parameter combinations in use.
    pub parameter_sets: usize,
    /// Usage events per latency event (0.2 means one usage event per five calls).
    pub usage_ratio: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            tenants: 5,
            models: 6,
            tools: 3,
            parameter_sets: 4,
            usage_ratio: 0.2,
        }
    }
}

#[derive(Debug, Clone)]
struct ParameterSet {
    parameters: BTreeMap<String, String>,
    slowdown: f64,
}

/// Produces events one at a time for the times it is given.
#[derive(Debug)]
pub struct Generator {
    config: GeneratorConfig,
    rng: StdRng,
    tenants: Vec<String>,
    tenant_weights: Vec<f64>,
    model_weights: Vec<f64>,
    parameter_sets: Vec<ParameterSet>,
    input_tokens: LogNormal<f64>,
    output_tokens: LogNormal<f64>,
    sequence: u64,
}

fn zipf_weights(n: usize) -> Vec<f64> {
    (1..=n).map(|rank| 1.0 / rank as f64).collect()
}

fn pick(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if target < *w {
            return i;
        }
        target -= w;
    }
    weights.len() - 1
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let tenants: Vec<String> = (1..=config.tenants.max(1))
            .map(|i| format!("tenant-{i:02}"))
            .collect();
        let parameter_sets = (0..config.parameter_sets.max(1))
            .map(|i| {
                let thinking = i % 2 == 1;
                let streaming = i % 3 != 2;
                let temperature = ["0.0", "0.7", "1.0"][i % 3];
                let max_tokens = ["1024", "4096", "256"][(i / 2) % 3];
                let mut parameters = BTreeMap::from([
                    ("thinking_mode".to_owned(), thinking.to_string()),
                    ("streaming".to_owned(), streaming.to_string()),
                    ("temperature".to_owned(), temperature.to_owned()),
                    ("max_tokens".to_owned(), max_tokens.to_owned()),
                ]);
                if i % 4 == 3 {
                    parameters.insert("use_websearch".into(), "true".into());
                }
                let slowdown = if thinking { 2.0 } else { 1.0 } * if streaming { 0.9 } else { 1.0 };
                ParameterSet {
                    parameters,
                    slowdown,
                }
            })
            .collect();
        let _ = rng.random::<u64>();
        Self {
            tenant_weights: zipf_weights(tenants.len()),
            model_weights: zipf_weights(config.models.clamp(1, MODELS.len())),
            tenants,
            parameter_sets,
            input_tokens: LogNormal::new(800f64.ln(), 0.8).expect("valid log-normal"),
            output_tokens: LogNormal::new(300f64.ln(), 0.7).expect("valid log-normal"),
            sequence: 0,
            rng,
            config,
        }
    }

    fn event_id(&mut self, kind: &str) -> String {
        self.sequence += 1;
        format!("{kind}-{:016x}-{:010}", self.config.seed, self.sequence)
    }

    /// One latency event at `occurred_at`, and with probability
    /// `usage_ratio` a usage event for the same call.
    pub fn next(&mut self, occurred_at: i64) -> (LatencyEvent, Option<UsageEvent>) {
        let tenant = self.tenants[pick(&mut self.rng, &self.tenant_weights)].clone();
        let model = &MODELS[pick(&mut self.rng, &self.model_weights)];
        let (tool, tool_slowdown) = TOOLS[self
            .rng
            .random_range(0..self.config.tools.clamp(1, TOOLS.len()))];
        let set_weights = zipf_weights(self.parameter_sets.len());
        let set = self.parameter_sets[pick(&mut self.rng, &set_weights)].clone();

        let median = model.median_ms * tool_slowdown * set.slowdown;
        let latency = LogNormal::new(median.ln(), model.sigma).expect("valid log-normal");
        let response_time_ms = (latency.sample(&mut self.rng) * 1000.0).round() / 1000.0;
        let success = !self.rng.random_bool(model.error_rate);
        let input_tokens = self.input_tokens.sample(&mut self.rng).round() as i64;
        let output_tokens = if success {
            self.output_tokens.sample(&mut self.rng).round() as i64
        } else {
            0
        };
        let mut parameters = set.parameters;
        parameters.insert("client_version".into(), "1.4.2".into());

        let latency_event = LatencyEvent {
            event_id: self.event_id("lat"),
            occurred_at,
            tenant_id: tenant.clone(),
            model_id: model.model_id.into(),
            provider: model.provider.into(),
            tool: tool.into(),
            parameters,
            response_time_ms,
            success,
            error_type: (!success)
                .then(|| ERRORS[self.rng.random_range(0..ERRORS.len())].to_owned()),
            input_tokens: Some(input_tokens),
            output_tokens: Some(output_tokens),
            session_id: None,
        };
        let usage = self
            .rng
            .random_bool(self.config.usage_ratio.clamp(0.0, 1.0))
            .then(|| {
                let user = self.rng.random_range(1..=50);
                // Token classes as providers report them: about half the
                // calls hit the prompt cache, some fill it, and reasoning
                // models think; each is part of the input or output count.
                let cache_read = self
                    .rng
                    .random_bool(0.5)
                    .then(|| self.rng.random_range(0..=input_tokens * 3 / 4));
                let cache_write = self.rng.random_bool(0.1).then_some(input_tokens / 4);
                let reasoning = (model.reasoning && output_tokens > 0)
                    .then(|| self.rng.random_range(0..=output_tokens));
                UsageEvent {
                    event_id: self.event_id("use"),
                    occurred_at,
                    tenant_id: tenant,
                    user_id: Some(format!("user-{user:03}")),
                    model_id: model.model_id.into(),
                    provider: model.provider.into(),
                    feature: FEATURES[pick(&mut self.rng, &zipf_weights(FEATURES.len()))].into(),
                    input_tokens,
                    output_tokens,
                    cost_usd_nanos: Some(
                        input_tokens * model.input_nanos_per_token
                            + output_tokens * model.output_nanos_per_token,
                    ),
                    cache_read_input_tokens: cache_read,
                    cache_write_input_tokens: cache_write,
                    reasoning_output_tokens: reasoning,
                    session_id: None,
                }
            });
        (latency_event, usage)
    }

    /// Convenience: the events of [`Generator::next`] as a list.
    pub fn next_events(&mut self, occurred_at: i64) -> Vec<Event> {
        let (latency, usage) = self.next(occurred_at);
        std::iter::once(Event::Latency(latency))
            .chain(usage.map(Event::Usage))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events() {
        let mut a = Generator::new(GeneratorConfig::default());
        let mut b = Generator::new(GeneratorConfig::default());
        for t in 0..500 {
            assert_eq!(a.next_events(t), b.next_events(t));
        }
    }

    #[test]
    fn distributions_are_realistic() {
        let mut generator = Generator::new(GeneratorConfig {
            usage_ratio: 0.5,
            ..GeneratorConfig::default()
        });
        let mut by_model: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let (mut errors, mut usage, n) = (0, 0, 20_000);
        for t in 0..n {
            let (latency, spend) = generator.next(t);
            assert!(latency.response_time_ms > 0.0);
            errors += usize::from(!latency.success);
            if let Some(spend) = spend {
                usage += 1;
                assert!(spend.cost_usd_nanos.is_some_and(|c| c >= 0));
                assert_eq!(spend.input_tokens, latency.input_tokens.unwrap());
            }
            by_model
                .entry(latency.model_id)
                .or_default()
                .push(latency.response_time_ms);
        }
        let error_rate = errors as f64 / n as f64;
        assert!((0.005..0.05).contains(&error_rate), "{error_rate}");
        assert!((0.45..0.55).contains(&(usage as f64 / n as f64)));
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let fast = median(by_model.get_mut("gemini-2.5-flash").unwrap());
        let slow = median(by_model.get_mut("claude-sonnet-4").unwrap());
        assert!(
            slow > 2.0 * fast,
            "medians differ by model: {slow} vs {fast}"
        );
        let counts: Vec<usize> = MODELS[..6]
            .iter()
            .map(|m| by_model[m.model_id].len())
            .collect();
        assert!(counts[0] > counts[5] * 3, "zipf weights: {counts:?}");
    }
}
