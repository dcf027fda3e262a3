//! `ServerCli`: the CLI pointed at a fresh `omniforge serve`, with a bootstrapped tenant's
//! key, and the way tests publish a built guest to it.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::server::{Running, serve_in};
use crate::{ok, omniforge_env, omniforge_in};

/// The CLI pointed at a fresh `omniforge serve` in `dir`, with the owner's API key of a
/// bootstrapped tenant `acme`.
pub(crate) struct ServerCli {
    pub(crate) dir: PathBuf,
    pub(crate) url: String,
    pub(crate) key: String,
}

impl ServerCli {
    pub(crate) fn start(dir: &Path) -> (Running, Self) {
        Self::start_with(dir, &[])
    }

    /// [`ServerCli::start`] with `envs` set for the server.
    /// The tenant is bootstrapped with `envs` too, so a database they name is the server's.
    pub(crate) fn start_with(dir: &Path, envs: &[(&str, &str)]) -> (Running, Self) {
        let key = crate::bootstrap_env(dir, "acme", "ada@acme.test", envs);
        // Defaults: however long a compile takes on a loaded machine, `skill publish` waits
        // for it and `skill invoke` retries what answers 503 skill-compiling.
        let server = serve_in(dir, envs);
        let url = format!("http://127.0.0.1:{}", server.port);
        let cli = Self {
            dir: dir.to_owned(),
            url,
            key,
        };
        (server, cli)
    }

    /// Packs `wasm` as `name` 1.0.0 (world `tool`, or `skill` when `extra` grants
    /// `[permissions]`) with `skill_extra` under `[skill]` and `extra` after it, and publishes
    /// it as the tenant of `key`.
    pub(crate) fn publish_wasm(
        &self,
        key: &str,
        name: &str,
        wasm: &str,
        skill_extra: &str,
        extra: &str,
    ) {
        let stem = name.replace('/', "-");
        // A guest granted capabilities imports them: it is a `skill`, not a `tool`.
        let world = if extra.contains("[permissions]") {
            "skill"
        } else {
            "tool"
        };
        let project = self.dir.join("wasm-packages").join(&stem);
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(
            project.join("omniforge.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"1.0.0\"\n\
                 description = \"{name}, a test guest\"\nlicense = \"MIT\"\n\n\
                 [skill]\nworld = \"{world}\"\ncomponent = \"skill.wasm\"\n{skill_extra}\n{extra}\n"
            ),
        )
        .unwrap();
        let package = project.with_extension("zip");
        let (project, package) = (project.to_str().unwrap(), package.to_str().unwrap());
        let packed = omniforge_in(
            &self.dir,
            &["skill", "pack", project, "--component", wasm, "-o", package],
        );
        ok(&packed, &format!("pack {name}"));
        let published = omniforge_env(
            &self.dir,
            &["skill", "publish", package, "--server", &self.url],
            &[("OMNIFORGE_API_KEY", key)],
        );
        ok(&published, &format!("publish {name}"));
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &self.url]);
        omniforge_env(&self.dir, &all, &[("OMNIFORGE_API_KEY", self.key.as_str())])
    }
}
