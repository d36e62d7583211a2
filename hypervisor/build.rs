//! Build script of the hypervisor crate: builds the minios guest kernel and
//! leaves it at `$OUT_DIR/minios.elf`, where `hypervisor::minios::elf()`
//! embeds it.
//!
//! minios is a freestanding kernel built with the host toolchain alone (no
//! extra rustup target, no nightly). It cannot share the outer build's flags or
//! target dir, so it is built by a nested `cargo build --release` with its own
//! `--target-dir` under `OUT_DIR`, its own flags, and none of the outer build's
//! settings in the environment. Its link arguments (linker script, `-nostdlib`,
//! `-static`) come from `minios/build.rs`.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The host target, named explicitly so the flags below do not reach
/// minios's build scripts (cargo applies target flags only to target crates
/// when `--target` is given).
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Compile flags of minios: absolute addresses (no GOT indirection) and the
/// baseline x86-64 CPU, so no `popcnt` or AVX can be selected by a
/// `target-cpu=native` elsewhere.
const RUSTFLAGS: &[&str] = &["-Crelocation-model=static", "-Ctarget-cpu=x86-64"];

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: building the minios guest kernel failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let minios = manifest_dir.join("minios");
    let abi = manifest_dir.join("abi");

    for path in [
        minios.join("Cargo.toml"),
        minios.join("Cargo.lock"),
        minios.join("build.rs"),
        minios.join("link.ld"),
        minios.join("src"),
        abi.join("Cargo.toml"),
        abi.join("src"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let target_dir = out_dir.join("minios-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(&cargo);
    for (key, _) in env::vars_os() {
        if let Some(key) = key.to_str()
            && leaks_outer_settings(key)
        {
            command.env_remove(key);
        }
    }
    command
        .current_dir(&minios)
        .args(["build", "--release", "--locked", "--target", TARGET])
        .arg("--manifest-path")
        .arg(minios.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\x1f"))
        // Build script stdout is read for `cargo:` directives: keep the
        // nested cargo's output on stderr, where cargo shows it on failure.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit());

    let status = command
        .status()
        .map_err(|e| format!("could not run {}: {e}", cargo.to_string_lossy()))?;
    if !status.success() {
        return Err(format!(
            "the nested `cargo build --release --target {TARGET}` in {} failed ({status}); its \
             errors are above. To reproduce: cd hypervisor/minios && RUSTFLAGS=\"{}\" cargo \
             build --release --target {TARGET}",
            minios.display(),
            RUSTFLAGS.join(" "),
        ));
    }

    let elf = target_dir.join(TARGET).join("release").join("minios");
    copy(&elf, &out_dir.join("minios.elf"))
}

/// Environment the outer build sets (or inherited from the user) that would
/// change how minios is compiled: flags, target, target dir, profiles,
/// compiler wrappers (e.g. clippy-driver under `cargo clippy`).
fn leaks_outer_settings(key: &str) -> bool {
    const PREFIXES: &[&str] = &["CARGO_BUILD_", "CARGO_PROFILE_", "CARGO_TARGET_", "__CARGO"];
    const NAMES: &[&str] = &[
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_INCREMENTAL",
    ];
    NAMES.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("could not copy {} to {}: {e}", from.display(), to.display()))
}

fn env_var(key: &str) -> Result<OsString, String> {
    env::var_os(key).ok_or_else(|| format!("cargo did not set {key}"))
}
