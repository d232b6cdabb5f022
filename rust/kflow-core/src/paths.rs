//! Where kflow keeps its files. XDG locations by default; each can be moved with an environment
//! variable so tests and several installs never share state by accident.

use std::path::PathBuf;

/// The folders kflow reads and writes outside the user's project.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// `config.toml` and `templates/`.
    pub config: PathBuf,
    /// Run records, local run folders and the event log.
    pub state: PathBuf,
    /// Dependency environments of the local backend.
    pub cache: PathBuf,
}

impl Dirs {
    pub fn from_env() -> Dirs {
        let home = || dirs::home_dir().unwrap_or_else(std::env::temp_dir);
        let pick = |var: &str, base: Option<PathBuf>, fallback: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| base.unwrap_or_else(|| home().join(fallback)).join("kflow"))
        };
        Dirs {
            config: pick("KFLOW_CONFIG_DIR", dirs::config_dir(), ".config"),
            state: pick(
                "KFLOW_STATE_DIR",
                dirs::state_dir().or_else(dirs::data_local_dir),
                ".local/state",
            ),
            cache: pick("KFLOW_CACHE_DIR", dirs::cache_dir(), ".cache"),
        }
    }

    pub fn runs(&self) -> PathBuf {
        self.state.join("runs")
    }

    pub fn event_log(&self) -> PathBuf {
        self.state.join("kflow.log")
    }

    pub fn config_file(&self) -> PathBuf {
        self.config.join("config.toml")
    }

    pub fn user_templates(&self) -> PathBuf {
        self.config.join("templates")
    }
}
