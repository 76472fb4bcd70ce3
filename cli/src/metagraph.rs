//! `taogate metagraph`: a subnet's miners as a table.

use std::fmt::Write as _;

use taogate_shared::domain::MinerSnapshot;

/// The snapshot as a fixed-width table, highest stake first: serving axons only unless `all`.
pub fn table(snapshot: &MinerSnapshot, all: bool) -> String {
    let mut rows: Vec<_> = snapshot
        .miners
        .iter()
        .filter(|m| all || m.is_serving())
        .collect();
    rows.sort_by(|a, b| b.stake.total_cmp(&a.stake).then(a.uid.cmp(&b.uid)));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "netuid {} on {}{}: {} neurons, {} serving, total stake {:.3} TAO",
        snapshot.netuid,
        snapshot.network,
        snapshot
            .block
            .map(|b| format!(" at block {b}"))
            .unwrap_or_default(),
        snapshot.miners.len(),
        snapshot.serving().count(),
        snapshot.total_stake()
    );
    let _ = writeln!(
        out,
        "{:>5}  {:<48}  {:<40}  {:>14}  {:>9}  {:>9}  {:>9}  {:>6}  {:>6}  {:>10}",
        "uid",
        "hotkey",
        "axon",
        "stake (TAO)",
        "incentive",
        "consensus",
        "dividends",
        "permit",
        "active",
        "updated"
    );
    for m in rows {
        let axon = if m.is_serving() {
            std::net::SocketAddr::new(m.ip, m.port).to_string()
        } else {
            "-".to_owned()
        };
        let chain = m.chain.as_ref();
        let flag = |v: Option<bool>| match v {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        let _ = writeln!(
            out,
            "{:>5}  {:<48}  {:<40}  {:>14.3}  {:>9.4}  {:>9.4}  {:>9.4}  {:>6}  {:>6}  {:>10}",
            m.uid,
            m.hotkey,
            axon,
            m.stake,
            m.incentive,
            chain.map_or(0.0, |c| c.consensus),
            chain.map_or(0.0, |c| c.dividends),
            flag(chain.map(|c| c.validator_permit)),
            flag(chain.map(|c| c.active)),
            chain.map_or_else(|| "-".to_owned(), |c| c.last_update.to_string()),
        );
    }
    out
}
