//! The named choices of the configuration. They live here, beside the variables that name them,
//! so that reading the configuration needs no component.

/// `SELECTION_POLICY`: how eligible miners are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectionPolicy {
    /// Highest stake first.
    #[default]
    Stake,
    /// Highest incentive first (what the subnet's validators reward).
    Incentive,
    /// Each attempt starts where the previous one stopped, by uid.
    RoundRobin,
}

impl SelectionPolicy {
    /// Parses `stake | incentive | round_robin`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "stake" => Ok(Self::Stake),
            "incentive" => Ok(Self::Incentive),
            "round_robin" => Ok(Self::RoundRobin),
            _ => Err(format!(
                "unknown selection policy {raw:?}; use stake, incentive or round_robin"
            )),
        }
    }
}

/// `SCORING_MODE`: where the reference comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScoringMode {
    /// The configured reference endpoint; consensus when it fails.
    Reference,
    /// The other answers (the default).
    #[default]
    Consensus,
    /// Reference when an endpoint is configured, consensus otherwise.
    Auto,
}

impl ScoringMode {
    /// Parses `reference`, `consensus` or `auto`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "reference" => Ok(Self::Reference),
            "consensus" => Ok(Self::Consensus),
            "auto" => Ok(Self::Auto),
            other => Err(format!(
                "unknown scoring mode {other:?}; use reference, consensus or auto"
            )),
        }
    }

    /// Whether this mode asks the reference endpoints.
    pub fn uses_reference(self) -> bool {
        matches!(self, Self::Reference | Self::Auto)
    }
}

/// `MINER_PROTOCOL`: how the gateway talks to miners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinerProtocol {
    /// The dendrite/axon protocol of bittensor ≤ 10 (`POST /{SYNAPSE_NAME}` with `bt_header_*`).
    #[default]
    Axon,
    /// `btauth/1` signed plain HTTP of bittensor ≥ 11 (`POST {MINER_PATH}`).
    Btauth,
}

impl MinerProtocol {
    /// Parses `axon` or `btauth`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "axon" => Ok(Self::Axon),
            "btauth" => Ok(Self::Btauth),
            other => Err(format!("{other:?} is not a protocol (axon, btauth)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_their_names_and_refuse_others() {
        assert_eq!(
            ScoringMode::parse(" Reference "),
            Ok(ScoringMode::Reference)
        );
        assert_eq!(ScoringMode::parse("auto"), Ok(ScoringMode::Auto));
        assert!(
            ScoringMode::parse("majority")
                .unwrap_err()
                .contains("consensus")
        );
        assert_eq!(
            SelectionPolicy::parse("round-robin"),
            Ok(SelectionPolicy::RoundRobin)
        );
        assert!(SelectionPolicy::parse("random").is_err());
        assert_eq!(MinerProtocol::parse("BTAUTH"), Ok(MinerProtocol::Btauth));
        assert!(MinerProtocol::parse("grpc").is_err());
    }
}

/// `API_AUTH`: whether requests must carry an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Every route but health and the docs needs a key (the template's default on AWS).
    Required,
    /// A request without a key acts as the one anonymous tenant; a request with a key is
    /// checked like any other (the default of `taogate serve`).
    #[default]
    Optional,
}

impl AuthMode {
    /// Parses `required` or `optional`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "required" => Ok(Self::Required),
            "optional" => Ok(Self::Optional),
            other => Err(format!("unknown mode {other:?}; use required or optional")),
        }
    }
}
