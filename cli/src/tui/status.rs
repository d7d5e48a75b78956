//! What the prompt line and `/usage` report: the model in use, the context
//! window fill, and token totals; plus small formatting helpers.

use openheim_config::Config;
use openheim_proto::common::v1::Usage;

/// The model and token accounting of the current session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub provider: String,
    pub model: String,
    /// Tokens, 0 when unknown.
    pub context_window: u64,
    /// Tokens the conversation occupied at the last model call.
    pub context_used: u64,
    /// Totals of this session since the UI started.
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub llm_calls: u64,
}

impl Status {
    /// The model a session would use, as far as the local configuration
    /// tells (the llm-proxy decides; its `model_selected` events correct
    /// this once a turn runs).
    pub fn for_model(config: &Config, requested: &str) -> Self {
        let (provider, model) = resolve(config, requested);
        let context_window = config
            .providers
            .get(&provider)
            .and_then(|p| p.context_window)
            .unwrap_or(0);
        Self {
            provider,
            model,
            context_window,
            ..Self::default()
        }
    }

    /// Accounts one model call.
    pub fn add(&mut self, usage: &Usage) {
        self.input += usage.input_tokens;
        self.output += usage.output_tokens;
        self.cache_read += usage.cache_read_tokens;
        self.llm_calls += 1;
        self.context_used = usage.input_tokens + usage.cache_read_tokens + usage.output_tokens;
    }

    /// `provider/model`, or `model` when the provider is unknown.
    pub fn model_label(&self) -> String {
        match (self.provider.is_empty(), self.model.is_empty()) {
            (false, false) => format!("{}/{}", self.provider, self.model),
            (true, false) => self.model.clone(),
            (false, true) => self.provider.clone(),
            (true, true) => "(no model)".to_owned(),
        }
    }

    /// Context fill as a percentage, when the window is known.
    pub fn context_percent(&self) -> Option<u64> {
        (self.context_window > 0).then(|| {
            (self.context_used * 100)
                .div_ceil(self.context_window)
                .min(999)
        })
    }

    /// The right side of the prompt: `mock/model · 12% context`.
    pub fn prompt_label(&self) -> String {
        let model = self.model_label();
        match (self.context_percent(), self.context_used) {
            (Some(p), _) => format!("{model} · {p}% context"),
            (None, 0) => model,
            (None, used) => format!("{model} · {} tokens", compact(used)),
        }
    }
}

/// `provider/model` split, or the provider listing `requested`, or the
/// default provider (mirrors llm-proxy's resolution for display).
fn resolve(config: &Config, requested: &str) -> (String, String) {
    let requested = requested.trim();
    let default = config.default_provider.clone().unwrap_or_default();
    let default_model = |provider: &str| {
        config
            .providers
            .get(provider)
            .and_then(|p| {
                p.default_model
                    .clone()
                    .or_else(|| p.models.first().cloned())
            })
            .unwrap_or_default()
    };
    if requested.is_empty() {
        let model = default_model(&default);
        return (default, model);
    }
    if let Some((provider, model)) = requested.split_once('/')
        && config.providers.contains_key(provider)
    {
        let model = if model.is_empty() {
            default_model(provider)
        } else {
            model.to_owned()
        };
        return (provider.to_owned(), model);
    }
    let lists = |name: &str| {
        config.providers.get(name).is_some_and(|p| {
            p.default_model.as_deref() == Some(requested) || p.models.iter().any(|m| m == requested)
        })
    };
    if lists(&default) {
        return (default, requested.to_owned());
    }
    if let Some(name) = config.providers.keys().find(|name| lists(name)) {
        return (name.clone(), requested.to_owned());
    }
    (default, requested.to_owned())
}

/// Every model the configuration names, as `provider/model`, for `/model`
/// and its completion.
pub fn configured_models(config: &Config) -> Vec<String> {
    let mut models = Vec::new();
    for (name, provider) in &config.providers {
        let listed = provider.default_model.iter().chain(provider.models.iter());
        for model in listed {
            let full = format!("{name}/{model}");
            if !models.contains(&full) {
                models.push(full);
            }
        }
    }
    models
}

/// `950`, `12.3k`, `1.2M`.
pub fn compact(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `just now`, `5 min ago`, `3 h ago`, `2 days ago`.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - then_ms).max(0) / 1000;
    match secs {
        0..60 => "just now".to_owned(),
        60..3_600 => format!("{} min ago", secs / 60),
        3_600..86_400 => format!("{} h ago", secs / 3_600),
        86_400..172_800 => "yesterday".to_owned(),
        _ => format!("{} days ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openheim_config::ProviderConfig;

    fn config() -> Config {
        let mut config = Config::default();
        let a = ProviderConfig {
            default_model: Some("small".into()),
            models: vec!["large".into()],
            context_window: Some(1000),
            ..ProviderConfig::default()
        };
        let b = ProviderConfig {
            models: vec!["other".into()],
            ..ProviderConfig::default()
        };
        config.providers.insert("a".into(), a);
        config.providers.insert("b".into(), b);
        config.default_provider = Some("a".into());
        config
    }

    #[test]
    fn models_resolve_like_the_proxy_for_display() {
        let config = config();
        let s = Status::for_model(&config, "");
        assert_eq!(
            (s.model_label(), s.context_window),
            ("a/small".into(), 1000)
        );
        assert_eq!(Status::for_model(&config, "other").model_label(), "b/other");
        assert_eq!(Status::for_model(&config, "b/x").model_label(), "b/x");
        assert_eq!(
            Status::for_model(&config, "unlisted").model_label(),
            "a/unlisted"
        );
        assert_eq!(
            configured_models(&config),
            vec!["a/small", "a/large", "b/other"]
        );
    }

    #[test]
    fn context_fill_follows_the_last_call() {
        let mut s = Status::for_model(&config(), "");
        assert_eq!(s.prompt_label(), "a/small · 0% context");
        s.add(&Usage {
            input_tokens: 100,
            output_tokens: 20,
            cache_read_tokens: 5,
            cache_write_tokens: 0,
        });
        s.add(&Usage {
            input_tokens: 300,
            output_tokens: 40,
            ..Usage::default()
        });
        assert_eq!((s.input, s.output, s.llm_calls), (400, 60, 2));
        assert_eq!(s.context_used, 340);
        assert_eq!(s.prompt_label(), "a/small · 34% context");
        s.context_window = 0;
        assert_eq!(s.prompt_label(), "a/small · 340 tokens");
    }

    #[test]
    fn numbers_and_times_read_naturally() {
        assert_eq!(compact(950), "950");
        assert_eq!(compact(12_345), "12.3k");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(12), "12");
        assert_eq!(ago(0, 30_000), "just now");
        assert_eq!(ago(0, 5 * 60_000), "5 min ago");
        assert_eq!(ago(0, 3 * 3_600_000), "3 h ago");
        assert_eq!(ago(0, 3 * 86_400_000), "3 days ago");
    }
}
