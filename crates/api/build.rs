//! Puts the dashboard (`dashboard/`) into the binary: vendors Chart.js from
//! npm at build time (pinned by `dashboard/package-lock.json`), gives each
//! asset a content-hashed URL so browsers may cache it for good, and writes
//! `$OUT_DIR/dashboard_assets.rs` for `src/assets.rs` to include. The
//! running binary needs no network and no files beside it.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

/// The vendored chart library: npm package, file in it, name served under.
const CHART_PACKAGE: &str = "chart.js";
const CHART_FILE: &str = "dist/chart.umd.min.js";
const CHART_SERVED: &str = "chart.umd.min.js";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let dashboard = manifest.join("dashboard");
    let chart = dashboard
        .join("node_modules")
        .join(CHART_PACKAGE)
        .join(CHART_FILE);
    for file in [
        "package.json",
        "package-lock.json",
        "index.html",
        "app.js",
        "app.css",
    ] {
        println!("cargo:rerun-if-changed={}", dashboard.join(file).display());
    }
    // Deleting node_modules (or the file) must vendor it again.
    println!("cargo:rerun-if-changed={}", chart.display());

    if !installed_matches_lock(&dashboard) {
        npm_ci(&dashboard);
    }
    let chart_js = fs::read_to_string(&chart)
        .unwrap_or_else(|e| panic!("{} after npm ci: {e}", chart.display()));
    // Its source map is not vendored; the comment would only make browser
    // tools ask for a file that is not there.
    let chart_js: String = chart_js
        .lines()
        .filter(|l| !l.starts_with("//# sourceMappingURL="))
        .collect::<Vec<_>>()
        .join("\n");
    let chart_out = out.join(CHART_SERVED);
    fs::write(&chart_out, &chart_js).expect("write the vendored chart library");

    // (name in index.html, file, content type)
    let assets = [
        (
            "app.js",
            dashboard.join("app.js"),
            "text/javascript; charset=utf-8",
        ),
        (
            "app.css",
            dashboard.join("app.css"),
            "text/css; charset=utf-8",
        ),
        (CHART_SERVED, chart_out, "text/javascript; charset=utf-8"),
    ];
    let mut index = fs::read_to_string(dashboard.join("index.html")).expect("dashboard/index.html");
    let mut table = String::new();
    for (name, file, content_type) in &assets {
        let body = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let hashed = hashed_name(name, &body);
        let reference = format!("\"assets/{name}\"");
        assert_eq!(
            index.matches(&reference).count(),
            1,
            "dashboard/index.html must refer to {reference} exactly once"
        );
        index = index.replace(&reference, &format!("\"assets/{hashed}\""));
        table.push_str(&format!(
            "    Asset {{ path: \"/assets/{hashed}\", content_type: {content_type:?}, body: include_bytes!({:?}) }},\n",
            file.display().to_string()
        ));
    }
    let index_out = out.join("index.html");
    fs::write(&index_out, index).expect("write index.html");
    let code = format!(
        "/// The dashboard page, its asset references rewritten to hashed names.\n\
         const INDEX_HTML: &[u8] = include_bytes!({:?});\n\
         /// The assets under their content-hashed paths.\n\
         const ASSETS: &[Asset] = &[\n{table}];\n",
        index_out.display().to_string()
    );
    fs::write(out.join("dashboard_assets.rs"), code).expect("write dashboard_assets.rs");
}

/// Whether node_modules holds the chart library at the version the lock pins
/// (a changed lock must vendor again, not keep the old copy).
fn installed_matches_lock(dashboard: &Path) -> bool {
    let package = dashboard.join("node_modules").join(CHART_PACKAGE);
    if !package.join(CHART_FILE).is_file() {
        return false;
    }
    let lock = fs::read_to_string(dashboard.join("package-lock.json"))
        .expect("dashboard/package-lock.json (commit it: it pins the chart library)");
    let locked = version_after(&lock, &format!("\"node_modules/{CHART_PACKAGE}\""));
    let installed = fs::read_to_string(package.join("package.json"))
        .ok()
        .and_then(|p| version_after(&p, "{"));
    locked.is_some() && locked == installed
}

/// The first `"version": "…"` after `anchor`; enough for npm's own files,
/// and no JSON parser needed in the build script.
fn version_after(text: &str, anchor: &str) -> Option<String> {
    let rest = &text[text.find(anchor)? + anchor.len()..];
    let rest = &rest[rest.find("\"version\"")? + "\"version\"".len()..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn npm_ci(dashboard: &Path) {
    let status = Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(dashboard)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "centile-api vendors its dashboard's chart library with npm at build time, \
                 and npm could not be run ({e}). Install Node.js and npm (Debian: \
                 `apt-get install npm`), or run `npm ci` in {} on a machine with npm.",
                dashboard.display()
            )
        });
    assert!(
        status.success(),
        "`npm ci --ignore-scripts` in {} failed ({status}); it fetches the chart library \
         pinned by package-lock.json from the npm registry",
        dashboard.display()
    );
}

/// `name` with a short content hash before its extension: `app.1a2b3c4d5e6f.js`.
fn hashed_name(name: &str, body: &[u8]) -> String {
    // FNV-1a: stable across Rust releases (unlike std's hasher) and enough
    // to tell versions of a file apart; this is no security boundary.
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let (stem, ext) = name.rsplit_once('.').expect("an extension");
    format!("{stem}.{:012x}.{ext}", hash & 0xffff_ffff_ffff)
}
