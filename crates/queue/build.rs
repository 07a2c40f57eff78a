//! Embeds every file of `migrations/<backend>/` into the binary, in version order, so a single
//! `subsync` binary can migrate a database with no files beside it.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../../migrations");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = String::new();
    for backend in ["sqlite", "postgres"] {
        let dir = root.join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        out.push_str(&format!("pub(crate) const {}: &[(i64, &str, &str)] = &[\n", backend.to_uppercase()));
        for file in files {
            let stem = file.file_stem().and_then(|s| s.to_str()).expect("utf-8 file name");
            let (version, description) = stem
                .split_once('_')
                .unwrap_or_else(|| panic!("migration {stem} must be named <version>_<description>.sql"));
            let version: i64 = version.parse().unwrap_or_else(|_| panic!("migration {stem}: version must be a number"));
            let abs = fs::canonicalize(&file).expect("migration path");
            println!("cargo:rerun-if-changed={}", abs.display());
            out.push_str(&format!(
                "    ({version}, {description:?}, include_str!({:?})),\n",
                abs.display().to_string()
            ));
        }
        out.push_str("];\n");
    }
    let dest = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("migrations.rs");
    fs::write(dest, out).expect("write migrations.rs");
}
