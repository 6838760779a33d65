//! Fetches GraphiQL and React from the npm registry at build time, so that the binary
//! serves them itself and no browser has to reach a CDN (see `src/graphiql.rs`).
//!
//! Each package is pinned by version and by the `integrity` (SHA-512) the registry
//! publishes for its tarball, `npm view PACKAGE@VERSION dist.integrity`; a tarball that does
//! not match is refused, whoever served it. The files GraphiQL needs are extracted into
//! `OUT_DIR/graphiql/`, where `include_bytes!` finds them.
//!
//! Tarballs are kept in `<target>/npm-tarballs/`, so rebuilds, other profiles and
//! `cargo clean -p platform` do not download them again. A machine that cannot reach the
//! registry builds from tarballs placed beforehand in the folder named by
//! `FOLIO_NPM_TARBALLS` (what `npm pack graphiql@4.1.2 react@18.3.1 react-dom@18.3.1`
//! writes). To move to other versions, change [`PACKAGES`]: version, integrity and paths.

use std::{
    env, fs,
    io::Read,
    path::{Path, PathBuf},
    time::Duration,
};

use base64::Engine;
use sha2::{Digest, Sha512};

/// One npm package and the files taken from its tarball.
struct Package {
    name: &'static str,
    version: &'static str,
    /// The registry's `dist.integrity` for the tarball.
    integrity: &'static str,
    /// Paths inside the tarball (under `package/`), each written to `OUT_DIR/graphiql/` under
    /// its file name.
    files: &'static [&'static str],
}

/// What GraphiQL's page loads. GraphiQL 4.x is the last line published with a browser
/// (UMD) build; 5.x ships ES modules only. React 18 is the last with UMD builds.
const PACKAGES: &[Package] = &[
    Package {
        name: "graphiql",
        version: "4.1.2",
        integrity: "sha512-rNlzQIAzm6i2KBXmVQWBgLvt0TloxFVB2d18bukvdsvjEuFDHsKx5IVOomL1W1o5WW+tE54+ioHb2AEKzO2cUg==",
        files: &["graphiql.min.js", "graphiql.min.css", "LICENSE"],
    },
    Package {
        name: "react",
        version: "18.3.1",
        integrity: "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
        files: &["umd/react.production.min.js", "LICENSE"],
    },
    Package {
        name: "react-dom",
        version: "18.3.1",
        integrity: "sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
        files: &["umd/react-dom.production.min.js", "LICENSE"],
    },
];

/// The npm registry: the only host the build asks, and only for the tarballs above.
const REGISTRY: &str = "https://registry.npmjs.org";
/// The folder of tarballs placed by hand for builds without the registry.
const TARBALLS_ENV: &str = "FOLIO_NPM_TARBALLS";
/// The largest tarball accepted (graphiql 4.1.2 is 5.4 MiB).
const TARBALL_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// How long one download may take in all.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed={TARBALLS_ENV}");
    if let Err(message) = run() {
        for line in message.lines() {
            println!("cargo::error={line}");
        }
    }
}

fn run() -> Result<(), String> {
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    let assets = out_dir.join("graphiql");
    fs::create_dir_all(&assets).map_err(|e| format!("creating {}: {e}", assets.display()))?;
    let cache = cache_dir(&out_dir);
    for package in PACKAGES {
        let tarball = tarball(package, &cache)?;
        extract(package, &tarball, &assets)?;
    }
    Ok(())
}

/// `<target>/npm-tarballs`: OUT_DIR is `<target>/<profile>/build/platform-<hash>/out`.
fn cache_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(out_dir)
        .join("npm-tarballs")
}

