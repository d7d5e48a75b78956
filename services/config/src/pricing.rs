//! What tokens cost: prices per model (`[pricing."provider/model"]`,
//! `[providers.NAME.pricing.MODEL]`, and a small table shipped for the
//! models of the default configuration), and the cost of one call's usage.
//! A price that is not known makes the cost unknown, never a guess
//! (docs/automation.md, "Costs").

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::schema::{Config, ProviderKind};

/// USD per million tokens of each kind. An unset kind is unknown: usage of
/// that kind makes the cost unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens that were neither read from nor written to a cache.
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}

/// Token counts of one call, as the usage of every provider is normalised:
/// `input` counts the whole prompt, cached parts included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

/// Picodollars (10⁻¹² USD) per token for a price of `usd_per_million`:
/// exact for prices with up to six decimals.
fn pico_per_token(usd_per_million: f64) -> Option<u64> {
    let pico = (usd_per_million * 1_000_000.0).round();
    (pico.is_finite() && pico >= 0.0 && pico < u64::MAX as f64).then_some(pico as u64)
}

impl Price {
    const fn known(input: f64, output: f64, cache_read: f64, cache_write: Option<f64>) -> Self {
        Self {
            input: Some(input),
            output: Some(output),
            cache_read: Some(cache_read),
            cache_write,
        }
    }

    /// The cost of `tokens` in picodollars; `None` when a kind of token
    /// that was used has no price.
    pub fn cost_pico_usd(&self, tokens: Tokens) -> Option<u64> {
        let uncached = tokens
            .input
            .saturating_sub(tokens.cache_read)
            .saturating_sub(tokens.cache_write);
        let parts = [
            (uncached, self.input),
            (tokens.output, self.output),
            (tokens.cache_read, self.cache_read),
            (tokens.cache_write, self.cache_write),
        ];
        parts.into_iter().try_fold(0_u64, |total, (count, price)| {
            if count == 0 {
                return Some(total);
            }
            let per_token = pico_per_token(price?)?;
            total.checked_add(count.checked_mul(per_token)?)
        })
    }

    /// A problem with a configured price, if any.
    pub fn problem(&self) -> Option<&'static str> {
        let all = [self.input, self.output, self.cache_read, self.cache_write];
        all.into_iter()
            .flatten()
            .any(|p| !p.is_finite() || p < 0.0)
            .then_some("prices are USD per million tokens: finite and not negative")
    }
}

/// Prices shipped for the models of the default configuration and the
/// providers' current flagship models, USD per million tokens as the
/// providers publish them (docs/automation.md lists them with their date).
/// Configured prices always win.
const SHIPPED: [(ProviderKind, &str, Price); 5] = [
    (
        ProviderKind::Openai,
        "gpt-4o",
        Price::known(2.5, 10.0, 1.25, None),
    ),
    (
        ProviderKind::Openai,
        "gpt-4o-mini",
        Price::known(0.15, 0.6, 0.075, None),
    ),
    (
        ProviderKind::Anthropic,
        "claude-sonnet-4-5",
        Price::known(3.0, 15.0, 0.3, Some(3.75)),
    ),
    (
        ProviderKind::Anthropic,
        "claude-haiku-4-5",
        Price::known(1.0, 5.0, 0.1, Some(1.25)),
    ),
    (
        ProviderKind::Gemini,
        "gemini-2.5-flash",
        Price::known(0.3, 2.5, 0.075, None),
    ),
];

/// Every price a deployment knows: what `[pricing]` and the providers'
/// `pricing` tables configure, and the shipped table.
#[derive(Debug, Clone, Default)]
pub struct Pricing {
    global: BTreeMap<String, Price>,
    providers: BTreeMap<String, (ProviderKind, BTreeMap<String, Price>)>,
}

impl Pricing {
    pub fn of(config: &Config) -> Self {
        Self {
            global: config.pricing.clone(),
            providers: config
                .providers
                .iter()
                .map(|(name, p)| (name.clone(), (p.kind_for(name), p.pricing.clone())))
                .collect(),
        }
    }

