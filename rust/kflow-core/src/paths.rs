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
    /// The XDG folders under `kflow/`, each overridable with `KFLOW_CONFIG_DIR`,
    /// `KFLOW_STATE_DIR` or `KFLOW_CACHE_DIR`.
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

    /// The folder holding one record folder per run.
    pub fn runs(&self) -> PathBuf {
        self.state.join("runs")
    }

    /// The file kflow's events are logged to.
    pub fn event_log(&self) -> PathBuf {
        self.state.join("kflow.log")
    }

    /// kflow's `config.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.config.join("config.toml")
    }

    /// The folder of the user's own run templates.
    pub fn user_templates(&self) -> PathBuf {
        self.config.join("templates")
    }
}
