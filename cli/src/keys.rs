//! `taogate keys`: create, list, revoke and rotate API keys in the embedded store or the AWS
//! table. Secrets are printed once, on creation and rotation; the store keeps their hash.

use std::fmt::Write as _;

use rand::RngCore as _;
use taogate_shared::domain::tenant::{Period, parse_quota};
use taogate_shared::domain::{ApiKey, KeyId, Limits, Priority, Rate, ServiceKind, now_millis};
use taogate_shared::ports::{KeyAdmin, Metering, Usage};

/// What `keys create` asks for.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// A name for people.
    pub name: String,
    /// `N/s`, `N/min`, `N/h` or `N/day`.
    pub rate: Option<String>,
    /// Requests at once.
    pub burst: Option<u32>,
    /// `N/month`.
    pub quota: Option<String>,
    /// The highest priority.
    pub max_priority: String,
    /// Sees every tenant.
    pub admin: bool,
}

fn random(bytes: &mut [u8]) {
    rand::rng().fill_bytes(bytes);
}

fn shown_once(issued: &taogate_shared::domain::tenant::Issued) -> String {
    format!(
        "id:             {}\nname:           {}\napi key:        {}\nwebhook secret: {}\n\n\
         Both secrets are shown this once; only the API key's hash is stored.\n\
         Send the key as `Authorization: Bearer <api key>` or `X-API-Key: <api key>`.\n\
         Callbacks of this key's tasks are signed with the webhook secret (Standard Webhooks).\n",
        issued.key.id, issued.key.name, issued.secret, issued.webhook_secret
    )
}

/// Makes a key and prints its secrets.
pub async fn create<S: KeyAdmin>(store: &S, new: NewKey) -> anyhow::Result<String> {
    anyhow::ensure!(
        !new.name.trim().is_empty() && new.name.len() <= 100,
        "--name takes 1 to 100 characters"
    );
    anyhow::ensure!(
        new.burst.is_none() || new.rate.is_some(),
        "--burst needs --rate"
    );
    let rate = new
        .rate
        .as_deref()
        .map(|r| Rate::parse(r, new.burst))
        .transpose()?;
    let quota = new.quota.as_deref().map(parse_quota).transpose()?;
    let max_priority = Priority::parse(&new.max_priority)?;
    let limits = Limits {
        rate,
        quota,
        max_priority,
        admin: new.admin,
    };
    let issued = ApiKey::issue(new.name.trim(), limits, now_millis(), random);
    store.save_key(&issued.key).await?;
    Ok(shown_once(&issued))
}

async fn existing<S: KeyAdmin>(store: &S, raw: &str) -> anyhow::Result<ApiKey> {
    let id = KeyId::parse(raw)?;
    store
        .key(&id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no key with id {id}"))
}

/// Revokes a key: it authenticates nothing from then on (within the servers' key cache).
pub async fn revoke<S: KeyAdmin>(store: &S, raw: &str) -> anyhow::Result<String> {
    let mut key = existing(store, raw).await?;
    if key.revoked_at.is_some() {
        return Ok(format!("key {} was already revoked\n", key.id));
    }
    key.revoked_at = Some(now_millis());
    store.save_key(&key).await?;
    Ok(format!(
        "key {} ({}) is revoked; servers stop accepting it within API_KEY_CACHE seconds\n",
        key.id, key.name
    ))
}

/// Rotates a key: a new API key at once, a new webhook secret with the old one still signing
/// for a day.
pub async fn rotate<S: KeyAdmin>(store: &S, raw: &str) -> anyhow::Result<String> {
    let key = existing(store, raw).await?;
    anyhow::ensure!(key.active(), "key {} is revoked; create a new one", key.id);
    let issued = key.rotate(now_millis(), random);
    store.save_key(&issued.key).await?;
    Ok(format!(
        "{}\nThe old API key stops working now (within API_KEY_CACHE seconds on running servers).\n\
         Callbacks carry signatures by both webhook secrets for 24 hours.\n",
        shown_once(&issued)
    ))
}

fn limit_text(key: &ApiKey, used: &Usage) -> (String, String) {
    let rate = key
        .limits
        .rate
        .map_or_else(|| "unlimited".to_owned(), |r| r.to_string());
    let quota = match key.limits.quota {
        Some(q) => format!("{}/{q}", used.tasks()),
        None => format!("{}/unlimited", used.tasks()),
    };
    (rate, quota)
}

/// Every key with this month's use.
pub async fn list<S: KeyAdmin + Metering>(store: &S, json: bool) -> anyhow::Result<String> {
    let now = now_millis();
    let keys = store.keys().await?;
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        let used = store.usage(&key.id, now).await?;
        rows.push((key, used));
    }
    let period = Period::of(now);
    if json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|(k, u)| {
                serde_json::json!({
                    "id": k.id.to_string(),
                    "name": k.name,
                    "created_at": k.created_at,
                    "revoked": k.revoked_at.is_some(),
                    "admin": k.limits.admin,
                    "max_priority": k.limits.max_priority.as_str(),
                    "rate": k.limits.rate.map(|r| r.to_string()),
                    "quota": k.limits.quota,
                    "period": period.label,
                    "requests": u.requests,
                    "tasks": ServiceKind::ALL
                        .iter()
                        .map(|kind| (kind.as_str().to_owned(), serde_json::json!(u.of(*kind))))
                        .collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&items)?));
    }
    let mut out = format!(
        "{:<16}  {:<20}  {:<8}  {:<22}  {:<18}  {:>9}  {:>13}  {:<8}\n",
        "ID", "NAME", "STATE", "RATE", "TASKS/QUOTA", "REQUESTS", "TRANS/TTS/SUM", "PRIORITY"
    );
    for (key, used) in &rows {
        let (rate, quota) = limit_text(key, used);
        let state = match (key.revoked_at.is_some(), key.limits.admin) {
            (true, _) => "revoked",
            (false, true) => "admin",
            (false, false) => "active",
        };
        let name: String = key.name.chars().take(20).collect();
        let _ = writeln!(
            out,
            "{:<16}  {:<20}  {:<8}  {:<22}  {:<18}  {:>9}  {:>13}  {:<8}",
            key.id,
            name,
            state,
            rate,
            quota,
            used.requests,
            ServiceKind::ALL
                .iter()
                .map(|kind| used.of(*kind).to_string())
                .collect::<Vec<_>>()
                .join("/"),
            key.limits.max_priority.as_str()
        );
    }
    let _ = writeln!(
        out,
        "{} key(s); counts are for {} (UTC) and start over on the 1st",
        rows.len(),
        period.label
    );
    Ok(out)
}
