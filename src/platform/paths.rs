//! Where pallaidium keeps its data, and where the Hugging Face cache is (huggingface_hub's rules).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::switches::Switches;
use crate::{Error, Result};

/// The folders and files a run uses. `resolve` only computes them; `create_dirs` makes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paths {
    /// PALLAIDIUM_HOME, else `<data dir>/pallaidium` (~/.local/share on Linux, ~/Library/Application Support on macOS).
    pub home: PathBuf,
    /// `--out`, else `home/outputs`.
    pub outputs: PathBuf,
    pub logs: PathBuf,
    pub queue_db: PathBuf,
    /// The Hugging Face hub cache shared with Python tools.
    pub hf_cache: PathBuf,
    /// Where `huggingface-cli login` stores the token (HF_TOKEN_PATH, else HF_HOME/token).
    pub hf_token_file: PathBuf,
}

/// The environment values path resolution reads, gathered so the rules are pure functions.
#[derive(Debug, Clone, Default)]
pub struct PathEnv {
    pub pallaidium_home: Option<PathBuf>,
    pub hf_home: Option<PathBuf>,
    pub hf_hub_cache: Option<PathBuf>,
    /// The deprecated spelling huggingface_hub still honours.
    pub huggingface_hub_cache: Option<PathBuf>,
    pub hf_token_path: Option<PathBuf>,
    pub xdg_cache_home: Option<PathBuf>,
    pub home_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

impl PathEnv {
    /// Reads the process environment (empty values count as unset); PALLAIDIUM_HOME comes from
    /// the switches read at start.
    pub fn from_process(switches: &Switches) -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            pallaidium_home: switches.home.clone(),
            hf_home: var("HF_HOME"),
            hf_hub_cache: var("HF_HUB_CACHE"),
            huggingface_hub_cache: var("HUGGINGFACE_HUB_CACHE"),
            hf_token_path: var("HF_TOKEN_PATH"),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            home_dir: dirs::home_dir(),
            data_dir: dirs::data_dir(),
        }
    }

    /// `~/x` -> `<home>/x`, as Python's `expanduser` does for these variables.
    fn expand(&self, path: &Path) -> PathBuf {
        match (path.strip_prefix("~"), &self.home_dir) {
            (Ok(rest), Some(home)) => home.join(rest),
            _ => path.to_path_buf(),
        }
    }

    /// HF_HOME, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
    pub fn hf_home(&self) -> Option<PathBuf> {
        if let Some(h) = &self.hf_home {
            return Some(self.expand(h));
        }
        let cache = match &self.xdg_cache_home {
            Some(x) => self.expand(x),
            None => self.home_dir.as_ref()?.join(".cache"),
        };
        Some(cache.join("huggingface"))
    }

    /// HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else `<hf_home>/hub`.
    pub fn hf_cache(&self) -> Option<PathBuf> {
        match self
            .hf_hub_cache
            .as_ref()
            .or(self.huggingface_hub_cache.as_ref())
        {
            Some(p) => Some(self.expand(p)),
            None => Some(self.hf_home()?.join("hub")),
        }
    }

    /// HF_TOKEN_PATH, else `<hf_home>/token`.
    pub fn hf_token_file(&self) -> Option<PathBuf> {
        match &self.hf_token_path {
            Some(p) => Some(self.expand(p)),
            None => Some(self.hf_home()?.join("token")),
        }
    }
}

impl Paths {
    /// Resolves every path from the switches, the process environment and `--out`.
    pub fn resolve(out_override: Option<&Path>, switches: &Switches) -> Result<Self> {
        Self::from_env(&PathEnv::from_process(switches), out_override)
    }

    /// The same rules over given environment values.
    pub fn from_env(env: &PathEnv, out_override: Option<&Path>) -> Result<Self> {
        let home = match (&env.pallaidium_home, &env.data_dir) {
            (Some(h), _) => env.expand(h),
            (None, Some(data)) => data.join("pallaidium"),
            (None, None) => {
                return Err(Error::bad_input(
                    "cannot find a data folder for this user: set PALLAIDIUM_HOME to a writable folder",
                ));
            }
        };
        let no_home = || {
            Error::bad_input(
                "cannot find the home folder for the Hugging Face cache: set HF_HOME or HF_HUB_CACHE",
            )
        };
        Ok(Self {
            outputs: out_override.map_or_else(|| home.join("outputs"), Path::to_path_buf),
            logs: home.join("logs"),
            queue_db: home.join("queue.sqlite3"),
            hf_cache: env.hf_cache().ok_or_else(no_home)?,
            hf_token_file: env.hf_token_file().ok_or_else(no_home)?,
            home,
        })
    }

