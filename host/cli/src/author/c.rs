//! C skills: wit-bindgen's C bindings for the `skill` world (generated here, from the WIT
//! embedded in this binary), a wasm32-wasi C compiler (zig from PyPI, or any compiler named
//! in `OMNIFORGE_CC`), and the registry's own preview1 adapter to turn the module into a
//! component.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use omniforge_registry::{Manifest, prepare_component};
use wit_bindgen_core::wit_parser::Resolve;

use super::templates::{write_c_sdk, write_wit};
use super::toolchain::run_tool;

/// The zig release `skill build` is tested with (`pip install ziglang==…`).
const ZIGLANG: &str = "0.17.1";

/// Whether `dir` holds a C project: C sources under `src/`.
pub fn is_c_project(dir: &Path) -> bool {
    c_sources(&dir.join("src")).is_ok_and(|sources| !sources.is_empty())
}

/// Compiles the project's `src/**/*.c` with the SDK and the generated bindings into a
/// wasm32-wasi reactor module (`build/skill.core.wasm`) and writes its component to `out`.
pub fn build_c(dir: &Path, manifest: &Manifest, out: &Path) -> Result<()> {
    let compiler = CCompiler::find()?;
    let build = std::path::absolute(dir.join("build"))?;
    let bindings = build.join("bindings");
    write_bindings(&build.join("wit"), &bindings)?;
    // A project without its own copy of the SDK builds with this binary's.
    let sdk = match dir.join("omniforge-sdk") {
        own if own.is_dir() => std::path::absolute(own)?,
        _ => {
            let embedded = build.join("c-sdk");
            write_c_sdk(&embedded)?;
            embedded
        }
    };
    let src = std::path::absolute(dir.join("src"))?;
    let mut sources = c_sources(&src)?;
    if sources.is_empty() {
        bail!("{} holds no .c files", src.display());
    }
    sources.extend(c_sources(&sdk)?);
    let module = build.join("skill.core.wasm");
    let mut command = compiler.command();
    // An OMNIFORGE_CC may name its own target (a wasi-sdk that calls it wasm32-wasip1).
    if !compiler
        .args
        .iter()
        .any(|a| a.starts_with("--target") || a == "-target")
    {
        command.arg("--target=wasm32-wasi");
    }
    command
        // A reactor: no `main`, the handler export is called once per fresh instance.
        .arg("-mexec-model=reactor")
        // gnu11, not c11: strict ISO C hides POSIX functions (strndup, strtok_r, …).
        .args(["-std=gnu11", "-O2", "-Wall", "-s"])
        // wasm-ld's default stack is 64 KiB; C skills get the 1 MiB a native thread has.
        .arg("-Wl,-z,stack-size=1048576")
        .arg("-I")
        .arg(&src)
        .arg("-I")
        .arg(&sdk)
        .arg("-I")
        .arg(&bindings);
    let include = dir.join("include");
    if include.is_dir() {
        command.arg("-I").arg(std::path::absolute(include)?);
    }
    command
        .args(&sources)
        .arg(bindings.join("skill.c"))
        .arg(bindings.join("skill_component_type.o"))
        .arg("-o")
        .arg(&module);
    run_tool(command, dir, &compiler.name)?;
    let core = std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
    let (component, _) = prepare_component(&core, manifest).with_context(|| {
        format!(
            "{} was built but is not a valid skill for its manifest",
            module.display()
        )
    })?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
}

