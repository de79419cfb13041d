//! Why a governance document was refused.

/// A governance document that does not parse or does not validate. Both name the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GovernanceError {
    /// The text is not JSON of the document's shape (serde's message names the field and the
    /// position).
    #[error("governance document does not parse: {0}")]
    Parse(String),
    /// A field has a value the framework cannot use.
    #[error("governance document field `{field}`: {problem}")]
    Invalid {
        /// The field's path, e.g. `conditions[0].then.host`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl GovernanceError {
    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        GovernanceError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// `value` is not a valid value for `field`.
    pub fn invalid_value(field: impl Into<String>, value: &str) -> Self {
        GovernanceError::invalid(field, format!("{value:?} is not a valid value"))
    }

    /// The same error with `prefix.` put before its field path.
    pub(crate) fn within(self, prefix: &str) -> Self {
        match self {
            GovernanceError::Invalid { field, problem } => GovernanceError::Invalid {
                field: format!("{prefix}.{field}"),
                problem,
            },
            other => other,
        }
    }
}

impl From<serde_json::Error> for GovernanceError {
    fn from(error: serde_json::Error) -> Self {
        GovernanceError::Parse(error.to_string())
    }
}
