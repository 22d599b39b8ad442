//! `odradek crdgen`: writes the CustomResourceDefinitions as YAML files (or prints them).

use std::io::Write as _;
use std::path::PathBuf;

/// Flags of `odradek crdgen`.
#[derive(Debug, Clone, clap::Args)]
pub struct CrdgenArgs {
    /// Directory the CRD files are written to (one `<plural>.odradek.dev.yaml` per kind).
    #[arg(long, env = "ODRADEK_CRD_DIR", default_value = "manifests/crds")]
    pub out: PathBuf,
    /// Print all CRDs to stdout as one multi-document YAML stream instead of writing files.
    #[arg(long, env = "ODRADEK_CRD_STDOUT")]
    pub stdout: bool,
}

/// Runs `odradek crdgen`.
///
/// # Errors
/// When a CRD cannot be rendered or written.
pub fn run(args: &CrdgenArgs) -> anyhow::Result<()> {
    if args.stdout {
        let mut out = std::io::stdout().lock();
        for (_, yaml) in odradek_crds::crdgen::render()? {
            writeln!(out, "---")?;
            out.write_all(yaml.as_bytes())?;
        }
        return Ok(());
    }
    for path in odradek_crds::crdgen::write_all(&args.out)? {
        tracing::info!(path = %path.display(), "wrote crd");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_file_per_kind() {
        let dir = tempfile::tempdir().unwrap();
        let args = CrdgenArgs {
            out: dir.path().join("crds"),
            stdout: false,
        };
        run(&args).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&args.out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "brokers.odradek.dev.yaml",
                "processors.odradek.dev.yaml",
                "topics.odradek.dev.yaml"
            ]
        );
    }
}