/// The verified tarball: from `FOLIO_NPM_TARBALLS`, the cache, or else the registry.
fn tarball(package: &Package, cache: &Path) -> Result<Vec<u8>, String> {
    let file_name = format!("{}-{}.tgz", package.name, package.version);
    if let Some(dir) = env::var_os(TARBALLS_ENV).filter(|d| !d.is_empty()) {
        let path = Path::new(&dir).join(&file_name);
        let bytes = fs::read(&path)
            .map_err(|e| format!("{TARBALLS_ENV}: cannot read {}: {e}", path.display()))?;
        verify(package, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(bytes);
    }
    let cached = cache.join(&file_name);
    if let Ok(bytes) = fs::read(&cached)
        && verify(package, &bytes).is_ok()
    {
        return Ok(bytes);
    }
    let bytes = download(package)?;
    verify(package, &bytes).map_err(|e| format!("{}: {e}", tarball_url(package)))?;
    fs::create_dir_all(cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
    // Written aside and renamed, so that a build stopped halfway leaves no truncated file.
    let partial = cache.join(format!("{file_name}.partial"));
    fs::write(&partial, &bytes)
        .and_then(|()| fs::rename(&partial, &cached))
        .map_err(|e| format!("caching {}: {e}", cached.display()))?;
    Ok(bytes)
}

fn tarball_url(package: &Package) -> String {
    let Package { name, version, .. } = package;
    format!("{REGISTRY}/{name}/-/{name}-{version}.tgz")
}

fn download(package: &Package) -> Result<Vec<u8>, String> {
    let url = tarball_url(package);
    let unreachable = |e: &dyn std::fmt::Display| {
        format!(
            "cannot download {url}: {e}\n\
             GraphiQL's files come from the npm registry at build time. Without access to it, \
             run `npm pack {}@{}` where the registry is reachable (likewise for every package \
             in platform/build.rs), and build with {TARBALLS_ENV}=<the folder holding the .tgz \
             files>.",
            package.name, package.version
        )
    };
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(DOWNLOAD_TIMEOUT))
        .build()
        .new_agent();
    let mut response = agent.get(&url).call().map_err(|e| unreachable(&e))?;
    response
        .body_mut()
        .with_config()
        .limit(TARBALL_BYTES_MAX)
        .read_to_vec()
        .map_err(|e| unreachable(&e))
}

/// Checks `bytes` against the pinned SHA-512 integrity.
fn verify(package: &Package, bytes: &[u8]) -> Result<(), String> {
    let expected = package
        .integrity
        .strip_prefix("sha512-")
        .ok_or_else(|| format!("{}: integrity must be sha512", package.name))?;
    let actual = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes));
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "{}@{} has integrity sha512-{actual}, expected {}",
            package.name, package.version, package.integrity
        ))
    }
}

/// Writes the package's `files` into `assets`, failing when one is missing.
fn extract(package: &Package, tarball: &[u8], assets: &Path) -> Result<(), String> {
    let context = |e: std::io::Error| format!("reading {}@{}: {e}", package.name, package.version);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    let mut found = Vec::new();
    for entry in archive.entries().map_err(context)? {
        let mut entry = entry.map_err(context)?;
        let path = entry.path().map_err(context)?.into_owned();
        let Ok(inner) = path.strip_prefix("package") else {
            continue;
        };
        let Some(wanted) = package.files.iter().find(|f| Path::new(f) == inner) else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(context)?;
        let name = Path::new(wanted)
            .file_name()
            .ok_or_else(|| format!("{wanted}: not a file path"))?;
        let target = assets.join(output_name(package, name.to_string_lossy().as_ref()));
        fs::write(&target, bytes).map_err(|e| format!("writing {}: {e}", target.display()))?;
        found.push(*wanted);
    }
    match package.files.iter().find(|f| !found.contains(f)) {
        Some(missing) => Err(format!(
            "{}@{} has no package/{missing}",
            package.name, package.version
        )),
        None => Ok(()),
    }
}

/// The name a file gets in `OUT_DIR/graphiql/`: licences are named by their package.
fn output_name(package: &Package, file_name: &str) -> String {
    if file_name == "LICENSE" {
        format!("LICENSE.{}", package.name)
    } else {
        file_name.to_string()
    }
}