    /// Creates home, outputs and logs (not the HF cache: the hub client makes it when it downloads).
    /// A folder that cannot be made or written is bad input (exit 2) naming the setting to change.
    pub fn create_dirs(&self) -> Result<()> {
        for (dir, setting) in [
            (
                &self.home,
                "point PALLAIDIUM_HOME at a folder you can write",
            ),
            (&self.outputs, "pass --out DIR with a folder you can write"),
            (
                &self.logs,
                "point PALLAIDIUM_HOME at a folder you can write",
            ),
        ] {
            let made = std::fs::create_dir_all(dir).map_err(|e| e.to_string());
            let writable = made.and_then(|()| {
                super::disk::writable(dir)
                    .then_some(())
                    .ok_or_else(|| "not writable".to_owned())
            });
            if let Err(why) = writable {
                return Err(Error::bad_input(format!(
                    "{} cannot be used ({why}): {setting}",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Whether a Hugging Face token is available (HF_TOKEN / HUGGING_FACE_HUB_TOKEN, or the token file).
    /// Never returns or logs the token itself.
    pub fn hf_token_set(&self) -> bool {
        let env_set = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
            .iter()
            .any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()));
        env_set || std::fs::read_to_string(&self.hf_token_file).is_ok_and(|t| !t.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PathEnv {
        PathEnv {
            home_dir: Some("/home/ada".into()),
            data_dir: Some("/home/ada/.local/share".into()),
            ..PathEnv::default()
        }
    }

    #[test]
    fn defaults() {
        let p = Paths::from_env(&base(), None).map_err(|e| e.to_string());
        let p = p.as_ref();
        assert_eq!(
            p.map(|p| p.home.clone()),
            Ok("/home/ada/.local/share/pallaidium".into())
        );
        assert_eq!(
            p.map(|p| p.outputs.clone()),
            Ok("/home/ada/.local/share/pallaidium/outputs".into())
        );
        assert_eq!(
            p.map(|p| p.logs.clone()),
            Ok("/home/ada/.local/share/pallaidium/logs".into())
        );
        assert_eq!(
            p.map(|p| p.queue_db.clone()),
            Ok("/home/ada/.local/share/pallaidium/queue.sqlite3".into())
        );
        assert_eq!(
            p.map(|p| p.hf_cache.clone()),
            Ok("/home/ada/.cache/huggingface/hub".into())
        );
        assert_eq!(
            p.map(|p| p.hf_token_file.clone()),
            Ok("/home/ada/.cache/huggingface/token".into())
        );
    }

    #[test]
    fn overrides() {
        let env = PathEnv {
            pallaidium_home: Some("/srv/pal".into()),
            ..base()
        };
        let p = Paths::from_env(&env, Some(Path::new("/tmp/out"))).map_err(|e| e.to_string());
        assert_eq!(p.as_ref().map(|p| p.home.clone()), Ok("/srv/pal".into()));
        assert_eq!(p.as_ref().map(|p| p.outputs.clone()), Ok("/tmp/out".into()));
        assert_eq!(
            p.as_ref().map(|p| p.logs.clone()),
            Ok("/srv/pal/logs".into())
        );
    }

    #[test]
    fn hf_cache_follows_huggingface_hub() {
        let xdg = PathEnv {
            xdg_cache_home: Some("/xdg".into()),
            ..base()
        };
        assert_eq!(xdg.hf_cache(), Some("/xdg/huggingface/hub".into()));
        let hf_home = PathEnv {
            hf_home: Some("~/hf".into()),
            ..xdg.clone()
        };
        assert_eq!(hf_home.hf_cache(), Some("/home/ada/hf/hub".into()));
        assert_eq!(hf_home.hf_token_file(), Some("/home/ada/hf/token".into()));
        let legacy = PathEnv {
            huggingface_hub_cache: Some("/legacy".into()),
            ..hf_home.clone()
        };
        assert_eq!(legacy.hf_cache(), Some("/legacy".into()));
        let explicit = PathEnv {
            hf_hub_cache: Some("/fast/hub".into()),
            hf_token_path: Some("/secrets/hf".into()),
            ..legacy
        };
        assert_eq!(explicit.hf_cache(), Some("/fast/hub".into()));
        assert_eq!(explicit.hf_token_file(), Some("/secrets/hf".into()));
    }

    #[test]
    fn no_data_dir_is_bad_input_naming_the_fix() {
        let env = PathEnv::default();
        let err = Paths::from_env(&env, None).err();
        assert_eq!(err.as_ref().map(Error::exit_code), Some(2));
        assert!(err.is_some_and(|e| e.to_string().contains("PALLAIDIUM_HOME")));
    }
}
