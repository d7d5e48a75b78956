//! What the prompt line and `/usage` report: the model in use, the context
//! window fill, and token totals; plus small formatting helpers.

use openheim_config::pricing::format_usd;
use openheim_proto::common::v1::Usage;
use openheim_proto::llm_proxy::v1::ProviderModels;

/// The model and token accounting of the current session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) provider: String,
    pub(crate) model: String,
    /// Tokens, 0 when unknown.
    pub(crate) context_window: u64,
    /// Tokens the conversation occupied at the last model call.
    pub(crate) context_used: u64,
    /// Totals of this session (as stored, then each model call of the UI's
    /// turns added).
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) cache_read: u64,
    pub(crate) cache_write: u64,
    pub(crate) reasoning: u64,
    pub(crate) llm_calls: u64,
    /// The session's cost in picodollars; `None` = unknown (a price is
    /// missing, or nothing is known yet).
    pub(crate) cost_pico_usd: Option<u64>,
}

impl Status {
    /// A session on `model` of `provider` (llm-proxy's resolution; its
    /// `model_selected` events keep it current once turns run).
    pub(crate) fn new(provider: String, model: String, context_window: u64) -> Self {
        Self {
            provider,
            model,
            context_window,
            cost_pico_usd: Some(0),
            ..Self::default()
        }
    }

    /// Takes the session's stored totals (when a turn starts or a session
    /// is resumed), so `/usage` covers the whole session.
    pub(crate) fn set_session_totals(&mut self, total: &Usage, llm_calls: u64) {
        self.input = total.input_tokens;
        self.output = total.output_tokens;
        self.cache_read = total.cache_read_tokens;
        self.cache_write = total.cache_write_tokens;
        self.reasoning = total.reasoning_tokens;
        self.cost_pico_usd = total.cost_pico_usd;
        self.llm_calls = llm_calls;
    }

    /// The session's totals as one `Usage`.
    pub(crate) fn totals(&self) -> Usage {
        Usage {
            input_tokens: self.input,
            output_tokens: self.output,
            cache_read_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            reasoning_tokens: self.reasoning,
            cost_pico_usd: self.cost_pico_usd,
        }
    }

    /// Accounts one model call.
    pub(crate) fn add(&mut self, usage: &Usage) {
        let mut total = self.totals();
        total.add(usage);
        let calls = self.llm_calls + 1;
        self.set_session_totals(&total, calls);
        self.context_used = usage.input_tokens + usage.cache_read_tokens + usage.output_tokens;
    }

    /// `provider/model`, or `model` when the provider is unknown.
    pub(crate) fn model_label(&self) -> String {
        match (self.provider.is_empty(), self.model.is_empty()) {
            (false, false) => format!("{}/{}", self.provider, self.model),
            (true, false) => self.model.clone(),
            (false, true) => self.provider.clone(),
            (true, true) => "(no model)".to_owned(),
        }
    }

    /// Context fill as a percentage, when the window is known.
    pub(crate) fn context_percent(&self) -> Option<u64> {
        (self.context_window > 0).then(|| {
            (self.context_used * 100)
                .div_ceil(self.context_window)
                .min(999)
        })
    }

    /// The right side of the prompt: `mock/model · 12% context · $0.012300`
    /// (the cost once the session has spent anything and it is known).
    pub(crate) fn prompt_label(&self) -> String {
        let model = self.model_label();
        let mut label = match (self.context_percent(), self.context_used) {
            (Some(p), _) => format!("{model} · {p}% context"),
            (None, 0) => model,
            (None, used) => format!("{model} · {} tokens", compact(used)),
        };
        if let Some(pico) = self.cost_pico_usd.filter(|c| *c > 0) {
            label.push_str(" · ");
            label.push_str(&format_usd(pico));
        }
        label
    }
}

/// Every model llm-proxy lists, as `provider/model`, for `/model` and its
/// completion.
pub(crate) fn model_names(providers: &[ProviderModels]) -> Vec<String> {
    let mut names = Vec::new();
    for provider in providers {
        let listed = std::iter::once(&provider.default_model).chain(&provider.models);
        for model in listed.filter(|m| !m.is_empty()) {
            let full = format!("{}/{model}", provider.provider);
            if !names.contains(&full) {
                names.push(full);
            }
        }
    }
    names
}

/// `950`, `12.3k`, `1.2M`.
pub(crate) fn compact(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// `1,234,567`.
pub(crate) fn grouped(n: u64) -> String {
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
pub(crate) fn ago(then_ms: i64, now_ms: i64) -> String {
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

    #[test]
    fn listed_models_are_named_with_their_provider() {
        let providers = vec![
            ProviderModels {
                provider: "a".into(),
                default_model: "small".into(),
                models: vec!["large".into(), "small".into()],
                ..ProviderModels::default()
            },
            ProviderModels {
                provider: "b".into(),
                models: vec!["other".into()],
                ..ProviderModels::default()
            },
        ];
        assert_eq!(
            model_names(&providers),
            vec!["a/small", "a/large", "b/other"]
        );
    }

    #[test]
    fn context_fill_follows_the_last_call() {
        let mut s = Status::new("a".into(), "small".into(), 1000);
        assert_eq!(s.prompt_label(), "a/small · 0% context");
        s.add(&Usage {
            input_tokens: 100,
            output_tokens: 20,
            cache_read_tokens: 5,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_pico_usd: None,
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
        assert_eq!(
            s.cost_pico_usd, None,
            "an unpriced call makes the cost unknown"
        );
    }

    #[test]
    fn the_session_cost_shows_on_the_prompt_line() {
        let mut s = Status::new("a".into(), "small".into(), 1000);
        s.set_session_totals(
            &Usage {
                input_tokens: 50,
                cost_pico_usd: Some(1_000_000_000),
                ..Usage::default()
            },
            1,
        );
        s.add(&Usage {
            input_tokens: 100,
            output_tokens: 20,
            cost_pico_usd: Some(3_600_000_000),
            ..Usage::default()
        });
        assert_eq!((s.input, s.llm_calls), (150, 2));
        assert_eq!(s.cost_pico_usd, Some(4_600_000_000));
        assert_eq!(s.prompt_label(), "a/small · 12% context · $0.004600");
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