    /// The price of `model` served by provider `provider`: the provider's
    /// own table, then `[pricing."provider/model"]`, then the shipped table
    /// (for the provider's kind; not for `openai_compatible` servers, whose
    /// models are whatever the server says). `None`: unknown.
    pub fn price(&self, provider: &str, model: &str) -> Option<Price> {
        let configured = self.providers.get(provider);
        if let Some(price) = configured.and_then(|(_, table)| table.get(model)) {
            return Some(*price);
        }
        if let Some(price) = self.global.get(&format!("{provider}/{model}")) {
            return Some(*price);
        }
        let kind = configured.map_or_else(|| ProviderKind::infer(provider), |(kind, _)| *kind);
        SHIPPED
            .iter()
            .find(|(k, m, _)| *k == kind && *m == model)
            .map(|(_, _, price)| *price)
    }

    /// The cost of one call of `model` at `provider`, `None` when unknown.
    pub fn cost_pico_usd(&self, provider: &str, model: &str, tokens: Tokens) -> Option<u64> {
        self.price(provider, model)?.cost_pico_usd(tokens)
    }
}

/// The configured prices, for validation: key → price.
pub(crate) fn configured(config: &Config) -> BTreeMap<String, Price> {
    let mut all: BTreeMap<String, Price> = config
        .pricing
        .iter()
        .map(|(key, price)| (format!("pricing.\"{key}\""), *price))
        .collect();
    for (name, provider) in &config.providers {
        for (model, price) in &provider.pricing {
            all.insert(format!("providers.{name}.pricing.\"{model}\""), *price);
        }
    }
    all
}

/// A cost in picodollars as USD for people: `$0.001234`.
pub fn format_usd(pico: u64) -> String {
    let micros = pico / 1_000_000;
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cost_counts_each_kind_of_token_at_its_price() {
        let price = Price::known(3.0, 15.0, 0.3, Some(3.75));
        let tokens = Tokens {
            input: 1_000 + 200 + 100,
            output: 50,
            cache_read: 200,
            cache_write: 100,
        };
        // 1000 × 3 + 50 × 15 + 200 × 0.3 + 100 × 3.75 (USD per million)
        let expected = 1000 * 3_000_000 + 50 * 15_000_000 + 200 * 300_000 + 100 * 3_750_000;
        assert_eq!(price.cost_pico_usd(tokens), Some(expected));
        assert_eq!(format_usd(expected), "$0.004185");
    }

    #[test]
    fn an_unknown_price_of_a_used_kind_makes_the_cost_unknown() {
        let no_cache_write = Price::known(2.5, 10.0, 1.25, None);
        let written = Tokens {
            input: 100,
            cache_write: 10,
            ..Tokens::default()
        };
        assert_eq!(no_cache_write.cost_pico_usd(written), None);
        let plain = Tokens {
            input: 100,
            output: 1,
            ..Tokens::default()
        };
        assert_eq!(
            no_cache_write.cost_pico_usd(plain),
            Some(100 * 2_500_000 + 10_000_000)
        );
        assert_eq!(Price::default().cost_pico_usd(Tokens::default()), Some(0));
    }

    #[test]
    fn configured_prices_win_over_shipped_ones_and_compatible_servers_have_none() {
        let mut config = Config::default();
        let price_for = |config: &Config, p: &str, m: &str| Pricing::of(config).price(p, m);
        assert_eq!(
            price_for(&config, "openai", "gpt-4o").and_then(|p| p.input),
            Some(2.5)
        );
        config.pricing.insert(
            "openai/gpt-4o".into(),
            Price {
                input: Some(1.0),
                ..Price::default()
            },
        );
        assert_eq!(
            price_for(&config, "openai", "gpt-4o").and_then(|p| p.input),
            Some(1.0)
        );
        assert_eq!(price_for(&config, "ollama", "gpt-4o"), None);
        assert!(
            Price {
                output: Some(-1.0),
                ..Price::default()
            }
            .problem()
            .is_some()
        );
    }
}