/// Writes the WIT contract to `wit` and wit-bindgen's C bindings of world `skill` (`skill.h`,
/// `skill.c`, `skill_component_type.o`) to `to`. The component imports only what the code
/// calls, as for Rust, so the full world serves every manifest.
pub fn write_bindings(wit: &Path, to: &Path) -> Result<()> {
    write_wit(wit)?;
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(wit)
        .with_context(|| format!("reading the WIT in {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some("skill"))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .context("generating the C bindings")?;
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for (name, contents) in files.iter() {
        let path = to.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The `.c` files under `dir`, recursively, in a stable order.
fn c_sources(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if !dir.is_dir() {
        return Ok(found);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        // Not following links into directories: a link loop would never end.
        if entry.file_type()?.is_dir() {
            found.extend(c_sources(&path)?);
        } else if path.extension().is_some_and(|e| e == "c") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// A C compiler that targets wasm32-wasi with a wasi-libc.
struct CCompiler {
    program: String,
    args: Vec<String>,
    name: String,
}

impl CCompiler {
    /// `OMNIFORGE_CC` if set (split at spaces), else `zig cc`, else zig from the `ziglang`
    /// Python package.
    fn find() -> Result<Self> {
        if let Ok(cc) = std::env::var("OMNIFORGE_CC")
            && !cc.trim().is_empty()
        {
            let mut words = cc.split_whitespace().map(str::to_owned);
            let program = words.next().unwrap_or_default();
            return Ok(Self {
                name: format!("{cc} (OMNIFORGE_CC)"),
                program,
                args: words.collect(),
            });
        }
        if let Some(version) = output_of("zig", &["version"]) {
            if version != ZIGLANG {
                eprintln!(
                    "note: using zig {version} from the PATH; skill build is tested with \
                     {ZIGLANG} (pip install ziglang=={ZIGLANG})"
                );
            }
            return Ok(Self {
                program: "zig".into(),
                args: vec!["cc".into()],
                name: "zig cc".into(),
            });
        }
        for python in ["python3", "python"] {
            if output_of(python, &["-m", "ziglang", "version"]).is_some() {
                return Ok(Self {
                    program: python.into(),
                    args: vec!["-m".into(), "ziglang".into(), "cc".into()],
                    name: format!("{python} -m ziglang cc"),
                });
            }
        }
        bail!(
            "no C compiler for WebAssembly found: `pip install ziglang=={ZIGLANG}` (zig, with \
             wasi-libc), or set OMNIFORGE_CC to one, e.g. OMNIFORGE_CC=clang after Debian's \
             `apt-get install clang lld wasi-libc libclang-rt-dev-wasm32` (add \
             --sysroot=DIR for a wasi-sdk elsewhere)"
        )
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }
}

/// What `program args` prints (trimmed), if it runs and succeeds.
fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C SDK's unit tests (`sdk/tests/c`): compiled natively by the system's C compiler
    /// against freshly generated bindings, under AddressSanitizer and UBSan, with the host's
    /// side of the imports stubbed the way the bindings behave.
    #[test]
    fn the_c_sdk_passes_its_unit_tests_under_sanitizers() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let tmp = tempfile::tempdir().unwrap();
        let bindings = tmp.path().join("bindings");
        write_bindings(&tmp.path().join("wit"), &bindings).unwrap();
        let binary = tmp.path().join("sdk_test");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let compiled = Command::new(&cc)
            .args([
                "-std=c11",
                "-g",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-D_GNU_SOURCE",
            ])
            .args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
            .arg("-I")
            .arg(root.join("sdk/c"))
            .arg("-I")
            .arg(&bindings)
            .arg(root.join("sdk/tests/c/sdk_test.c"))
            .arg(root.join("sdk/tests/c/host_stubs.c"))
            .arg(root.join("sdk/c/omniforge.c"))
            .arg(root.join("sdk/c/omniforge_json.c"))
            .arg("-lm")
            .arg("-o")
            .arg(&binary)
            .output();
        let compiled = match compiled {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var("CI").is_err(),
                    "{cc} is missing under CI (Debian: apt-get install gcc)"
                );
                eprintln!("SKIPPED: no native C compiler ({cc})");
                // Where ./scripts/test.sh collects what was skipped.
                if let Some(path) = std::env::var_os("OMNIFORGE_TEST_SKIPS") {
                    use std::io::Write as _;
                    let record = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path);
                    if let Ok(mut file) = record {
                        let _ = writeln!(file, "the C SDK's native unit tests: no {cc}");
                    }
                }
                return;
            }
            other => other.unwrap(),
        };
        assert!(
            compiled.status.success(),
            "{}",
            String::from_utf8_lossy(&compiled.stderr)
        );
        let ran = Command::new(&binary).output().unwrap();
        let said = String::from_utf8_lossy(&ran.stdout);
        assert!(
            ran.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        assert!(said.contains("ok (0 failed)"), "{said}");
    }
}
