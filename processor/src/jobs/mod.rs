//! The built-in jobs, selected by name with `odradek processor --job NAME`.

pub mod pageview;
pub mod profile;

use std::sync::Arc;

use crate::config::Config;
use crate::task::Job;

pub use pageview::PageViewCountJob;
pub use profile::ProfileFanoutJob;

/// Names of the built-in jobs.
pub const BUILTIN: [&str; 2] = ["pageview-count", "profile-fanout"];

/// The built-in job `config.job`, wired to the configured topics (or the job's defaults).
///
/// # Errors
/// No built-in job has that name.
pub fn builtin(config: &Config) -> Result<Arc<dyn Job>, String> {
    match config.job.as_str() {
        "pageview-count" => Ok(Arc::new(PageViewCountJob::new(
            config.input.as_deref().unwrap_or("page-views"),
            config.output("counts").unwrap_or("pageview-counts"),
            config.window_ms,
            config.grace_ms,
        ))),
        "profile-fanout" => Ok(Arc::new(ProfileFanoutJob::new(
            config.input.as_deref().unwrap_or("user-profile-updates"),
            config.output("newsfeed").unwrap_or("newsfeed"),
            config.output("search").unwrap_or("search-index"),
        ))),
        other => Err(format!(
            "unknown job {other:?}: built-in jobs are {}",
            BUILTIN.join(", ")
        )),
    }
}
