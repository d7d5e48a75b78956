//! The models a client can pick for a session: the `model` session config
//! option (ACP `session/set_config_option`) and `session/set_model`.

use agent_client_protocol::v1::schema::{
    SessionConfigOption, SessionConfigOptionCategory, SessionConfigSelectOption,
};

/// Id of the config option that selects the model.
pub const MODEL_OPTION: &str = "model";
/// Value of the model option meaning "the deployment's default model".
pub const DEFAULT_MODEL: &str = "default";

/// What can be chosen, built from the `providers` of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelCatalog {
    /// `provider/model` ids, in configuration order.
    pub models: Vec<String>,
    /// The model used when a session names none, for the option's label.
    pub default_label: Option<String>,
}

impl ModelCatalog {
    /// Every provider's default model and listed models, as `provider/model`.
    pub fn from_config(config: &openheim_config::Config) -> Self {
        let mut models = Vec::new();
        for (name, provider) in &config.providers {
            let listed = provider.default_model.iter().chain(&provider.models);
            for model in listed {
                let id = format!("{name}/{model}");
                if !models.contains(&id) {
                    models.push(id);
                }
            }
        }
        let default_label = config.default_provider.as_ref().and_then(|name| {
            let provider = config.providers.get(name)?;
            let model = provider.default_model.as_ref()?;
            Some(format!("{name}/{model}"))
        });
        Self {
            models,
            default_label,
        }
    }

    /// The session's model as an option value ("" = default).
    fn current(&self, session_model: &str) -> String {
        match session_model {
            "" => DEFAULT_MODEL.to_owned(),
            model => model.to_owned(),
        }
    }

    /// The config options of a session whose model is `session_model`.
    pub fn config_options(&self, session_model: &str) -> Vec<SessionConfigOption> {
        let default_name = match &self.default_label {
            Some(label) => format!("Default ({label})"),
            None => "Default".to_owned(),
        };
        let mut choices = vec![SessionConfigSelectOption::new(DEFAULT_MODEL, default_name)];
        choices.extend(
            self.models
                .iter()
                .map(|m| SessionConfigSelectOption::new(m.clone(), m.clone())),
        );
        // A model set elsewhere (CLI `--model`) is shown even if unlisted.
        let current = self.current(session_model);
        if current != DEFAULT_MODEL && !self.models.contains(&current) {
            choices.push(SessionConfigSelectOption::new(
                current.clone(),
                current.clone(),
            ));
        }
        vec![
            SessionConfigOption::select(MODEL_OPTION, "Model", current, choices)
                .category(SessionConfigOptionCategory::Model)
                .description("The LLM that answers in this session".to_owned()),
        ]
    }

    /// The agent loop's model name for an option value.
    pub fn model_for(value: &str) -> String {
        match value {
            DEFAULT_MODEL => String::new(),
            model => model.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use agent_client_protocol::v1::schema::SessionConfigKind;
    use openheim_config::{Config, ProviderConfig};

    use super::*;

    #[test]
    fn models_come_from_the_providers() {
        let mut config = Config {
            default_provider: Some("openai".into()),
            ..Config::default()
        };
        config.providers.insert(
            "openai".into(),
            ProviderConfig {
                default_model: Some("gpt-5".into()),
                models: vec!["gpt-5".into(), "gpt-5-mini".into()],
                ..ProviderConfig::default()
            },
        );
        let catalog = ModelCatalog::from_config(&config);
        assert_eq!(catalog.models, ["openai/gpt-5", "openai/gpt-5-mini"]);
        let options = catalog.config_options("");
        let SessionConfigKind::Select(select) = &options[0].kind else {
            panic!("not a select");
        };
        assert_eq!(select.current_value.to_string(), DEFAULT_MODEL);
        assert_eq!(ModelCatalog::model_for(DEFAULT_MODEL), "");
        assert_eq!(ModelCatalog::model_for("openai/gpt-5"), "openai/gpt-5");
    }
}
