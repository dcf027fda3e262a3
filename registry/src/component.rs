//! The wasm inside a package: a component (or a wasip1 core module, adapted into one) that
//! exports the skill handler and imports nothing beyond the WASI base and what the manifest's
//! permissions declare.

use serde::Serialize;
use wasmparser::{Parser, Payload, Validator};

use crate::error::PackageError;
use crate::manifest::{Manifest, World};

/// The interface every skill exports.
const HANDLER: &str = "omniforge:skill/handler";
/// The WASI 0.2 packages every toolchain's standard library imports; granted nothing.
const WASI_BASE: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// What a component imports and exports (top-level names, e.g. `wasi:io/streams@0.2.12`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentInfo {
    /// Imported interfaces and functions.
    pub imports: Vec<String>,
    /// Exported interfaces and functions.
    pub exports: Vec<String>,
    /// Whether the package held a wasip1 core module that was adapted into this component.
    pub adapted_from_core_module: bool,
}

/// Returns a runnable component for `wasm` (adapting a core module) and what it imports and
/// exports, after checking it against the manifest.
pub fn prepare_component(
    wasm: &[u8],
    manifest: &Manifest,
) -> Result<(Vec<u8>, ComponentInfo), PackageError> {
    if !wasm.starts_with(b"\0asm") {
        let shown: String = wasm.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(PackageError::NotWasm(format!(
            "it starts with {shown:?}, not \\0asm"
        )));
    }
    let adapted = Parser::is_core_wasm(wasm);
    let component = if adapted {
        adapt_core_module(wasm)?
    } else if Parser::is_component(wasm) {
        wasm.to_vec()
    } else {
        return Err(PackageError::InvalidComponent(
            "unknown wasm encoding version".into(),
        ));
    };
    Validator::new()
        .validate_all(&component)
        .map_err(|e| PackageError::InvalidComponent(e.to_string()))?;
    let (imports, exports) = top_level_names(&component)?;
    let info = ComponentInfo {
        imports,
        exports,
        adapted_from_core_module: adapted,
    };
    check_exports(&info)?;
    check_imports(&info, manifest)?;
    Ok((component, info))
}

/// Turns a wasip1 core module built with component metadata (wit-bindgen does this for every
/// language) into a component, with the preview1 adapter shipped in a crates.io crate.
fn adapt_core_module(module: &[u8]) -> Result<Vec<u8>, PackageError> {
    let adapter = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)
        .and_then(|encoder| encoder.adapter("wasi_snapshot_preview1", adapter))
        .and_then(|encoder| encoder.encode())
        .map_err(|e| PackageError::Adapter(format!("{e:#}")))
}

/// The names of the component's own imports and exports (not those of nested components).
fn top_level_names(component: &[u8]) -> Result<(Vec<String>, Vec<String>), PackageError> {
    let invalid = |e: wasmparser::BinaryReaderError| PackageError::InvalidComponent(e.to_string());
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(component) {
        match payload.map_err(invalid)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import.map_err(invalid)?.name.full_name().into_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export.map_err(invalid)?.name.full_name().into_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

/// `omniforge:skill/kv@0.1.0` → (`omniforge:skill/kv`, `0.1.0`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (name, None),
    }
}

fn check_exports(info: &ComponentInfo) -> Result<(), PackageError> {
    let exports_handler = info.exports.iter().any(|export| {
        let (interface, version) = split_version(export);
        interface == HANDLER && version.is_some_and(|v| v.starts_with("0.1."))
    });
    if exports_handler {
        return Ok(());
    }
    let found = if info.exports.is_empty() {
        "nothing".into()
    } else {
        info.exports.join(", ")
    };
    Err(PackageError::WrongWorld(format!(
        "it must export {HANDLER}@0.1 (build it for the omniforge:skill skill or tool world); \
         it exports {found}"
    )))
}

