//! The application state shared by every request, built once at start.

use std::sync::Arc;
use std::time::Duration;

use omniforge_store::Database;

use crate::auth::Authenticator;
use crate::auth::jwt::JwtVerifier;
use crate::config::Config;

/// Everything handlers share: the database, the configuration and the authenticator.
pub struct App {
    /// The database.
    pub db: Database,
    /// The validated configuration.
    pub config: Config,
    /// Turns credentials into principals (and caches verified keys).
    pub auth: Authenticator,
}

/// How handlers receive the application.
pub type AppState = Arc<App>;

impl App {
    /// Builds the application over an open, migrated database.
    pub fn new(config: Config, db: Database) -> Result<AppState, String> {
        let jwt = config.auth.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        let recheck = Duration::from_millis(config.auth.api_key_recheck_ms.unwrap_or(2_000));
        let auth = Authenticator::new(db.clone(), jwt, recheck);
        Ok(Arc::new(Self { db, config, auth }))
    }
}
