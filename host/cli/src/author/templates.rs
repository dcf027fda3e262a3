//! `omniforge skill new`: writes a self-contained project from a template embedded in this
//! binary, with the SDK and the WIT it builds against, so nothing of ours needs a registry.

use std::path::Path;

use anyhow::{Context, Result, bail};
use include_dir::{Dir, DirEntry, include_dir};

use super::{Language, NewArgs, skill_name};

static RUST_TEMPLATE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/templates/rust");
static RUST_SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/rust/src");
static RUST_SDK_MANIFEST: &str = include_str!("../../../../sdk/rust/Cargo.toml");
static PYTHON_TEMPLATE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/templates/python");
static PYTHON_SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/python/omniforge_sdk");
static JS_TEMPLATE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/templates/js");
static JS_SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/js");
static C_TEMPLATE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/templates/c");
static C_SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/c");
/// The WIT contract, for SDKs that build against it and for `skill build`'s worlds.
static WIT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../wit");

/// Creates the project and prints what to do next.
pub fn new(args: &NewArgs) -> Result<()> {
    let name = skill_name(&args.name, &args.namespace)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| Path::new(name.name()).to_owned());
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    // Cargo package names cannot start with a digit; skill names can.
    let crate_name = if name.name().starts_with(|c: char| c.is_ascii_digit()) {
        format!("skill-{}", name.name())
    } else {
        name.name().to_owned()
    };
    let render = |text: &str| {
        text.replace("%%NAMESPACE%%", name.namespace())
            .replace("%%NAME%%", name.name())
            .replace("%%CRATE%%", &crate_name)
    };
    match args.lang {
        Language::Rust => {
            write_dir(&RUST_TEMPLATE, &dir, &render)?;
            let sdk = dir.join("vendor/omniforge-sdk");
            write_file(&sdk.join("Cargo.toml"), RUST_SDK_MANIFEST.as_bytes())?;
            replace_dir(&RUST_SDK, &sdk.join("src"))?;
            write_wit(&sdk.join("wit"))?;
        }
        Language::Python => {
            write_dir(&PYTHON_TEMPLATE, &dir, &render)?;
            write_python_sdk(&dir.join("omniforge_sdk"))?;
        }
        Language::Js => {
            write_dir(&JS_TEMPLATE, &dir, &render)?;
            write_js_sdk(&dir.join("omniforge-sdk"))?;
        }
        Language::C => {
            write_dir(&C_TEMPLATE, &dir, &render)?;
            write_c_sdk(&dir.join("omniforge-sdk"))?;
        }
    }
    println!("created {name} ({}) in {}", args.lang.name(), dir.display());
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  omniforge skill build   # compile to a component and check it");
    println!("  omniforge skill test    # run the cases in tests.json");
    Ok(())
}

/// Writes the Python SDK package (`omniforge_sdk`) to `to`, replacing what is there.
pub fn write_python_sdk(to: &Path) -> Result<()> {
    replace_dir(&PYTHON_SDK, to)
}

/// Writes the JavaScript SDK package (`omniforge-sdk`) to `to`, replacing what is there.
pub fn write_js_sdk(to: &Path) -> Result<()> {
    replace_dir(&JS_SDK, to)
}

/// Writes the C SDK (`omniforge.h` and its sources) to `to`, replacing what is there.
pub fn write_c_sdk(to: &Path) -> Result<()> {
    replace_dir(&C_SDK, to)
}

/// Writes the WIT contract to `to`, replacing what is there.
pub fn write_wit(to: &Path) -> Result<()> {
    replace_dir(&WIT, to)
}

/// The WIT contract's line that starts with `start` (trimmed), from `worlds.wit`: the build
/// worlds take the package and WASI versions from the contract instead of repeating them.
pub fn contract_line(start: &str) -> Result<&'static str> {
    WIT.get_file("worlds.wit")
        .and_then(|f| f.contents_utf8())
        .and_then(|text| text.lines().map(str::trim).find(|l| l.starts_with(start)))
        .with_context(|| format!("the embedded wit/worlds.wit has no line `{start}…`"))
}

/// Replaces `to` with the files of `embedded`, as they are.
fn replace_dir(embedded: &Dir<'_>, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to).with_context(|| format!("clearing {}", to.display()))?;
    }
    write_dir(embedded, to, &str::to_owned)
}

/// Writes every file of `embedded` under `to`, passing text through `render`.
fn write_dir(embedded: &Dir<'_>, to: &Path, render: &dyn Fn(&str) -> String) -> Result<()> {
    for entry in embedded.entries() {
        match entry {
            DirEntry::Dir(sub)
                if sub.path().ends_with("__pycache__") || sub.path().ends_with("node_modules") => {}
            DirEntry::Dir(sub) => write_dir(sub, to, render)?,
            DirEntry::File(file) => {
                // Paths are relative to the embedded root, whatever the nesting.
                let path = to.join(file.path());
                match file.contents_utf8() {
                    Some(text) => write_file(&path, render(text).as_bytes())?,
                    None => write_file(&path, file.contents())?,
                }
            }
        }
    }
    Ok(())
}

fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