fn check_imports(info: &ComponentInfo, manifest: &Manifest) -> Result<(), PackageError> {
    let perms = &manifest.permissions;
    let is_skill = manifest.skill.world == World::Skill;
    for import in &info.imports {
        let (interface, version) = split_version(import);
        let wasi_02 = version.is_some_and(|v| v.starts_with("0.2."));
        let ours_01 = version.is_some_and(|v| v.starts_with("0.1."));
        let undeclared = |needs: &str| PackageError::UndeclaredImport {
            import: import.clone(),
            needs: needs.into(),
        };
        match interface {
            _ if wasi_02 && WASI_BASE.iter().any(|base| interface.starts_with(base)) => {}
            "omniforge:skill/types" | "omniforge:skill/log" | "omniforge:skill/context"
                if ours_01 => {}
            "omniforge:skill/kv" if ours_01 => {
                if !is_skill {
                    return Err(undeclared("world = \"skill\""));
                }
                if !perms.kv {
                    return Err(undeclared("[permissions] kv = true"));
                }
            }
            "omniforge:skill/secrets" if ours_01 => {
                if !is_skill {
                    return Err(undeclared("world = \"skill\""));
                }
                if perms.secrets.is_empty() {
                    return Err(undeclared("[permissions] secrets = [\"name\", ...]"));
                }
            }
            "omniforge:skill/skills" if ours_01 => {
                if !is_skill {
                    return Err(undeclared("world = \"skill\""));
                }
                if perms.skills.is_empty() {
                    return Err(undeclared(
                        "[permissions] skills = { \"namespace/name\" = \"version requirement\" }",
                    ));
                }
            }
            "wasi:http/outgoing-handler" | "wasi:http/types" if wasi_02 => {
                if !is_skill {
                    return Err(undeclared("world = \"skill\""));
                }
                if perms.http.is_empty() {
                    return Err(undeclared("[permissions] http = [\"host\", ...]"));
                }
            }
            _ => return Err(PackageError::UnknownImport(import.clone())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(world: &str, permissions: &str) -> Manifest {
        Manifest::parse(&format!(
            "[package]\nname = \"t/t\"\nversion = \"1.0.0\"\ndescription = \"t\"\n\
             license = \"MIT\"\n[skill]\nworld = \"{world}\"\n{permissions}"
        ))
        .unwrap()
    }

    fn info(imports: &[&str]) -> ComponentInfo {
        ComponentInfo {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: vec!["omniforge:skill/handler@0.1.0".into()],
            adapted_from_core_module: false,
        }
    }

    #[test]
    fn the_wasi_base_and_logging_need_no_permission() {
        let imports = [
            "wasi:cli/environment@0.2.12",
            "wasi:io/streams@0.2.0",
            "omniforge:skill/log@0.1.0",
        ];
        check_imports(&info(&imports), &manifest("tool", "")).unwrap();
    }

    #[test]
    fn capabilities_need_their_permission_and_the_skill_world() {
        let kv = info(&["omniforge:skill/kv@0.1.0"]);
        let err = check_imports(&kv, &manifest("skill", ""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("omniforge:skill/kv@0.1.0") && err.contains("kv = true"),
            "{err}"
        );
        check_imports(&kv, &manifest("skill", "[permissions]\nkv = true")).unwrap();
        let err = check_imports(&kv, &manifest("tool", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("world = \"skill\""), "{err}");

        let http = info(&["wasi:http/outgoing-handler@0.2.12"]);
        let err = check_imports(&http, &manifest("skill", ""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("wasi:http/outgoing-handler") && err.contains("http"),
            "{err}"
        );
        check_imports(
            &http,
            &manifest("skill", "[permissions]\nhttp = [\"a.com\"]"),
        )
        .unwrap();

        // 0.1.1 added `skills`; a 0.1.0 component's imports stay acceptable beside it.
        let skills = info(&["omniforge:skill/skills@0.1.1", "omniforge:skill/log@0.1.0"]);
        let err = check_imports(&skills, &manifest("skill", ""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("omniforge:skill/skills@0.1.1") && err.contains("skills = {"),
            "{err}"
        );
        let granted = "[permissions]\nskills = { \"acme/b\" = \"^1\" }";
        check_imports(&skills, &manifest("skill", granted)).unwrap();
        let err = check_imports(&skills, &manifest("tool", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("world = \"skill\""), "{err}");

        // 0.1.3 added `secrets`: importing it needs at least one declared name.
        let secrets = info(&["omniforge:skill/secrets@0.1.3"]);
        let err = check_imports(&secrets, &manifest("skill", ""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("omniforge:skill/secrets@0.1.3") && err.contains("secrets = ["),
            "{err}"
        );
        let declared = "[permissions]\nsecrets = [\"api-token\"]";
        check_imports(&secrets, &manifest("skill", declared)).unwrap();
    }

    #[test]
    fn unknown_imports_and_other_versions_are_refused() {
        for import in [
            "acme:vault/secrets@1.0.0",
            "wasi:cli/environment@0.3.0",
            "omniforge:skill/kv@2.0.0",
        ] {
            let err = check_imports(
                &info(&[import]),
                &manifest("skill", "[permissions]\nkv = true"),
            );
            assert!(
                matches!(err, Err(PackageError::UnknownImport(_))),
                "{import}: {err:?}"
            );
        }
    }

    #[test]
    fn the_handler_export_is_required() {
        let mut other = info(&[]);
        other.exports = vec!["wasi:cli/run@0.2.12".into()];
        let err = check_exports(&other).unwrap_err().to_string();
        assert!(err.contains("wasi:cli/run@0.2.12"), "{err}");
    }
}
