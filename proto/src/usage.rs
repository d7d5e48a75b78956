//! Adding up token usage: the one rule for totals per turn and per session.
//! A total's cost is known only while every part's cost is known.

use crate::common::v1::Usage;

impl Usage {
    /// The total of no calls at all: nothing used, nothing spent.
    pub fn zero() -> Self {
        Self {
            cost_pico_usd: Some(0),
            ..Self::default()
        }
    }

    /// Adds `other` to this total; the cost becomes unknown for good once a
    /// part's cost is unknown.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cost_pico_usd = match (self.cost_pico_usd, other.cost_pico_usd) {
            (Some(total), Some(part)) => total.checked_add(part),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_part_makes_the_total_cost_unknown() {
        let priced = |cost| Usage {
            input_tokens: 10,
            output_tokens: 2,
            reasoning_tokens: 1,
            cost_pico_usd: cost,
            ..Usage::default()
        };
        let mut total = Usage::zero();
        total.add(&priced(Some(5)));
        total.add(&priced(Some(7)));
        assert_eq!((total.input_tokens, total.reasoning_tokens), (20, 2));
        assert_eq!(total.cost_pico_usd, Some(12));
        total.add(&priced(None));
        total.add(&priced(Some(1)));
        assert_eq!(total.cost_pico_usd, None);
        assert_eq!(
            Usage::default().cost_pico_usd,
            None,
            "no report is no price"
        );
    }
}
